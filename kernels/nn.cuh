// kernels/nn.cuh: the element-wise math of the language-model modules (recur/modules.h):
// embedding gather and gradient, the bias of a linear layer, softmax cross-entropy.
//
// One functor per operation, called as f(i, args) for i in [0, n): the CPU runs it in a
// loop (src/nn/nn_backend.cpp), the GPU one index per thread (kernels/nn.cu). Every
// reduction is a loop inside one index, in a fixed order: no atomics, so results are the
// same bits on every run, and the gradient sums of the CPU and the GPU differ only by
// the rounding of exp/log. Row-major throughout; ids and targets are int32.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

RECUR_HD float log_(float x) { return logf(x); }
RECUR_HD double log_(double x) { return log(x); }

// ---- Embedding ----

template <typename T>
struct EmbeddingArgs {
  std::int64_t rows = 0;  // N tokens
  std::int64_t dim = 0;   // E
  // forward: out[r, k] = weight[ids[r], k]
  const std::int32_t* ids = nullptr;  // [N]
  const T* weight = nullptr;          // [V, E]
  T* out = nullptr;                   // [N, E]
  // backward, over the U distinct ids: dweight[id_u, k] += sum of dy[p, k] over the
  // positions p of id_u, in increasing p (a CSR built on the host)
  std::int64_t unique = 0;                   // U
  const std::int32_t* unique_ids = nullptr;  // [U]
  const std::int32_t* start = nullptr;       // [U + 1] into positions
  const std::int32_t* positions = nullptr;   // [N]
  const T* dy = nullptr;                     // [N, E]
  T* dweight = nullptr;                      // [V, E]
};

// n = rows * dim
template <typename T>
struct EmbeddingForward {
  RECUR_HD void operator()(std::int64_t idx, const EmbeddingArgs<T>& a) const {
    const std::int64_t r = idx / a.dim, k = idx % a.dim;
    a.out[idx] = a.weight[static_cast<std::int64_t>(a.ids[r]) * a.dim + k];
  }
};

// n = unique * dim; each (id, k) is owned by one index, so no two write the same element.
template <typename T>
struct EmbeddingBackward {
  RECUR_HD void operator()(std::int64_t idx, const EmbeddingArgs<T>& a) const {
    const std::int64_t u = idx / a.dim, k = idx % a.dim;
    T sum = T(0);
    for (std::int32_t p = a.start[u]; p < a.start[u + 1]; ++p) {
      sum += a.dy[static_cast<std::int64_t>(a.positions[p]) * a.dim + k];
    }
    a.dweight[static_cast<std::int64_t>(a.unique_ids[u]) * a.dim + k] += sum;
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
  std::int64_t rows = 0, classes = 0;     // N, V
  const T* logits = nullptr;              // [N, V]
  const std::int32_t* targets = nullptr;  // [N], each in [0, V) or ignore_index
  std::int32_t ignore_index = -100;
  T scale = T(0);         // 1 / (rows whose target is not ignored); 0 when there are none
  T* row_loss = nullptr;  // [N] -log softmax(logits[r])[target[r]], 0 for ignored rows
  T* dlogits = nullptr;   // [N, V] or nullptr: scale * (softmax - onehot), 0 for ignored
  T* loss = nullptr;      // [1] scale * sum of row_loss (CrossEntropyMean)
};

// n = rows: one index per row, three passes over it (max, sum of exp, outputs).
template <typename T>
struct CrossEntropyRows {
  RECUR_HD void operator()(std::int64_t r, const CrossEntropyArgs<T>& a) const {
    const T* x = a.logits + r * a.classes;
    T* d = a.dlogits != nullptr ? a.dlogits + r * a.classes : nullptr;
    const std::int32_t t = a.targets[r];
    if (t == a.ignore_index) {
      a.row_loss[r] = T(0);
      if (d != nullptr) {
        for (std::int64_t j = 0; j < a.classes; ++j) d[j] = T(0);
      }
      return;
    }
    T m = x[0];
    for (std::int64_t j = 1; j < a.classes; ++j) m = x[j] > m ? x[j] : m;
    T sum = T(0);
    for (std::int64_t j = 0; j < a.classes; ++j) sum += exp_(x[j] - m);
    const T lse = m + log_(sum);  // log sum exp, without overflow
    a.row_loss[r] = lse - x[t];
    if (d != nullptr) {
      for (std::int64_t j = 0; j < a.classes; ++j) {
        d[j] = (exp_(x[j] - lse) - (j == t ? T(1) : T(0))) * a.scale;
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
    a.loss[0] = static_cast<T>(sum * static_cast<double>(a.scale));
  }
};

}  // namespace recur::kernels
