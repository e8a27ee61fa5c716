#!/usr/bin/env bash
# All tests: install what is missing, build, run the GoogleTest suite through CTest.
# Without a usable GPU the CUDA tests report SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${RECUR_BUILD_DIR:-build}"
ctest --output-on-failure -j2
