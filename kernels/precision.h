// kernels/precision.h: the rounding rules of the reduced-precision formats, written once
// for the host and the device.
//
// Every place recur rounds a float32 value to BF16, FP16 or TF32 (the CPU reference, the
// CUDA kernels, Tensor::to, the public recur::bfloat16 / recur::float16 types) calls these
// functions, so that both backends round at the same points to the same bits.
//
//   format  bits  exponent  mantissa  largest finite      smallest normal  subnormal step
//   BF16    16    8         7         0x1.fep+127         2^-126           2^-133
//   FP16    16    5         10        65504               2^-14            2^-24
//   TF32    19    8         10        0x1.ffcp+127        2^-126           2^-136
//
// The rules, for every format:
// - Round to nearest, ties to even (IEEE 754 roundTiesToEven), computed on the bits with
//   integer arithmetic only, so that no floating-point mode (flush-to-zero,
//   denormals-are-zero, the rounding mode, fast-math) changes the result.
// - Subnormal inputs and results are kept (never flushed to zero).
// - A value beyond the largest finite one by half a unit in the last place or more rounds
//   to infinity, with its sign (as IEEE's RNE says; there is no saturation).
// - Infinities stay infinities; -0 stays -0.
// - A NaN stays a NaN of the same sign and is made quiet; the top bits of its payload that
//   fit are kept (as x86's VCVTNEPS2BF16 and VCVTPS2PH do). Widening FP16 to float32 also
//   quiets a NaN (as VCVTPH2PS does); widening BF16 only shifts the bits (BF16 is the top
//   half of a float32).
// Widening BF16 or FP16 to float32 is exact.
//
// The bit-level functions are constexpr on integers; the float-level ones reinterpret the
// bits with memcpy, which every compiler (nvcc's device code too) reduces to a move.
#pragma once

#include <cstdint>
#include <cstring>

#include "hd.h"

namespace recur::kernels {

// ---- bits <-> float ----

RECUR_HD std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

RECUR_HD float bits_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// ---- on the bits of a float32 ----

// True for a float32 NaN (exponent all ones, mantissa not zero).
RECUR_HD constexpr bool is_nan_bits(std::uint32_t f) { return (f & 0x7fffffffu) > 0x7f800000u; }

// BF16 bits of the float32 with bits `f`, rounded to nearest even.
RECUR_HD constexpr std::uint16_t float_bits_to_bf16(std::uint32_t f) {
  if (is_nan_bits(f)) return static_cast<std::uint16_t>((f >> 16) | 0x0040u);
  // Adding 0x7fff, plus 1 when the kept part is odd, carries into bit 16 exactly when the
  // dropped 16 bits are above half, or at half with an odd kept part. A carry out of the
  // mantissa raises the exponent, which is right, up to infinity from the largest finite.
  const std::uint32_t rounded = f + 0x7fffu + ((f >> 16) & 1u);
  return static_cast<std::uint16_t>(rounded >> 16);
}

// The float32 bits of BF16 bits `b`: exact.
RECUR_HD constexpr std::uint32_t bf16_to_float_bits(std::uint16_t b) {
  return static_cast<std::uint32_t>(b) << 16;
}

// FP16 bits of the float32 with bits `f`, rounded to nearest even.
RECUR_HD constexpr std::uint16_t float_bits_to_fp16(std::uint32_t f) {
  const auto sign = static_cast<std::uint16_t>((f >> 16) & 0x8000u);
  const std::uint32_t a = f & 0x7fffffffu;  // |x|
  if (a > 0x7f800000u) {                    // NaN: quiet, keep the payload's top 9 bits
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  // 65520 = 65504 + half a unit: the tie between the largest finite value (odd mantissa)
  // and 2^16 goes to 2^16, which FP16 cannot hold: infinity. Infinity itself lands here.
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a >= 0x38800000u) {  // |x| >= 2^-14: the result is normal (or rounds up to infinity)
    // Rebias the exponent from 127 to 15 (subtract 112 << 23), then round away 13 bits
    // as in float_bits_to_bf16. A carry past 65504 makes 0x7c00, infinity.
    const std::uint32_t rebiased = a - 0x38000000u;
    const std::uint32_t rounded = rebiased + 0x0fffu + ((rebiased >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | (rounded >> 13));
  }
  // |x| <= 2^-25 (half the smallest subnormal, a tie that goes to the even zero): zero.
  if (a <= 0x33000000u) return sign;
  // A subnormal result: |x| / 2^-24 rounded to an integer q in [1, 1024] (1024 is the
  // smallest normal, 0x0400, reached by rounding up). With the implicit bit m is |x|'s
  // significand, and |x| = m * 2^(e - 150), so q = m >> (126 - e), shift in [14, 24].
  const std::uint32_t e = a >> 23;
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - e;
  std::uint32_t q = m >> shift;
  const std::uint32_t rest = m & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (q & 1u) != 0)) ++q;
  return static_cast<std::uint16_t>(sign | q);
}

// The float32 bits of FP16 bits `h`: exact (a NaN is made quiet).
RECUR_HD constexpr std::uint32_t fp16_to_float_bits(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  std::uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) {  // infinity, or NaN: quiet, payload kept
    return sign | 0x7f800000u | (m << 13) | (m != 0 ? 0x00400000u : 0u);
  }
  if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);  // normal: rebias 15 -> 127
  if (m == 0) return sign;                                   // +-0
  // Subnormal, m * 2^-24: normalise until the leading one reaches the implicit bit. Every
  // FP16 subnormal is a normal float32.
  std::uint32_t exponent = 113u;  // 2^-14, the exponent of the smallest normal FP16
  while ((m & 0x400u) == 0) {
    m <<= 1;
    --exponent;
  }
  return sign | (exponent << 23) | ((m & 0x3ffu) << 13);
}

// The float32 bits of the TF32 value nearest to the float32 with bits `f` (ties to even):
// 10 mantissa bits kept, the low 13 bits zero. The exponent range is float32's, so only
// values within half a TF32 unit of float32's largest finite overflow (to infinity).
RECUR_HD constexpr std::uint32_t float_bits_to_tf32(std::uint32_t f) {
  if (is_nan_bits(f)) return (f | 0x00400000u) & 0xffffe000u;
  const std::uint32_t rounded = f + 0x0fffu + ((f >> 13) & 1u);
  return rounded & 0xffffe000u;
}

// ---- on floats ----

RECUR_HD std::uint16_t float_to_bf16(float x) { return float_bits_to_bf16(float_bits(x)); }
RECUR_HD float bf16_to_float(std::uint16_t b) { return bits_float(bf16_to_float_bits(b)); }
RECUR_HD std::uint16_t float_to_fp16(float x) { return float_bits_to_fp16(float_bits(x)); }
RECUR_HD float fp16_to_float(std::uint16_t h) { return bits_float(fp16_to_float_bits(h)); }

// x rounded to the nearest value of each format, as a float32 (exact there): the rounding
// points of the reduced-precision modes, where a product's operands are rounded.
RECUR_HD float round_to_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }
RECUR_HD float round_to_fp16(float x) { return fp16_to_float(float_to_fp16(x)); }
RECUR_HD float round_to_tf32(float x) { return bits_float(float_bits_to_tf32(float_bits(x))); }

// ---- from float64 ----

// The float32 bits of float64 bits `d` rounded by round-to-odd: toward zero, then the last
// bit set when that was inexact. Rounding this to BF16 or FP16 to nearest even gives the
// same result as rounding the float64 there directly (float32 keeps at least 2 bits more
// than either, over both formats' exponent ranges), where rounding to float32 to nearest
// first can create a false tie (1 + 2^-8 + 2^-40 would go to BF16's 1, not 1 + 2^-7).
// Infinities pass through, a NaN stays a quiet NaN; a finite value beyond float32's range
// gives its largest finite value (odd), which rounds to infinity in BF16 and FP16 alike.
RECUR_HD constexpr std::uint32_t float64_bits_to_float_odd(std::uint64_t d) {
  const auto sign = static_cast<std::uint32_t>(d >> 32) & 0x80000000u;
  const auto e = static_cast<std::int32_t>((d >> 52) & 0x7ffu);
  const std::uint64_t m = d & 0xfffffffffffffull;
  if (e == 0x7ff) {  // infinity, or NaN: quiet, payload's top bits kept
    return sign | 0x7f800000u | static_cast<std::uint32_t>(m >> 29) | (m != 0 ? 0x00400000u : 0u);
  }
  const std::int32_t unbiased = e - 1023;
  if (unbiased > 127) return sign | 0x7f7fffffu;  // beyond float32's largest finite
  if (unbiased >= -126) {                         // a normal float32
    const bool inexact = (m & ((std::uint64_t(1) << 29) - 1)) != 0;
    return sign | (static_cast<std::uint32_t>(unbiased + 127) << 23) |
           static_cast<std::uint32_t>(m >> 29) | (inexact ? 1u : 0u);
  }
  // A float32 subnormal or zero: the significand (implicit bit included; a float64
  // subnormal is far below float32's range) in units of 2^-149.
  const std::uint64_t significand = e == 0 ? m : (m | (std::uint64_t(1) << 52));
  const std::int32_t shift = -97 - unbiased;  // 30 for 2^-127, 52 for 2^-149
  if (shift >= 64) return sign | (significand != 0 ? 1u : 0u);
  const auto q = static_cast<std::uint32_t>(significand >> shift);
  const bool inexact = (significand & ((std::uint64_t(1) << shift) - 1)) != 0;
  return sign | q | (inexact ? 1u : 0u);
}

RECUR_HD std::uint16_t float64_to_bf16(double x) {
  std::uint64_t d;
  std::memcpy(&d, &x, sizeof(d));
  return float_bits_to_bf16(float64_bits_to_float_odd(d));
}
RECUR_HD std::uint16_t float64_to_fp16(double x) {
  std::uint64_t d;
  std::memcpy(&d, &x, sizeof(d));
  return float_bits_to_fp16(float64_bits_to_float_odd(d));
}

}  // namespace recur::kernels
