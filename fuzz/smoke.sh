#!/usr/bin/env bash
# The bounded fuzz run of the test command: every target in fuzz/ runs for
# a few seconds under libFuzzer, with coverage, starting from its committed
# seeds (fuzz/seeds/TARGET, crash regressions included), on the stable
# toolchain. A crash, a timeout (a unit over 10 s) or a seed that fails
# stops the run with an error.
#
#   fuzz/smoke.sh                 # 5 s per target
#   FUZZ_SECONDS=60 fuzz/smoke.sh
#
# Stable toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer,
# -Cpasses=sancov-module options); RUSTC_BOOTSTRAP=1 lets the stable rustc
# take them, and `--sanitizer none` leaves out AddressSanitizer, whose
# runtime is not needed for our crates (they forbid unsafe code; overflow
# and other debug assertions stay on). The instrumentation for coverage
# (SanitizerCoverage) is the same as on nightly. The longer run is
# fuzz/long.sh.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-5}"
# cargo-fuzz 0.13.2 builds with Rust 1.95; pinned so CI builds the same.
version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$version"; then
  echo "== installing cargo-fuzz $version"
  cargo install --locked cargo-fuzz --version "$version"
fi

export RUSTC_BOOTSTRAP=1
echo "== cargo fuzz build (stable, no sanitizer)"
cargo fuzz build --sanitizer none

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
passed=0
for target in $(cargo fuzz list); do
  mkdir -p "$work/$target"
  log="$work/$target.log"
  # New inputs go to a scratch corpus; the seeds are read only.
  if cargo fuzz run --sanitizer none "$target" "$work/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$work/$target-" >"$log" 2>&1; then
    passed=$((passed + 1))
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
    echo "fuzz $target: ${runs:-?} runs, ${rate:-?}/s, ${cov:-cov: ?}"
  else
    failed=$((failed + 1))
    echo "fuzz $target: FAILED"
    tail -40 "$log"
    ls "$work" | grep -E "^$target-(crash|timeout|oom|leak)" || true
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
