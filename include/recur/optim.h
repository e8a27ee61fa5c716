// recur/optim.h: optimizers over one flat parameter buffer: SGD (momentum, weight decay)
// and Adam / AdamW, on the CPU or a GPU (fused kernels; the same math on both sides).
//
//   recur::Adam opt(rnn.parameters(), {/*lr*/ 1e-3});
//   recur::GradNorm norm;
//   for (...) {
//     ... rnn.backward(dy);
//     recur::clip_grad_norm({rnn.gradients()}, 1.0, norm, rnn.cuda_stream());
//     opt.step(rnn.gradients(), &norm, rnn.cuda_stream());
//     rnn.zero_grad();
//   }
//   opt.skipped_steps();  // steps dropped because the gradient was NaN or Inf
//
// An optimizer is bound to one parameter buffer at construction: a TensorView of any
// shape, float32 or float64, on the CPU or a GPU. It does not own it; the memory must
// outlive the optimizer (an Rnn's parameters() view does, while the Rnn lives). Its state
// (SGD's momentum buffer, Adam's m and v) lives in buffers of the parameters' size, dtype
// and device that the optimizer owns; state() names them for checkpoints.
//
// The non-finite guard: step() takes the GradNorm of the same gradients. When its finite
// flag is false the step is skipped and skipped_steps() goes up, parameters and state
// untouched. On a GPU the flag is read by the kernels themselves, so there is no host
// round trip; the step counter that Adam's bias correction uses lives on the device too
// and only counts steps taken.
//
// Streams: on a GPU, step() queues its work on `stream` (a cudaStream_t; nullptr: the
// device's legacy default stream) after the work of the GradNorm it was given, and returns
// at once. On the CPU the work is done when step() returns. Every argument is validated
// before anything changes; a bad one throws recur::Error naming it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/clip.h"
#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

namespace detail {
class OptimizerImpl;
}

// PyTorch's torch.optim.SGD (dampening 0, no Nesterov).
struct SgdOptions {
  double lr = 0.01;           // >= 0
  double momentum = 0.0;      // in [0, 1); 0: no momentum buffer
  double weight_decay = 0.0;  // >= 0, L2: added to the gradient as weight_decay * p
};

// PyTorch's torch.optim.Adam, or torch.optim.AdamW with decoupled_weight_decay.
struct AdamOptions {
  double lr = 1e-3;                     // >= 0
  double beta1 = 0.9;                   // in [0, 1)
  double beta2 = 0.999;                 // in [0, 1)
  double eps = 1e-8;                    // > 0
  double weight_decay = 0.0;            // >= 0
  bool decoupled_weight_decay = false;  // false: Adam (L2 in the gradient); true: AdamW
};

// A named state buffer: [P] of the parameters' dtype and device, owned by the optimizer.
struct OptimizerState {
  std::string name;  // "momentum_buffer", "exp_avg", "exp_avg_sq" (PyTorch's names)
  TensorView view;
};

class RECUR_API Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(Optimizer&&) noexcept;
  Optimizer& operator=(Optimizer&&) noexcept;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update from `gradients`: a TensorView with as many elements as the parameters,
  // their dtype and device (any shape; read only). `norm`: the GradNorm of these gradients
  // on the same device, or nullptr (always step). `stream`: see above.
  void step(const TensorView& gradients, const GradNorm* norm = nullptr, void* stream = nullptr);

  // Steps taken, and steps skipped for a non-finite gradient. On a GPU these wait for
  // the device and copy the counters to the host.
  std::int64_t step_count() const;
  std::int64_t skipped_steps() const;
  // Restores the counters (e.g. from a checkpoint); synchronous.
  void set_step_count(std::int64_t steps, std::int64_t skipped = 0);

  double learning_rate() const;
  void set_learning_rate(double lr);  // >= 0; takes effect from the next step()

  TensorView parameters() const;
  Device device() const;
  DType dtype() const;
  // Every state buffer, in a fixed order (empty for SGD without momentum).
  std::vector<OptimizerState> state() const;

 protected:
  explicit Optimizer(std::unique_ptr<detail::OptimizerImpl> impl);
  std::unique_ptr<detail::OptimizerImpl> impl_;
};

class RECUR_API Sgd : public Optimizer {
 public:
  Sgd(const TensorView& parameters, const SgdOptions& options = {});
  const SgdOptions& options() const;
  // [P] zeros at first; undefined when momentum == 0.
  TensorView momentum_buffer() const;
};

class RECUR_API Adam : public Optimizer {
 public:
  Adam(const TensorView& parameters, const AdamOptions& options = {});
  const AdamOptions& options() const;
  TensorView exp_avg() const;     // m, [P], zeros at first
  TensorView exp_avg_sq() const;  // v, [P], zeros at first
};

}  // namespace recur
