// kernels/nn.cuh: the element-wise math of the language-model modules (recur/modules.h):
// embedding gather and gradient, the bias of a linear layer, softmax cross-entropy.
//
// One functor per operation, called as f(i, args) for i in [0, n): the CPU runs it in a
// loop (src/nn/modules.cpp), the GPU one index per thread (kernels/nn.cu). Every
// reduction is a loop inside one index, in a fixed order: no atomics, so results are the
// same bits on every run, and the gradient sums of the CPU and the GPU differ only by
// the rounding of exp/log (integer counters add atomically: their sums have no order).
// Row-major throughout; ids and targets are int32 or int64 (kernels/indices.h).
#pragma once

#include <cstdint>

#include "hd.h"
#include "indices.h"

namespace recur::kernels {

RECUR_HD float log_(float x) { return logf(x); }
RECUR_HD double log_(double x) { return log(x); }

// ---- Embedding ----

template <typename T>
struct EmbeddingArgs {
  std::int64_t rows = 0;          // N tokens
  std::int64_t dim = 0;           // E
  std::int64_t vocab = 0;         // V
  std::int64_t padding_idx = -1;  // the row that gets no gradient; -1 for none
  IndexArray ids;                 // [N], valid in [0, V)
  // forward: out[r, k] = weight[ids[r], k], NaN for an id outside [0, V)
  const T* weight = nullptr;  // [V, E]
  T* out = nullptr;           // [N, E]
  // backward: the (id, position) pairs sorted by id, stably (positions increase within an
  // id); an invalid id has key V, so it sorts last and adds nothing.
  std::int32_t* keys_in = nullptr;          // [N] EmbeddingKeys writes these two,
  std::int32_t* positions_in = nullptr;     // [N] the sort reads them
  const std::int32_t* keys = nullptr;       // [N] sorted keys
  const std::int32_t* positions = nullptr;  // [N] their positions
  const T* dy = nullptr;                    // [N, E]
  T* dweight = nullptr;                     // [V, E]
};

// n = rows * dim
template <typename T>
struct EmbeddingForward {
  RECUR_HD void operator()(std::int64_t idx, const EmbeddingArgs<T>& a) const {
    const std::int64_t r = idx / a.dim, k = idx % a.dim;
    const std::int64_t id = a.ids[r];
    a.out[idx] = id >= 0 && id < a.vocab ? a.weight[id * a.dim + k] : static_cast<T>(NAN);
  }
};

// n = rows: the sort's input.
template <typename T>
struct EmbeddingKeys {
  RECUR_HD void operator()(std::int64_t r, const EmbeddingArgs<T>& a) const {
    const std::int64_t id = a.ids[r];
    a.keys_in[r] = static_cast<std::int32_t>(id >= 0 && id < a.vocab ? id : a.vocab);
    a.positions_in[r] = static_cast<std::int32_t>(r);
  }
};

// n = rows * dim over the sorted pairs: the first index of each run of one id owns
// (id, k) and sums its run in increasing position, so no two indices write one element.
template <typename T>
struct EmbeddingBackward {
  RECUR_HD void operator()(std::int64_t idx, const EmbeddingArgs<T>& a) const {
    const std::int64_t i = idx / a.dim, k = idx % a.dim;
    const std::int32_t key = a.keys[i];
    if ((i > 0 && a.keys[i - 1] == key) || key >= a.vocab || key == a.padding_idx) return;
    T sum = T(0);
    for (std::int64_t j = i; j < a.rows && a.keys[j] == key; ++j) {
      sum += a.dy[static_cast<std::int64_t>(a.positions[j]) * a.dim + k];
    }
    a.dweight[static_cast<std::int64_t>(key) * a.dim + k] += sum;
  }
};

// ---- Linear: the bias ----

template <typename T>
struct BiasArgs {
  std::int64_t rows = 0, cols = 0;
  const T* bias = nullptr;  // [cols]
  T* y = nullptr;           // [rows, cols] forward: y[r, j] = bias[j]
  const T* dy = nullptr;    // [rows, cols] backward
  T* dbias = nullptr;       // [cols] backward: += sum over r of dy[r, j]
};

// n = rows * cols
template <typename T>
struct BiasBroadcast {
  RECUR_HD void operator()(std::int64_t idx, const BiasArgs<T>& a) const {
    a.y[idx] = a.bias[idx % a.cols];
  }
};

// n = cols; rows summed in order. Neighbouring j read neighbouring addresses.
template <typename T>
struct BiasGradient {
  RECUR_HD void operator()(std::int64_t j, const BiasArgs<T>& a) const {
    T sum = T(0);
    for (std::int64_t r = 0; r < a.rows; ++r) sum += a.dy[r * a.cols + j];
    a.dbias[j] += sum;
  }
};

// ---- Softmax cross-entropy ----

template <typename T>
struct CrossEntropyArgs {
  std::int64_t rows = 0, classes = 0;  // N, V
  const T* logits = nullptr;           // [N, V]
  IndexArray targets;                  // [N], each in [0, V) or ignore_index
  std::int64_t ignore_index = -100;
  std::int64_t* count = nullptr;  // [1] rows whose target is not ignore_index
  T* row_loss = nullptr;          // [N] -log softmax(logits[r])[target[r]], 0 for ignored rows,
                                  // NaN for a target outside [0, V)
  T* dlogits = nullptr;           // [N, V] or nullptr: (softmax - onehot) / count, 0 for ignored
  T* loss = nullptr;              // [1] sum of row_loss / count (0 when count is 0)
};

// The mean's factor: 1 / count, 0 when nothing counts.
template <typename T>
RECUR_HD T mean_scale(std::int64_t count) {
  return count > 0 ? static_cast<T>(1.0 / static_cast<double>(count)) : T(0);
}

// n = 1, before CrossEntropyCount.
template <typename T>
struct CrossEntropyClear {
  RECUR_HD void operator()(std::int64_t, const CrossEntropyArgs<T>& a) const { *a.count = 0; }
};

// n = rows
template <typename T>
struct CrossEntropyCount {
  RECUR_HD void operator()(std::int64_t r, const CrossEntropyArgs<T>& a) const {
    if (a.targets[r] != a.ignore_index) add_count(a.count, 1);
  }
};

// n = rows: one index per row, three passes over it (max, sum of exp, outputs).
template <typename T>
struct CrossEntropyRows {
  RECUR_HD void operator()(std::int64_t r, const CrossEntropyArgs<T>& a) const {
    const T* x = a.logits + r * a.classes;
    T* d = a.dlogits != nullptr ? a.dlogits + r * a.classes : nullptr;
    const std::int64_t t = a.targets[r];
    if (t == a.ignore_index) {
      a.row_loss[r] = T(0);
      if (d != nullptr) {
        for (std::int64_t j = 0; j < a.classes; ++j) d[j] = T(0);
      }
      return;
    }
    if (t < 0 || t >= a.classes) {  // a bad target on a GPU: the loss says so
      a.row_loss[r] = static_cast<T>(NAN);
      if (d != nullptr) {
        for (std::int64_t j = 0; j < a.classes; ++j) d[j] = static_cast<T>(NAN);
      }
      return;
    }
    const T scale = mean_scale<T>(*a.count);
    T m = x[0];
    for (std::int64_t j = 1; j < a.classes; ++j) m = x[j] > m ? x[j] : m;
    T sum = T(0);
    for (std::int64_t j = 0; j < a.classes; ++j) sum += exp_(x[j] - m);
    const T lse = m + log_(sum);  // log sum exp, without overflow
    a.row_loss[r] = lse - x[t];
    if (d != nullptr) {
      for (std::int64_t j = 0; j < a.classes; ++j) {
        d[j] = (exp_(x[j] - lse) - (j == t ? T(1) : T(0))) * scale;
      }
    }
  }
};

// n = 1: the mean, summed in order in double.
template <typename T>
struct CrossEntropyMean {
  RECUR_HD void operator()(std::int64_t, const CrossEntropyArgs<T>& a) const {
    double sum = 0.0;
    for (std::int64_t r = 0; r < a.rows; ++r) sum += static_cast<double>(a.row_loss[r]);
    a.loss[0] = static_cast<T>(sum * static_cast<double>(mean_scale<T>(*a.count)));
  }
};

}  // namespace recur::kernels
