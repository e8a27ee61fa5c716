// kernels/hd.h: lets one function body serve the CPU loop and the CUDA kernel.
//
// RECUR_HD marks gate math that runs on both sides: __host__ __device__ under nvcc,
// plain inline under g++. Nothing in kernels/*.cuh may use anything else from CUDA, so
// these headers compile as ordinary C++17.
#pragma once

#include <cmath>
#include <cstdint>

#include "fast_math.h"

#if defined(__CUDACC__)
#define RECUR_HD __host__ __device__ __forceinline__
#else
#define RECUR_HD inline
#endif

namespace recur::kernels {

// Overloads that pick the float or double routine on both sides. Float on the CPU uses
// fast_math.h, whose straight-line code vectorises inside the step loops; CUDA keeps its
// own expf and tanhf. Double stays with libm everywhere (the gradient checks run in it).
RECUR_HD float exp_(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return fast::exp(x);
#endif
}
RECUR_HD double exp_(double x) { return exp(x); }
RECUR_HD float tanh_(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  return fast::tanh(x);
#endif
}
RECUR_HD double tanh_(double x) { return tanh(x); }
RECUR_HD float sigmoid_(float x) {
#if defined(__CUDA_ARCH__)
  return 1.0f / (1.0f + expf(-x));
#else
  return fast::sigmoid(x);
#endif
}
RECUR_HD double sigmoid_(double x) { return 1.0 / (1.0 + exp(-x)); }

}  // namespace recur::kernels
