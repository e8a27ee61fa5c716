// bench/timer.cpp: host timing and statistics.
#include "timer.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

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

TimedCall host_timed(std::function<void()> fn) {
  return [fn = std::move(fn)] {
    const auto start = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  };
}

SideBySide time_side_by_side(const std::vector<TimedCall>& calls, const TimingOptions& opt) {
  const std::size_t n = calls.size();
  SideBySide out;
  out.ms.resize(n);
  out.errors.resize(n);
  // Runs call i once, unless it failed before; a throw marks it failed.
  auto run = [&](std::size_t i, bool timed) {
    if (!out.errors[i].empty()) return;
    try {
      const double ms = calls[i]();
      if (timed) out.ms[i].push_back(ms);
    } catch (const std::exception& e) {
      out.errors[i] = e.what();
    }
  };
  for (int round = 0; round < opt.warmup; ++round) {
    for (std::size_t j = 0; j < n; ++j) run((round + j) % n, false);
  }
  double total_ms = 0;
  for (int round = 0; round < opt.reps; ++round) {
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t i = (static_cast<std::size_t>(opt.warmup + round) + j) % n;
      const std::size_t before = out.ms[i].size();
      run(i, true);
      if (out.ms[i].size() > before) total_ms += out.ms[i].back();
    }
    if (total_ms > 1e3 * opt.max_seconds * double(n) && round + 1 >= opt.min_reps) break;
  }
  return out;
}

Stats paired_ratio(const std::vector<double>& ms_a, const std::vector<double>& ms_b) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < ms_a.size() && i < ms_b.size(); ++i) {
    if (ms_b[i] > 0) ratios.push_back(ms_a[i] / ms_b[i]);
  }
  return summarize(ratios);
}

Stats time_alone(const TimedCall& call, const TimingOptions& opt) {
  const SideBySide s = time_side_by_side({call}, opt);
  if (!s.errors[0].empty()) throw std::runtime_error(s.errors[0]);
  return summarize(s.ms[0]);
}

Stats time_host(const std::function<void()>& fn, const TimingOptions& opt) {
  return time_alone(host_timed(fn), opt);
}

}  // namespace bench
