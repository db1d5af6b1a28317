#!/usr/bin/env bash
# Runs every onionpkg test: formatting, lints, unit, integration and
# end-to-end tests (private Tor network, python-tuf interop), and a bounded
# run of every fuzz target (fuzz/smoke.sh).
#
# On a fresh Debian machine it first installs what the tests need: Debian's
# tor, curl, Knot DNS (knotd, keymgr, knsupdate), dig, nginx, wrk, GNU time,
# libfaketime, python3-venv, debootstrap, lintian, dpkg-dev, cargo-deb from
# crates.io, libloc (location, libloc-database, python3-location),
# tor-geoipdb, bubblewrap, and python-tuf from PyPI in ./.venv. It ends
# with the smoke version of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/deps.sh

# Knot and BIND's dig are the DNS peers; nginx, wrk and GNU time are what
# the benchmarks' smoke run compares with and drives; libfaketime (package
# faketime) moves the fetcher's clock in the clock tests; strace traces the
# fetcher's sockets; SoftHSM2 is the PKCS#11 token the signer's tests make
# keys in (opensc's pkcs11-tool for looking at it).
need tor:tor curl:curl knotd:knot knsupdate:knot-dnsutils dig:bind9-dnsutils \
  nginx:nginx-light wrk:wrk /usr/bin/time:time faketime:faketime strace:strace \
  softhsm2-util:softhsm2 pkcs11-tool:opensc
# The Debian packages (packaging/debs.sh): cargo-deb builds them, dpkg-dev's
# dpkg-shlibdeps finds their library dependencies, lintian checks them, and
# debootstrap makes the root they are installed into.
need debootstrap:debootstrap lintian:lintian dpkg-shlibdeps:dpkg-dev
need_cargo_bin cargo-deb cargo-deb 3.8.0
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || install python3-venv

# Real feeds: IPFire's signed location database and libloc's tools
# (`location verify`, and libloc's writer in python3-location for test
# databases), Tor's GeoIP files, and bubblewrap, the sandbox of external
# feed checkers.
need location:location bwrap:bubblewrap \
  /usr/share/libloc-location/location.db:libloc-database \
  /var/lib/location/signing-key.pem:location \
  /usr/lib/python3/dist-packages/location/__init__.py:python3-location \
  /usr/share/tor/geoip:tor-geoipdb /usr/share/tor/geoip6:tor-geoipdb

# python-tuf is the interop peer of the trust layer.
if ! .venv/bin/python -c 'import tuf.ngclient' >/dev/null 2>&1; then
  log "installing python-tuf into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q 'tuf==7.0.1' 'securesystemslib[crypto]==1.6.0'
fi
export ONIONPKG_PYTHON="$PWD/.venv/bin/python"

log "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked
log "packaging: systemd units, man pages, completions"
bash packaging/check.sh
log "fuzzing, smoke version: every target for 5 s on the stable toolchain (the long run is fuzz/long.sh)"
bash fuzz/smoke.sh
log "benchmarks, smoke version (the full run is tests/bench.sh)"
smoke="$(mktemp -d)"
trap 'rm -rf "$smoke"' EXIT
bash tests/bench.sh --smoke --out "$smoke/BENCHMARKS.md"
