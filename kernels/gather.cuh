// kernels/gather.cuh: row gathers, the edge between the caller's layout and recur's.
//
// dst row r = src row index[r], or zeros where index[r] < 0. This one functor converts
// batch-first to time-major, sorts a batch by length, packs variable-length sequences
// and unpacks them with zero padding, on both backends.
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

}  // namespace recur::kernels
