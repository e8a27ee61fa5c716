#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, where nothing can be installed: runs the whole test
# suite of the bundle made by scripts/gpu_prepare.sh (CUDA tests included), then
# compute-sanitizer's memcheck and racecheck over the CUDA tests, then the GPU
# benchmarks, and writes the results to a folder.
# Usage: bash scripts/gpu_check.sh [bundle-dir] [out-dir]
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-gpu-bundle}
out=${2:-${OUT:-gpu-results}}
mkdir -p "$out"
# gpu_prepare.sh packs the bundle to fit the carry limit; unpack it in place.
if [ -f "$build/bundle.tar.gz" ]; then
  tar -C "$build" -xzf "$build/bundle.tar.gz" || { echo "cannot unpack $build/bundle.tar.gz"; exit 1; }
fi
export LD_LIBRARY_PATH="$PWD/$build/lib:${LD_LIBRARY_PATH:-}"
export RECUR_TEST_DATA_DIR="$PWD/tests/golden/data"
# On a GPU machine a CUDA test that finds no usable GPU fails instead of skipping.
export RECUR_TEST_REQUIRE_GPU=1
summary="$out/summary.txt"
{
  echo "recur GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
} > "$summary"

status=0
: > "$out/tests.log"
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  "$t" --gtest_brief=1 >> "$out/tests.log" 2>&1
  rc=$?
  echo "$name: exit $rc" >> "$summary"
  [ $rc -eq 0 ] || status=1
done
grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/tests.log" | sort | uniq -c >> "$summary"

# compute-sanitizer over every test binary that runs CUDA code; one log per tool.
sanitize() {
  local tool=$1
  local log="$out/$tool.log"
  if ! command -v compute-sanitizer > /dev/null; then
    echo "$tool: compute-sanitizer not found" >> "$summary"
    return
  fi
  : > "$log"
  for t in test_parity_cuda test_clip test_optim test_modules; do
    [ -x "$build/tests/$t" ] || continue
    echo "=== $t" >> "$log"
    compute-sanitizer --tool "$tool" --error-exitcode 99 "$build/tests/$t" --gtest_brief=1 \
      >> "$log" 2>&1
    local rc=$?
    echo "$tool over $t: exit $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1)" \
      >> "$summary"
    [ $rc -eq 0 ] || status=1
  done
}
sanitize memcheck
sanitize racecheck

if [ -x "$build/bench/recur_bench" ]; then
  "$build/bench/recur_bench" --gpu --deepbench --max-seconds 1 --warmup 1 --json "$out/bench.json" > "$out/bench.txt" 2>&1 ||
    { echo "bench: failed" >> "$summary"; status=1; }
fi
# Clipping bandwidth (beside PyTorch's clip_grad_norm_ when torch with CUDA is there) and
# what a variable-length batch costs.
for run in "recur_bench_clip --torch-script bench/bench_clip_torch.py" "recur_bench_packed --gpu"; do
  set -- $run
  if [ -x "$build/bench/$1" ]; then
    { echo "=== $run"; "$build/bench/$1" "${@:2}"; } >> "$out/bench.txt" 2>&1 ||
      { echo "$1: failed" >> "$summary"; status=1; }
  fi
done
echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED)" >> "$summary"
cat "$summary"
exit $status
