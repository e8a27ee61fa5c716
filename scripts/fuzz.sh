#!/usr/bin/env bash
# Fuzzes the safetensors reader and the checkpoint loader (tests/fuzz/) for a bounded time.
# Builds everything (library, tests, examples, benchmarks) in build-fuzz/ with clang and
# -Werror (so this is also the check that clang compiles the project without warnings),
# ASan + UBSan and libFuzzer's instrumentation; runs each fuzz target on a copy of its seed
# corpus with the dictionary; then replays the kept regression inputs
# (tests/test_fuzz_regressions.cpp) in that build.
#   RECUR_FUZZ_SECONDS (30): seconds per target; RECUR_FUZZ_MAX_LEN (65536): input size cap.
# Exits non-zero on a finding, printing the file libFuzzer kept; to keep it as a
# regression, copy it into tests/fuzz/regressions/<target>/ (the test replays it for good).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=build-fuzz
seconds=${RECUR_FUZZ_SECONDS:-30}
max_len=${RECUR_FUZZ_MAX_LEN:-65536}

mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECUR_CUDA=OFF \
  -DRECUR_FUZZ=ON -DRECUR_WERROR=ON -DRECUR_BUILD_BENCH=ON > "$build/configure.log" ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2

# OpenBLAS, not oneDNN (built against GCC's OpenMP, beside clang's here); the loaders do
# no GEMM, this only keeps a second OpenMP runtime out of the process.
export RECUR_CPU_GEMM=openblas
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
for target in safetensors checkpoint; do
  run="$build/fuzz-run/$target"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/findings"
  cp tests/fuzz/corpus/"$target"/* "$run/corpus/"
  echo "--- fuzz_$target: ${seconds} s, inputs up to $max_len bytes"
  rc=0
  "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -max_len="$max_len" \
    -dict=tests/fuzz/safetensors.dict -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$run/findings/" "$run/corpus" > "$run/log.txt" 2>&1 || rc=$?
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
    "$run/log.txt" || true
  findings=$(find "$run/findings" -type f)
  if [ "$rc" -ne 0 ] || [ -n "$findings" ]; then
    status=1
    echo "fuzz_$target: FINDING (exit $rc); the report (from $run/log.txt):"
    grep -E -A30 '^==[0-9]+==ERROR|runtime error|escaped|deadly signal' "$run/log.txt" | head -60 || tail -40 "$run/log.txt"
    for f in $findings; do echo "fuzz_$target: finding kept in $f"; done
    echo "reproduce: $build/tests/fuzz/fuzz_$target <file>; keep it: cp <file> tests/fuzz/regressions/$target/"
  else
    echo "fuzz_$target: no finding"
  fi
done

# The kept inputs, in the build with the most checks.
"$build/tests/test_fuzz_regressions" --gtest_brief=1 || status=1
exit $status
