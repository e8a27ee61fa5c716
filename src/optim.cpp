// src/optim.cpp: Sgd and Adam: validation, state buffers, and the dispatch of one step
// to the CPU loops (cpu/cpu_grad.cpp) or the CUDA kernels (kernels/optim.cu). Both run
// the functors of kernels/optim.cuh; the skip decision and the step counter live in the
// counters, in the memory of the parameters' device.
#include "recur/optim.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "../kernels/optim.cuh"
#include "cpu/cpu_grad.h"
#include "cuda_backend.h"
#include "float_dispatch.h"
#include "grad_internal.h"
#include "live.h"
#include "memory.h"
#include "recur/error.h"
#include "validate.h"

namespace recur {
namespace detail {
namespace {

using kernels::OptimCounters;
static_assert(sizeof(OptimCounters) == 5 * sizeof(double), "counters live in 5 float64 slots");

void expect_at_least(const char* where, const char* name, double value, double lo) {
  if (!(value >= lo) || std::isinf(value)) {
    throw Error(where, name, "a finite number >= " + exact_number(lo), exact_number(value));
  }
}

void expect_fraction(const char* where, const char* name, double value) {
  if (!(value >= 0.0 && value < 1.0))
    throw Error(where, name, "a number in [0, 1)", exact_number(value));
}

}  // namespace

// The groups an optimizer updates: one unnamed group whose gradients step() is given (the
// single-buffer constructors), or named ParamGroups that hold their own.
struct Group {
  ParamGroup spec;
  double weight_decay = 0.0;  // the group's, or the optimizer's
};

class OptimizerImpl {
 public:
  // One buffer: a single unnamed group.
  OptimizerImpl(const char* name, const TensorView& parameters, double lr, double weight_decay)
      : name_(name) {
    check_parameters(name, "parameters", parameters);
    expect_at_least(name, "options.lr", lr, 0.0);
    Group g;
    g.spec.parameters = parameters;
    g.weight_decay = weight_decay;
    groups_.push_back(std::move(g));
    init(lr);
  }

  OptimizerImpl(const char* name, const std::vector<ParamGroup>& groups, double lr,
                double weight_decay)
      : name_(name) {
    if (groups.empty()) throw Error(name, "groups", "at least one ParamGroup", "none");
    expect_at_least(name, "options.lr", lr, 0.0);
    std::vector<TensorView> params, grads;
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const ParamGroup& spec = groups[i];
      const std::string at = "groups[" + std::to_string(i) + "]";
      if (spec.name.empty()) throw Error(name, at + ".name", "a non-empty name", "\"\"");
      for (std::size_t j = 0; j < i; ++j) {
        if (groups[j].name == spec.name) {
          throw Error(name, at + ".name", "a name no other group has",
                      "\"" + spec.name + "\", the name of groups[" + std::to_string(j) + "]");
        }
      }
      check_parameters(name, at + ".parameters", spec.parameters);
      const TensorView& first = groups[0].parameters;
      if (i > 0 && (spec.parameters.dtype() != first.dtype() ||
                    spec.parameters.device() != first.device())) {
        throw Error(name, at + ".parameters",
                    describe(first.dtype(), first.device()) + " (those of groups[0])",
                    describe(spec.parameters.dtype(), spec.parameters.device()));
      }
      check_gradients(name, (at + ".gradients").c_str(), spec.parameters, spec.gradients);
      if (!(spec.lr_scale >= 0.0) || std::isinf(spec.lr_scale)) {
        throw Error(name, at + ".lr_scale", "a finite number >= 0", exact_number(spec.lr_scale));
      }
      if (spec.weight_decay) {
        expect_at_least(name, (at + ".weight_decay").c_str(), *spec.weight_decay, 0.0);
      }
      params.push_back(spec.parameters);
      grads.push_back(spec.gradients);
      Group g;
      g.spec = spec;
      g.weight_decay = spec.weight_decay.value_or(weight_decay);
      groups_.push_back(std::move(g));
    }
    // A buffer in two groups would be stepped twice; a gradient shared likewise.
    std::vector<TensorView> all = params;
    all.insert(all.end(), grads.begin(), grads.end());
    check_disjoint_spans(name, "groups' parameters and gradients", all);
    init(lr);
  }
  virtual ~OptimizerImpl() = default;
  OptimizerImpl(const OptimizerImpl&) = delete;
  OptimizerImpl& operator=(const OptimizerImpl&) = delete;

  const std::string& name() const { return name_; }
  // The first group's parameters (the only group's, for one buffer).
  const TensorView& params() const { return groups_[0].spec.parameters; }
  const std::vector<Group>& groups() const { return groups_; }
  bool holds_gradients() const { return groups_[0].spec.gradients.defined(); }
  double lr() const { return lr_; }
  void set_lr(double lr) {
    expect_at_least((name_ + "::set_learning_rate").c_str(), "lr", lr, 0.0);
    lr_ = lr;
  }

  // A state buffer for each group: its parameters' size, dtype and device, zeroed.
  std::vector<Tensor> zeros_like_params() const {
    std::vector<Tensor> out;
    for (const Group& g : groups_) {
      const TensorView& p = g.spec.parameters;
      out.push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
    }
    return out;
  }

  OptimCounters read_counters() const {
    OptimCounters c;
    counters_.view().copy_to_host(&c);
    return c;
  }
  void write_counters(std::int64_t steps, std::int64_t skipped) {
    OptimCounters c;
    c.step = steps;
    c.skipped = skipped;
    counters_.view().copy_from_host(&c);
  }

  // One buffer: `grad` points at its gradient. Groups: `grad` is null, and each group's own
  // are read. Either the other way round is an Error.
  void step(const TensorView* grad, const GradNorm* norm, void* stream) {
    const std::string where = name_ + "::step";
    if (holds_gradients() && grad != nullptr) {
      throw Error(where, "gradients",
                  "none: this optimizer's groups hold their own (step(norm, stream))",
                  grad->defined() ? "a TensorView" : "an undefined TensorView");
    }
    if (!holds_gradients() && grad == nullptr) {
      throw Error(where, "gradients",
                  "the gradients of the parameters (an optimizer of one buffer is given them)",
                  "none");
    }
    if (!holds_gradients()) check_gradients(where.c_str(), "gradients", params(), *grad);
    check_norm(where.c_str(), norm);
    const kernels::StepBegin begin = step_begin();
    auto grad_of = [&](std::size_t i) {
      return holds_gradients() ? groups_[i].spec.gradients : *grad;
    };
    if (params().device().is_cpu()) {
      OptimCounters& c = *static_cast<OptimCounters*>(counters_.data());
      const int* finite = norm != nullptr ? GradNormAccess::finite_flag(*norm, nullptr) : nullptr;
      begin(c, finite);
      if (!c.take) return;
      for (std::size_t i = 0; i < groups_.size(); ++i) update_cpu(i, grad_of(i), c);
      return;
    }
    CudaDeviceScope scope(params().device().index);
    CudaBackend& cuda = require_cuda_backend(where);
    const int* finite = norm != nullptr ? GradNormAccess::finite_flag(*norm, stream) : nullptr;
    auto* counters = static_cast<OptimCounters*>(counters_.data());
    cuda.optimizer_begin(begin, counters, finite, stream);
    if (norm != nullptr) GradNormAccess::flag_read(*norm, stream);
    for (std::size_t i = 0; i < groups_.size(); ++i)
      update_cuda(cuda, i, grad_of(i), counters, stream);
  }

  virtual std::vector<OptimizerState> state() const = 0;

 protected:
  // The learning rate of group i: the optimizer's times the group's scale.
  double lr_of(std::size_t i) const { return lr_ * groups_[i].spec.lr_scale; }
  // A state buffer's name: PyTorch's, after "<group>." for a named group.
  std::string state_name(std::size_t i, const char* name) const {
    const std::string& group = groups_[i].spec.name;
    return group.empty() ? name : group + "." + name;
  }
  virtual kernels::StepBegin step_begin() const = 0;
  virtual void update_cpu(std::size_t group, const TensorView& grad,
                          const OptimCounters& counters) = 0;
  virtual void update_cuda(CudaBackend& cuda, std::size_t group, const TensorView& grad,
                           const OptimCounters* counters, void* stream) = 0;

 private:
  void init(double lr) {
    lr_ = lr;
    counters_ = Tensor::empty({5}, DType::Float64, params().device());
    write_counters(0, 0);
  }

  static std::string describe(DType dtype, Device device) {
    return std::string("dtype ") + to_string(dtype) + " on " + device.str();
  }

  static void check_parameters(const std::string& where, const std::string& arg,
                               const TensorView& parameters) {
    detail::expect_float_tensor(where, arg, parameters);
    if (parameters.device().is_cuda() && !cuda_built()) {
      throw Error(where, arg, "a tensor on the CPU (recur was built without CUDA)",
                  "a tensor on " + parameters.device().str());
    }
  }

  static void check_gradients(const std::string& where, const char* arg, const TensorView& params,
                              const TensorView& grad) {
    if (!grad.defined()) {
      throw Error(where, arg, "a defined tensor", "an undefined TensorView");
    }
    if (grad.numel() != params.numel()) {
      throw Error(where, arg,
                  std::to_string(params.numel()) + " elements (as the parameters, " +
                      to_string(params.shape()) + ")",
                  std::to_string(grad.numel()) + " elements " + to_string(grad.shape()));
    }
    if (grad.dtype() != params.dtype()) {
      throw Error(where, arg,
                  std::string("dtype ") + to_string(params.dtype()) + " (that of the parameters)",
                  std::string("dtype ") + to_string(grad.dtype()));
    }
    if (grad.device() != params.device()) {
      throw Error(where, arg, "device " + params.device().str() + " (that of the parameters)",
                  "device " + grad.device().str());
    }
  }

  void check_norm(const char* where, const GradNorm* norm) const {
    if (norm == nullptr) return;
    if (!norm->has_value()) {
      throw Error(where, "norm", "the result of global_norm or clip_grad_norm",
                  "a GradNorm that holds no result");
    }
    if (norm->device() != params().device()) {
      throw Error(where, "norm",
                  "a result on device " + params().device().str() + " (that of the parameters)",
                  "a result on device " + norm->device().str());
    }
  }

  std::string name_;
  std::vector<Group> groups_;
  double lr_ = 0.0;
  Tensor counters_;  // OptimCounters, in the memory of the parameters' device
};

namespace {

class SgdImpl final : public OptimizerImpl {
 public:
  template <class Params>
  SgdImpl(const Params& parameters, const SgdOptions& options)
      : OptimizerImpl("Sgd", check(options, parameters), options.lr, options.weight_decay),
        options_(options) {
    if (options.momentum > 0.0) momentum_ = zeros_like_params();
  }

  const SgdOptions& options() const { return options_; }
  TensorView momentum_buffer() const {
    return momentum_.empty() ? TensorView() : momentum_[0].view();
  }

  std::vector<OptimizerState> state() const override {
    std::vector<OptimizerState> out;
    for (std::size_t i = 0; i < momentum_.size(); ++i) {
      out.push_back({state_name(i, "momentum_buffer"), momentum_[i].view()});
    }
    return out;
  }

 protected:
  // The options, checked before the base class allocates anything.
  template <class Params>
  static const Params& check(const SgdOptions& options, const Params& parameters) {
    expect_fraction("Sgd", "options.momentum", options.momentum);
    expect_at_least("Sgd", "options.weight_decay", options.weight_decay, 0.0);
    return parameters;
  }

  kernels::StepBegin step_begin() const override { return {}; }

  template <typename T>
  kernels::SgdArgs<T> args(std::size_t i, const TensorView& grad) const {
    const Group& g = groups()[i];
    kernels::SgdArgs<T> a;
    a.n = g.spec.parameters.numel();
    a.param = g.spec.parameters.data_as<T>();
    a.grad = grad.data_as<T>();
    a.momentum = momentum_.empty() ? nullptr : momentum_[i].data_as<T>();
    a.lr = static_cast<T>(lr_of(i));
    a.mu = static_cast<T>(options_.momentum);
    a.weight_decay = static_cast<T>(g.weight_decay);
    return a;
  }

  void update_cpu(std::size_t i, const TensorView& grad, const OptimCounters& counters) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cpu_sgd_update(args<T>(i, grad), counters);
    });
  }
  void update_cuda(CudaBackend& cuda, std::size_t i, const TensorView& grad,
                   const OptimCounters* counters, void* stream) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cuda.sgd_update(args<T>(i, grad), counters, stream);
    });
  }

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_;  // per group; empty when momentum == 0
};

class AdamImpl final : public OptimizerImpl {
 public:
  template <class Params>
  AdamImpl(const Params& parameters, const AdamOptions& options)
      : OptimizerImpl("Adam", check(options, parameters), options.lr, options.weight_decay),
        options_(options) {
    exp_avg_ = zeros_like_params();
    exp_avg_sq_ = zeros_like_params();
  }

  const AdamOptions& options() const { return options_; }
  TensorView exp_avg() const { return exp_avg_[0].view(); }
  TensorView exp_avg_sq() const { return exp_avg_sq_[0].view(); }

  std::vector<OptimizerState> state() const override {
    std::vector<OptimizerState> out;
    for (std::size_t i = 0; i < exp_avg_.size(); ++i) {
      out.push_back({state_name(i, "exp_avg"), exp_avg_[i].view()});
      out.push_back({state_name(i, "exp_avg_sq"), exp_avg_sq_[i].view()});
    }
    return out;
  }

 protected:
  template <class Params>
  static const Params& check(const AdamOptions& options, const Params& parameters) {
    expect_fraction("Adam", "options.beta1", options.beta1);
    expect_fraction("Adam", "options.beta2", options.beta2);
    if (!(options.eps > 0.0) || std::isinf(options.eps)) {
      throw Error("Adam", "options.eps", "a finite number > 0", exact_number(options.eps));
    }
    expect_at_least("Adam", "options.weight_decay", options.weight_decay, 0.0);
    return parameters;
  }

  kernels::StepBegin step_begin() const override { return {options_.beta1, options_.beta2}; }

  template <typename T>
  kernels::AdamArgs<T> args(std::size_t i, const TensorView& grad) const {
    const Group& g = groups()[i];
    kernels::AdamArgs<T> a;
    a.n = g.spec.parameters.numel();
    a.param = g.spec.parameters.data_as<T>();
    a.grad = grad.data_as<T>();
    a.exp_avg = exp_avg_[i].data_as<T>();
    a.exp_avg_sq = exp_avg_sq_[i].data_as<T>();
    a.lr = lr_of(i);
    a.beta1 = static_cast<T>(options_.beta1);
    a.beta2 = static_cast<T>(options_.beta2);
    a.eps = static_cast<T>(options_.eps);
    a.weight_decay = static_cast<T>(g.weight_decay);
    a.decoupled = options_.decoupled_weight_decay;
    return a;
  }

  void update_cpu(std::size_t i, const TensorView& grad, const OptimCounters& counters) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cpu_adam_update(args<T>(i, grad), counters);
    });
  }
  void update_cuda(CudaBackend& cuda, std::size_t i, const TensorView& grad,
                   const OptimCounters* counters, void* stream) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cuda.adam_update(args<T>(i, grad), counters, stream);
    });
  }

 private:
  AdamOptions options_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;  // per group
};

}  // namespace
}  // namespace detail

Optimizer::Optimizer(std::unique_ptr<detail::OptimizerImpl> impl) : impl_(std::move(impl)) {}
Optimizer::~Optimizer() = default;
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;

void Optimizer::step(const TensorView& gradients, const GradNorm* norm, void* stream) {
  detail::live(impl_, "Optimizer", "Optimizer::step").step(&gradients, norm, stream);
}

void Optimizer::step(const GradNorm* norm, void* stream) {
  detail::live(impl_, "Optimizer", "Optimizer::step").step(nullptr, norm, stream);
}

void Optimizer::zero_grad() {
  const detail::OptimizerImpl& self = detail::live(impl_, "Optimizer", "Optimizer::zero_grad");
  if (!self.holds_gradients()) {
    throw Error(self.name() + "::zero_grad", "this",
                "an optimizer of ParamGroups (one of a single buffer holds no gradients)",
                "an optimizer of one buffer");
  }
  for (const detail::Group& g : self.groups()) {
    const TensorView& grad = g.spec.gradients;
    detail::zero_bytes(grad.data(), grad.device(), grad.nbytes());
  }
}

std::vector<TensorView> Optimizer::gradients() const {
  const detail::OptimizerImpl& self = detail::live(impl_, "Optimizer", "Optimizer::gradients");
  std::vector<TensorView> out;
  if (!self.holds_gradients()) return out;
  for (const detail::Group& g : self.groups()) out.push_back(g.spec.gradients);
  return out;
}

std::vector<ParamGroup> Optimizer::groups() const {
  std::vector<ParamGroup> out;
  for (const detail::Group& g : detail::live(impl_, "Optimizer", "Optimizer::groups").groups()) {
    ParamGroup p = g.spec;
    p.weight_decay = g.weight_decay;
    out.push_back(p);
  }
  return out;
}

std::int64_t Optimizer::step_count() const {
  return detail::live(impl_, "Optimizer", "Optimizer::step_count").read_counters().step;
}
std::int64_t Optimizer::skipped_steps() const {
  return detail::live(impl_, "Optimizer", "Optimizer::skipped_steps").read_counters().skipped;
}

void Optimizer::set_step_count(std::int64_t steps, std::int64_t skipped) {
  detail::OptimizerImpl& self = detail::live(impl_, "Optimizer", "Optimizer::set_step_count");
  const std::string where = self.name() + "::set_step_count";
  if (steps < 0) throw Error(where, "steps", "a count >= 0", std::to_string(steps));
  if (skipped < 0) throw Error(where, "skipped", "a count >= 0", std::to_string(skipped));
  self.write_counters(steps, skipped);
}

double Optimizer::learning_rate() const {
  return detail::live(impl_, "Optimizer", "Optimizer::learning_rate").lr();
}
void Optimizer::set_learning_rate(double lr) {
  detail::live(impl_, "Optimizer", "Optimizer::set_learning_rate").set_lr(lr);
}
TensorView Optimizer::parameters() const {
  return detail::live(impl_, "Optimizer", "Optimizer::parameters").params();
}
Device Optimizer::device() const {
  return detail::live(impl_, "Optimizer", "Optimizer::device").params().device();
}
DType Optimizer::dtype() const {
  return detail::live(impl_, "Optimizer", "Optimizer::dtype").params().dtype();
}
std::vector<OptimizerState> Optimizer::state() const {
  return detail::live(impl_, "Optimizer", "Optimizer::state").state();
}

Sgd::Sgd(const TensorView& parameters, const SgdOptions& options)
    : Optimizer(std::make_unique<detail::SgdImpl>(parameters, options)) {}
Sgd::Sgd(const std::vector<ParamGroup>& groups, const SgdOptions& options)
    : Optimizer(std::make_unique<detail::SgdImpl>(groups, options)) {}
const SgdOptions& Sgd::options() const {
  return static_cast<const detail::SgdImpl&>(detail::live(impl_, "Optimizer", "Sgd::options"))
      .options();
}
TensorView Sgd::momentum_buffer() const {
  return static_cast<const detail::SgdImpl&>(
             detail::live(impl_, "Optimizer", "Sgd::momentum_buffer"))
      .momentum_buffer();
}

Adam::Adam(const TensorView& parameters, const AdamOptions& options)
    : Optimizer(std::make_unique<detail::AdamImpl>(parameters, options)) {}
Adam::Adam(const std::vector<ParamGroup>& groups, const AdamOptions& options)
    : Optimizer(std::make_unique<detail::AdamImpl>(groups, options)) {}
const AdamOptions& Adam::options() const {
  return static_cast<const detail::AdamImpl&>(detail::live(impl_, "Optimizer", "Adam::options"))
      .options();
}
TensorView Adam::exp_avg() const {
  return static_cast<const detail::AdamImpl&>(detail::live(impl_, "Optimizer", "Adam::exp_avg"))
      .exp_avg();
}
TensorView Adam::exp_avg_sq() const {
  return static_cast<const detail::AdamImpl&>(detail::live(impl_, "Optimizer", "Adam::exp_avg_sq"))
      .exp_avg_sq();
}

}  // namespace recur
