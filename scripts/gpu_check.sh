#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, where nothing can be installed: runs the CUDA tests of
# the bundle made by scripts/gpu_prepare.sh, the GPU benchmarks (recur beside cuDNN and
# cuBLAS), compute-sanitizer's memcheck and racecheck over the CUDA tests, and DeepBench's
# training problems, and writes the results to a folder as it goes.
# Usage: bash scripts/gpu_check.sh [bundle-dir] [out-dir]
# Each stage has a time limit (seconds, from the environment) so that a lent machine's few
# minutes give the most important answers first even if something hangs:
#   RECUR_GPU_TESTS_S (150), RECUR_GPU_BENCH_S (180), RECUR_GPU_MEMCHECK_S (90),
#   RECUR_GPU_RACECHECK_S (60), RECUR_GPU_PROFILE_S (60), RECUR_GPU_DEEPBENCH_S (90); 0 skips
#   a stage.
# RECUR_GPU_ALL_TESTS=1 also runs the test binaries with no CUDA code (CI runs those).
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
# cuDNN often comes as a Python wheel (nvidia-cudnn) rather than in the toolkit; the cuDNN
# anchor dlopens libcudnn.so.9, so put the first one found on the library path.
cudnn=$(find /usr/lib /usr/local /opt -name 'libcudnn.so.9' -print -quit 2> /dev/null)
[ -n "$cudnn" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$cudnn")"
export RECUR_TEST_DATA_DIR="$PWD/tests/golden/data"
# On a GPU machine a CUDA test that finds no usable GPU fails instead of skipping.
export RECUR_TEST_REQUIRE_GPU=1
summary="$out/summary.txt"
{
  echo "recur GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2> /dev/null)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  echo "cuDNN: ${cudnn:-not found}"
  ldd "$build"/lib/librecur_cuda.so.*.*.* | grep -E 'cudart|cublas|not found' | awk '{print $1, $3}'
} > "$summary"
cat "$summary"

status=0
stage() {  # stage NAME SECONDS: says whether to run it, and logs its start
  if [ "$2" -le 0 ]; then
    echo "$1: skipped" >> "$summary"
    return 1
  fi
  echo "--- $1 (limit $2 s) at $(date -u +%H:%M:%S)"
}
limited() {  # limited SECONDS CMD...: runs CMD, killed after SECONDS; 124 means it was
  timeout -k 5 "$@"
}

# The test binaries that run CUDA code; the others run in CI on every commit.
cuda_tests="test_parity_cuda test_loss_scale test_in_flight test_param_groups test_init test_clip test_optim test_modules test_joins test_long_sequences test_step_memory test_recompute test_diagnostics test_errors test_tensor"
if [ "${RECUR_GPU_ALL_TESTS:-0}" = 1 ]; then
  cuda_tests=$(cd "$build/tests" && ls test_*)
fi
tests_s=${RECUR_GPU_TESTS_S:-150}
if stage tests "$tests_s"; then
  : > "$out/tests.log"
  deadline=$((SECONDS + tests_s))
  for name in $cuda_tests; do
    t="$build/tests/$name"
    [ -x "$t" ] || continue
    left=$((deadline - SECONDS))
    if [ $left -le 0 ]; then
      echo "$name: not run (stage out of time)" >> "$summary"
      status=1
      continue
    fi
    limited "$left" "$t" --gtest_brief=1 >> "$out/tests.log" 2>&1
    rc=$?
    echo "$name: exit $rc$([ $rc -eq 124 ] && echo ' (timed out)')" >> "$summary"
    [ $rc -eq 0 ] || status=1
  done
  grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/tests.log" | sort | uniq -c >> "$summary"
  grep -E '^\[  FAILED  \]' "$out/tests.log" | sort -u | head -40 >> "$summary"
fi

# The NCCL communicator, one rank on one GPU, where the machine has an mpirun (the bundle
# carries OpenMPI's libraries, not its launcher and plugins).
if [ -x "$build/tests/test_distributed" ] && command -v mpirun > /dev/null && stage nccl 60; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 limited 60 mpirun -np 1 \
    "$build/tests/test_distributed" --gtest_brief=1 > "$out/nccl.txt" 2>&1
  echo "test_distributed (NCCL, 1 rank): exit $?" >> "$summary"
fi

# The sequence classifier on the GPU: ids, targets, joins and accuracy stay on the device.
if [ -x "$build/examples/seq_classify" ] && stage seq_classify 40; then
  limited 40 "$build/examples/seq_classify" --smoke --device cuda > "$out/seq_classify.txt" 2>&1
  echo "seq_classify --smoke --device cuda: exit $?" >> "$summary"
fi

# The large LSTM language model (8 x LSTM-4096, 1.14 B parameters) in BF16: tokens/s, MFU
# and peak memory, beside PyTorch's nn.LSTM under autocast when torch with CUDA is there.
lm_s=${RECUR_GPU_LM_S:-120}
if [ -x "$build/examples/train_large_lm" ] && stage large_lm "$lm_s"; then
  { limited $((lm_s / 2)) "$build/examples/train_large_lm" --config 1b --math bf16 --device cuda \
      --steps 20 --warmup 3 --json "$out/large_lm_recur.json"
    if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
      limited $((lm_s / 2)) python3 bench/torch_large_lm.py --config 1b --math bf16 --device cuda \
        --steps 20 --warmup 3 --json "$out/large_lm_torch.json"
    fi; } > "$out/large_lm.txt" 2>&1
  echo "large_lm: exit $?" >> "$summary"
fi

bench_s=${RECUR_GPU_BENCH_S:-180}
if [ -x "$build/bench/recur_bench" ] && stage bench "$bench_s"; then
  # The grid in FP32 and TF32 (beside cuDNN FP32 and TF32), then BF16 and FP16 at the sizes
  # where tensor cores matter (beside cuDNN BF16 and FP16, and PyTorch's autocast when torch
  # with CUDA is there): like against like, each in one run.
  limited "$bench_s" "$build/bench/recur_bench" --gpu --math fp32,tf32 --max-seconds 1 \
    --warmup 2 --json "$out/bench.json" > "$out/bench.txt" 2>&1
  rc=$?
  echo "bench: exit $rc" >> "$summary"
  [ $rc -eq 0 ] || status=1
  { echo "=== BF16 and FP16, H >= 1024"
    limited 60 "$build/bench/recur_bench" --gpu --math bf16,fp16 --no-ceiling --max-seconds 1 \
      --warmup 2 --mode training --filter "H=1024" --filter "H=2048" \
      --json "$out/bench_reduced.json"; } >> "$out/bench.txt" 2>&1
  echo "bench, bf16/fp16: exit $?" >> "$summary"
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
    { echo "=== PyTorch nn.LSTM / nn.GRU under autocast (bench/torch_autocast.py)"
      for shape in "--cell gru --T 100 --B 128 --H 2048" "--cell lstm --T 100 --B 64 --H 1024"; do
        limited 30 python3 bench/torch_autocast.py $shape
      done; } >> "$out/bench.txt" 2>&1
    echo "torch autocast: exit $?" >> "$summary"
  fi
  # The grid again with CUDA graphs off (RECUR_CUDA_GRAPHS=0), beside cuDNN in the same
  # run: against the rows above, what the graphs give (most at the launch-bound sizes:
  # H <= 512, B = 1, and the wavefronts).
  { echo "=== without CUDA graphs, RECUR_CUDA_GRAPHS=0"
    RECUR_CUDA_GRAPHS=0 limited 60 "$build/bench/recur_bench" --gpu --no-tf32 --no-ceiling \
      --max-seconds 1 --warmup 2; } >> "$out/bench.txt" 2>&1
  echo "bench, no graphs: exit $?" >> "$summary"
  # The unidirectional stacks with graph branches off, against the rows above (the pass
  # plan's rule, branches_pay()): whether the branches it takes still pay (the 2-layer and
  # the 4-layer H=256 wavefronts gained 3-7% and 2-3% on an H100).
  { echo "=== unidirectional stacks, RECUR_CUDA_GRAPH_BRANCHES=0"
    RECUR_CUDA_GRAPH_BRANCHES=0 limited 45 "$build/bench/recur_bench" --gpu --no-tf32 \
      --no-ceiling --max-seconds 1 --warmup 2 --mode training --filter "L=2 uni" \
      --filter "L=4 uni"; } >> "$out/bench.txt" 2>&1
  echo "bench, no graph branches: exit $?" >> "$summary"
  # The LSTM's training rows with layer 0's weight gradients as two GEMMs (no h_{t-1} beside
  # x): against the rows above, whether that one-GEMM layout pays on the GPU too.
  { echo "=== LSTM training, RECUR_X_HP_MIN_ROWS=1000000000 (two weight-gradient GEMMs)"
    RECUR_X_HP_MIN_ROWS=1000000000 limited 45 "$build/bench/recur_bench" --gpu --no-tf32 \
      --no-ceiling --max-seconds 1 --warmup 2 --mode training --filter "lstm T=100" \
      --filter "lstm T=50"; } >> "$out/bench.txt" 2>&1
  echo "bench, two dW GEMMs: exit $?" >> "$summary"
  # Clipping bandwidth (beside PyTorch's clip_grad_norm_ when torch with CUDA is there) and
  # what a variable-length batch costs.
  for run in "recur_bench_clip --torch-script bench/bench_clip_torch.py" "recur_bench_packed --gpu" \
    "recur_bench_recompute --gpu --quick"; do
    set -- $run
    [ -x "$build/bench/$1" ] || continue
    { echo "=== $run"; limited 45 "$build/bench/$1" "${@:2}"; } >> "$out/bench.txt" 2>&1
    rc=$?
    echo "$1: exit $rc" >> "$summary"
    [ $rc -eq 0 ] || status=1
  done
fi

# compute-sanitizer over the CUDA tests; one log per tool, one time limit per tool.
sanitize() {
  local tool=$1 seconds=$2
  local log="$out/$tool.log"
  stage "$tool" "$seconds" || return
  if ! command -v compute-sanitizer > /dev/null; then
    echo "$tool: compute-sanitizer not found" >> "$summary"
    return
  fi
  : > "$log"
  local deadline=$((SECONDS + seconds))
  for t in test_clip test_optim test_modules test_parity_cuda; do  # the longest last
    [ -x "$build/tests/$t" ] || continue
    local left=$((deadline - SECONDS))
    [ $left -gt 0 ] || { echo "$tool over $t: not run (out of time)" >> "$summary"; continue; }
    echo "=== $t" >> "$log"
    limited "$left" compute-sanitizer --tool "$tool" --error-exitcode 99 "$build/tests/$t" \
      --gtest_brief=1 >> "$log" 2>&1
    local rc=$?
    echo "$tool over $t: exit $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1)" \
      >> "$summary"
    # A timeout is not a finding; a sanitizer error or a failed test is.
    [ $rc -eq 0 ] || [ $rc -eq 124 ] || status=1
  done
}
sanitize memcheck "${RECUR_GPU_MEMCHECK_S:-90}"
sanitize racecheck "${RECUR_GPU_RACECHECK_S:-60}"

# Where the GPU time goes, for the next round of work: Nsight Compute's per-kernel summary
# (kernel names with grid sizes, invocations and durations) over one training step of the
# problems recur was furthest behind cuDNN on when last measured (a 2-layer unidirectional
# stack; a variable-length bidirectional batch). Informational: it never fails the check.
profile_s=${RECUR_GPU_PROFILE_S:-60}
profile() {  # profile BINARY ARGS...: ncu's summary of one run, within the stage's time
  local left=$((deadline - SECONDS))
  [ -x "$build/bench/$1" ] && [ $left -gt 0 ] || return 0
  echo "=== ncu: $*" >> "$out/profile.txt"
  limited "$left" ncu --clock-control none --metrics gpu__time_duration.sum \
    --print-summary per-kernel --launch-count 3000 "$build/bench/$1" "${@:2}" 2>&1 |
    grep -E 'Invocations|gpu__time_duration|^(gpu|cuda)' >> "$out/profile.txt"
}
if stage profile "$profile_s"; then
  if command -v ncu > /dev/null; then
    deadline=$((SECONDS + profile_s))
    profile recur_bench --gpu --filter "lstm T=100 B=64 I=512 H=512 L=2 uni" --mode training \
      --reps 1 --warmup 1 --no-anchors --no-ceiling
    profile recur_bench_packed --gpu --quick
    echo "profile: written" >> "$summary"
  else
    echo "profile: ncu not found" >> "$summary"
  fi
fi

# DeepBench's training problems (the CSV travels in the bundle: ../shared does not).
deep_s=${RECUR_GPU_DEEPBENCH_S:-90}
csv=$build/deepbench_rnn_problems.csv
if [ -x "$build/bench/recur_bench" ] && [ -f "$csv" ] && stage deepbench "$deep_s"; then
  limited "$deep_s" "$build/bench/recur_bench" --gpu --only-deepbench --deepbench-csv "$csv" \
    --max-seconds 1 --warmup 1 --reps 5 --json "$out/deepbench.json" >> "$out/bench.txt" 2>&1
  echo "deepbench: exit $?" >> "$summary"
fi
echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED)" >> "$summary"
cat "$summary"
exit $status
