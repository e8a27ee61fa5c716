// kernels/indices.h: integer data as the module and join functors read it: token ids,
// targets and lengths of either integer dtype, and counters that CPU loops and GPU
// threads both add to.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

// int32 or int64 elements (an Int32 or Int64 tensor's memory), each read as int64.
struct IndexArray {
  const void* data = nullptr;
  bool wide = false;  // int64 elements; int32 otherwise

  RECUR_HD std::int64_t operator[](std::int64_t i) const {
    return wide ? static_cast<const std::int64_t*>(data)[i]
                : static_cast<const std::int32_t*>(data)[i];
  }
};

// *counter += v. Integer sums do not depend on their order, so GPU threads may add
// atomically and the result is still the same bits on every run.
RECUR_HD void add_count(std::int64_t* counter, std::int64_t v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(reinterpret_cast<unsigned long long*>(counter), static_cast<unsigned long long>(v));
#else
  *counter += v;
#endif
}

}  // namespace recur::kernels
