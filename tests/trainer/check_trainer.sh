#!/usr/bin/env bash
# The char-LM trainer as a user builds it: install recur from the build folder, build
# examples/char_lm against the installed package with find_package, then check that
#   - a short run lowers the loss (the trainer exits non-zero otherwise);
#   - forced NaN gradients are skipped on the device, and K of them in a row roll the
#     model back to the last good checkpoint, after which training ends exactly where an
#     undisturbed run ends (data depend only on the step);
#   - a run resumed from a checkpoint ends exactly where an uninterrupted one ends.
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
echo "trainer OK"
