// kernels/row_lanes.h: how many lanes a wide row reduction (a cross-entropy's softmax, an
// argmax over a vocabulary) cuts each row into. A GPU block gives each lane a thread and
// merges the lanes in shared memory; a row of 10^5 classes is then read by 256 threads side
// by side instead of by one.
#pragma once

#include <cstdint>

namespace recur::kernels {

constexpr int kMaxRowLanes = 256;

// The lanes for a row of `columns`: a power of two in [32, 256], about columns / 16 (so a
// narrow row does not pay for 256 empty lanes).
inline int row_lanes(std::int64_t columns) {
  int lanes = 32;
  while (lanes < kMaxRowLanes && lanes * std::int64_t{16} < columns) lanes *= 2;
  return lanes;
}

// The blocks a kernel of a block per row launches for `rows`: one a row, up to 65536; the
// blocks then stride over the rest.
inline unsigned row_blocks(std::int64_t rows) {
  return static_cast<unsigned>(rows < 65536 ? rows : 65536);
}

}  // namespace recur::kernels
