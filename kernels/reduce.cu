// kernels/reduce.cu: the global gradient norm and the clip, over many spans, on the GPU.
//
// Three kernels on one stream, no atomics, no host round trip:
//   1. partial_sum_squares_kernel: block b sums g^2 (in double) over chunk b of the
//      concatenation of all spans and writes partials[b] (cub::BlockReduce);
//   2. finish_kernel: one block reduces the partials in a fixed order and writes the
//      NormState (norm, finite flag, scale);
//   3. scale_kernel (clip only): reads the scale from device memory and multiplies every
//      element by it; it returns at once when the scale is 1 (nothing is written).
// The chunking is a function of the element count only (see reduce.h), so the result
// has the same bits on every run.
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <string>

#include "launch_check.h"
#include "reduce.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;         // threads of a partial-sum or scale block
constexpr int kFinishThreads = 1024;  // threads of the one finishing block
constexpr std::int64_t kMinChunk = 4 * kThreads;
static_assert(kNormMaxBlocks <= kFinishThreads, "one finishing thread per partial");

// ---- CUDA kernels ----

// Calls fn(span_data, from, to) for each span's part [from, to) (span-local indices)
// inside the concatenation's range [lo, hi).
template <class Fn>
__device__ void for_each_segment(const SpanEntry* __restrict__ table, int n_spans, std::int64_t lo,
                                 std::int64_t hi, Fn&& fn) {
  // The last span that begins at or before lo (spans are sorted and non-empty).
  int a = 0, b = n_spans - 1;
  while (a < b) {
    const int mid = (a + b + 1) / 2;
    if (table[mid].begin <= lo) {
      a = mid;
    } else {
      b = mid - 1;
    }
  }
  for (int s = a; s < n_spans; ++s) {
    const SpanEntry e = table[s];
    if (e.begin >= hi) break;
    const std::int64_t from = (lo > e.begin ? lo : e.begin) - e.begin;
    const std::int64_t end = e.begin + e.count;
    const std::int64_t to = (hi < end ? hi : end) - e.begin;
    fn(e.data, from, to);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    partial_sum_squares_kernel(const SpanEntry* __restrict__ table, int n_spans, std::int64_t total,
                               std::int64_t chunk, double* __restrict__ partials) {
  const std::int64_t lo = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t hi = lo + chunk < total ? lo + chunk : total;
  double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
  for_each_segment(table, n_spans, lo, hi, [&](void* data, std::int64_t from, std::int64_t to) {
    const T* __restrict__ p = static_cast<const T*>(data);
    std::int64_t i = from + threadIdx.x;
    // Four independent loads in flight per thread.
    for (; i + 3 * kThreads < to; i += 4 * kThreads) {
      const double x0 = p[i], x1 = p[i + kThreads], x2 = p[i + 2 * kThreads];
      const double x3 = p[i + 3 * kThreads];
      acc0 += x0 * x0;
      acc1 += x1 * x1;
      acc2 += x2 * x2;
      acc3 += x3 * x3;
    }
    for (; i < to; i += kThreads) {
      const double x = p[i];
      acc0 += x * x;
    }
  });
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage temp;
  const double sum = Reduce(temp).Sum((acc0 + acc1) + (acc2 + acc3));
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void __launch_bounds__(kFinishThreads)
    finish_kernel(const double* __restrict__ partials, int n_partials, NormState* state,
                  double max_norm) {
  const double mine = static_cast<int>(threadIdx.x) < n_partials ? partials[threadIdx.x] : 0.0;
  using Reduce = cub::BlockReduce<double, kFinishThreads>;
  __shared__ typename Reduce::TempStorage temp;
  const double sum = Reduce(temp).Sum(mine);
  if (threadIdx.x == 0) *state = make_norm_state(sum, max_norm);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    scale_kernel(const SpanEntry* __restrict__ table, int n_spans, std::int64_t total,
                 std::int64_t chunk, const NormState* __restrict__ state) {
  const double scale = state->scale;
  if (!(scale < 1.0)) return;  // nothing to do: leave the gradients untouched
  const T s = static_cast<T>(scale);
  const std::int64_t lo = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t hi = lo + chunk < total ? lo + chunk : total;
  for_each_segment(table, n_spans, lo, hi, [&](void* data, std::int64_t from, std::int64_t to) {
    T* __restrict__ p = static_cast<T*>(data);
    for (std::int64_t i = from + threadIdx.x; i < to; i += kThreads) p[i] *= s;
  });
}

// ---- kernel launchers ----

// The chunk each block covers: a multiple of kThreads, at least kMinChunk, and such that
// at most kNormMaxBlocks blocks cover `total`. Depends on `total` only.
std::int64_t chunk_for(std::int64_t total) {
  std::int64_t chunk = (total + kNormMaxBlocks - 1) / kNormMaxBlocks;
  chunk = (chunk + kThreads - 1) / kThreads * kThreads;
  return chunk < kMinChunk ? kMinChunk : chunk;
}

}  // namespace

template <typename T>
void launch_global_norm(const SpanEntry* table, int n_spans, std::int64_t total, double* partials,
                        NormState* state, double max_norm, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::int64_t chunk = chunk_for(total);
  const int blocks = static_cast<int>((total + chunk - 1) / chunk);
  if (blocks > 0) {
    partial_sum_squares_kernel<T>
        <<<blocks, kThreads, 0, s>>>(table, n_spans, total, chunk, partials);
    check_launch("partial_sum_squares_kernel");
  }
  finish_kernel<<<1, kFinishThreads, 0, s>>>(partials, blocks, state, max_norm);
  check_launch("finish_kernel");
  if (max_norm >= 0.0 && blocks > 0) {
    scale_kernel<T><<<blocks, kThreads, 0, s>>>(table, n_spans, total, chunk, state);
    check_launch("scale_kernel");
  }
}

template void launch_global_norm<float>(const SpanEntry*, int, std::int64_t, double*, NormState*,
                                        double, void*);
template void launch_global_norm<double>(const SpanEntry*, int, std::int64_t, double*, NormState*,
                                         double, void*);

}  // namespace recur::kernels
