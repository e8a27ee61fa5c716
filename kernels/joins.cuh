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

// logits [N, V]. NaN counts as the largest value (PyTorch's argmax), and the first of
// equal largest values wins.
template <typename T>
struct ArgmaxArgs {
  std::int64_t rows = 0, classes = 0;
  const T* logits = nullptr;
  std::int64_t* indices = nullptr;  // [N] ArgmaxRows' output
  IndexArray targets;               // [N] CountCorrect's targets
  std::int64_t ignore_index = -100;
  std::int64_t* totals = nullptr;  // [2] CountCorrect adds: correct, counted

  RECUR_HD std::int64_t argmax(std::int64_t r) const {
    const T* x = logits + r * classes;
    std::int64_t best = 0;
    for (std::int64_t j = 1; j < classes; ++j) {
      const bool best_nan = x[best] != x[best];
      if (!best_nan && (x[j] > x[best] || x[j] != x[j])) best = j;
    }
    return best;
  }
};

// n = rows
template <typename T>
struct ArgmaxRows {
  RECUR_HD void operator()(std::int64_t r, const ArgmaxArgs<T>& a) const {
    a.indices[r] = a.argmax(r);
  }
};

// n = rows: rows whose target is ignore_index count for nothing.
template <typename T>
struct CountCorrect {
  RECUR_HD void operator()(std::int64_t r, const ArgmaxArgs<T>& a) const {
    const std::int64_t t = a.targets[r];
    if (t == a.ignore_index) return;
    if (a.argmax(r) == t) add_count(a.totals, 1);
    add_count(a.totals + 1, 1);
  }
};

}  // namespace recur::kernels
