// kernels/round_operand.cuh: a product's operand rounded to a reduced format, written once
// for the CPU reference (src/cpu/cpu_ops.cpp) and the CUDA backend (kernels/round_operand.cu,
// src/cuda/reduced_gemms.cpp).
//
// Under reduced math (recur/config.h's Math) both operands of every GEMM are rounded to the
// format, round to nearest even (kernels/precision.h), and the product of the rounded values
// accumulates in float32. This is the one place that says which element goes where: the
// operand as stored (rows x cols, column-major, leading dimension ld) becomes a packed copy
// (leading dimension rows): element (r, c) at dst[c * rows + r]. The copy holds
// floats (the CPU, and TF32 on the GPU: a TF32 value is a float32 whose low 13 mantissa bits
// are zero) or 16-bit BF16/FP16 values (the GPU's tensor-core inputs); both hold the same
// rounded numbers.
#pragma once

#include <cstdint>

#include "hd.h"
#include "precision.h"

namespace recur::kernels {

enum class Format : int { Tf32, Bf16, Fp16 };

// The bits a 16-bit copy stores for x (BF16 or FP16; not TF32, which is stored as a float).
RECUR_HD std::uint16_t reduced_bits(Format f, float x) {
  return f == Format::Bf16 ? float_to_bf16(x) : float_to_fp16(x);
}

// x rounded to the format, as a float32.
RECUR_HD float rounded(Format f, float x) {
  switch (f) {
    case Format::Tf32: return round_to_tf32(x);
    case Format::Bf16: return round_to_bf16(x);
    case Format::Fp16: return round_to_fp16(x);
  }
  return x;
}

// Out: float (any format) or std::uint16_t (Bf16, Fp16).
template <typename Out>
struct RoundOperandArgs {
  const float* src = nullptr;  // rows x cols, column-major, leading dimension ld >= rows
  std::int64_t rows = 0, cols = 0, ld = 0;
  Format format = Format::Bf16;
  Out* dst = nullptr;  // rows * cols, packed
};

// Element (r, c): the CPU loops over rows inside columns (contiguous on both sides), the
// GPU gives each thread one element.
template <typename Out>
struct RoundOperand {
  RECUR_HD void operator()(std::int64_t r, std::int64_t c, const RoundOperandArgs<Out>& a) const {
    const float x = a.src[c * a.ld + r];
    if constexpr (sizeof(Out) == sizeof(float)) {
      a.dst[c * a.rows + r] = rounded(a.format, x);
    } else {
      a.dst[c * a.rows + r] = reduced_bits(a.format, x);
    }
  }
};

}  // namespace recur::kernels
