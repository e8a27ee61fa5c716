#!/usr/bin/env bash
# The test suite once more under AddressSanitizer + UndefinedBehaviorSanitizer, in
# build-asan/. The host code is what the sanitizers can see, so CUDA stays off here; so
# does MPI, whose library keeps memory to its exit that LeakSanitizer would report (the
# data-parallel tests run in the main suite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RECUR_BUILD_DIR=build-asan bash scripts/build.sh -DRECUR_SANITIZE=ON -DRECUR_CUDA=OFF \
  -DRECUR_MPI=OFF -DRECUR_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
cd build-asan
# oneDNN's sgemm (loaded at run time when installed) is third-party code with its own
# OpenMP threads, which LeakSanitizer's stop-the-world cannot trace: check recur's own
# code with OpenBLAS here (test_cpu_gemm covers the oneDNN path in the ordinary build).
RECUR_CPU_GEMM=openblas ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2
