// src/cuda/blas_args.h: recur's GEMM arguments as cuBLAS takes them, for CudaOps
// (cuda_ops.cpp) and its reduced-precision GEMMs (reduced_gemms.cpp).
#pragma once

#include <cublas_v2.h>

#include <climits>
#include <cstdint>
#include <string>

#include "../ops.h"
#include "recur/error.h"

namespace recur::detail {

inline cublasOperation_t to_cublas(Trans t) { return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

// A size or leading dimension as cuBLAS's int, or an Error naming it.
inline int to_int(std::int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw Error("recur: CudaOps::gemm: " + std::string(what) + " = " + std::to_string(v) +
                " does not fit cuBLAS's int");
  }
  return static_cast<int>(v);
}

}  // namespace recur::detail
