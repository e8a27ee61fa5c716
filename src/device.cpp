// src/device.cpp: dtypes and devices.
#include "recur/device.h"

#include <string>

#include "cuda_backend.h"

namespace recur {

std::size_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }

const char* to_string(DType dtype) { return dtype == DType::Float32 ? "float32" : "float64"; }

std::string Device::str() const {
  return type == DeviceType::Cpu ? std::string("cpu") : "cuda:" + std::to_string(index);
}

bool cuda_built() { return detail::cuda_backend_built(); }

int cuda_device_count() {
  detail::CudaBackend* cuda = detail::cuda_backend();
  return cuda != nullptr ? cuda->device_count() : 0;
}

}  // namespace recur
