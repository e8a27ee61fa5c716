// src/loss_scale.cpp: LossScaler: validation, the state, and the dispatch of each call to
// the CPU loops or the CUDA kernels (kernels/loss_scale.cu), both over the functors of
// kernels/loss_scale.cuh.
#include "recur/loss_scale.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "../kernels/loss_scale.cuh"
#include "cuda_backend.h"
#include "float_dispatch.h"
#include "grad_internal.h"
#include "live.h"
#include "recur/error.h"
#include "validate.h"

namespace recur {
namespace {

using kernels::LossScaleState;
static_assert(sizeof(LossScaleState) == 6 * sizeof(double), "the state is 6 float64 slots");

}  // namespace

struct LossScaler::Impl {
  LossScaleOptions options;
  Device device = Device::cpu();
  Tensor state;  // LossScaleState, in the memory of `device`

  LossScaleState read() const {
    LossScaleState s;
    state.view().copy_to_host(&s);
    return s;
  }
  LossScaleState* slots() const { return static_cast<LossScaleState*>(state.data()); }

  // `view` may be scaled in place here: float32 or float64, on the scaler's device.
  void check(const char* where, const std::string& name, const TensorView& view) const {
    detail::expect_float_tensor(where, name, view);
    if (view.device() != device) {
      throw Error(where, name, "a tensor on " + device.str() + " (the scaler's device)",
                  "a tensor on " + view.device().str());
    }
  }

  void scale(const TensorView& view, bool inverse, void* stream) const {
    detail::with_float_type(view.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const kernels::ScaleArgs<T> a{view.numel(), view.data_as<T>(), slots(), inverse};
      if (device.is_cpu()) {
        const T factor = kernels::ScaleBy<T>::factor(a);
        const kernels::ScaleBy<T> by;
        for (std::int64_t i = 0; i < a.n; ++i) by(i, a, factor);
        return;
      }
      detail::CudaDeviceScope scope(device.index);
      detail::require_cuda_backend("LossScaler").scale_by(a, stream);
    });
  }
};

LossScaler::LossScaler(Device device, const LossScaleOptions& options)
    : impl_(std::make_unique<Impl>()) {
  const double s = options.initial_scale;
  if (!(s >= kernels::kMinLossScale && s <= kernels::kMaxLossScale)) {
    throw Error("LossScaler", "options.initial_scale", "a number in [2^-64, 2^64]",
                detail::exact_number(s));
  }
  if (!(options.growth_factor > 1.0) || std::isinf(options.growth_factor)) {
    throw Error("LossScaler", "options.growth_factor", "a finite number > 1",
                detail::exact_number(options.growth_factor));
  }
  if (!(options.backoff_factor > 0.0 && options.backoff_factor < 1.0)) {
    throw Error("LossScaler", "options.backoff_factor", "a number in (0, 1)",
                detail::exact_number(options.backoff_factor));
  }
  if (options.growth_interval < 1) {
    throw Error("LossScaler", "options.growth_interval", "a count >= 1",
                std::to_string(options.growth_interval));
  }
  if (device.is_cuda() && !cuda_built()) {
    throw Error("LossScaler", "device", "the CPU (recur was built without CUDA)", device.str());
  }
  impl_->options = options;
  impl_->device = device;
  impl_->state = Tensor::empty({6}, DType::Float64, device);
  LossScaleState initial;
  initial.scale = s;
  initial.inverse = 1.0 / s;
  impl_->state.view().copy_from_host(&initial);
}

LossScaler::~LossScaler() = default;
LossScaler::LossScaler(LossScaler&&) noexcept = default;
LossScaler& LossScaler::operator=(LossScaler&&) noexcept = default;

void LossScaler::scale_loss_gradient(const TensorView& loss_gradient, void* stream) const {
  const Impl& self = detail::live(impl_, "LossScaler", "LossScaler::scale_loss_gradient");
  self.check("LossScaler::scale_loss_gradient", "loss_gradient", loss_gradient);
  self.scale(loss_gradient, false, stream);
}

void LossScaler::unscale_gradients(const std::vector<TensorView>& gradients, void* stream) const {
  const Impl& self = detail::live(impl_, "LossScaler", "LossScaler::unscale_gradients");
  const char* where = "LossScaler::unscale_gradients";
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    self.check(where, "gradients[" + std::to_string(i) + "]", gradients[i]);
  }
  detail::check_disjoint_spans(where, "gradients", gradients);
  for (const TensorView& g : gradients) self.scale(g, true, stream);
}

void LossScaler::update(const GradNorm& norm, void* stream) {
  Impl& self = detail::live(impl_, "LossScaler", "LossScaler::update");
  const char* where = "LossScaler::update";
  if (!norm.has_value()) {
    throw Error(where, "norm", "the result of global_norm or clip_grad_norm",
                "a GradNorm that holds no result");
  }
  if (norm.device() != self.device) {
    throw Error(where, "norm", "a result on " + self.device.str() + " (the scaler's device)",
                "a result on " + norm.device().str());
  }
  const kernels::ScaleUpdate update{self.options.growth_factor, self.options.backoff_factor,
                                    static_cast<double>(self.options.growth_interval)};
  if (self.device.is_cpu()) {
    update(*self.slots(), detail::GradNormAccess::finite_flag(norm, nullptr));
    return;
  }
  detail::CudaDeviceScope scope(self.device.index);
  detail::CudaBackend& cuda = detail::require_cuda_backend(where);
  cuda.loss_scale_update(update, self.slots(), detail::GradNormAccess::finite_flag(norm, stream),
                         stream);
  detail::GradNormAccess::flag_read(norm, stream);
}

double LossScaler::current_scale() const {
  return detail::live(impl_, "LossScaler", "LossScaler::current_scale").read().scale;
}
std::int64_t LossScaler::overflows() const {
  return detail::count_in_slot(
      detail::live(impl_, "LossScaler", "LossScaler::overflows").read().overflows);
}
std::int64_t LossScaler::growths() const {
  return detail::count_in_slot(
      detail::live(impl_, "LossScaler", "LossScaler::growths").read().growths);
}
std::int64_t LossScaler::good_steps() const {
  return detail::count_in_slot(
      detail::live(impl_, "LossScaler", "LossScaler::good_steps").read().good_steps);
}
const LossScaleOptions& LossScaler::options() const {
  return detail::live(impl_, "LossScaler", "LossScaler::options").options;
}
Device LossScaler::device() const {
  return detail::live(impl_, "LossScaler", "LossScaler::device").device;
}
TensorView LossScaler::state() const {
  return detail::live(impl_, "LossScaler", "LossScaler::state").state.view();
}

}  // namespace recur
