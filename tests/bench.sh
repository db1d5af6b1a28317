#!/usr/bin/env bash
# Runs the benchmarks and writes docs/BENCHMARKS.md with its charts in
# docs/bench/: onionpkg against nginx, C tor + curl, sha256sum, polling and
# in-process signing, on loopback and on the private Tor network of the
# test harness.
#
# On a fresh Debian machine it first installs what the benchmarks compare
# with or drive: tor, nginx, wrk, curl, GNU time and SoftHSM2. The
# binaries are built in release mode. Arguments go to onionpkg-bench (--smoke, --runs N,
# --out FILE, --no-tor, --no-local, --no-signer).
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/deps.sh

need tor:tor nginx:nginx-light wrk:wrk curl:curl /usr/bin/time:time softhsm2-util:softhsm2

profile=release
for arg in "$@"; do
  # The smoke version checks that every benchmark runs; a dev build will do.
  [ "$arg" = "--smoke" ] && profile=dev
done
if [ "$profile" = release ]; then
  log "cargo build --release --bins"
  cargo build --locked --release --bins
  exec "${CARGO_TARGET_DIR:-target}/release/onionpkg-bench" "$@"
else
  log "cargo build --bins"
  cargo build --locked --bins
  exec "${CARGO_TARGET_DIR:-target}/debug/onionpkg-bench" "$@"
fi
