// recur/loss_scale.h: dynamic loss scaling for FP16 training (RnnConfig::math = Fp16), on
// the CPU or a GPU, with no host round trip.
//
// An FP16 product rounds its operands to FP16, whose smallest subnormal is 2^-24: small
// gradients (backward's dgx, dgh) would round to zero. Scaling the loss gradient by S before
// backward, and every gradient by 1/S after it, keeps them in range. Too large an S
// overflows to Inf instead; then the step is skipped and S halves; a run of finite steps
// doubles it again (PyTorch's torch.cuda.amp.GradScaler, with the same defaults). BF16 has
// float32's range and needs none of this.
//
//   recur::LossScaler scaler(rnn.device());                 // S = 2^16
//   recur::GradNorm norm;
//   for (...) {
//     ... ce = xent.forward_backward(logits, targets);
//     scaler.scale_loss_gradient(ce.dlogits, rnn.cuda_stream());   // dJ/dlogits * S
//     ... head.backward, rnn.backward(dy), embed.backward ...     // every gradient * S
//     scaler.unscale_gradients(grads, rnn.cuda_stream());          // back to dJ/dθ
//     recur::clip_grad_norm(grads, 1.0, norm, rnn.cuda_stream());  // the finite flag
//     opt.step(rnn.gradients(), &norm, rnn.cuda_stream());          // skipped if not finite
//     scaler.update(norm, rnn.cuda_stream());                       // S / 2 or S * 2
//   }
//
// The optimizer's skip and the scaler's backoff read the same finite flag (the GradNorm's),
// in device memory on a GPU, so they always agree. The state (scale, counters) lives in
// memory of the scaler's device; current_scale(), overflows(), growths() and good_steps()
// wait for the device and copy it to the host. state() is that memory, for checkpoints:
// CheckpointExtras::tensors {{"loss_scale", scaler.state()}} saves and restores it.
//
// Streams: on a GPU every call queues its work on `stream` (a cudaStream_t; nullptr: the
// device's legacy default stream) and returns; on the CPU the work is done on return.
// Every argument is validated before anything changes; a bad one throws recur::Error naming
// it. Move-only; not safe to use from two threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "recur/clip.h"
#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

struct LossScaleOptions {
  double initial_scale = 65536.0;       // S at the start, in [2^-64, 2^64]
  double growth_factor = 2.0;           // > 1 (finite): S after growth_interval finite steps
  double backoff_factor = 0.5;          // in (0, 1): S after a non-finite step
  std::int64_t growth_interval = 2000;  // >= 1 finite steps in a row
};

class RECUR_API LossScaler {
 public:
  // State in memory of `device` (the model's), S = options.initial_scale.
  explicit LossScaler(Device device = Device::cpu(), const LossScaleOptions& options = {});
  ~LossScaler();
  LossScaler(LossScaler&&) noexcept;
  LossScaler& operator=(LossScaler&&) noexcept;
  LossScaler(const LossScaler&) = delete;
  LossScaler& operator=(const LossScaler&) = delete;

  // loss_gradient *= S, in place: the gradient backward starts from (e.g. dJ/dlogits). A
  // float32 or float64 tensor on the scaler's device, any shape.
  void scale_loss_gradient(const TensorView& loss_gradient, void* stream = nullptr) const;
  // Every span *= 1/S, in place: the gradients after backward, before clipping. Spans as
  // for clip_grad_norm (float32 or float64, on the scaler's device, not overlapping).
  void unscale_gradients(const std::vector<TensorView>& gradients, void* stream = nullptr) const;
  // After the optimizer step of the same gradients: `norm` (a result on the scaler's device)
  // not finite: S *= backoff_factor, one more overflow; finite: one more good step, and
  // after growth_interval of them S *= growth_factor. S stays within [2^-64, 2^64].
  void update(const GradNorm& norm, void* stream = nullptr);

  double current_scale() const;
  std::int64_t overflows() const;   // steps whose gradient was not finite
  std::int64_t growths() const;     // times S grew
  std::int64_t good_steps() const;  // finite steps since S last changed
  const LossScaleOptions& options() const;
  Device device() const;
  // The state, [6] float64 in the scaler's memory (scale, 1/scale, good steps, overflows,
  // growths, 0): read and written in place by checkpoints. Values from a file are taken as
  // they are and cannot do harm: the next update() brings S back into [2^-64, 2^64] (a NaN
  // S to 2^-64), and the counters read as 0 where they are not counts.
  TensorView state() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
