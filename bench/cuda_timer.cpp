// bench/cuda_timer.cpp: CUDA-event timing (compiled only in the CUDA build).
#include <cuda_runtime.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "timer.h"

namespace bench {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
  }
}

// Two events, destroyed on every path.
struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  EventPair() {
    check(cudaEventCreate(&start), "cudaEventCreate");
    check(cudaEventCreate(&stop), "cudaEventCreate");
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
};

}  // namespace

TimedCall cuda_timed(std::function<void()> fn, void* stream_ptr) {
  auto events = std::make_shared<EventPair>();
  return [fn = std::move(fn), events, stream = static_cast<cudaStream_t>(stream_ptr)] {
    check(cudaEventRecord(events->start, stream), "cudaEventRecord");
    fn();
    check(cudaEventRecord(events->stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(events->stop), "cudaEventSynchronize");
    float elapsed = 0;
    check(cudaEventElapsedTime(&elapsed, events->start, events->stop), "cudaEventElapsedTime");
    return double(elapsed);
  };
}

Stats time_cuda(const std::function<void()>& fn, void* stream, const TimingOptions& opt) {
  return time_alone(cuda_timed(fn, stream), opt);
}

std::string cuda_device_name() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" status
    return "";
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "";
  return prop.name;
}

}  // namespace bench
