// kernels/reduce.h: the global gradient norm over many spans, on the GPU.
//
// The spans are concatenated (in table order) into one virtual vector of `total`
// elements, which is cut into at most kNormMaxBlocks equal chunks, one per thread block.
// The chunking depends only on `total`, never on the device, so the reduction order and
// therefore the bits of the result are the same on every run (and on every GPU). Sums of
// squares are accumulated in double; no atomics anywhere.
// Plain C++: the CUDA types stay behind void*.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

// One non-empty span: `count` elements of the call's dtype at `data` (device memory).
struct SpanEntry {
  void* data = nullptr;
  std::int64_t begin = 0;  // index of its first element in the concatenation
  std::int64_t count = 0;
};

// What global_norm / clip_grad_norm leave in device (or host) memory.
struct NormState {
  double sum_squares = 0.0;  // sum of g^2 over every span, accumulated in double
  double norm = 0.0;         // sqrt(sum_squares)
  double scale = 1.0;        // the factor applied to the gradients (1: unchanged)
  int finite = 1;            // 1 when norm is finite, else 0 (a NaN or Inf in some span)
  int pad_ = 0;
};

// Clipping's epsilon: scale = min(1, max_norm / (norm + kClipEpsilon)), as PyTorch.
constexpr double kClipEpsilon = 1e-6;

// The result from the total sum of squares, on both sides. max_norm < 0: norm only.
// A non-finite norm (NaN, or Inf from an Inf element) is reported and never applied.
RECUR_HD NormState make_norm_state(double sum_squares, double max_norm) {
  NormState s;
  s.sum_squares = sum_squares;
  s.norm = sqrt(sum_squares);
  s.finite = s.norm <= 1.7976931348623157e308 ? 1 : 0;  // false for NaN and Inf
  if (s.finite && max_norm >= 0.0) {
    const double c = max_norm / (s.norm + kClipEpsilon);
    s.scale = c < 1.0 ? c : 1.0;
  }
  return s;
}

// The partial sums: one double per block, at most this many.
constexpr int kNormMaxBlocks = 1024;

// Queues on `stream`: the per-block partial sums of squares of the `n_spans` spans of
// `table` (device memory, sorted by begin, `total` elements in all) into `partials`
// (device, kNormMaxBlocks doubles), their reduction in fixed order into `*state`
// (device), and, when max_norm >= 0, the in-place scaling of every span by
// state->scale = min(1, max_norm / (norm + kClipEpsilon)) (not applied when the norm is
// not finite). With max_norm < 0 only the norm is computed (scale = 1).
template <typename T>
void launch_global_norm(const SpanEntry* table, int n_spans, std::int64_t total, double* partials,
                        NormState* state, double max_norm, void* stream);

}  // namespace recur::kernels
