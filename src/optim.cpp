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
#include "recur/error.h"

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

class OptimizerImpl {
 public:
  OptimizerImpl(const char* name, const TensorView& parameters, double lr) : name_(name) {
    if (!parameters.defined()) {
      throw Error(name, "parameters", "a defined tensor", "an undefined TensorView");
    }
    if (parameters.dtype() != DType::Float32 && parameters.dtype() != DType::Float64) {
      throw Error(name, "parameters", "dtype float32 or float64",
                  std::string("dtype ") + to_string(parameters.dtype()));
    }
    if (parameters.device().is_cuda() && !cuda_built()) {
      throw Error(name, "parameters", "a tensor on the CPU (recur was built without CUDA)",
                  "a tensor on " + parameters.device().str());
    }
    expect_at_least(name, "options.lr", lr, 0.0);
    params_ = parameters;
    lr_ = lr;
    counters_ = Tensor::empty({5}, DType::Float64, parameters.device());
    write_counters(0, 0);
  }
  virtual ~OptimizerImpl() = default;
  OptimizerImpl(const OptimizerImpl&) = delete;
  OptimizerImpl& operator=(const OptimizerImpl&) = delete;

  const std::string& name() const { return name_; }
  const TensorView& params() const { return params_; }
  double lr() const { return lr_; }
  void set_lr(double lr) {
    expect_at_least((name_ + "::set_learning_rate").c_str(), "lr", lr, 0.0);
    lr_ = lr;
  }

  // A state buffer of the parameters' size, dtype and device, zeroed.
  Tensor zeros_like_params() const {
    return Tensor::zeros(params_.shape(), params_.dtype(), params_.device());
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

  void step(const TensorView& grad, const GradNorm* norm, void* stream) {
    const std::string where = name_ + "::step";
    validate(where.c_str(), grad, norm);
    const kernels::StepBegin begin = step_begin();
    if (params_.device().is_cpu()) {
      OptimCounters& c = *static_cast<OptimCounters*>(counters_.data());
      const int* finite = norm != nullptr ? GradNormAccess::finite_flag(*norm, nullptr) : nullptr;
      begin(c, finite);
      if (c.take) update_cpu(grad, c);
      return;
    }
    CudaDeviceScope scope(params_.device().index);
    CudaBackend& cuda = require_cuda_backend(where);
    const int* finite = norm != nullptr ? GradNormAccess::finite_flag(*norm, stream) : nullptr;
    auto* counters = static_cast<OptimCounters*>(counters_.data());
    cuda.optimizer_begin(begin, counters, finite, stream);
    update_cuda(cuda, grad, counters, stream);
  }

  virtual std::vector<OptimizerState> state() const = 0;

 protected:
  virtual kernels::StepBegin step_begin() const = 0;
  virtual void update_cpu(const TensorView& grad, const OptimCounters& counters) = 0;
  virtual void update_cuda(CudaBackend& cuda, const TensorView& grad, const OptimCounters* counters,
                           void* stream) = 0;

 private:
  void validate(const char* where, const TensorView& grad, const GradNorm* norm) const {
    if (!grad.defined()) {
      throw Error(where, "gradients", "a defined tensor", "an undefined TensorView");
    }
    if (grad.numel() != params_.numel()) {
      throw Error(where, "gradients",
                  std::to_string(params_.numel()) + " elements (as the parameters, " +
                      to_string(params_.shape()) + ")",
                  std::to_string(grad.numel()) + " elements " + to_string(grad.shape()));
    }
    if (grad.dtype() != params_.dtype()) {
      throw Error(where, "gradients",
                  std::string("dtype ") + to_string(params_.dtype()) + " (that of the parameters)",
                  std::string("dtype ") + to_string(grad.dtype()));
    }
    if (grad.device() != params_.device()) {
      throw Error(where, "gradients",
                  "device " + params_.device().str() + " (that of the parameters)",
                  "device " + grad.device().str());
    }
    if (norm == nullptr) return;
    if (!norm->has_value()) {
      throw Error(where, "norm", "the result of global_norm or clip_grad_norm",
                  "a GradNorm that holds no result");
    }
    if (norm->device() != params_.device()) {
      throw Error(where, "norm",
                  "a result on device " + params_.device().str() + " (that of the parameters)",
                  "a result on device " + norm->device().str());
    }
  }

  std::string name_;
  TensorView params_;
  double lr_ = 0.0;
  Tensor counters_;  // OptimCounters, in the memory of the parameters' device
};

namespace {

class SgdImpl final : public OptimizerImpl {
 public:
  SgdImpl(const TensorView& parameters, const SgdOptions& options)
      : OptimizerImpl("Sgd", parameters, options.lr), options_(options) {
    expect_fraction("Sgd", "options.momentum", options.momentum);
    expect_at_least("Sgd", "options.weight_decay", options.weight_decay, 0.0);
    if (options.momentum > 0.0) momentum_ = zeros_like_params();
  }

  const SgdOptions& options() const { return options_; }
  TensorView momentum_buffer() const { return momentum_.view(); }

  std::vector<OptimizerState> state() const override {
    if (!momentum_.defined()) return {};
    return {{"momentum_buffer", momentum_.view()}};
  }

 protected:
  kernels::StepBegin step_begin() const override { return {}; }

  template <typename T>
  kernels::SgdArgs<T> args(const TensorView& grad) const {
    kernels::SgdArgs<T> a;
    a.n = params().numel();
    a.param = params().data_as<T>();
    a.grad = grad.data_as<T>();
    a.momentum = momentum_.defined() ? momentum_.data_as<T>() : nullptr;
    a.lr = static_cast<T>(lr());
    a.mu = static_cast<T>(options_.momentum);
    a.weight_decay = static_cast<T>(options_.weight_decay);
    return a;
  }

  void update_cpu(const TensorView& grad, const OptimCounters& counters) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cpu_sgd_update(args<T>(grad), counters);
    });
  }
  void update_cuda(CudaBackend& cuda, const TensorView& grad, const OptimCounters* counters,
                   void* stream) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cuda.sgd_update(args<T>(grad), counters, stream);
    });
  }

 private:
  SgdOptions options_;
  Tensor momentum_;
};

class AdamImpl final : public OptimizerImpl {
 public:
  AdamImpl(const TensorView& parameters, const AdamOptions& options)
      : OptimizerImpl("Adam", parameters, options.lr), options_(options) {
    expect_fraction("Adam", "options.beta1", options.beta1);
    expect_fraction("Adam", "options.beta2", options.beta2);
    if (!(options.eps > 0.0) || std::isinf(options.eps)) {
      throw Error("Adam", "options.eps", "a finite number > 0", exact_number(options.eps));
    }
    expect_at_least("Adam", "options.weight_decay", options.weight_decay, 0.0);
    exp_avg_ = zeros_like_params();
    exp_avg_sq_ = zeros_like_params();
  }

  const AdamOptions& options() const { return options_; }
  TensorView exp_avg() const { return exp_avg_.view(); }
  TensorView exp_avg_sq() const { return exp_avg_sq_.view(); }

  std::vector<OptimizerState> state() const override {
    return {{"exp_avg", exp_avg_.view()}, {"exp_avg_sq", exp_avg_sq_.view()}};
  }

 protected:
  kernels::StepBegin step_begin() const override { return {options_.beta1, options_.beta2}; }

  template <typename T>
  kernels::AdamArgs<T> args(const TensorView& grad) const {
    kernels::AdamArgs<T> a;
    a.n = params().numel();
    a.param = params().data_as<T>();
    a.grad = grad.data_as<T>();
    a.exp_avg = exp_avg_.data_as<T>();
    a.exp_avg_sq = exp_avg_sq_.data_as<T>();
    a.lr = lr();
    a.beta1 = static_cast<T>(options_.beta1);
    a.beta2 = static_cast<T>(options_.beta2);
    a.eps = static_cast<T>(options_.eps);
    a.weight_decay = static_cast<T>(options_.weight_decay);
    a.decoupled = options_.decoupled_weight_decay;
    return a;
  }

  void update_cpu(const TensorView& grad, const OptimCounters& counters) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cpu_adam_update(args<T>(grad), counters);
    });
  }
  void update_cuda(CudaBackend& cuda, const TensorView& grad, const OptimCounters* counters,
                   void* stream) override {
    with_float_type(params().dtype(), [&](auto tag) {
      using T = decltype(tag);
      cuda.adam_update(args<T>(grad), counters, stream);
    });
  }

 private:
  AdamOptions options_;
  Tensor exp_avg_, exp_avg_sq_;
};

}  // namespace
}  // namespace detail

Optimizer::Optimizer(std::unique_ptr<detail::OptimizerImpl> impl) : impl_(std::move(impl)) {}
Optimizer::~Optimizer() = default;
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;

void Optimizer::step(const TensorView& gradients, const GradNorm* norm, void* stream) {
  detail::live(impl_, "Optimizer", "Optimizer::step").step(gradients, norm, stream);
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
