// kernels/gather.cuh: layout moves: row gathers and matrix transposes.
//
// Gather: dst row r = src row index[r], or zeros where index[r] < 0. This one functor
// converts batch-first to time-major, sorts a batch by length, packs variable-length
// sequences and unpacks them with zero padding, on both backends.
// Transpose: the weights a forward pass's per-step GEMMs read, turned at its start so those
// GEMMs read them without a transpose (see src/stack_pass.h).
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

template <typename T>
struct GatherArgs {
  std::int64_t rows = 0, width = 0;
  T* dst = nullptr;  // [rows, ld_dst]
  std::int64_t ld_dst = 0;
  const T* src = nullptr;  // [.., ld_src]
  std::int64_t ld_src = 0;
  const std::int64_t* index = nullptr;  // [rows]
};

template <typename T>
struct GatherRows {
  RECUR_HD void operator()(std::int64_t idx, const GatherArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    const std::int64_t from = a.index[r];
    a.dst[r * a.ld_dst + k] = from >= 0 ? a.src[from * a.ld_src + k] : T(0);
  }
};

// dst = src^T: src is [rows, cols] (row-major, packed), dst [cols, rows].
template <typename T>
struct TransposeArgs {
  std::int64_t rows = 0, cols = 0;
  T* dst = nullptr;
  const T* src = nullptr;
};

// Element (c, r) of dst; a CUDA thread holds idx = c*rows + r (consecutive threads write
// consecutive addresses), the CPU walks tiles calling `at`.
template <typename T>
struct Transpose {
  RECUR_HD void at(std::int64_t c, std::int64_t r, const TransposeArgs<T>& a) const {
    a.dst[c * a.rows + r] = a.src[r * a.cols + c];
  }
  RECUR_HD void operator()(std::int64_t idx, const TransposeArgs<T>& a) const {
    at(idx / a.rows, idx % a.rows, a);
  }
};

}  // namespace recur::kernels
