// bench/cuda_timer.cpp: CUDA-event timing (compiled only in the CUDA build).
#include <cuda_runtime.h>

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

Stats time_cuda(const std::function<void()>& fn, void* stream_ptr, const TimingOptions& opt) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  EventPair ev;
  for (int i = 0; i < opt.warmup; ++i) fn();
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (warm-up)");
  std::vector<double> ms;
  double total_s = 0;
  for (int i = 0; i < opt.reps; ++i) {
    check(cudaEventRecord(ev.start, stream), "cudaEventRecord");
    fn();
    check(cudaEventRecord(ev.stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(ev.stop), "cudaEventSynchronize");
    float elapsed = 0;
    check(cudaEventElapsedTime(&elapsed, ev.start, ev.stop), "cudaEventElapsedTime");
    ms.push_back(elapsed);
    total_s += elapsed * 1e-3;
    if (total_s > opt.max_seconds && i + 1 >= opt.min_reps) break;
  }
  return summarize(ms);
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
