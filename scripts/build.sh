#!/usr/bin/env bash
# Configures and builds recur in build/ (or $RECUR_BUILD_DIR) with two jobs.
# Extra arguments go to cmake, e.g. -DRECUR_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${RECUR_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build_dir" -j2
