// src/backend.cpp: picks the Ops implementation for a device.
#include <memory>

#include "cpu/cpu_ops.h"
#include "ops.h"
#include "recur/error.h"
#if RECUR_HAS_CUDA
#include "cuda/cuda_ops.h"
#endif

namespace recur::detail {

template <typename T>
std::unique_ptr<Ops<T>> make_ops(Device device) {
  if (device.is_cpu()) return std::make_unique<CpuOps<T>>();
#if RECUR_HAS_CUDA
  return make_cuda_ops<T>(device.index);
#else
  throw Error("recur: device " + device.str() +
              " requested, but recur was built without CUDA (configure with -DRECUR_CUDA=ON)");
#endif
}

template std::unique_ptr<Ops<float>> make_ops<float>(Device);
template std::unique_ptr<Ops<double>> make_ops<double>(Device);

}  // namespace recur::detail
