// src/cpu/cpu_grad.cpp: the global norm, the clip and the optimizer loops on the CPU.
#include "cpu_grad.h"

#include <cmath>

namespace recur::detail {
namespace {

// Neumaier's compensated sum: the running error of the additions is kept in `c`.
struct CompensatedSum {
  double s = 0.0, c = 0.0;
  void add(double x) {
    const double t = s + x;
    c += (s >= x || s <= -x) ? (s - t) + x : (x - t) + s;
    s = t;
  }
  // An Inf or NaN in the sum stays what it is (c would turn Inf into NaN).
  double value() const { return std::isfinite(s) ? s + c : s; }
};

template <typename T>
double block_sum_squares(const T* p, std::int64_t n) {
  double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const double x0 = p[i], x1 = p[i + 1], x2 = p[i + 2], x3 = p[i + 3];
    a0 += x0 * x0;
    a1 += x1 * x1;
    a2 += x2 * x2;
    a3 += x3 * x3;
  }
  for (; i < n; ++i) {
    const double x = p[i];
    a0 += x * x;
  }
  return (a0 + a1) + (a2 + a3);
}

}  // namespace

template <typename T>
double cpu_sum_squares(const std::vector<kernels::SpanEntry>& spans) {
  CompensatedSum total;
  for (const kernels::SpanEntry& e : spans) {
    const T* p = static_cast<const T*>(e.data);
    for (std::int64_t i = 0; i < e.count; i += kCpuNormBlock) {
      const std::int64_t n = e.count - i < kCpuNormBlock ? e.count - i : kCpuNormBlock;
      total.add(block_sum_squares(p + i, n));
    }
  }
  return total.value();
}

template <typename T>
void cpu_scale(const std::vector<kernels::SpanEntry>& spans, double scale) {
  const T s = static_cast<T>(scale);
  for (const kernels::SpanEntry& e : spans) {
    T* p = static_cast<T*>(e.data);
    for (std::int64_t i = 0; i < e.count; ++i) p[i] *= s;
  }
}

template <typename T>
void cpu_sgd_update(const kernels::SgdArgs<T>& args, const kernels::OptimCounters& counters) {
  const kernels::SgdUpdate<T> f;
  for (std::int64_t i = 0; i < args.n; ++i) f(i, args, counters);
}

template <typename T>
void cpu_adam_update(const kernels::AdamArgs<T>& args, const kernels::OptimCounters& counters) {
  const kernels::AdamUpdate<T> f;
  for (std::int64_t i = 0; i < args.n; ++i) f(i, args, counters);
}

template double cpu_sum_squares<float>(const std::vector<kernels::SpanEntry>&);
template double cpu_sum_squares<double>(const std::vector<kernels::SpanEntry>&);
template void cpu_scale<float>(const std::vector<kernels::SpanEntry>&, double);
template void cpu_scale<double>(const std::vector<kernels::SpanEntry>&, double);
template void cpu_sgd_update<float>(const kernels::SgdArgs<float>&, const kernels::OptimCounters&);
template void cpu_sgd_update<double>(const kernels::SgdArgs<double>&,
                                     const kernels::OptimCounters&);
template void cpu_adam_update<float>(const kernels::AdamArgs<float>&,
                                     const kernels::OptimCounters&);
template void cpu_adam_update<double>(const kernels::AdamArgs<double>&,
                                      const kernels::OptimCounters&);

}  // namespace recur::detail
