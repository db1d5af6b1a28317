# Sourced by the demo, test and bench scripts: installs Debian packages for
# the commands that are missing, with apt-get (through sudo when not root).
#
#   need COMMAND:PACKAGE ...    e.g. need tor:tor curl:curl knotd:knot
#                               an absolute path of a file that is not a
#                               command (a data package's file) is checked to
#                               exist: need /usr/share/tor/geoip6:tor-geoipdb
#   install PACKAGE ...         unconditionally
#   need_cargo_bin COMMAND CRATE VERSION   a tool from crates.io

log() { printf '==> %s\n' "$*"; }

need() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd="${pair%%:*}"
    pkg="${pair#*:}"
    case "$cmd" in
      /*) [ -e "$cmd" ] || missing+=("$pkg") ;;
      *) command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ] || missing+=("$pkg") ;;
    esac
  done
  if ((${#missing[@]})); then
    install "${missing[@]}"
  fi
}

# need_cargo_bin COMMAND CRATE VERSION: installs CRATE at VERSION with
# `cargo install --locked` unless COMMAND already reports that version.
need_cargo_bin() {
  if ! "$1" --version 2>/dev/null | grep -qx "$1 $3"; then
    log "cargo install $2 $3"
    cargo install --locked --quiet "$2" --version "$3"
  fi
}

install() {
  log "installing $*"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
