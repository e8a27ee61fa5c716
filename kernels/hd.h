// kernels/hd.h: lets one function body serve the CPU loop and the CUDA kernel.
//
// RECUR_HD marks gate math that runs on both sides: __host__ __device__ under nvcc,
// plain inline under g++. Nothing in kernels/*.cuh may use anything else from CUDA, so
// these headers compile as ordinary C++17.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RECUR_HD __host__ __device__ __forceinline__
#else
#define RECUR_HD inline
#endif

namespace recur::kernels {

// Overloads that pick the float or double routine on both sides.
RECUR_HD float exp_(float x) { return expf(x); }
RECUR_HD double exp_(double x) { return exp(x); }
RECUR_HD float tanh_(float x) { return tanhf(x); }
RECUR_HD double tanh_(double x) { return tanh(x); }

}  // namespace recur::kernels
