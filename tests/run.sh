#!/usr/bin/env bash
# Runs every onionpkg test: formatting, lints, unit, integration and
# end-to-end tests (private Tor network, python-tuf interop).
#
# On a fresh Debian machine it first installs what the tests need: Debian's
# tor, curl, Knot DNS (knotd, keymgr, knsupdate), dig, python3-venv, and
# python-tuf from PyPI in ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

missing=()
command -v tor >/dev/null 2>&1 || missing+=(tor)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v knotd >/dev/null 2>&1 || missing+=(knot)
command -v knsupdate >/dev/null 2>&1 || missing+=(knot-dnsutils)
command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# python-tuf is the interop peer of the trust layer.
if ! .venv/bin/python -c 'import tuf.ngclient' >/dev/null 2>&1; then
  log "installing python-tuf into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q 'tuf==7.0.1' 'securesystemslib[crypto]==1.6.0'
fi
export ONIONPKG_PYTHON="$PWD/.venv/bin/python"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked
