// src/device.cpp: dtypes and devices.
#include "recur/device.h"

#include <string>

#if RECUR_HAS_CUDA
#include "cuda/cuda_runtime.h"
#endif

namespace recur {

std::size_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }

const char* to_string(DType dtype) { return dtype == DType::Float32 ? "float32" : "float64"; }

std::string Device::str() const {
  return type == DeviceType::Cpu ? std::string("cpu") : "cuda:" + std::to_string(index);
}

bool cuda_built() { return RECUR_HAS_CUDA != 0; }

int cuda_device_count() {
#if RECUR_HAS_CUDA
  return detail::cuda_usable_device_count();
#else
  return 0;
#endif
}

}  // namespace recur
