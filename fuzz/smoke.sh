#!/usr/bin/env bash
# The bounded fuzz run of the test command: every target in fuzz/ runs for
# a few seconds under libFuzzer, with coverage, starting from its committed
# seeds (fuzz/seeds/TARGET, crash regressions included), on the stable
# toolchain. A crash, a timeout (one input over 10 s), a run over its own
# bound or the whole run over its deadline fails it.
#
#   fuzz/smoke.sh                                  # 5 s per target
#   FUZZ_SECONDS=60 FUZZ_DEADLINE=1200 fuzz/smoke.sh
#
# It needs nothing but cargo and the crates of fuzz/Cargo.lock (--locked):
# it builds the targets with the flags `cargo fuzz build --dev --sanitizer
# none` passes (cargo-fuzz 0.13.2, src/project.rs) and runs the binaries
# itself, so cargo-fuzz is not installed. The build is unoptimised
# (profile dev, no debug info): on two cores it takes minutes where the
# optimised build of fuzz/long.sh takes most of an hour; the instrumentation
# for coverage (SanitizerCoverage) is the same. No AddressSanitizer: our
# crates forbid unsafe code; overflow checks and debug assertions are on.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-5}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-target}"
bin_dir="$target_dir/$triple/debug"

flags="-Cpasses=sancov-module"
flags+=" -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
flags+=" --cfg fuzzing"
flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth"
flags+=" -Cdebug-assertions"

echo "== building the fuzz targets (profile dev, with coverage instrumentation)"
start="$(date +%s)"
# --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
RUSTFLAGS="$flags" CARGO_PROFILE_DEV_DEBUG=0 \
  cargo build --locked --manifest-path Cargo.toml --target "$triple" --bins
echo "== built in $(($(date +%s) - start)) s"

mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -vx onionpkg-fuzz)
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no targets in Cargo.toml"; exit 1; }
# The runs together (the build not included) must end within this many
# seconds: by default 20 s a target, as if they ran one at a time.
deadline="${FUZZ_DEADLINE:-$((${#targets[@]} * (seconds + 15)))}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Runs one target; its one-line result goes to $work/TARGET.result, its
# log (shown when it fails) to $work/TARGET.log.
fuzz_one() {
  local target="$1" left="$2" log="$work/$1.log" status=0
  mkdir -p "$work/$target" "artifacts/$target"
  # New inputs go to a scratch corpus; the seeds are read only. Every seed
  # runs, however long that takes within the bound. libFuzzer's own time
  # limit is checked between inputs; timeout(1) bounds the rest.
  timeout -k 5 $((seconds + 60 < left ? seconds + 60 : left)) \
    "$bin_dir/$target" "$work/$target" "seeds/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
  if [ "$status" -eq 0 ]; then
    local runs rate cov
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    cov="$(grep -ao 'cov: [0-9]*' "$log" | tail -1)"
    echo "fuzz $target: ${runs:-?} runs, ${rate:-?}/s, ${cov:-cov: ?}" >"$work/$target.result"
  else
    echo "fuzz $target: FAILED (exit $status$([ "$status" -eq 124 ] && echo ", over its bound"))" \
      >"$work/$target.result"
  fi
}

# FUZZ_JOBS targets at a time: one per core on the two-core machines the
# test command runs on.
jobs="${FUZZ_JOBS:-2}"
start="$(date +%s)"
running=0
for target in "${targets[@]}"; do
  left=$((deadline - ($(date +%s) - start)))
  if [ "$left" -le "$seconds" ]; then
    echo "fuzz $target: FAILED: the run's deadline of $deadline s leaves no time for it" \
      >"$work/$target.result"
    continue
  fi
  fuzz_one "$target" "$left" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=0
passed=0
for target in "${targets[@]}"; do
  result="$(cat "$work/$target.result" 2>/dev/null || echo "fuzz $target: FAILED (no result)")"
  echo "$result"
  case "$result" in
    *FAILED*)
      failed=$((failed + 1))
      [ -f "$work/$target.log" ] && tail -40 "$work/$target.log"
      # Kept (fuzz/artifacts is not committed): add it to seeds/$target as
      # crash-NAME once fixed, so every later run tries it first.
      ls -d "artifacts/$target/"* 2>/dev/null || true
      ;;
    *) passed=$((passed + 1)) ;;
  esac
done
echo "== fuzzed for $(($(date +%s) - start)) s, $jobs at a time"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
