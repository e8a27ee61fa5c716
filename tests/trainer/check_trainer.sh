#!/usr/bin/env bash
# The char-LM trainer as a user builds it: install recur from the build folder, build
# examples/char_lm against the installed package with find_package, then check that
#   - a short run lowers the loss (the trainer exits non-zero otherwise);
#   - forced NaN gradients are skipped on the device, and K of them in a row roll the
#     model back to the last good checkpoint, after which training ends exactly where an
#     undisturbed run ends (data depend only on the step);
#   - a run resumed from a checkpoint ends exactly where an uninterrupted one ends, and a
#     resumed run takes its architecture from the checkpoint (no flags) and its schedule's
#     and optimizer's state;
#   - in BF16 and in FP16 (with its loss scaler, whose state the checkpoint carries: an FP16
#     run resumed ends where an uninterrupted one ends), 400 steps reach a validation loss
#     within 2% of float32's on the same seed.
# Arguments: the build folder.
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work="$build/trainer-test"
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/install" > /dev/null
cmake -S "$root/examples/char_lm" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/install" > /dev/null
cmake --build "$work/build" > /dev/null
lm="$work/build/train_char_lm"
cd "$work"

final() { grep '^trained' "$1" | sed 's/^trained [0-9]* steps in [0-9ms]*: //'; }

"$lm" --smoke --device cpu --checkpoint clean.safetensors > clean.log
final clean.log
grep -q ' 0 skipped, 0 rollbacks' clean.log

"$lm" --smoke --device cpu --checkpoint nan.safetensors --inject-nan 25:3 > nan.log
grep -q '^step 26: non-finite gradient' nan.log
grep -q 'rolled back to the checkpoint of step 20' nan.log
grep -q ' 3 skipped, 1 rollbacks' nan.log
[ "$(final nan.log | sed 's/;.*//')" = "$(final clean.log | sed 's/;.*//')" ] ||
  { echo "rollback did not reproduce the clean run"; exit 1; }

"$lm" --smoke --device cpu --checkpoint half.safetensors --steps 30 > half.log
"$lm" --smoke --device cpu --checkpoint rest.safetensors --resume half.safetensors > rest.log
grep -q 'resumed from half.safetensors at step 30' rest.log
[ "$(final rest.log | sed 's/.*-> //')" = "$(final clean.log | sed 's/.*-> //')" ] ||
  { echo "resumed run differs from the uninterrupted one"; exit 1; }
# (resumed inside the warmup; a decay would differ between --steps 30 and 60)
"$lm" --smoke --device cpu --cell gru --layers 1 --hidden 24 --connection none --warmup 40 \
  --checkpoint arch.safetensors > arch.log
"$lm" --smoke --device cpu --cell gru --layers 1 --hidden 24 --connection none --warmup 40 \
  --checkpoint archh.safetensors --steps 30 > archh.log
"$lm" --smoke --device cpu --warmup 40 --checkpoint archr.safetensors \
  --resume archh.safetensors > archr.log || true
grep -q 'gru, 1 layers of 24' archr.log || { echo "the resumed run did not take the checkpoint's architecture"; exit 1; }
[ "$(final archr.log | sed 's/.*-> //')" = "$(final arch.log | sed 's/.*-> //')" ] ||
  { echo "resumed GRU run differs from the uninterrupted one"; exit 1; }

validation() { grep '^trained' "$1" | sed 's/.*validation \([0-9.]*\).*/\1/'; }
for math in fp32 bf16 fp16; do
  "$lm" --smoke --device cpu --steps 400 --math "$math" --checkpoint "$math.safetensors" > "$math.log"
done
for math in bf16 fp16; do
  awk -v r="$(validation fp32.log)" -v m="$(validation $math.log)" -v name="$math" 'BEGIN {
    d = (m - r) / r; printf "%s validation %.4f, float32 %.4f (%+.2f%%)\n", name, m, r, 100 * d
    exit (d < 0.02 && d > -0.02) ? 0 : 1 }' ||
    { echo "$math validation loss is not within 2% of float32's"; exit 1; }
done
grep -q '^loss scale ' fp16.log
"$lm" --smoke --device cpu --math fp16 --checkpoint fp16h.safetensors --steps 200 > fp16h.log
# (the exit status says whether the loss fell over the run's own steps, which the second
# half of a run need not do: the comparison below is the check)
"$lm" --smoke --device cpu --steps 400 --math fp16 --checkpoint fp16r.safetensors \
  --resume fp16h.safetensors > fp16r.log || true
[ "$(final fp16r.log | sed 's/.*-> //')" = "$(final fp16.log | sed 's/.*-> //')" ] ||
  { echo "resumed FP16 run differs from the uninterrupted one"; exit 1; }
# Data-parallel (--distributed, under mpirun; where recur has MPI): one rank is the plain
# run exactly; two ranks learn, skip and roll back together, and resume where they stop.
mpi() { OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
  mpirun --oversubscribe "$@"; }
if command -v mpirun > /dev/null && mpi -np 1 "$lm" --smoke --device cpu --distributed \
  --checkpoint one.safetensors > one.log 2>&1; then
  [ "$(final one.log)" = "$(final clean.log)" ] ||
    { echo "one data-parallel rank differs from the plain run"; exit 1; }
  mpi -np 2 "$lm" --smoke --device cpu --distributed --checkpoint two.safetensors > two.log
  grep -q 'data-parallel over 2 ranks' two.log
  mpi -np 2 "$lm" --smoke --device cpu --distributed --checkpoint twonan.safetensors \
    --inject-nan 25:3 > twonan.log
  grep -q 'rolled back to the checkpoint of step 20' twonan.log
  [ "$(final twonan.log | sed 's/;.*//')" = "$(final two.log | sed 's/;.*//')" ] ||
    { echo "the data-parallel rollback did not reproduce the clean run"; exit 1; }
  mpi -np 2 "$lm" --smoke --device cpu --distributed --checkpoint twoh.safetensors --steps 30 > twoh.log
  mpi -np 2 "$lm" --smoke --device cpu --distributed --checkpoint twor.safetensors \
    --resume twoh.safetensors > twor.log
  [ "$(final twor.log | sed 's/.*-> //')" = "$(final two.log | sed 's/.*-> //')" ] ||
    { echo "the resumed data-parallel run differs from the uninterrupted one"; exit 1; }
  echo "data-parallel trainer OK"
else
  echo "data-parallel trainer: skipped (no mpirun, or recur without MPI)"
fi
echo "trainer OK"
