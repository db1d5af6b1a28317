#!/usr/bin/env bash
# Checks the packaging: the packaged configurations load and every path a
# service writes lies inside what its unit lets it write (StateDirectory=,
# CacheDirectory=, LogsDirectory=, ReadWritePaths=; config/tests/), the
# systemd units pass `systemd-analyze verify`, the man pages generated from
# the binaries' clap definitions render with `man -l`, the bash
# completions parse, and the Debian packages build, pass lintian, install,
# upgrade and purge in a throwaway Debian root (packaging/debs.sh).
#
# The units name /usr/bin/onionpkg-*; for the check they are copied with
# those paths pointing at the freshly built binaries, so verify checks what
# would run. On a fresh Debian machine it installs systemd, man-db,
# debootstrap, lintian, dpkg-dev and cargo-deb first.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/deps.sh

need systemd-analyze:systemd man:man-db
need debootstrap:debootstrap lintian:lintian dpkg-shlibdeps:dpkg-dev
need_cargo_bin cargo-deb cargo-deb 3.8.0

log "packaged configurations against their units"
cargo test --locked -q -p onionpkg-config --test packaging --test unit_paths

log "building the binaries and generating man pages and completions"
cargo build --locked --bins -q
# The binaries are where cargo put them: CARGO_TARGET_DIR when it is set.
target="${CARGO_TARGET_DIR:-$PWD/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Copied at once: other checkouts sharing the target dir put theirs at the
# same paths when they build.
bin="$work/bin"
mkdir "$bin"
for b in onionpkg-fetch onionpkg-mirror onionpkg-announce onionpkg-repo onionpkg-signer; do
  cp "$target/debug/$b" "$bin/"
done
cargo xtask man "$work/man" >/dev/null
cargo xtask completions "$work/completions" >/dev/null

log "man -l"
pages=0
for page in "$work"/man/*.1; do
  out="$(MANWIDTH=80 man -l "$page" 2>"$work/man.err")"
  if [ -s "$work/man.err" ] || [ -z "$out" ]; then
    echo "man -l $(basename "$page") failed:" >&2
    cat "$work/man.err" >&2
    exit 1
  fi
  pages=$((pages + 1))
done
echo "$pages man pages render"

log "bash completions"
for c in "$work"/completions/*.bash; do
  bash -n "$c"
done

log "systemd-analyze verify"
mkdir -p "$work/units"
for u in packaging/systemd/*.service packaging/systemd/*.timer; do
  sed "s|/usr/bin/onionpkg-|$bin/onionpkg-|g" "$u" >"$work/units/$(basename "$u")"
done
# verify resolves man: links against the pages just generated.
MANPATH="$work/man-tree:" 
mkdir -p "$work/man-tree/man1" && cp "$work"/man/*.1 "$work/man-tree/man1/"
export MANPATH
(cd "$work/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=yes ./*.service ./*.timer) 2>&1 | tee "$work/verify.log"
if grep -q . "$work/verify.log"; then
  echo "systemd-analyze verify reported problems" >&2
  exit 1
fi
# The signer with its dial drop-in (shipped inactive, docs/SIGNER.md) and an
# address allowed, as an administrator enables it: the same unit name in a
# directory of its own, the drop-in in NAME.service.d beside it.
mkdir -p "$work/dial/onionpkg-signer.service.d"
cp "$work/units/onionpkg-signer.service" "$work/dial/"
cp packaging/systemd/onionpkg-signer.service.d/dial.conf "$work/dial/onionpkg-signer.service.d/"
printf '[Service]\nIPAddressAllow=192.0.2.10\n' >"$work/dial/onionpkg-signer.service.d/zz-allow.conf"
(cd "$work/dial" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=yes ./onionpkg-signer.service) 2>&1 | tee "$work/verify-dial.log"
if grep -q . "$work/verify-dial.log"; then
  echo "systemd-analyze verify reported problems with the dial drop-in" >&2
  exit 1
fi
echo "units verified: $(ls packaging/systemd | tr '\n' ' ')"

# The Debian packages, from the binaries, pages and completions made above.
ONIONPKG_BINS="$bin" ONIONPKG_MAN="$work/man" ONIONPKG_COMPLETIONS="$work/completions" \
  bash packaging/debs.sh
