// bench/timer.cpp: host timing and statistics.
#include "timer.h"

#include <algorithm>
#include <numeric>

namespace bench {
namespace {

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * double(sorted.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

Stats summarize(std::vector<double> ms) {
  Stats s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.reps = static_cast<int>(ms.size());
  s.median_ms = percentile(ms, 0.5);
  s.p10_ms = percentile(ms, 0.1);
  s.p90_ms = percentile(ms, 0.9);
  s.min_ms = ms.front();
  s.max_ms = ms.back();
  s.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / double(ms.size());
  return s;
}

Stats time_host(const std::function<void()>& fn, const TimingOptions& opt) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < opt.warmup; ++i) fn();
  std::vector<double> ms;
  double total_s = 0;
  for (int i = 0; i < opt.reps; ++i) {
    const auto start = clock::now();
    fn();
    const double s = std::chrono::duration<double>(clock::now() - start).count();
    ms.push_back(s * 1e3);
    total_s += s;
    if (total_s > opt.max_seconds && i + 1 >= opt.min_reps) break;
  }
  return summarize(ms);
}

}  // namespace bench
