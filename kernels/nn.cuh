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
#include "row_lanes.h"

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
  double* partial = nullptr;      // [cross_entropy_chunks(N)] each chunk's sum of row_loss
};

// The mean sums row_loss in chunks of about sqrt(N) rows, each in row order in double, then
// the chunks' sums in order: the same additions on both backends, with N / chunk + chunk
// serial steps on a GPU instead of N on one thread.
RECUR_HD std::int64_t cross_entropy_chunk(std::int64_t rows) {
  std::int64_t chunk = 32;
  while (chunk * chunk < rows) chunk *= 2;
  return chunk;
}
RECUR_HD std::int64_t cross_entropy_chunks(std::int64_t rows) {
  const std::int64_t chunk = cross_entropy_chunk(rows);
  return (rows + chunk - 1) / chunk;
}

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

// A row is cut into `lanes` interleaved parts (part k: classes k, k + lanes, ...); each
// part's softmax statistics are gathered in one pass, then merged pairwise in a fixed
// tree (lanes/2, lanes/4, ... 1), then the outputs are written. A GPU runs one block per
// row with a thread per lane (kernels/nn.cu), the CPU the same parts and the same tree in
// loops: the same additions in the same order on both, whatever the vocabulary, and only
// two reads of the logits and one write of dlogits per row. The lanes: row_lanes(classes)
// (kernels/row_lanes.h).

// The largest value m of a part of a row, and the sum s of exp(x - m) over it; s = 0 for
// an empty part (a non-empty one has s >= 1). NaN propagates into s. A value equal to m
// adds exactly 1: for masked classes (-inf) exp(x - m) would be exp(-inf + inf) = NaN,
// and a part or a row whose largest value is -inf would then turn NaN (PyTorch gives the
// loss of the unmasked classes).
template <typename T>
struct SoftmaxStats {  // trivial, so that a GPU block keeps them in shared memory
  T m;
  T s;
};

// exp(x - m) for x <= m, exactly 1 where x == m (also where both are -inf).
template <typename T>
RECUR_HD T softmax_weight(T x, T m) {
  return x == m ? T(1) : exp_(x - m);
}

template <typename T>
RECUR_HD SoftmaxStats<T> merge(const SoftmaxStats<T>& a, const SoftmaxStats<T>& b) {
  if (b.s == T(0)) return a;
  if (a.s == T(0)) return b;
  const T m = a.m > b.m ? a.m : b.m;
  return {m, a.s * softmax_weight(a.m, m) + b.s * softmax_weight(b.m, m)};
}

// One pass over part `lane` of row x (online: the running sum is rescaled when the
// largest value grows).
template <typename T>
RECUR_HD SoftmaxStats<T> lane_stats(const T* x, std::int64_t classes, int lane, int lanes) {
  SoftmaxStats<T> st{T(0), T(0)};
  for (std::int64_t j = lane; j < classes; j += lanes) {
    if (st.s == T(0)) {
      st = {x[j], T(1)};
    } else if (x[j] > st.m) {
      st.s = st.s * exp_(st.m - x[j]) + T(1);
      st.m = x[j];
    } else {
      st.s += softmax_weight(x[j], st.m);
    }
  }
  return st;
}

// What writing row r's outputs needs, once its statistics are merged.
template <typename T>
struct CrossEntropyRow {
  std::int64_t target = 0;
  bool counted = false;  // false: ignored (zeros) or a bad target (NaN)
  T fill = T(0);         // what an uncounted row's outputs hold
  T lse = T(0);          // log sum exp of the row, without overflow
  T scale = T(0);

  RECUR_HD CrossEntropyRow(const CrossEntropyArgs<T>& a, std::int64_t r,
                           const SoftmaxStats<T>& all) {
    target = a.targets[r];
    if (target == a.ignore_index) return;
    if (target < 0 || target >= a.classes) {  // a bad target on a GPU: the loss says so
      fill = static_cast<T>(NAN);
      return;
    }
    counted = true;
    lse = all.m + log_(all.s);
    scale = mean_scale<T>(*a.count);
  }
  // -log softmax(x)[target], or the fill.
  RECUR_HD T loss(const T* x) const { return counted ? lse - x[target] : fill; }
  // dlogits[j] = (softmax - onehot) * scale, or the fill.
  RECUR_HD T grad(const T* x, std::int64_t j) const {
    return counted ? (exp_(x[j] - lse) - (j == target ? T(1) : T(0))) * scale : fill;
  }
};

// n = cross_entropy_chunks(rows): chunk i's sum of row_loss, in row order in double.
template <typename T>
struct CrossEntropyPartial {
  RECUR_HD void operator()(std::int64_t i, const CrossEntropyArgs<T>& a) const {
    const std::int64_t chunk = cross_entropy_chunk(a.rows), end = (i + 1) * chunk;
    double sum = 0.0;
    for (std::int64_t r = i * chunk; r < end && r < a.rows; ++r) {
      sum += static_cast<double>(a.row_loss[r]);
    }
    a.partial[i] = sum;
  }
};

// n = 1: the mean, the chunks' sums added in order.
template <typename T>
struct CrossEntropyMean {
  RECUR_HD void operator()(std::int64_t, const CrossEntropyArgs<T>& a) const {
    double sum = 0.0;
    const std::int64_t chunks = cross_entropy_chunks(a.rows);
    for (std::int64_t i = 0; i < chunks; ++i) sum += a.partial[i];
    a.loss[0] = static_cast<T>(sum * static_cast<double>(mean_scale<T>(*a.count)));
  }
};

}  // namespace recur::kernels
