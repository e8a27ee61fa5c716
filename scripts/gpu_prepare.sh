#!/usr/bin/env bash
# On this (GPU-less) machine: builds recur with CUDA into build-gpu/ and gathers what a
# bare GPU machine needs into gpu-bundle/: the test, bench and example binaries, librecur
# and its CUDA backend librecur_cuda (which librecur loads from its own folder), and the
# shared libraries such a machine may lack (OpenBLAS and its Fortran runtime, OpenMP's
# libgomp). GoogleTest is linked statically; CUDA's own libraries (cudart, cuBLAS, cuDNN)
# come from the GPU machine. Stripped, that is about 70 MB, over the device tool's 64 MiB
# carry limit, so it travels as gpu-bundle/bundle.tar.gz (about 22 MB), which
# scripts/gpu_check.sh unpacks first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RECUR_BUILD_DIR=build-gpu bash scripts/build.sh -DRECUR_CUDA=ON "$@"
bundle=gpu-bundle
libs=$bundle/lib
rm -rf "$bundle"
mkdir -p "$libs" "$bundle/tests" "$bundle/bench" "$bundle/examples"
find build-gpu/tests -maxdepth 1 -name 'test_*' -type f -executable -exec cp {} "$bundle/tests/" \;
cp build-gpu/examples/train_* build-gpu/examples/seq_classify "$bundle/examples/" 2>/dev/null || true
cp build-gpu/bench/recur_bench* "$bundle/bench/" 2>/dev/null || true
cp -P build-gpu/src/librecur.so* build-gpu/src/librecur_cuda.so* "$libs/"
# Every non-system, non-CUDA library the test and bench binaries load.
for bin in build-gpu/src/librecur*.so* build-gpu/tests/test_* build-gpu/bench/recur_bench*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  ldd "$bin" | awk '/=> \//{print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libcudnn[^/]*|libnccl)\.so' |
  while read -r lib; do cp -L "$lib" "$libs/"; done
# Symbols are not needed there; stripping keeps the bundle well inside the carry limit.
find "$bundle" -type f \( -name 'test_*' -o -name 'recur_bench*' -o -name 'train_*' -o -name 'seq_classify' -o -name '*.so*' \) \
  -exec strip --strip-unneeded {} \; 2> /dev/null || true
du -sh "$bundle"
tar -C "$bundle" -czf "$bundle/bundle.tar.gz" tests bench examples lib
rm -rf "$bundle/tests" "$bundle/bench" "$bundle/examples" "$libs"
# DeepBench's problems for gpu_check.sh: ../shared does not travel to the GPU machine.
csv=../shared/bench/deepbench_rnn_problems.csv
[ -f "$csv" ] && cp "$csv" "$bundle/"
du -sh "$bundle"
