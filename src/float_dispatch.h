// src/float_dispatch.h: small helpers shared by the float32/float64 entry points (optimizers,
// clipping, loss scaling, modules): the C++ type of a validated dtype, and the digits of a
// number as error messages quote it.
#pragma once

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

}  // namespace recur::detail
