// kernels/loss_scale.cuh: dynamic loss scaling (recur/loss_scale.h), written once for the
// CPU loops (src/loss_scale.cpp) and the CUDA kernels (kernels/loss_scale.cu).
//
// One training step under a LossScaler, in order on one stream:
//   ScaleBy (scale):     the loss gradient times S, before backward;
//   ScaleBy (inverse):   every gradient times 1/S, after backward (S is a power of two by
//                        default, so both products are exact unless they overflow);
//   ScaleUpdate (once):  reads the finite flag of the gradients' norm (the flag the
//                        optimizer's StepBegin reads to skip the step): not finite, S times
//                        the backoff factor and one more overflow; finite, one more good
//                        step, and after growth_interval of them S times the growth factor.
// So the scale, like the skip, stays where the flag is: no host round trip.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

// The scale stays within [2^-64, 2^64]: representable in float32, and far beyond what any
// FP16 gradient needs at either end, so that a long run of overflows (a real NaN in the
// data) cannot drive it to zero nor a long finite run to infinity.
constexpr double kMinLossScale = 5.421010862427522e-20;  // 2^-64
constexpr double kMaxLossScale = 1.8446744073709552e19;  // 2^64

// A LossScaler's state (device memory on the GPU): six float64 slots, saved in checkpoints
// as they are.
struct LossScaleState {
  double scale = 65536.0;
  double inverse = 1.0 / 65536.0;  // 1 / scale, computed once per update
  double good_steps = 0.0;         // finite steps since the scale last changed
  double overflows = 0.0;          // steps whose gradient was not finite (scale backed off)
  double growths = 0.0;            // times the scale grew
  double pad_ = 0.0;
};

// `scale` within [2^-64, 2^64]; NaN at the bottom. A state loaded from a file may hold
// anything (an infinite S would otherwise back off to infinity forever).
RECUR_HD double bounded_scale(double scale) {
  if (!(scale >= kMinLossScale)) return kMinLossScale;
  return scale > kMaxLossScale ? kMaxLossScale : scale;
}

// Once per step, after the optimizer's step. `finite`: the gradient norm's finite flag
// (same memory as the state), or nullptr (always finite).
struct ScaleUpdate {
  double growth_factor = 2.0, backoff_factor = 0.5;
  double growth_interval = 2000.0;
  RECUR_HD void operator()(LossScaleState& s, const int* finite) const {
    if (!(s.good_steps >= 0.0)) s.good_steps = 0.0;  // NaN or negative: no count
    if (finite != nullptr && *finite == 0) {
      s.scale *= backoff_factor;
      s.good_steps = 0.0;
      s.overflows += 1.0;
    } else {
      s.good_steps += 1.0;
      if (s.good_steps >= growth_interval) {
        s.scale *= growth_factor;
        s.good_steps = 0.0;
        s.growths += 1.0;
      }
    }
    s.scale = bounded_scale(s.scale);
    s.inverse = 1.0 / s.scale;
  }
};

template <typename T>
struct ScaleArgs {
  std::int64_t n = 0;
  T* data = nullptr;                      // [n], scaled in place
  const LossScaleState* state = nullptr;  // same memory as data
  bool inverse = false;                   // times 1/scale instead of scale
};

template <typename T>
struct ScaleBy {
  RECUR_HD void operator()(std::int64_t i, const ScaleArgs<T>& a, T factor) const {
    a.data[i] *= factor;
  }
  // The factor, read once per thread: scale or inverse, rounded to T.
  RECUR_HD static T factor(const ScaleArgs<T>& a) {
    return static_cast<T>(a.inverse ? a.state->inverse : a.state->scale);
  }
};

}  // namespace recur::kernels
