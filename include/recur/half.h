// recur/half.h: the host element types of DType::BFloat16 and DType::Float16 tensors.
//
//   std::vector<recur::bfloat16> v = {recur::bfloat16(0.1f), recur::bfloat16(2.0f)};
//   recur::Tensor t = recur::Tensor::from_vector(v, {2});    // DType::BFloat16
//   float first = t.to_vector<recur::bfloat16>()[0];          // 0.10009765625f
//   recur::Tensor wide = t.to(recur::DType::Float32);        // exact
//
// Each type is 16 bits of an IEEE-style binary format, standard layout and trivially
// copyable, so a std::vector of them is the tensor's memory. They are storage types, not
// arithmetic ones: convert to float to compute (widening is exact, so it is implicit), and
// construct from a float to round (narrowing rounds, so it is explicit).
//
// Rounding from float is to nearest, ties to even, the same bits on every host and on the
// GPU (kernels/precision.h holds the rules): subnormals are kept, a value at or beyond the
// largest finite value plus half a unit becomes infinity, infinities and -0 are kept, and
// a NaN stays a NaN of its sign (made quiet). docs/design.md, "Reduced precision", has
// the details.
#pragma once

#include <cstdint>

#include "recur/export.h"

namespace recur {

// bfloat16: 1 sign bit, 8 exponent bits (float32's range), 7 mantissa bits: the top half
// of a float32. Unit roundoff 2^-8; largest finite 0x1.fep+127 (about 3.39e38).
struct RECUR_API bfloat16 {
  std::uint16_t bits;  // the IEEE-style encoding, as stored in a tensor and a file

  // Uninitialised, as a float is; bfloat16{} is +0.
  bfloat16() = default;
  // `value` rounded to the nearest bfloat16 (ties to even).
  explicit bfloat16(float value);
  // The bfloat16 whose encoding is `bits`.
  static bfloat16 from_bits(std::uint16_t bits) {
    bfloat16 b;
    b.bits = bits;
    return b;
  }
  // The exact float32 value (a NaN stays the same NaN bits, shifted).
  operator float() const;  // NOLINT: widening is exact, like float to double
};

// float16 (IEEE 754 binary16, "half"): 1 sign bit, 5 exponent bits, 10 mantissa bits.
// Unit roundoff 2^-11; largest finite 65504; smallest normal 2^-14; subnormals down to
// 2^-24.
struct RECUR_API float16 {
  std::uint16_t bits;  // the IEEE 754 binary16 encoding

  // Uninitialised, as a float is; float16{} is +0.
  float16() = default;
  // `value` rounded to the nearest float16 (ties to even; 65520 and beyond become
  // infinity).
  explicit float16(float value);
  // The float16 whose encoding is `bits`.
  static float16 from_bits(std::uint16_t bits) {
    float16 h;
    h.bits = bits;
    return h;
  }
  // The exact float32 value (a NaN stays a NaN, made quiet).
  operator float() const;  // NOLINT: widening is exact, like float to double
};

}  // namespace recur
