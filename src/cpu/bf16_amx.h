// src/cpu/bf16_amx.h: bf16_gemm's kernel on AMX tiles (TDPBF16PS), where the CPU has them.
//
// One TDPBF16PS multiplies a 16 x 16-pair tile of bf16 pairs by a 16-pair x 16 one and adds
// into a 16 x 16 tile of float32: 8192 multiply-adds, where VDPBF16PS does 512. The layouts
// are bf16_gemm's (bf16_gemm.h), read as tiles of C^T (C is column-major):
//   - an A panel's pairs, 32 rows' words each (128 bytes), are two tiles of 16 pairs by 16
//     rows' words, at a row stride of 128 bytes;
//   - a B block is packed column by column (each column's 16 words of a group side by
//     side, 64 bytes), whatever op(B)'s order: a tile of 16 columns by 16 pairs;
//   - a C tile is 16 columns by 16 rows of C, at a row stride of ldc floats.
// A tile of bf16_gemm is 32 rows by 16 or 32 columns: 2 or 4 accumulator tiles, 2 A tiles and
// 1 or 2 B tiles a group of 16 pairs.
#pragma once

#include <cstdint>

#include "../ops.h"

namespace recur::detail::amx {

// Whether this CPU has AMX-BF16 and the OS lets this process use the tile registers (Linux
// gives them only on request, arch_prctl(ARCH_REQ_XCOMP_PERM)): asked once.
bool available();

// Seconds per multiply-add of TDPBF16PS on data in the tiles (bf16_gemm_pays()'s probe).
double multiply_add_seconds();

// Around a thread's run of tiles: the tile configuration (8 tiles of 16 rows by 64 bytes)
// loaded, and the tile state released after, so that the OS need not save it.
void begin();
void end();

// C rows [r0, r0 + rows) by columns [c0, c0 + cols) (rows <= 32, cols <= 16 * halves) =
// alpha A B + beta C over `pairs` pairs of k (a multiple of 16, the packing's zeros past k),
// or where `first` is false (a later slice of k), += alpha A B. `panel` and `block` point at
// the slice's first group. With alpha 1 an accumulator starts from (beta) C and C is
// stored from it; otherwise C = alpha A B + beta C after the products. The same arithmetic
// for every tile of a call, whole or cut by C's edges.
void tile(int halves, const std::uint16_t* panel, const std::uint32_t* block, std::int64_t pairs,
          const Gemm<float>& g, std::int64_t r0, std::int64_t rows, std::int64_t c0,
          std::int64_t cols, bool first);

// op(B) with trans_b T (B[kk][j] = b[kk * ldb + j]) rounded and packed column by column:
// group `group` of every block of `block_cols` (16 or 32) columns, block i at
// out + i * block_size. Every word is written, the padding as zero.
void pack_b_rows(std::int64_t block_cols, const Gemm<float>& g, std::int64_t group,
                 std::int64_t blocks, std::int64_t block_size, std::uint32_t* out);

}  // namespace recur::detail::amx
