// recur/clip.h: the global gradient norm and global-norm clipping, on the CPU or a GPU.
//
//   recur::GradNorm norm;                                    // reused every step
//   recur::clip_grad_norm({rnn.gradients(), head_grad}, 1.0, norm, rnn.cuda_stream());
//   optimizer.step(rnn.gradients(), &norm, rnn.cuda_stream());  // skipped if not finite
//   if (log_now) std::printf("%g\n", norm.norm());              // the only host wait
//
// The norm is sqrt(sum of g^2) over every element of every span, accumulated in double.
// Clipping scales every span in place by min(1, max_norm / (norm + 1e-6)), PyTorch's
// clip_grad_norm_: the direction is unchanged, only the step is shorter. When the norm is
// not finite (a NaN or Inf in some span; for float64 spans also a sum of squares beyond
// the double range, about 1e308) nothing is scaled and finite() is false. An empty list
// of spans has norm 0 and a CPU result.
//
// Spans (the `spans` argument of every function here): TensorViews of any shape, all
// float32 or all float64, all on the same device (the CPU or one GPU), not overlapping;
// zero-element spans are allowed, undefined ones are not. They are read (and, by
// clip_grad_norm, written) in place; recur keeps no reference to them after the call.
//
// On a GPU the work is queued on `stream` (a cudaStream_t; nullptr: the device's legacy
// default stream, which orders itself after the work of every blocking stream, including
// an Rnn's own stream) and the call returns before it is done: the norm, the finite flag
// and the scale stay in device memory owned by the GradNorm, and only norm(), finite()
// and scale() wait for them. The reduction is deterministic: no atomics, a fixed
// reduction order that depends only on the element count, so the same inputs give the
// same bits on every run. On the CPU the work is done when the call returns.
//
// A call validates every argument before it changes anything; a bad one throws
// recur::Error naming it (e.g. "spans[2]", "max_norm").
#pragma once

#include <memory>
#include <vector>

#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

namespace detail {
struct GradNormAccess;
}

// The result of global_norm / clip_grad_norm, kept in memory of the spans' device. A
// GradNorm passed to the functions below by reference is reused: after the first call on
// a device nothing is allocated, and the spans' table is uploaded only when the list of
// spans changes. Move-only; not safe to use from two threads at once.
class RECUR_API GradNorm {
 public:
  // No result yet: norm() = 0, finite() = true, scale() = 1, device() = cpu.
  GradNorm();
  ~GradNorm();
  GradNorm(GradNorm&&) noexcept;
  GradNorm& operator=(GradNorm&&) noexcept;
  GradNorm(const GradNorm&) = delete;
  GradNorm& operator=(const GradNorm&) = delete;

  // False until a global_norm / clip_grad_norm has written into this object.
  bool has_value() const;
  // The device of the spans of the last call.
  Device device() const;

  // Each of these waits until the last call's work is done (on a GPU: for that work
  // only, not for the whole device), then copies a few bytes to the host.
  double norm() const;   // sqrt(sum of squares) before any clipping
  bool finite() const;   // false when the norm is NaN or Inf
  double scale() const;  // the factor clip_grad_norm applied (1: unchanged)

 private:
  friend struct detail::GradNormAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// sqrt(sum of g^2) over every span. `spans`: see above. `stream`: see above.
RECUR_API GradNorm global_norm(const std::vector<TensorView>& spans, void* stream = nullptr);
// The same, into `result` (reused; see GradNorm).
RECUR_API void global_norm(const std::vector<TensorView>& spans, GradNorm& result,
                           void* stream = nullptr);

// Computes the global norm, then scales every span in place by
// min(1, max_norm / (norm + 1e-6)) unless the norm is not finite. max_norm >= 0 (may be
// +Inf: no clipping). Returns (or writes into `result`) the norm before clipping.
RECUR_API GradNorm clip_grad_norm(const std::vector<TensorView>& spans, double max_norm,
                                  void* stream = nullptr);
RECUR_API void clip_grad_norm(const std::vector<TensorView>& spans, double max_norm,
                              GradNorm& result, void* stream = nullptr);

}  // namespace recur
