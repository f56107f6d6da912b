#!/usr/bin/env bash
# Builds the libFuzzer targets (clang + ASan + UBSan) and runs each for a bounded time.
#
#   scripts/fuzz.sh                      # every target, 30 s each (what CI runs)
#   scripts/fuzz.sh 3600                 # the longer run: one hour per target
#   scripts/fuzz.sh 600 safetensors      # some targets only
#
# Environment: BUILD_DIR (default build-fuzz), JOBS (build parallelism, default nproc), NICE (default 0;
# use 19 on a shared machine), FUZZ_ARGS (extra libFuzzer flags, e.g. "-fork=4" or "-runs=10000000").
#
# Each target starts from its checked-in seeds (fuzz/corpus/<target>) plus what earlier runs found
# (<build>/fuzz-corpus/<target>, kept between runs, never checked in). Findings are written to
# <build>/fuzz-artifacts/; the script exits non-zero if any target found one. Turn a finding into a
# regression test in tests/io/test_hostile_files.cpp (see docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-30}"
shift || true
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-$(nproc)}"
NICE="${NICE:-0}"
ALL_TARGETS=(safetensors json_config scheduler_config tokenizer weights formats server_request lora_tags)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

# The fuzz targets parse files and requests only: no CUDA backend (its nvcc build would only add minutes).
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKAKUSAN_FUZZ=ON -DKAKUSAN_SANITIZE=ON -DKAKUSAN_BUILD_TESTS=OFF -DKAKUSAN_BUILD_BENCH=OFF -DKAKUSAN_CUDA=OFF >/dev/null
fi
nice -n "$NICE" cmake --build "$BUILD_DIR" -j"$JOBS" --target "${TARGETS[@]/#/fuzz_}"

# The weight-binding seeds are whole model headers (16 KB for the UNet); the others stay small.
max_len() { [ "$1" = weights ] && echo 32768 || echo 4096; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$BUILD_DIR/fuzz-artifacts"
status=0
printf '%-18s %12s %8s %10s  %s\n' target executions seconds exec/s outcome
for target in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/fuzz-corpus/$target"
  mkdir -p "$corpus"
  dict=(); [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  log="$BUILD_DIR/fuzz-artifacts/$target.log"
  set +e
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  nice -n "$NICE" "$BUILD_DIR/fuzz/fuzz_$target" "$corpus" "fuzz/corpus/$target" "${dict[@]}" \
    -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$target")" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    -artifact_prefix="$BUILD_DIR/fuzz-artifacts/$target-" ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    outcome="no finding"
  else
    outcome="FINDING (exit $rc): $(grep -m1 -E 'ERROR|runtime error|deadly|timeout|out-of-memory|malloc' "$log" || true)"
    status=1
  fi
  printf '%-18s %12s %8s %10s  %s\n' "$target" "${runs:-?}" "${secs:-?}" "${rate:-?}" "$outcome"
done
[ "$status" -eq 0 ] || echo "fuzz: findings are in $BUILD_DIR/fuzz-artifacts/ (logs: <target>.log)" >&2
exit "$status"
