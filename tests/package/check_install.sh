#!/usr/bin/env bash
# Installs the built recur into a scratch prefix, then configures, builds and runs
# tests/package against it, with the CUDA backend and without it. Arguments: the build
# folder, the expected version.
set -euo pipefail
build=$1
version=$2
here=$(cd "$(dirname "$0")" && pwd)
prefix="$build/package-test/install"
rm -rf "$build/package-test"
cmake --install "$build" --prefix "$prefix" > /dev/null
cmake -S "$here" -B "$build/package-test/build" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$build/package-test/build" > /dev/null
# The core links no CUDA library: a CUDA backend is a library of its own, loaded when a
# CUDA device is asked for.
needed=$(objdump -p "$prefix"/lib*/librecur.so)
if grep -E "NEEDED.*(cuda|cublas)" <<< "$needed"; then
  echo "librecur.so must not need a CUDA library" >&2
  exit 1
fi
if ls "$prefix"/lib*/librecur_cuda.so* > /dev/null 2>&1; then
  "$build/package-test/build/consumer" "$version" cuda-loads
  # The same package without its CUDA backend, as on a machine without CUDA's libraries:
  # the CPU still works, and a GPU is an Error that says why.
  bare="$build/package-test/bare"
  cp -a "$prefix" "$bare"
  rm -f "$bare"/lib*/librecur_cuda.so*
  LD_LIBRARY_PATH="$(echo "$bare"/lib*)" "$build/package-test/build/consumer" "$version" cuda-absent
else
  "$build/package-test/build/consumer" "$version"
fi
# The installed library carries its SONAME and version.
# Not `objdump | grep -q`: under pipefail, grep's early exit kills objdump with SIGPIPE and
# fails the pipeline although the line was found.
headers=$(objdump -p "$prefix"/lib*/librecur.so)
grep -q "SONAME.*librecur.so.${version%.*}" <<< "$headers"
test -f "$prefix/include/recur/recur.h"
if grep -rl "cuda_runtime\|cublas" "$prefix/include/recur"; then
  echo "public headers must not need CUDA headers" >&2
  exit 1
fi
echo "installed package OK"
