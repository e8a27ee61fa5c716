#!/usr/bin/env bash
# Fails if any C++/CUDA source is not clang-format clean (.clang-format at the root).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.h' '*.cpp' '*.cuh' '*.cu' | xargs clang-format --dry-run -Werror
echo "clang-format clean"
