// kernels/fast_math.h: float exp, sigmoid and tanh for the CPU step loops, written to
// vectorise.
//
// glibc's expf and tanhf are scalar calls, so a loop over gate activations that calls
// them runs one element at a time; these are straight-line float code (no calls, no
// branches, no tables) that a compiler turns into SIMD when it vectorises the loop. They
// keep what training relies on: NaN in gives NaN out, exp overflows to +inf and
// underflows through the subnormals to 0, tanh saturates to ±1, tanh(-x) = -tanh(x).
// tests/test_fast_math.cpp bounds their error against double-precision libm over the
// float range (exp: 2 ulp, tanh: 3 ulp). CUDA code keeps CUDA's own expf and tanhf
// (see hd.h): the GPU needs no help to run them in parallel.
//
// The polynomial coefficients are near-minimax fits made by scripts/fit_fast_math.py.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace recur::kernels::fast {

inline std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

inline float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// 2^e for e in [-126, 127], built in the exponent field.
inline float pow2(std::int32_t e) { return float_of(static_cast<std::uint32_t>(e + 127) << 23); }

// e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2)/2, e^r from a polynomial: the
// common part of exp and exp_normal, which differ in how they apply 2^n.
struct Reduced {
  float er;        // e^r
  std::int32_t n;  // within [-150, 129] for the arguments the callers allow
};
inline Reduced reduce(float x) {
  // Adding 1.5 * 2^23 rounds to an integer and leaves that integer in the low mantissa
  // bits, so n costs no float-to-int conversion (which a NaN would make undefined).
  constexpr float kShifter = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + kShifter;
  const auto n = static_cast<std::int32_t>(bits_of(shifted) - bits_of(kShifter));
  const float nf = shifted - kShifter;
  // ln 2 split in two so that nf * kLn2High is exact (kLn2High = 355/512).
  constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440054690583e-4f;
  const float r = (x - nf * kLn2High) - nf * kLn2Low;
  const float e =
      0.49999994f + r * (0.16666521f + r * (0.04166839f + r * (0.00836871f + r * 0.0013814613f)));
  return {1.0f + r + r * r * e, n};
}

inline float exp(float x) {
  // Past these bounds e^x has overflowed or underflowed whatever n is; clamping keeps n
  // within what two exponent-field factors express. A NaN fails both tests and stays NaN.
  x = x < -104.0f ? -104.0f : x;
  x = x > 89.0f ? 89.0f : x;
  const Reduced e = reduce(x);
  // n lies in [-150, 129]; its two halves are each a normal power of two, and the second
  // product rounds once into the subnormals or to 0 / inf when e^x leaves the normal range.
  const std::int32_t n1 = e.n / 2;
  return e.er * pow2(n1) * pow2(e.n - n1);
}

// e^x for x in [-87.33, 89] with one factor 2^n where exp uses two, about 20% less work:
// there n is in [-126, 128], and 2^128 is the exponent field's inf. Bit for bit exp's
// result up to 88.37 (n <= 127); from 88.38 on it is inf, where e^x is finite up to 88.72.
// Callers clamp to the domain.
inline float exp_normal(float x) {
  const Reduced e = reduce(x);
  return e.er * pow2(e.n);
}

// 1 / (1 + e^-x). With -x clamped to [-87, 89], e^-x is exp_normal's: below -87 it is
// under 2^-125 and 1 + e^-x rounds to 1 anyway; from 88.38 on, e^-x rounds to inf and the
// result to 0, where the true value is below 3.6e-39 (a subnormal). Elsewhere it is
// 1 / (1 + exp(-x)) exactly.
inline float sigmoid(float x) {
  float z = -x;
  z = z < -87.0f ? -87.0f : z;
  z = z > 89.0f ? 89.0f : z;
  return 1.0f / (1.0f + exp_normal(z));
}

// tanh(x): x + x^3 T(x^2) near 0, where 1 - 2 / (e^{2|x|} + 1) would cancel, else that;
// both on |x|, the sign copied from x last (so tanh is exactly odd and tanh(-0) = -0).
inline float tanh(float x) {
  constexpr float kSmall = 0.625f;  // scripts/fit_fast_math.py's TANH_SMALL
  const float ax = std::fabs(x);
  const float z = ax * ax;
  const float near_zero =
      ax + ax * z *
               (-0.3333328f +
                z * (0.13331442f + z * (-0.053739715f + z * (0.020639088f + z * -0.0057049873f))));
  // tanh rounds to 1 beyond |x| = 9.01; capping 2|x| at 40 keeps 2 / (e + 1) a normal float.
  // (A NaN fails the test and stays NaN.)
  const float two_ax = ax > 20.0f ? 40.0f : 2.0f * ax;
  const float away = 1.0f - 2.0f / (exp_normal(two_ax) + 1.0f);  // 2|x| in [1.25, 40]
  return std::copysign(ax < kSmall ? near_zero : away, x);
}

}  // namespace recur::kernels::fast
