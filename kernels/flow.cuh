// kernels/flow.cuh: the gradient-flow reduction, ||a + b||^2 over a [rows, width] block,
// shared by both backends (include/recur/diagnostics.h, docs/design.md).
//
// A backward step records, per unit, the squared norm of dJ/dh_t = dh (through h_{t+1},
// [rows, H]) + dy_t (from the layer above, [rows, ldh]); b may be null. The sum is taken
// in double in one fixed order that both backends follow: "lane" k of kFlowLanes sums the
// elements k, k + kFlowLanes, ... (row-major over the block), then the lanes are added
// pairwise in a tree (kFlowLanes/2 + ..., as a CUDA block reduces through shared memory).
// The CPU runs the same lanes and the same tree in a loop, so the two agree up to the
// compiler's use of fused multiply-adds.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

constexpr int kFlowLanes = 128;  // threads of the CUDA block; lanes of the CPU loop

template <typename T>
struct FlowArgs {
  std::int64_t rows = 0, width = 0;
  const T* a = nullptr;  // [rows, lda]
  std::int64_t lda = 0;
  const T* b = nullptr;  // [rows, ldb], or nullptr (only a)
  std::int64_t ldb = 0;
  double* out = nullptr;  // one double: sum over the block of (a + b)^2
};

// Lane `lane`'s part of the sum.
template <typename T>
RECUR_HD double flow_lane_sum(const FlowArgs<T>& f, int lane) {
  double s = 0.0;
  const std::int64_t n = f.rows * f.width;
  for (std::int64_t i = lane; i < n; i += kFlowLanes) {
    const std::int64_t r = i / f.width, k = i % f.width;
    double v = static_cast<double>(f.a[r * f.lda + k]);
    if (f.b != nullptr) v += static_cast<double>(f.b[r * f.ldb + k]);
    s += v * v;
  }
  return s;
}

// The lanes' tree: after it, lanes[0] holds the total. One step of the tree adds lane
// k + stride into lane k for k < stride, stride = kFlowLanes/2, ..., 1.
RECUR_HD void flow_tree_step(double* lanes, int k, int stride) { lanes[k] += lanes[k + stride]; }

}  // namespace recur::kernels
