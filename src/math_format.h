// src/math_format.h: a Math (recur/config.h) as a rounding rule (kernels/precision.h) and
// its unit roundoff, for the backends' reduced-precision products and their tests.
#pragma once

#include <cmath>

#include "../kernels/round_operand.cuh"
#include "recur/config.h"

namespace recur::detail {

// The rounding format of a reduced Math (not Fp32).
inline kernels::Format format_of(Math math) {
  switch (math) {
    case Math::Tf32: return kernels::Format::Tf32;
    case Math::Fp16: return kernels::Format::Fp16;
    case Math::Bf16:
    case Math::Fp32: break;
  }
  return kernels::Format::Bf16;
}

// v rounded to math's format (round to nearest even); v itself for Fp32.
inline float rounded_to(Math math, float v) {
  return math == Math::Fp32 ? v : kernels::rounded(format_of(math), v);
}

// 2^-(mantissa bits + 1): 2^-11 for TF32 and FP16, 2^-8 for BF16, 2^-24 for float32.
inline double unit_roundoff(Math math) {
  switch (math) {
    case Math::Tf32:
    case Math::Fp16: return std::ldexp(1.0, -11);
    case Math::Bf16: return std::ldexp(1.0, -8);
    case Math::Fp32: break;
  }
  return std::ldexp(1.0, -24);
}

}  // namespace recur::detail
