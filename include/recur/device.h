// recur/device.h: where data lives and what type it has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "recur/export.h"

namespace recur {

// The element types of tensors. Models compute in Float32 or Float64; BFloat16 and Float16
// (recur/half.h) are storage types for data and reduced-precision working copies; Int32
// and Int64 hold token ids, targets and lengths.
enum class DType { Float32, Float64, BFloat16, Float16, Int32, Int64 };

// Bytes per element: 4, 8, 2, 2, 4, 8; 0 for a value that is no DType.
RECUR_API std::size_t dtype_size(DType dtype);
// "float32", "float64", "bfloat16", "float16", "int32", "int64"; "unknown" for a value
// that is no DType.
RECUR_API const char* to_string(DType dtype);
// True for Int32 and Int64.
RECUR_API bool is_integer(DType dtype);

enum class DeviceType { Cpu, Cuda };

// A device: the host CPU, or CUDA GPU number `index`.
struct RECUR_API Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::Cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::Cuda, index}; }

  bool is_cpu() const { return type == DeviceType::Cpu; }
  bool is_cuda() const { return type == DeviceType::Cuda; }
  bool operator==(const Device& o) const {
    return type == o.type && (type == DeviceType::Cpu || index == o.index);
  }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu" or "cuda:0"
};

// True when recur was built with its CUDA backend.
RECUR_API bool cuda_built();
// Number of usable CUDA devices; 0 when CUDA is not built, or the runtime reports no
// device or no driver. Never throws.
RECUR_API int cuda_device_count();

// The memory recur holds, as PyTorch's torch.cuda.memory_allocated and
// max_memory_allocated report it: the bytes of every live tensor, workspace and buffer
// recur allocated, on the host (Device::cpu()) or on all CUDA devices together (any CUDA
// device), and the most that were live at once since reset_peak_memory(). Libraries'
// own memory (cuBLAS's workspace, oneDNN's scratch) is not counted.
struct MemoryStats {
  std::int64_t bytes = 0;
  std::int64_t peak_bytes = 0;
};
RECUR_API MemoryStats memory_stats(Device device);
// Starts the peaks of both sides again from the bytes live now.
RECUR_API void reset_peak_memory();

}  // namespace recur
