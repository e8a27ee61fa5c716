// bench/timer.h: repetitions, and their median and spread.
//
// A measurement is `warmup` untimed calls, then up to `reps` timed ones, each timed on
// its own; it stops early once `max_seconds` of timed calls have passed and at least
// `min_reps` are done, so one slow configuration cannot stall a whole grid.
// On the host the clock is std::chrono::steady_clock around each call. On the GPU (the
// CUDA build only) each call is bracketed by two CUDA events on the work's stream and
// timed by cudaEventElapsedTime after the second event has completed.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct TimingOptions {
  int warmup = 2;
  int reps = 10;
  int min_reps = 3;
  double max_seconds = 10.0;
};

struct Stats {
  int reps = 0;
  double median_ms = 0, p10_ms = 0, p90_ms = 0, min_ms = 0, max_ms = 0, mean_ms = 0;
};

// Median, 10th/90th percentiles (linear interpolation), min, max and mean of samples.
Stats summarize(std::vector<double> ms);

// Times `fn` on the host.
Stats time_host(const std::function<void()>& fn, const TimingOptions& opt);

#ifdef RECUR_BENCH_CUDA
// Times `fn`, which queues work on `stream` (a cudaStream_t; nullptr = the default
// stream), with CUDA events. Throws std::runtime_error naming a failed CUDA call.
Stats time_cuda(const std::function<void()>& fn, void* stream, const TimingOptions& opt);
// The name of CUDA device 0, or "" when there is none.
std::string cuda_device_name();
#endif

}  // namespace bench
