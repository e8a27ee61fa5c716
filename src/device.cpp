// src/device.cpp: dtypes and devices.
#include "recur/device.h"

#include <string>

#include "cuda_backend.h"
#include "memory.h"

namespace recur {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16:
    case DType::Float16: return 2;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
  }
  return 0;
}

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
  }
  return "unknown";
}

bool is_integer(DType dtype) { return dtype == DType::Int32 || dtype == DType::Int64; }

std::string Device::str() const {
  return type == DeviceType::Cpu ? std::string("cpu") : "cuda:" + std::to_string(index);
}

bool cuda_built() { return detail::cuda_backend_built(); }

int cuda_device_count() {
  detail::CudaBackend* cuda = detail::cuda_backend();
  return cuda != nullptr ? cuda->device_count() : 0;
}

MemoryStats memory_stats(Device device) {
  const detail::LiveAllocations a = detail::live_allocations();
  MemoryStats m;
  m.bytes = device.is_cpu() ? a.host_bytes : a.cuda_bytes;
  m.peak_bytes = device.is_cpu() ? a.host_peak_bytes : a.cuda_peak_bytes;
  return m;
}

void reset_peak_memory() { detail::reset_peak_bytes(); }

}  // namespace recur
