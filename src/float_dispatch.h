// src/float_dispatch.h: small helpers shared by the float32/float64 entry points (optimizers,
// clipping, loss scaling, schedules, modules): the C++ type of a validated dtype, the digits
// of a number as error messages quote it, and a float64 state slot read as a count.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "recur/tensor.h"

namespace recur::detail {

// Calls fn(float{}) for Float32 and fn(double{}) otherwise: for a dtype already checked to
// be one of the two.
template <class Fn>
void with_float_type(DType dtype, Fn&& fn) {
  if (dtype == DType::Float32) {
    fn(float{});
  } else {
    fn(double{});
  }
}

// x with every digit a double holds ("%.17g"), as an Error's "got" part quotes it.
inline std::string exact_number(double x) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", x);
  return buffer;
}

// Counts kept in float64 slots (LossScaler's counters, LrSchedule's step) are exact up to
// 2^53.
constexpr std::int64_t kMaxSlotCount = std::int64_t{1} << 53;

// A float64 slot as a count, whatever a file put there: 0 where it holds none (NaN,
// negative), rounded down, at most kMaxSlotCount.
inline std::int64_t count_in_slot(double v) {
  if (!(v >= 0.0)) return 0;
  return static_cast<std::int64_t>(std::floor(std::fmin(v, static_cast<double>(kMaxSlotCount))));
}

}  // namespace recur::detail
