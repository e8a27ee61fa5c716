// src/backend.cpp: picks the Ops implementation for a device.
#include <memory>
#include <type_traits>

#include "cpu/cpu_ops.h"
#include "cuda_backend.h"
#include "ops.h"
#include "recur/error.h"

namespace recur::detail {

namespace {

template <typename T>
std::unique_ptr<Ops<T>> make_untuned_ops(Device device) {
  if (device.is_cpu()) return std::make_unique<CpuOps<T>>();
  CudaBackend& cuda = require_cuda_backend("device " + device.str());
  if constexpr (std::is_same_v<T, float>) {
    return cuda.make_ops_float(device.index);
  } else {
    return cuda.make_ops_double(device.index);
  }
}

}  // namespace

template <typename T>
std::unique_ptr<Ops<T>> make_ops(Device device) {
  std::unique_ptr<Ops<T>> ops = make_untuned_ops<T>(device);
  ops->set_tuning(environment_tuning());
  return ops;
}

template std::unique_ptr<Ops<float>> make_ops<float>(Device);
template std::unique_ptr<Ops<double>> make_ops<double>(Device);

}  // namespace recur::detail
