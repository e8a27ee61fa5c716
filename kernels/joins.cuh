// kernels/joins.cuh: the math of the joins between modules (recur/joins.h): block copies
// (concatenate, split, narrow), scaling, the masked mean over variable lengths, argmax
// and the count of correct predictions.
//
// As in kernels/nn.cuh, one functor per operation, called as f(i, args) for i in [0, n):
// a loop on the CPU (src/nn/joins.cpp), one index per thread on the GPU
// (kernels/joins.cu). Sums are loops inside one index, in a fixed order; only integer
// counters add atomically.
#pragma once

#include <cstdint>

#include "hd.h"
#include "indices.h"
#include "row_lanes.h"

namespace recur::kernels {

// ---- block copies ----

// A tensor seen as [outer, width] rows (width = the size of the joined dimension times
// everything after it): row o of src (src_width elements) goes to dst[o, offset ..).
// Concatenation runs one copy per part with growing offsets into one dst; a split, one
// per part from growing offsets of one src (dst_width = the part's width, src_offset).
// Elements are copied as their bits (E an unsigned integer of the dtype's size), so every
// dtype takes the same functor.
template <typename E>
struct BlockCopyArgs {
  std::int64_t outer = 0;
  std::int64_t width = 0;  // elements copied per row
  const E* src = nullptr;
  std::int64_t src_width = 0, src_offset = 0;
  E* dst = nullptr;
  std::int64_t dst_width = 0, dst_offset = 0;
};

// n = outer * width
template <typename E>
struct BlockCopy {
  RECUR_HD void operator()(std::int64_t idx, const BlockCopyArgs<E>& a) const {
    const std::int64_t o = idx / a.width, j = idx % a.width;
    a.dst[o * a.dst_width + a.dst_offset + j] = a.src[o * a.src_width + a.src_offset + j];
  }
};

// ---- scaling ----

template <typename T>
struct MultiplyArgs {
  std::int64_t n = 0;
  const T* x = nullptr;
  T factor = T(1);
  T* y = nullptr;  // y = factor * x
};

template <typename T>
struct Multiply {
  RECUR_HD void operator()(std::int64_t i, const MultiplyArgs<T>& a) const {
    a.y[i] = a.factor * a.x[i];
  }
};

// ---- the masked mean over time ----

// y [T, B, F] (time-major) or [B, T, F] (batch_first); lengths [B], each in [0, T].
// Forward: pooled[b, f] = sum over t < lengths[b] of y[t, b, f], in increasing t, times
// 1 / lengths[b] (0 for an empty sequence). Backward: dy[t, b, f] = dpooled[b, f] /
// lengths[b] for t < lengths[b], else 0.
template <typename T>
struct MaskedMeanArgs {
  std::int64_t steps = 0, batch = 0, features = 0;
  bool batch_first = false;
  IndexArray lengths;
  const T* y = nullptr;        // forward input
  T* pooled = nullptr;         // [B, F] forward output
  const T* dpooled = nullptr;  // [B, F] backward input
  T* dy = nullptr;             // backward output, y's shape

  RECUR_HD std::int64_t at(std::int64_t t, std::int64_t b, std::int64_t f) const {
    return (batch_first ? b * steps + t : t * batch + b) * features + f;
  }
  // lengths[b], with a length outside [0, T] (possible only on a GPU, where they are not
  // read by the host) clamped into it.
  RECUR_HD std::int64_t length(std::int64_t b) const {
    const std::int64_t l = lengths[b];
    return l < 0 ? 0 : (l > steps ? steps : l);
  }
};

// n = batch * features
template <typename T>
struct MaskedMeanForward {
  RECUR_HD void operator()(std::int64_t idx, const MaskedMeanArgs<T>& a) const {
    const std::int64_t b = idx / a.features, f = idx % a.features;
    const std::int64_t len = a.length(b);
    T sum = T(0);
    for (std::int64_t t = 0; t < len; ++t) sum += a.y[a.at(t, b, f)];
    a.pooled[idx] = len > 0 ? sum / static_cast<T>(len) : T(0);
  }
};

// n = steps * batch * features, over dy in its own layout
template <typename T>
struct MaskedMeanBackward {
  RECUR_HD void operator()(std::int64_t idx, const MaskedMeanArgs<T>& a) const {
    const std::int64_t f = idx % a.features;
    const std::int64_t outer = idx / a.features;
    const std::int64_t t = a.batch_first ? outer % a.steps : outer / a.batch;
    const std::int64_t b = a.batch_first ? outer / a.steps : outer % a.batch;
    const std::int64_t len = a.length(b);
    a.dy[idx] = t < len ? a.dpooled[b * a.features + f] / static_cast<T>(len) : T(0);
  }
};

// ---- argmax and accuracy ----

// The best value of a part of a row and its index (-1: an empty part).
template <typename T>
struct ArgmaxBest {  // trivial, so that a GPU block keeps them in shared memory
  T value;
  std::int64_t index;
};

// Whether `a` beats `b`: NaN counts as the largest value (PyTorch's argmax), then the larger
// value, then the smaller index wins. That is a total order, so the best of a row is the
// same whatever order its parts are merged in: the first of its largest values.
template <typename T>
RECUR_HD bool beats(const ArgmaxBest<T>& a, const ArgmaxBest<T>& b) {
  if (a.index < 0 || b.index < 0) return b.index < 0 && a.index >= 0;
  const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

// The best of part `lane` of row x (classes lane, lane + lanes, ...): one lane is the whole
// row, as the CPU runs it; a GPU block runs row_lanes(classes) lanes and merges them.
template <typename T>
RECUR_HD ArgmaxBest<T> lane_best(const T* x, std::int64_t classes, int lane, int lanes) {
  ArgmaxBest<T> best{T(0), -1};
  for (std::int64_t j = lane; j < classes; j += lanes) {
    const ArgmaxBest<T> here{x[j], j};
    if (beats(here, best)) best = here;
  }
  return best;
}

// logits [N, V]: the index of each row's best value (beats()).
template <typename T>
struct ArgmaxArgs {
  std::int64_t rows = 0, classes = 0;
  const T* logits = nullptr;
  std::int64_t* indices = nullptr;  // [N] ArgmaxRows' output
  IndexArray targets;               // [N] CountCorrect's targets
  std::int64_t ignore_index = -100;
  std::int64_t* totals = nullptr;  // [2] CountCorrect adds: correct, counted

  RECUR_HD std::int64_t argmax(std::int64_t r) const {
    return lane_best(logits + r * classes, classes, 0, 1).index;
  }
  // Row r's output, its best index known: ArgmaxRows writes it, CountCorrect counts it.
  RECUR_HD void finish(bool count_correct, std::int64_t r, std::int64_t best) const {
    if (!count_correct) {
      indices[r] = best;
      return;
    }
    const std::int64_t t = targets[r];
    if (t == ignore_index) return;  // counts for nothing
    if (best == t) add_count(totals, 1);
    add_count(totals + 1, 1);
  }
};

// n = rows: the CPU's loops, a row an index (a GPU runs a block a row: kernels/joins.cu).
template <typename T>
struct ArgmaxRows {
  RECUR_HD void operator()(std::int64_t r, const ArgmaxArgs<T>& a) const {
    a.finish(false, r, a.argmax(r));
  }
};

template <typename T>
struct CountCorrect {
  RECUR_HD void operator()(std::int64_t r, const ArgmaxArgs<T>& a) const {
    a.finish(true, r, a.argmax(r));
  }
};

}  // namespace recur::kernels
