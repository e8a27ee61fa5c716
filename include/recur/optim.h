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
// An optimizer is bound at construction either to one parameter buffer (a TensorView of any
// shape, float32 or float64, on the CPU or a GPU; step() is then given its gradients) or to
// parameter groups: one ParamGroup per module, each with its parameters, its gradients and
// its own learning-rate scale and weight decay, so that one optimizer trains a whole model:
//
//   recur::Adam opt({{"rnn", rnn.parameters(), rnn.gradients()},
//                    {"embedding", emb.parameters(), emb.gradients(), 1.0, 0.0},
//                    {"head", head.parameters(), head.gradients()}},
//                   {/*lr*/ 1e-3, .9, .999, 1e-8, /*weight_decay*/ 0.01});
//   opt.zero_grad();                                     // every group's gradients
//   ... forward, backward ...
//   recur::clip_grad_norm(opt.gradients(), 1.0, norm, stream);  // one clip over all
//   opt.step(&norm, stream);                             // one step over all groups
//
// It does not own the memory; it must outlive the optimizer (a module's parameters() and
// gradients() views do, while the module lives). Its state (SGD's momentum buffer, Adam's
// m and v) lives in buffers of each group's size, dtype and device that the optimizer
// owns; state() names them for checkpoints ("exp_avg"; "<group>.exp_avg" for groups). All
// groups share one step counter and one skip decision.
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
#include <optional>
#include <string>
#include <utility>
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

// One group of parameters: a module's flat parameters and their gradients (same number of
// elements, dtype and device; every group the same dtype and device, no memory in two
// groups). The group's learning rate is the optimizer's times lr_scale (>= 0), so that a
// schedule that sets the optimizer's rate moves every group's with it; its weight decay
// (>= 0) is the optimizer's unless given.
struct ParamGroup {
  ParamGroup() = default;
  ParamGroup(std::string name_, TensorView parameters_, TensorView gradients_,
             double lr_scale_ = 1.0, std::optional<double> weight_decay_ = std::nullopt)
      : name(std::move(name_)),
        parameters(parameters_),
        gradients(gradients_),
        lr_scale(lr_scale_),
        weight_decay(weight_decay_) {}

  std::string name;       // non-empty, unique: names the group's state, e.g. "rnn.exp_avg"
  TensorView parameters;  // updated in place
  TensorView gradients;   // read by step(); zeroed by zero_grad()
  double lr_scale = 1.0;
  std::optional<double> weight_decay;
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
  // One update of every group from its own gradients (an optimizer of ParamGroups).
  void step(const GradNorm* norm = nullptr, void* stream = nullptr);
  // Sets every group's gradients to zero (an optimizer of ParamGroups); synchronous.
  void zero_grad();
  // Every group's gradients, in group order (one span per group; empty for one buffer):
  // the spans clip_grad_norm takes.
  std::vector<TensorView> gradients() const;
  // The groups, as given (one unnamed group, without gradients, for one buffer).
  std::vector<ParamGroup> groups() const;

  // Steps taken, and steps skipped for a non-finite gradient. On a GPU these wait for
  // the device and copy the counters to the host.
  std::int64_t step_count() const;
  std::int64_t skipped_steps() const;
  // Restores the counters (e.g. from a checkpoint); synchronous.
  void set_step_count(std::int64_t steps, std::int64_t skipped = 0);

  // The optimizer's learning rate (each group's is this times its lr_scale).
  double learning_rate() const;
  void set_learning_rate(double lr);  // >= 0; takes effect from the next step()

  // The parameter buffer (the first group's, for ParamGroups).
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
  Sgd(const std::vector<ParamGroup>& groups, const SgdOptions& options = {});
  const SgdOptions& options() const;
  // [P] zeros at first (the first group's); undefined when momentum == 0.
  TensorView momentum_buffer() const;
};

class RECUR_API Adam : public Optimizer {
 public:
  Adam(const TensorView& parameters, const AdamOptions& options = {});
  Adam(const std::vector<ParamGroup>& groups, const AdamOptions& options = {});
  const AdamOptions& options() const;
  TensorView exp_avg() const;     // m, [P], zeros at first (the first group's)
  TensorView exp_avg_sq() const;  // v, [P], zeros at first (the first group's)
};

}  // namespace recur
