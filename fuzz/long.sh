#!/usr/bin/env bash
# The long fuzz run: every target for FUZZ_SECONDS (default 600), JOBS at a
# time (default 2), each from its committed seeds, with a timeout of 10 s
# per input. Prints a Markdown table of the figures (the one in
# docs/RELIABILITY.md) and exits non-zero if any target crashed, timed out
# or ran out of memory. Logs, the grown corpora and any crashing input stay
# in OUT (default fuzz/out/, not committed).
#
#   fuzz/long.sh                                   # the stable toolchain
#   FUZZ_TOOLCHAIN=+nightly fuzz/long.sh           # a nightly one
#   FUZZ_SECONDS=600 JOBS=2 fuzz/long.sh tuf_client config   # some targets
#   REPORT_ONLY=1 OUT=DIR fuzz/long.sh                 # the table of a past run
#
# Unlike smoke.sh it uses cargo-fuzz (the optimised build: codegen-units=1,
# several times faster per input, most of an hour to build on two
# cores). When `cargo fuzz` 0.13.2 is missing it is built from crates.io
# with `cargo install --locked` (the registry the workspace's crates come
# from; Debian does not package it).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-600}"
jobs="${JOBS:-2}"
out="${OUT:-out}"
toolchain="${FUZZ_TOOLCHAIN:-}"
report_only="${REPORT_ONLY:-}"
version=0.13.2
if [ -z "$report_only" ] && ! cargo fuzz --version 2>/dev/null | grep -qF "$version"; then
  cargo install --locked cargo-fuzz --version "$version"
fi
# No AddressSanitizer (see smoke.sh). RUSTC_BOOTSTRAP=1 is not needed with
# --sanitizer none (cargo-fuzz then passes no -Z flag); the recorded run in
# docs/RELIABILITY.md was built with it.
[ -z "$toolchain" ] && export RUSTC_BOOTSTRAP=1
# shellcheck disable=SC2086 # empty, or one word such as +nightly
[ -z "$report_only" ] && cargo $toolchain fuzz build --sanitizer none

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
mkdir -p "$out"

run() {
  local t="$1"
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  # shellcheck disable=SC2086
  cargo $toolchain fuzz run --sanitizer none "$t" "$out/corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" >"$out/$t.log" 2>&1 || true
}

running=0
[ -n "$report_only" ] && targets_to_run=() || targets_to_run=("${targets[@]}")
for t in "${targets_to_run[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

bad=0
echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus (inputs) | crashes | timeouts |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
  log="$out/$t.log"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  last="$(grep -aE '^#[0-9]+' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)"
  ft="$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)"
  corpus="$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)"
  crashes="$(find "$out/artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'leak-*' | wc -l)"
  timeouts="$(find "$out/artifacts/$t" -name 'timeout-*' -o -name 'slow-unit-*' | wc -l)"
  if grep -aq 'ERROR: libFuzzer\|panicked at\|deadly signal' "$log"; then
    crashes=$((crashes > 0 ? crashes : 1))
  fi
  [ $((crashes + timeouts)) -gt 0 ] && bad=1
  echo "| \`$t\` | $seconds | ${runs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corpus:-?} | $crashes | $timeouts |"
done
exit "$bad"
