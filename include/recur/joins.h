// recur/joins.h: what a trainer does between modules, on the modules' device: joining and
// slicing tensors, scaling, the mean over variable-length sequences, argmax and accuracy;
// each with its backward. On a GPU every call queues its work on the legacy default
// stream (ordered with the modules' and an Rnn's default streams, recur/modules.h) and
// returns without waiting, and nothing is read back to the host.
//
// A bidirectional classifier's features, the last layer's final states of both
// directions, and their gradient back into dh_n:
//
//   // h_n [L*2, B, H]: rows 2L-2 (forward) and 2L-1 (reverse) of the last layer
//   recur::Tensor last = recur::narrow(r.h_n, 0, 2 * L - 2, 2);          // [2, B, H]
//   std::vector<recur::Tensor> dirs = recur::split(last, {1, 1}, 0);     // 2 x [1, B, H]
//   recur::Tensor features = recur::concat({recur::reshape(dirs[0], {B, H}),
//                                           recur::reshape(dirs[1], {B, H})}, 1);  // [B, 2H]
//   ...
//   std::vector<recur::Tensor> d = recur::split(dfeatures, {H, H}, 1);   // 2 x [B, H]
//   recur::Tensor dlast = recur::concat({recur::reshape(d[0], {1, B, H}),
//                                        recur::reshape(d[1], {1, B, H})}, 0);
//   recur::Tensor dh_n = recur::narrow_backward(dlast, r.h_n.shape(), 0, 2 * L - 2);
//
// Every argument is checked before anything runs; a bad one is a recur::Error naming it.
// Results are new tensors on the inputs' device. Sums run in a fixed order (the same bits
// on every run); the CPU and a GPU compute the same expressions.
#pragma once

#include <cstdint>
#include <vector>

#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

// `x`'s memory seen with another shape of the same element count (no copy; the view
// borrows x's memory).
RECUR_API TensorView reshape(const TensorView& x, const Shape& shape);

// The parts joined along `dim` (in [0, rank)): all defined, of one dtype (any) and one
// device, of equal rank, with equal sizes except along `dim`. At least one part.
RECUR_API Tensor concat(const std::vector<TensorView>& parts, std::int64_t dim);
// x cut along `dim` into parts of `sizes` (each >= 0, summing to x.size(dim)): the
// inverse of concat, and so its backward.
RECUR_API std::vector<Tensor> split(const TensorView& x, const std::vector<std::int64_t>& sizes,
                                    std::int64_t dim);
// A copy of x's indices [start, start + length) along `dim`.
RECUR_API Tensor narrow(const TensorView& x, std::int64_t dim, std::int64_t start,
                        std::int64_t length);
// narrow's backward: a zero tensor of `shape` (the shape narrow's x had) with dy at
// [start, start + dy.size(dim)) along `dim`.
RECUR_API Tensor narrow_backward(const TensorView& dy, const Shape& shape, std::int64_t dim,
                                 std::int64_t start);

// factor * x (x float32 or float64; factor rounded to x's dtype). Its own backward:
// dJ/dx = scale(dJ/dy, factor).
RECUR_API Tensor scale(const TensorView& x, double factor);

// The mean over the valid steps of each sequence: y [T, B, F] (or [B, T, F] with
// batch_first), float32 or float64; lengths an Int32 or Int64 tensor [B] on y's device,
// each in [0, T] (checked on the host for CPU lengths; on a GPU a length outside is
// clamped into [0, T]). Returns pooled [B, F]: the sum of y over t < lengths[b], in
// increasing t, divided by lengths[b]; 0 for an empty sequence.
RECUR_API Tensor masked_mean(const TensorView& y, const TensorView& lengths,
                             bool batch_first = false);
// Its backward: dpooled [B, F] -> dy [T, B, F] (or [B, T, F]), dpooled[b] / lengths[b] at
// the valid steps and 0 at the padded ones. `steps` is T.
RECUR_API Tensor masked_mean_backward(const TensorView& dpooled, const TensorView& lengths,
                                      std::int64_t steps, bool batch_first = false);

// The index of the largest value along the last dimension: x [..., V] (V >= 1, float32 or
// float64) -> Int64 [...]. The first of equal values wins; NaN counts as the largest
// (PyTorch's argmax).
RECUR_API Tensor argmax(const TensorView& x);
// Accuracy, accumulated on the device: for each row of logits [..., V] whose target
// (targets: Int32 or Int64 on the logits' device, one per row) is not ignore_index, adds
// 1 to totals[1], and 1 to totals[0] when argmax(row) equals the target. totals: an Int64
// tensor [2] on the logits' device, owned by the caller (zero it to start a count), so
// that a whole evaluation is read back once. A target outside [0, V) simply never
// matches.
RECUR_API void count_correct(const TensorView& logits, const TensorView& targets,
                             const TensorView& totals, std::int64_t ignore_index = -100);

}  // namespace recur
