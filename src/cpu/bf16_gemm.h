// src/cpu/bf16_gemm.h: BF16 products on the CPU for real, on AVX512_BF16's VDPBF16PS or on
// AMX tiles' TDPBF16PS.
//
// Under Math::Bf16 every GEMM's operands are rounded to bfloat16 (round to nearest even,
// kernels/round_operand.cuh's rule) and multiplied with float32 accumulation. Where the CPU
// has AVX512_BF16, CpuOps does this here instead of emulating it on float32 copies, with
// one of two kernels (Bf16Kernel):
//   - Dot: one VDPBF16PS multiplies 16 lanes of bf16 pairs and adds both exact products into
//     float32. Whether that pays depends on the core: some run it at twice a float32 FMA's
//     multiply-adds, others (the Xeon of docs/benchmarks.md, "BF16 on the CPU") at half,
//     where the emulation, on float32's FMAs, is the faster way;
//   - Tiles, where the CPU has AMX-BF16 (bf16_amx.h): one TDPBF16PS does 16 x 16 x 32
//     multiply-adds, 16 times or more a core's float32 FMAs.
// bf16_gemm_pays() measures which pays. The results differ from the emulation only in the
// order of accumulation and in what the instructions flush: bf16 subnormal operands
// (below 2^-126) count as zero, and subnormal float32 sums are flushed (DAZ/FTZ).
//
// The layouts, for C (m x n, column-major) += op(A) (m x k) op(B) (k x n):
//   A, packed once (Bf16PackedA): panels of 32 rows; in a panel, for each pair of k
//     (k0, k0+1), the 32 rows' (A[r][k0], A[r][k0+1]) side by side: two zmm registers.
//   B, packed per call: blocks of 12 columns (8 for products of at most 64 columns,
//     where those pad less), each in groups of 16 pairs of k; a word
//     (B[k0][j], B[k0+1][j]) is broadcast to all 16 lanes. In a group the words lie in
//     the order op(B) holds them: pair by pair (12 columns' words side by side) where its
//     rows are contiguous (trans_b T), column by column (16 pairs' words side by side)
//     where its columns are (N), so that packing is a contiguous convert and store.
//   Tiles packs every block column by column (16 or 32 columns a block).
// Rows, columns, an odd k and the last group (of B, and of A's pairs) are padded with zeros.
// A 32 x 12 tile of C is 24 zmm accumulators (32 x 8: 16) over a slice of k (cache
// blocking: bf16_gemm.cpp), for Tiles 32 x 32 (32 x 16) in 4 (2) AMX tiles; the threads
// share units of tiles.
#pragma once

#include <cstdint>
#include <vector>

#include "../ops.h"

namespace recur::detail {

enum class Bf16Kernel { Dot, Tiles };

// Whether this CPU (and its OS) runs AVX512_BF16: checked once.
bool bf16_gemm_available();
// Whether it runs `kernel`: Dot where bf16_gemm_available(), Tiles where AMX-BF16 is
// usable too (amx::available()).
bool bf16_kernel_available(Bf16Kernel kernel);
// Whether `kernel` multiplies bf16 pairs faster than float32 FMAs by kNativeBf16Margin or
// more (the margin covers the emulation's rounding passes and this GEMM's packing): false
// where it is not available. Timed once, for about a millisecond, at the first call.
constexpr double kNativeBf16Margin = 1.4;
bool bf16_gemm_pays(Bf16Kernel kernel);

// op(A), rounded to bfloat16 and packed as above.
class Bf16PackedA {
 public:
  // `a` as a Gemm's A: op(A) is m x k, trans and lda as in Gemm.
  void pack(const float* a, Trans trans, std::int64_t m, std::int64_t k, std::int64_t lda);
  std::int64_t rows() const { return m_; }
  std::int64_t depth() const { return k_; }
  const std::uint16_t* panel(std::int64_t index) const;

 private:
  std::int64_t m_ = 0, k_ = 0;
  std::vector<std::uint16_t> panels_;
};

// g with op(A) given packed (g.a, g.trans_a and g.lda are not read; a.rows() == g.m,
// a.depth() == g.k): C = alpha op(A) op(B) + beta C on `kernel`, op(B) rounded to bfloat16
// into `b_scratch`. Only where bf16_kernel_available(kernel).
void bf16_gemm(const Bf16PackedA& a, const Gemm<float>& g, Bf16Kernel kernel,
               std::vector<std::uint32_t>& b_scratch);

}  // namespace recur::detail
