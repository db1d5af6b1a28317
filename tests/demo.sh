#!/usr/bin/env bash
# The onionpkg demo: the whole story on one machine, on a private Tor
# network on 127.0.0.1 (never the public one). A release is made, served by
# an onion mirror and announced in DNS; an appliance checks, sees it,
# downloads it over Tor and verifies it; a blocklist feed is signed and
# synced. Each step is narrated with its time.
#
# The online keys are made inside a SoftHSM2 token in the temp dir, and the
# release is signed through onionpkg-signer.
#
# On a fresh Debian machine it first installs Debian's tor and SoftHSM2.
# It can be run again: everything lives in a temp dir that is removed at
# the end, and every process it started is stopped, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/deps.sh

need tor:tor softhsm2-util:softhsm2
log "building the onionpkg binaries"
cargo build --locked --bins -q

TMPDIR="$(mktemp -d -t onionpkg-demo.XXXXXX)"
export TMPDIR
cleanup() {
  # Whatever is still running from this run (after a Ctrl-C) names the dir.
  pkill -f "$TMPDIR" 2>/dev/null || true
  rm -rf "$TMPDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "running the demo"
"${CARGO_TARGET_DIR:-target}/debug/onionpkg-demo"
