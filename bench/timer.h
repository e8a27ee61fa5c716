// bench/timer.h: repetitions, and their median and spread.
//
// A measurement is `warmup` untimed calls, then up to `reps` timed ones, each timed on
// its own; it stops early once `max_seconds` of timed calls have passed and at least
// `min_reps` are done, so one slow configuration cannot stall a whole grid.
// On the host the clock is std::chrono::steady_clock around each call. On the GPU (the
// CUDA build only) each call is bracketed by two CUDA events on the work's stream and
// timed by cudaEventElapsedTime after the second event has completed.
//
// Implementations compared with each other are measured side by side: round by round,
// each runs once, so a change in the machine's state (a neighbour's load, the clock, what
// the caches hold) falls on all of them alike, and sample i of one is paired with sample
// i of another (their ratio, round by round, is the comparison's own spread).
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

// One call of a prepared implementation; returns its time in milliseconds.
using TimedCall = std::function<double()>;

// fn, timed on the host clock.
TimedCall host_timed(std::function<void()> fn);

// Each call's times, round by round, and why a call stopped early ("" when it did not).
struct SideBySide {
  std::vector<std::vector<double>> ms;
  std::vector<std::string> errors;
};

// Times `calls` side by side: `warmup` untimed rounds, then up to `reps` rounds in which
// each call runs once, the order rotating every round (round r starts at call r mod n) so
// that none always runs first or always follows the same other. Stops early once the
// rounds took max_seconds per call and min_reps are done. A call that throws is recorded
// in `errors` and left out of later rounds; the others go on.
SideBySide time_side_by_side(const std::vector<TimedCall>& calls, const TimingOptions& opt);

// Round by round, ms_a[i] / ms_b[i], over the rounds both have.
Stats paired_ratio(const std::vector<double>& ms_a, const std::vector<double>& ms_b);

// Times one prepared call alone (time_side_by_side with nothing beside it); throws what it
// threw.
Stats time_alone(const TimedCall& call, const TimingOptions& opt);

// Times `fn` on the host, alone.
Stats time_host(const std::function<void()>& fn, const TimingOptions& opt);

#ifdef RECUR_BENCH_CUDA
// fn, which queues work on `stream` (a cudaStream_t; nullptr = the default stream), timed
// by two CUDA events around it; waits for the second. Throws std::runtime_error naming a
// failed CUDA call.
TimedCall cuda_timed(std::function<void()> fn, void* stream);
// Times `fn`, which queues work on `stream`, alone, with CUDA events.
Stats time_cuda(const std::function<void()>& fn, void* stream, const TimingOptions& opt);
// The name of CUDA device 0, or "" when there is none.
std::string cuda_device_name();
#endif

}  // namespace bench
