// kernels/launch_check.h: the check after every kernel launch in kernels/*.cu: a failed
// launch throws recur::Error naming the kernel. CUDA code only (includes the runtime).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "recur/error.h"

namespace recur::kernels {

inline void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw Error(std::string("recur: launch of ") + what + " failed with " +
                cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
  }
}

}  // namespace recur::kernels
