// src/cpu/bf16_words.h: what bf16_gemm's kernels share: float32 rounded to bfloat16 pair
// words, and the packed layouts' sizes (bf16_gemm.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace recur::detail {

constexpr std::int64_t kPanelRows = 32;   // rows of op(A) in a packed panel
constexpr std::int64_t kGroupPairs = 16;  // pairs of k in a group of a packed B block

// The first n of 16 lanes.
inline __mmask16 first_lanes(std::int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                 : static_cast<__mmask16>(n <= 0 ? 0u : (1u << n) - 1u);
}

// 16 float32 lanes rounded to bfloat16, each in the low half of a 32-bit lane.
// VCVTNEPS2BF16 rounds to nearest even, the rule both backends round with
// (kernels/round_operand.cuh), except that a subnormal input becomes zero, which the
// kernels make of a bf16 subnormal operand anyway.
__attribute__((target("avx512f,avx512bf16"))) inline __m512i low_halves(__m512 x) {
  // (The zero-masked forms: the plain ones start from an undefined vector, which gcc 12
  // flags as maybe-uninitialized.)
  return _mm512_maskz_cvtepu16_epi32(0xFFFF, (__m256i)_mm512_cvtneps_pbh(x));
}

// The pair words of two float32 vectors: lane i = (lo[i], hi[i]) in bfloat16, lo in the low
// half (the order VDPBF16PS and TDPBF16PS read).
__attribute__((target("avx512f,avx512bf16"))) inline __m512i pair_words(__m512 lo, __m512 hi) {
  return _mm512_or_si512(low_halves(lo), _mm512_maskz_slli_epi32(0xFFFF, low_halves(hi), 16));
}

}  // namespace recur::detail
