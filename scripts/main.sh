#!/usr/bin/env bash
# The main job: install what is missing, build recur, install it into build/install, build
# the character-level language model trainer against that installed package (as a user's
# project would), and train it: a 2-layer LSTM on the CPU (under a minute), a larger
# model when a GPU is usable. Extra arguments go to the trainer (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build=${RECUR_BUILD_DIR:-build}
cmake --install "$build" --prefix "$build/install" > /dev/null
cmake -S examples/char_lm -B "$build/char_lm" -DCMAKE_PREFIX_PATH="$PWD/$build/install" > /dev/null
cmake --build "$build/char_lm" -j2 > /dev/null
mkdir -p "$build/runs"
cd "$build/runs"
../char_lm/train_char_lm "$@"
