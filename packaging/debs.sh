#!/usr/bin/env bash
# Builds the Debian packages with cargo-deb from the binaries the test
# command already built (debug profile: `--no-build`), and checks them:
#
#  1. each holds its binary, man pages, completions, units, configuration
#     (a conffile) and maintainer scripts (`dpkg-deb -c`, `-f`), and lintian
#     reports no error;
#  2. in a throwaway Debian root (debootstrap from the apt mirror this
#     machine uses, cached as a tarball under the target dir, or without a
#     network a copy-on-write overlay of this machine's own root: see
#     ONIONPKG_DEBS_ROOT below; systemd is not PID 1 there), `dpkg -i`
#     succeeds, the users and directories exist with their owners and
#     modes, no service is enabled while its configuration
#     is not ready (and the postinst says why), one is once it is,
#     `systemd-analyze verify` passes on the installed units, and the
#     binaries run;
#  3. purging removes what a package made, except the mirror's onion key and
#     the signer's token and log, and says so.
#
# Called by packaging/check.sh after `cargo build --bins`, with the binaries,
# man pages and completions it made in ONIONPKG_BINS, ONIONPKG_MAN and
# ONIONPKG_COMPLETIONS; needs root (chroot, unshare, mount), debootstrap,
# lintian, dpkg-dev and cargo-deb (tests/deps.sh installs them).
# ONIONPKG_DEBS_OUT=DIR keeps the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/deps.sh

target="${CARGO_TARGET_DIR:-$PWD/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
work="$(mktemp -d "$target/debs.XXXXXX")"
cleanup() {
  # The root's mounts lived in mount namespaces that died with their
  # processes: nothing is mounted here any more.
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "debs: $*" >&2
  exit 1
}

# cargo-deb packages from a target directory of its own: `target/release/`
# in the assets names its `debug/`. The target dir may be shared by several
# checkouts, whose builds each put their binaries at target/debug/NAME, so
# the binaries are copied from there right after `cargo build` (by
# packaging/check.sh, which also made the man pages and completions: passed
# in ONIONPKG_BINS, ONIONPKG_MAN, ONIONPKG_COMPLETIONS), not read later.
debtarget="$work/target"
built="$debtarget/debug"
mkdir -p "$built/deb"
bins=(onionpkg-fetch onionpkg-mirror onionpkg-announce onionpkg-repo onionpkg-signer)
if [ -n "${ONIONPKG_BINS:-}" ] && [ -n "${ONIONPKG_MAN:-}" ] && [ -n "${ONIONPKG_COMPLETIONS:-}" ]; then
  for b in "${bins[@]}"; do cp "$ONIONPKG_BINS/$b" "$built/"; done
  cp -r "$ONIONPKG_MAN" "$built/deb/man"
  cp -r "$ONIONPKG_COMPLETIONS" "$built/deb/completions"
else
  log "Debian packages: building, man pages and completions"
  cargo build --locked --bins -q
  for b in "${bins[@]}"; do cp "$target/debug/$b" "$built/"; done
  cargo xtask man "$built/deb/man" >/dev/null
  cargo xtask completions "$built/deb/completions" >/dev/null
fi
gzip -9nf "$built"/deb/man/*.1

log "Debian packages: cargo deb --no-build"
out="${ONIONPKG_DEBS_OUT:-$work/debs}"
mkdir -p "$out"
# crate:package
packages=(onionpkg-fetcher:onionpkg-fetch onionpkg-mirror:onionpkg-mirror
  onionpkg-announce:onionpkg-announce onionpkg-repo:onionpkg-repo
  onionpkg-signer:onionpkg-signer)
for pair in "${packages[@]}"; do
  crate="${pair%%:*}"
  # The dev profile draws a warning: the packages are a test build here.
  CARGO_TARGET_DIR="$debtarget" timeout 120 cargo deb -q -p "$crate" --no-build --profile dev --strip --fast \
    -o "$out/" >/dev/null 2>"$work/deb.err" || { cat "$work/deb.err" >&2; fail "cargo deb -p $crate failed"; }
  grep -v -e 'dev profile is not supported' -e 'To enable debug symbols' "$work/deb.err" >&2 || true
done
deb() { echo "$out/${1}_"*.deb; }

log "Debian packages: contents"
# What each package must hold, beyond its binary, man page and completions.
declare -A extra=(
  [onionpkg-fetch]="usr/lib/systemd/system/onionpkg-fetch.service usr/lib/systemd/system/onionpkg-fetch.timer etc/onionpkg/fetcher.toml"
  [onionpkg-mirror]="usr/lib/systemd/system/onionpkg-mirror.service etc/onionpkg/mirror.toml"
  [onionpkg-announce]="usr/lib/systemd/system/onionpkg-announce.service etc/onionpkg/announce.toml"
  [onionpkg-repo]=""
  [onionpkg-signer]="usr/lib/systemd/system/onionpkg-signer.service usr/lib/systemd/system/onionpkg-signer-relay.service usr/share/onionpkg-signer/dial.conf etc/onionpkg/signer.toml etc/onionpkg/softhsm2.conf etc/onionpkg/signer-relay.env"
)
for pair in "${packages[@]}"; do
  p="${pair#*:}"
  f="$(deb "$p")"
  [ -f "$f" ] || fail "no package $p in $out"
  dpkg-deb -c "$f" | awk '{print $6}' | sed 's|^\./||' >"$work/$p.files"
  for want in "usr/bin/$p" "usr/share/man/man1/$p.1.gz" \
    "usr/share/bash-completion/completions/$p" "usr/share/zsh/vendor-completions/_$p" \
    "usr/share/fish/vendor_completions.d/$p.fish" "usr/share/doc/$p/copyright" \
    ${extra[$p]}; do
    grep -qx "$want" "$work/$p.files" || fail "$p does not hold $want"
  done
  # Every file under /etc is a conffile.
  dpkg-deb -e "$f" "$work/$p.control"
  for conf in $(grep '^etc/' "$work/$p.files" | grep -v '/$' || true); do
    grep -qx "/$conf" "$work/$p.control/conffiles" || fail "$p: /$conf is not a conffile"
  done
  if [ -n "${extra[$p]}" ]; then
    [ -x "$work/$p.control/postinst" ] || fail "$p has no postinst"
    grep -q "check-config" "$work/$p.control/postinst" || fail "$p: the postinst does not check the configuration"
  fi
  echo "$p: $(grep -c . "$work/$p.files") entries; conffiles: $(cat "$work/$p.control/conffiles" 2>/dev/null | tr '\n' ' ')"
done

log "Debian packages: lintian"
# In the background: it takes a core for most of a minute; the root below
# is unpacked and tested meanwhile.
(timeout 300 lintian --tag-display-limit 0 "$out"/*.deb >"$work/lintian.log" 2>&1; echo $? >"$work/lintian.rc") &
lintian_pid=$!

log "Debian packages: a throwaway Debian root"
# ONIONPKG_DEBS_ROOT says how the root is made; either way dpkg, adduser,
# deb-systemd-helper and the maintainer scripts run for real in it, as root,
# in a mount and PID namespace of their own (systemd is not PID 1 there):
#  - debootstrap: a fresh Debian minbase (with systemd, adduser, procps) of
#    the suite and from the mirror this machine's apt uses, made once and
#    cached as a tarball under the target dir, unpacked afresh for each run;
#  - host: without a network and without that cache, a copy-on-write
#    overlay of this machine's own root file system (a Debian system with
#    those packages installed, its dpkg database included): everything the
#    test writes goes to an upper directory in the work dir, thrown away
#    after; the host's files and dpkg database are not changed.
#  - auto (the default): debootstrap when the tarball is cached or
#    debootstrap can make it, host otherwise, saying so.
kind="${ONIONPKG_DEBS_ROOT:-auto}"
case "$kind" in auto | debootstrap | host) ;; *) fail "ONIONPKG_DEBS_ROOT=$kind: not auto, debootstrap or host" ;; esac
# What the packages depend on beyond the base system, and systemd for
# systemd-analyze: the packages are installed with dpkg, not apt.
include=systemd,adduser,procps
# debootstrap_tarball: sets $tarball to a cached minbase root, making it
# with debootstrap if it is not there yet; fails without a network.
debootstrap_tarball() {
  local suite="" mirror="" cache="$target/debootstrap" fresh
  # The suite and mirror this machine's apt uses.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
    suite="$(awk '/^Suites:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$suite" ] && [ -f /etc/apt/sources.list ]; then
    read -r mirror suite < <(awk '$1 == "deb" && $2 !~ /security/ {print $2, $3; exit}' /etc/apt/sources.list)
  fi
  [ -n "$suite" ] && [ -n "$mirror" ] || { echo "cannot tell the apt mirror and suite" >&2; return 1; }
  tarball="$cache/$suite-minbase-${include//,/-}.tar"
  mkdir -p "$cache"
  [ -f "$tarball" ] && return 0
  # Without a network, say so at once rather than after wget's retries.
  if ! timeout 20 wget -q -t 1 -T 10 -O /dev/null "$mirror/dists/$suite/InRelease"; then
    echo "cannot reach $mirror/dists/$suite/InRelease" >&2
    return 1
  fi
  log "debootstrap $suite from $mirror (once; cached in $tarball)"
  fresh="$(mktemp -d "$cache/root.XXXXXX")"
  if ! timeout 600 debootstrap --variant=minbase --include="$include" \
    "$suite" "$fresh" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    tail -5 "$cache/debootstrap.log" >&2
    rm -rf "$fresh"
    return 1
  fi
  rm -rf "$fresh/var/cache/apt/archives/"*.deb
  tar -C "$fresh" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$fresh"
}
if [ "$kind" != host ]; then
  if debootstrap_tarball; then
    kind=debootstrap
  elif [ "$kind" = auto ]; then
    log "debootstrap could not make a root (no network?): using a copy-on-write overlay of this machine's root"
    kind=host
  else
    fail "debootstrap failed"
  fi
fi
# $root: where files are put from outside before the first command runs
# in the root (for the overlay, its upper directory).
base="$work/rootfs"
mkdir -p "$base"
if [ "$kind" = debootstrap ]; then
  root="$base/root"
  mkdir "$root"
  tar -C "$root" --numeric-owner -xf "$tarball"
  echo "root: debootstrap minbase from $tarball"
else
  for p in "${bins[@]}"; do
    ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q installed ||
      fail "$p is installed on this machine: its root is no fresh root to install into"
  done
  for c in systemd-analyze adduser runuser kill; do
    command -v "$c" >/dev/null || fail "this machine has no $c: its root cannot stand for a Debian root with $include"
  done
  root="$base/upper"
  mkdir "$root" "$base/ovlwork" "$base/merged"
  echo "root: overlay of this machine's / (upper: $root)"
fi
# mktemp made the work dir 0700, and the root's / is a directory in it:
# the services' users must get past /.
chmod 0755 "$root"
mkdir -p "$root/debs"
cp "$out"/*.deb "$root/debs/"

# in_root CMD...: runs CMD in the root, with its own /proc and mounts (gone
# with it).
in_root() {
  if [ "$kind" = debootstrap ]; then
    timeout 120 unshare --mount --pid --fork --mount-proc="$root/proc" \
      chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
  else
    # Only the mount of / is the lower layer: not /proc, /dev, nor other
    # mounts; the root gets its own /proc and this machine's /dev.
    timeout 120 unshare --mount --pid --fork sh -ec '
      b="$1"; shift
      mount --make-rprivate /
      mount -t overlay overlay -o "lowerdir=/,upperdir=$b/upper,workdir=$b/ovlwork" "$b/merged"
      mount -t proc proc "$b/merged/proc"
      mount --rbind /dev "$b/merged/dev"
      exec chroot "$b/merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"' \
      sh "$base" "$@"
  fi
}
# mode PATH OWNER MODE: PATH in the root exists with that owner and mode.
mode() {
  local got
  got="$(in_root stat -c '%U:%G %a' "$1" 2>/dev/null)" || fail "$1 is missing"
  [ "$got" = "$2:$2 $3" ] || fail "$1 is $got, not $2:$2 $3"
}
# unit_mode UNIT PATH: the unit's StateDirectoryMode= is PATH's mode, so
# systemd does not change it at start.
unit_mode() {
  local want got
  want="$(sed -n 's/^StateDirectoryMode=0*//p' "packaging/systemd/$1")"
  got="$(in_root stat -c '%a' "$2")"
  [ "$want" = "$got" ] || fail "$1 says StateDirectoryMode=$want, $2 is $got"
}
exists() { in_root test -e "$1"; }
# show LOG: what the maintainer scripts said, without dpkg's progress.
show() {
  grep -v -e '^Selecting' -e '^(Reading' -e '^Preparing' -e '^Unpacking' -e '^Setting up' \
    -e '^Removing' -e '^Purging' "$1" | sed 's/^/  | /' || true
}
enabled() { exists "/etc/systemd/system/$1/$2"; }

log "dpkg -i, configurations as packaged (not ready)"
in_root sh -c 'dpkg -i /debs/*.deb' >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "dpkg -i failed"; }
for p in onionpkg-fetch onionpkg-mirror onionpkg-announce onionpkg-signer; do
  grep -q "^$p: onionpkg-[a-z]*\.\(service\|timer\) is not enabled or (re)started" "$work/install.log" ||
    { cat "$work/install.log" >&2; fail "$p's postinst did not say why it enabled nothing"; }
done
show "$work/install.log"
grep -q "no trust root: none pinned at /var/lib/onionpkg-fetch/state/root.json" "$work/install.log" ||
  { cat "$work/install.log" >&2; fail "the fetcher's postinst did not give check-config's reason"; }
! enabled timers.target.wants onionpkg-fetch.timer || fail "the fetch timer was enabled without a root"
for u in onionpkg-mirror onionpkg-announce onionpkg-signer onionpkg-signer-relay; do
  ! enabled multi-user.target.wants "$u.service" || fail "$u.service was enabled with the packaged configuration"
done
# The dial drop-in is shipped inactive: only the administrator copies it.
! exists /etc/systemd/system/onionpkg-signer.service.d/dial.conf || fail "the signer's dial drop-in is active as installed"

log "users and directories"
for u in onionpkg-fetch onionpkg-mirror onionpkg-signer onionpkg-signer-relay; do
  line="$(in_root getent passwd "$u")" || fail "no user $u"
  uid="$(cut -d: -f3 <<<"$line")"
  [ "$uid" -lt 1000 ] || fail "$u is not a system user (uid $uid)"
  [ "$(cut -d: -f7 <<<"$line")" = /usr/sbin/nologin ] || fail "$u can log in: $line"
done
! in_root getent passwd onionpkg-announce >/dev/null || fail "onionpkg-announce runs as a DynamicUser; no user is made"
mode /var/lib/onionpkg-fetch onionpkg-fetch 755
mode /var/lib/onionpkg-fetch/state onionpkg-fetch 700
mode /var/lib/onionpkg-fetch/tor onionpkg-fetch 700
mode /var/lib/onionpkg-fetch/downloads onionpkg-fetch 755
mode /var/cache/onionpkg-fetch onionpkg-fetch 755
mode /var/cache/onionpkg-fetch/tor onionpkg-fetch 700
mode /var/lib/onionpkg-mirror onionpkg-mirror 750
mode /var/lib/onionpkg-mirror/tor onionpkg-mirror 700
mode /var/lib/onionpkg-mirror/repo onionpkg-mirror 755
mode /var/cache/onionpkg-mirror onionpkg-mirror 755
mode /var/cache/onionpkg-mirror/tor onionpkg-mirror 700
mode /var/lib/onionpkg-signer onionpkg-signer 750
mode /var/lib/onionpkg-signer/tokens onionpkg-signer 700
unit_mode onionpkg-fetch.service /var/lib/onionpkg-fetch
unit_mode onionpkg-mirror.service /var/lib/onionpkg-mirror
unit_mode onionpkg-signer.service /var/lib/onionpkg-signer
echo "users onionpkg-fetch, onionpkg-mirror, onionpkg-signer, onionpkg-signer-relay; directories and modes as the units say"

log "systemd-analyze verify (installed units) and the binaries"
in_root sh -c 'cd /usr/lib/systemd/system && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
  onionpkg-fetch.service onionpkg-fetch.timer onionpkg-mirror.service onionpkg-announce.service \
  onionpkg-signer.service onionpkg-signer-relay.service' >"$work/verify.log" 2>&1 || true
if grep -q . "$work/verify.log"; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify reported problems in the root"
fi
for b in onionpkg-fetch onionpkg-mirror onionpkg-announce onionpkg-repo onionpkg-signer; do
  in_root "$b" --help >/dev/null || fail "$b --help failed in the root"
done
in_root man -w onionpkg-fetch-check-config >/dev/null 2>&1 || exists /usr/share/man/man1/onionpkg-fetch-check-config.1.gz ||
  fail "no man page onionpkg-fetch-check-config"
echo "units verified; every binary runs"

log "a local edit of a conffile survives a reinstall"
in_root sh -c 'echo "# local edit" >>/etc/onionpkg/fetcher.toml'
in_root dpkg -i /debs/"$(basename "$(deb onionpkg-fetch)")" >"$work/reinstall.log" 2>&1 ||
  { cat "$work/reinstall.log" >&2; fail "reinstalling onionpkg-fetch failed"; }
in_root grep -q "^# local edit" /etc/onionpkg/fetcher.toml || fail "the edit of fetcher.toml was lost"
! enabled timers.target.wants onionpkg-fetch.timer || fail "a reinstall enabled the timer without a root"

log "purge"
# State as a running mirror would leave it: an onion key, a synced tree.
in_root sh -c 'mkdir -p /var/lib/onionpkg-mirror/tor/keystore /var/lib/onionpkg-mirror/repo/metadata &&
  echo key >/var/lib/onionpkg-mirror/tor/keystore/hs_id.key && echo {} >/var/lib/onionpkg-mirror/repo/metadata/timestamp.json &&
  echo {} >/var/lib/onionpkg-mirror/mirror-state.json && echo tiles >/var/lib/onionpkg-signer/entries.jsonl'
in_root dpkg --purge onionpkg-fetch onionpkg-mirror onionpkg-announce onionpkg-repo onionpkg-signer \
  >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
show "$work/purge.log"
for gone in /var/lib/onionpkg-fetch /var/cache/onionpkg-fetch /var/cache/onionpkg-mirror \
  /var/lib/onionpkg-mirror/repo /var/lib/onionpkg-mirror/mirror-state.json /etc/onionpkg/fetcher.toml \
  /etc/onionpkg/mirror.toml /etc/onionpkg/signer.toml /usr/lib/systemd/system/onionpkg-fetch.timer; do
  ! exists "$gone" || fail "purge left $gone"
done
! in_root getent passwd onionpkg-fetch >/dev/null || fail "purge left the user onionpkg-fetch"
in_root grep -qx key /var/lib/onionpkg-mirror/tor/keystore/hs_id.key || fail "purge removed the onion key"
in_root test -f /var/lib/onionpkg-signer/entries.jsonl || fail "purge removed the signer's log"
mode /var/lib/onionpkg-mirror/tor onionpkg-mirror 700
in_root getent passwd onionpkg-signer >/dev/null || fail "purge removed the user owning the signer's token"
grep -q "onionpkg-fetch: removed /var/lib/onionpkg-fetch" "$work/purge.log" &&
  grep -q "onionpkg-mirror: kept /var/lib/onionpkg-mirror/tor: it holds the onion service key" "$work/purge.log" &&
  grep -q "onionpkg-signer: kept /var/lib/onionpkg-signer: it holds the token" "$work/purge.log" ||
  { cat "$work/purge.log" >&2; fail "purge did not say what it removed and kept"; }
echo "purged: the fetcher's state and user removed; the onion key and the signer's token and log kept, and said so"

log "dpkg -i with the configurations ready"
repo="$work/repo"
"$built/onionpkg-repo" -r "$repo" init --bins 0 >/dev/null
# Through the root: after the purge, the overlay's upper directory may
# hold a whiteout where /etc/onionpkg was.
in_root sh -c 'mkdir -p /etc/onionpkg && cat >/etc/onionpkg/root.json' <"$repo/metadata/1.root.json"
in_root sh -c 'dpkg -i /debs/onionpkg-fetch_*.deb /debs/onionpkg-mirror_*.deb' >"$work/ready.log" 2>&1 ||
  { cat "$work/ready.log" >&2; fail "dpkg -i failed"; }
enabled timers.target.wants onionpkg-fetch.timer || { cat "$work/ready.log" >&2; fail "the fetch timer was not enabled with a root"; }
enabled multi-user.target.wants onionpkg-mirror.service || { cat "$work/ready.log" >&2; fail "the mirror was not enabled with a root"; }
! grep -q "is not enabled" "$work/ready.log" || { cat "$work/ready.log" >&2; fail "a postinst refused a ready configuration"; }
# The old key and user are the mirror's again.
in_root grep -qx key /var/lib/onionpkg-mirror/tor/keystore/hs_id.key || fail "reinstalling lost the onion key"
echo "with /etc/onionpkg/root.json, onionpkg-fetch.timer and onionpkg-mirror.service are enabled"

wait "$lintian_pid" || true
rc="$(cat "$work/lintian.rc" 2>/dev/null || echo 1)"
grep -v -e '^running with root privileges' -e 'tag-display-limit' "$work/lintian.log" || true
# Exit 1: an error tag; 2: lintian itself failed.
if grep -q '^E: ' "$work/lintian.log" || [ "$rc" != 0 ]; then
  fail "lintian reported errors (exit $rc)"
fi
echo "lintian: no errors"
echo "packaging/debs.sh: ${SECONDS}s"
