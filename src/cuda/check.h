// src/cuda/check.h: every CUDA runtime and cuBLAS call goes through one of these macros,
// which turn a failure into recur::Error naming the call, its status and file:line.
// recur never exits on a device error; the caller decides.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "recur/error.h"

namespace recur::detail {

[[noreturn]] void throw_cuda_error(const char* call, cudaError_t status, const char* file,
                                   int line);
[[noreturn]] void throw_cublas_error(const char* call, cublasStatus_t status, const char* file,
                                     int line);

}  // namespace recur::detail

#define RECUR_CUDA_CHECK(call)                                                     \
  do {                                                                             \
    const cudaError_t recur_status_ = (call);                                      \
    if (recur_status_ != cudaSuccess) {                                            \
      ::recur::detail::throw_cuda_error(#call, recur_status_, __FILE__, __LINE__); \
    }                                                                              \
  } while (0)

#define RECUR_CUBLAS_CHECK(call)                                                     \
  do {                                                                               \
    const cublasStatus_t recur_status_ = (call);                                     \
    if (recur_status_ != CUBLAS_STATUS_SUCCESS) {                                    \
      ::recur::detail::throw_cublas_error(#call, recur_status_, __FILE__, __LINE__); \
    }                                                                                \
  } while (0)
