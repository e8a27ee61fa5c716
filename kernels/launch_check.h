// kernels/launch_check.h: what kernel launches in kernels/*.cu share: the check after
// each (a failed launch throws recur::Error naming the kernel) and the grid of the
// grid-stride loops. CUDA code only (includes the runtime).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "recur/error.h"

namespace recur::kernels {

// The blocks of `threads` threads for a grid-stride loop over n elements: enough to fill
// any current GPU, at most 65536; the loop covers the rest.
inline unsigned grid_stride_blocks(std::int64_t n, int threads) {
  const std::int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

// `status` of the call `what` (a library call that launches kernels): a failure throws.
inline void check_status(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw Error(std::string("recur: ") + what + " failed with " + cudaGetErrorName(status) + " (" +
                cudaGetErrorString(status) + ")");
  }
}

inline void check_launch(const char* what) {
  check_status(cudaGetLastError(), (std::string("launch of ") + what).c_str());
}

}  // namespace recur::kernels
