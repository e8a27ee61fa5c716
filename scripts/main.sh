#!/usr/bin/env bash
# The main job: install what is missing, build, and train a small LSTM, on the GPU when
# one is usable and otherwise on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
"${RECUR_BUILD_DIR:-build}"/examples/train_small_lstm "$@"
