#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, where nothing can be installed: runs the CUDA tests of
# the bundle made by scripts/gpu_prepare.sh, the GPU benchmarks (recur beside cuDNN and
# cuBLAS, and PyTorch where it has CUDA), the large LM, compute-sanitizer's memcheck and
# racecheck over the CUDA tests, and DeepBench's training problems.
# Usage: bash scripts/gpu_check.sh [bundle-dir] [out-dir]
#
# A lent GPU machine gives one call of at most 600 s and returns at most 8 files, so:
#   - the whole check ends within RECUR_GPU_TOTAL_S (540) seconds: each stage runs under
#     its own limit and what is left of the total, in the order of what matters most;
#   - every result goes into a work folder, packed after each stage into
#     out-dir/results.tgz beside out-dir/summary.txt (two files, whenever the call ends).
# Stage limits (seconds; 0 skips a stage): RECUR_GPU_TESTS_S (140), RECUR_GPU_BENCH_S (130),
# RECUR_GPU_REDUCED_S (50), RECUR_GPU_LM_S (90), RECUR_GPU_MEMCHECK_S (60),
# RECUR_GPU_VARIANTS_S (90), RECUR_GPU_RACECHECK_S (40), RECUR_GPU_PROFILE_S (40),
# RECUR_GPU_DEEPBENCH_S (60).
# RECUR_GPU_ALL_TESTS=1 also runs the test binaries with no CUDA code (CI runs those).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
build=${1:-gpu-bundle}
out=${2:-${OUT:-gpu-results}}
mkdir -p "$out"
work=$(mktemp -d /tmp/recur-gpu-check.XXXXXX)
end=$((SECONDS + ${RECUR_GPU_TOTAL_S:-540}))
summary="$work/summary.txt"
publish() {  # the results so far, as the two files that come back
  cp "$summary" "$out/summary.txt" 2> /dev/null
  tar -C "$work" -czf "$out/results.tgz.partial" . 2> /dev/null &&
    mv "$out/results.tgz.partial" "$out/results.tgz"
}
# gpu_prepare.sh packs the bundle to fit the carry limit; unpack it in place.
if [ -f "$build/bundle.tar.gz" ]; then
  tar -C "$build" -xzf "$build/bundle.tar.gz" || { echo "cannot unpack $build/bundle.tar.gz"; exit 1; }
fi
# Python (PyTorch) keeps the loader's path it came with: a cuDNN put first for the C++
# binaries could be older than the one torch was built with.
python_path=${LD_LIBRARY_PATH:-}
py() { LD_LIBRARY_PATH="$python_path" python3 "$@"; }
torch_cuda() { py -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; }
bundle_lib=$(cd "$build/lib" 2> /dev/null && pwd)  # absolute, whether $build is or not
export LD_LIBRARY_PATH="$bundle_lib:${LD_LIBRARY_PATH:-}"
# cuDNN often comes as a Python wheel (nvidia-cudnn) rather than in the toolkit; the cuDNN
# anchor dlopens libcudnn.so.9, so put the first one found on the library path.
cudnn=$(find /usr/lib /usr/local /opt -name 'libcudnn.so.9' -print -quit 2> /dev/null)
[ -n "$cudnn" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$cudnn")"
# TF32 rows must be TF32: an image that turns it off would make them FP32 unnoticed.
unset NVIDIA_TF32_OVERRIDE
export RECUR_TEST_DATA_DIR="$PWD/tests/golden/data"
# On a GPU machine a CUDA test that finds no usable GPU fails instead of skipping.
export RECUR_TEST_REQUIRE_GPU=1
{
  echo "recur GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2> /dev/null)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  echo "cuDNN: ${cudnn:-not found}"
  ldd "$build"/lib/librecur_cuda.so.*.*.* | grep -E 'cudart|cublas|not found' | awk '{print $1, $3}'
  echo "torch: $(py -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda,
    "cudnn", torch.backends.cudnn.version(), "available", torch.cuda.is_available())' 2>&1 | tail -1)"
  env | grep -E '^(NVIDIA_|CUDNN_|CUBLAS_|CUDA_)' | sort
} > "$summary"
cat "$summary"
publish

status=0
stage_s=0  # the running stage's seconds: its limit, or what is left of the total
stage() {  # stage NAME SECONDS: whether to run it (setting stage_s), and logs its start
  local left=$((end - SECONDS))
  stage_s=$(($2 < left ? $2 : left))
  if [ "$2" -le 0 ]; then
    echo "$1: skipped" >> "$summary"
    return 1
  fi
  if [ "$stage_s" -lt 10 ]; then
    echo "$1: not run (out of total time)" >> "$summary"
    return 1
  fi
  echo "--- $1 (limit $stage_s s) at $(date -u +%H:%M:%S)"
}
limited() {  # limited SECONDS CMD...: runs CMD, killed after SECONDS; 124 means it was
  timeout -k 5 "$@"
}
note() {  # note WHAT RC: the summary line of one run; a failure fails the check
  echo "$1: exit $2$([ "$2" -eq 124 ] && echo ' (timed out)')" >> "$summary"
  [ "$2" -eq 0 ] || status=1
}

# 1. The CUDA tests: the test binaries that run CUDA code (the others run in CI).
cuda_tests="test_parity_cuda test_loss_scale test_in_flight test_param_groups test_init test_clip test_optim test_modules test_joins test_long_sequences test_step_memory test_recompute test_diagnostics test_errors test_tensor"
if [ "${RECUR_GPU_ALL_TESTS:-0}" = 1 ]; then
  cuda_tests=$(cd "$build/tests" && ls test_*)
fi
if stage tests "${RECUR_GPU_TESTS_S:-140}"; then
  : > "$work/tests.log"
  deadline=$((SECONDS + stage_s))
  for name in $cuda_tests; do
    t="$build/tests/$name"
    [ -x "$t" ] || continue
    left=$((deadline - SECONDS))
    if [ $left -le 0 ]; then
      echo "$name: not run (stage out of time)" >> "$summary"
      status=1
      continue
    fi
    limited "$left" "$t" --gtest_brief=1 >> "$work/tests.log" 2>&1
    note "$name" $?
  done
  # Each binary's passed total ("[  PASSED  ] 27 tests."), counted; then the failed tests
  # (--gtest_brief prints each once), the first 40 by name.
  grep -E '^\[  PASSED  \] [0-9]+ tests?\.' "$work/tests.log" | sort | uniq -c >> "$summary"
  echo "failed tests: $(grep -c -E '^\[  FAILED  \] [A-Za-z]' "$work/tests.log")" >> "$summary"
  grep -E '^\[  FAILED  \] [A-Za-z]' "$work/tests.log" | sort -u | head -40 >> "$summary"
  publish
fi

# 2. The grid in FP32 and TF32, beside cuDNN FP32 and TF32: like against like, in one run.
bench=$build/bench/recur_bench
if [ -x "$bench" ] && stage bench "${RECUR_GPU_BENCH_S:-130}"; then
  limited "$stage_s" "$bench" --gpu --math fp32,tf32 --max-seconds 1 --warmup 2 \
    --json "$work/bench.json" > "$work/bench.txt" 2>&1
  note bench $?
  publish
fi

# 3. BF16 and FP16 where tensor cores matter, beside cuDNN BF16 and FP16, then PyTorch's
# nn.GRU / nn.LSTM under autocast (which runs cuDNN's RNN in FP16 whatever the autocast
# dtype: the script prints the dtype the RNN ran in).
if [ -x "$bench" ] && stage reduced "${RECUR_GPU_REDUCED_S:-50}"; then
  { echo "=== BF16 and FP16, H >= 1024"
    limited "$stage_s" "$bench" --gpu --math bf16,fp16 --no-ceiling --max-seconds 1 \
      --warmup 2 --mode training --filter "H=1024" --filter "H=2048" \
      --json "$work/bench_reduced.json"; } > "$work/bench_reduced.txt" 2>&1
  note "bench, bf16/fp16" $?
  if torch_cuda; then
    for shape in "--cell gru --T 100 --B 128 --H 2048" "--cell lstm --T 100 --B 64 --H 1024"; do
      { echo "=== PyTorch $shape under autocast (bench/torch_autocast.py)"
        limited 30 py bench/torch_autocast.py $shape; } >> "$work/bench_reduced.txt" 2>&1
      note "torch autocast $shape" $?
    done
  fi
  publish
fi

# 4. The large LSTM language model (8 x LSTM-4096, 1.14 B parameters) in BF16: tokens/s,
# MFU and peak memory, beside PyTorch's nn.LSTM under autocast when torch with CUDA is there.
lm=$build/examples/train_large_lm
if [ -x "$lm" ] && stage large_lm "${RECUR_GPU_LM_S:-90}"; then
  half=$((stage_s / 2))
  limited "$half" "$lm" --config 1b --math bf16 --device cuda --steps 20 --warmup 3 \
    --json "$work/large_lm_recur.json" > "$work/large_lm.txt" 2>&1
  note "large_lm, recur" $?
  if torch_cuda; then
    limited "$half" py bench/torch_large_lm.py --config 1b --math bf16 --device cuda \
      --steps 20 --warmup 3 --json "$work/large_lm_torch.json" >> "$work/large_lm.txt" 2>&1
    note "large_lm, torch" $?
  fi
  publish
fi

# 5. The NCCL communicator, one rank on one GPU, where the machine has an mpirun (the bundle
# carries OpenMPI's libraries, not its launcher and plugins); the sequence classifier on
# the GPU (ids, targets, joins and accuracy on the device).
if [ -x "$build/tests/test_distributed" ] && command -v mpirun > /dev/null && stage nccl 30; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 limited "$stage_s" mpirun -np 1 \
    "$build/tests/test_distributed" --gtest_brief=1 > "$work/nccl.txt" 2>&1
  note "test_distributed (NCCL, 1 rank)" $?
fi
if [ -x "$build/examples/seq_classify" ] && stage seq_classify 25; then
  limited "$stage_s" "$build/examples/seq_classify" --smoke --device cuda > "$work/seq_classify.txt" 2>&1
  note "seq_classify --smoke --device cuda" $?
fi
publish

# compute-sanitizer over the CUDA tests; one log per tool, one time limit per tool.
sanitize() {
  local tool=$1
  local log="$work/$tool.log"
  stage "$tool" "$2" || return
  if ! command -v compute-sanitizer > /dev/null; then
    echo "$tool: compute-sanitizer not found" >> "$summary"
    return
  fi
  : > "$log"
  local deadline=$((SECONDS + stage_s))
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
  publish
}
# 6. memcheck.
sanitize memcheck "${RECUR_GPU_MEMCHECK_S:-60}"

# 7. What the code's choices give, each against the rows of stage 2 (FP32): CUDA graphs
# off (most at the launch-bound sizes: H <= 512, B = 1, the wavefronts); graph branches off
# for the unidirectional stacks (the pass plan's rule, branches_pay()); the LSTM's layer-0
# weight gradients as two GEMMs (no h_{t-1} beside x); then clipping bandwidth (beside
# PyTorch's clip_grad_norm_), variable-length batches and recomputation.
if [ -x "$bench" ] && stage variants "${RECUR_GPU_VARIANTS_S:-90}"; then
  deadline=$((SECONDS + stage_s))
  variant() {  # variant WHAT SECONDS ENV... -- ARGS...: one run, within the stage's time
    local what=$1 seconds=$2 left=$((deadline - SECONDS))
    shift 2
    [ $left -gt 5 ] || { echo "$what: not run (out of time)" >> "$summary"; return; }
    [ "$seconds" -lt "$left" ] || seconds=$left
    { echo "=== $what"; limited "$seconds" env "$@"; } >> "$work/variants.txt" 2>&1
    note "$what" $?
  }
  variant "no CUDA graphs" 40 RECUR_CUDA_GRAPHS=0 "$bench" --gpu --math fp32 --no-ceiling \
    --max-seconds 1 --warmup 2
  variant "no graph branches" 25 RECUR_CUDA_GRAPH_BRANCHES=0 "$bench" --gpu --math fp32 \
    --no-ceiling --max-seconds 1 --warmup 2 --mode training --filter "L=2 uni" --filter "L=4 uni"
  variant "two dW GEMMs" 25 RECUR_X_HP_MIN_ROWS=1000000000 "$bench" --gpu --math fp32 \
    --no-ceiling --max-seconds 1 --warmup 2 --mode training --filter "lstm T=100" \
    --filter "lstm T=50"
  for run in "recur_bench_clip --torch-script bench/bench_clip_torch.py" "recur_bench_packed --gpu" \
    "recur_bench_recompute --gpu --quick"; do
    set -- $run
    # (without the cuDNN put first for the anchors: the clipping benchmark starts PyTorch)
    [ -x "$build/bench/$1" ] && variant "$1" 25 LD_LIBRARY_PATH="$bundle_lib:$python_path" \
      "$build/bench/$1" "${@:2}"
  done
  publish
fi

# 8. racecheck.
sanitize racecheck "${RECUR_GPU_RACECHECK_S:-40}"

# 9. Where the GPU time goes, for the next round of work: Nsight Compute's per-kernel
# summary (kernel names with grid sizes, invocations and durations) over one FP32 training
# step of the problems recur was furthest behind cuDNN on when last measured (a 2-layer
# unidirectional stack; a variable-length bidirectional batch). Informational: it never
# fails the check.
profile() {  # profile BINARY ARGS...: ncu's summary of one run, within the stage's time
  local left=$((deadline - SECONDS))
  [ -x "$build/bench/$1" ] && [ $left -gt 0 ] || return 0
  echo "=== ncu: $*" >> "$work/profile.txt"
  limited "$left" ncu --clock-control none --metrics gpu__time_duration.sum \
    --print-summary per-kernel --launch-count 500 "$build/bench/$1" "${@:2}" 2>&1 |
    grep -E 'Invocations|gpu__time_duration|^(gpu|cuda)' >> "$work/profile.txt"
}
if stage profile "${RECUR_GPU_PROFILE_S:-40}"; then
  if command -v ncu > /dev/null; then
    deadline=$((SECONDS + stage_s))
    profile recur_bench --gpu --math fp32 --filter "lstm T=100 B=64 I=512 H=512 L=2 uni" \
      --mode training --reps 1 --warmup 1 --no-anchors --no-ceiling
    profile recur_bench_packed --gpu --quick
    echo "profile: written" >> "$summary"
  else
    echo "profile: ncu not found" >> "$summary"
  fi
  publish
fi

# 10. DeepBench's training problems in FP32 and TF32 (the CSV travels in the bundle:
# ../shared does not); the JSON is rewritten after every problem, so a cut run keeps its rows.
csv=$build/deepbench_rnn_problems.csv
if [ -x "$bench" ] && [ -f "$csv" ] && stage deepbench "${RECUR_GPU_DEEPBENCH_S:-60}"; then
  limited "$stage_s" "$bench" --gpu --only-deepbench --deepbench-csv "$csv" --mode training \
    --math fp32,tf32 --no-ceiling --max-seconds 1 --warmup 1 --reps 3 \
    --json "$work/deepbench.json" > "$work/deepbench.txt" 2>&1
  rc=$?
  # Cut short by its limit is expected here; the rows it finished are in the JSON.
  echo "deepbench: exit $rc$([ $rc -eq 124 ] && echo ' (timed out; finished rows kept)')" >> "$summary"
fi
echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED), $SECONDS s" >> "$summary"
publish
cat "$summary"
exit $status
