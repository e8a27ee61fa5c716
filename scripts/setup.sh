#!/usr/bin/env bash
# Installs the Debian packages recur needs to build and test, if any is missing.
# The CUDA toolkit is not a Debian package here: CMake uses nvcc when it finds one.
# libdnnl-dev (oneDNN) is optional: CpuOps loads its sgemm at run time when present
# (faster at most of an RNN's GEMM shapes), and the benchmarks use it as the CPU anchor.
set -euo pipefail

# clang, its sanitizer and libFuzzer runtimes (libclang-rt-14-dev) and its OpenMP
# (libomp-14-dev) build scripts/fuzz.sh's clang build. OpenMPI (libopenmpi-dev, and
# openmpi-bin's mpirun) is data-parallel training's, and its tests'.
packages=(cmake g++ make libopenblas-dev libgtest-dev nlohmann-json3-dev libdnnl-dev
  clang libclang-rt-14-dev libomp-14-dev libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null || true)  # no pipe into grep -q
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
