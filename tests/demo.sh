#!/usr/bin/env bash
# The onionpkg demo: the whole story on one machine, on a private Tor network.
set -euo pipefail
echo "The demo is not built yet: it arrives with the fetcher, the mirror and the announcer."
echo "Meanwhile, tests/run.sh runs every test."
