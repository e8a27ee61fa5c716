// kernels/optim.cuh: the optimizers' per-element math, shared by the CPU loop
// (src/cpu/cpu_grad.cpp) and the CUDA kernels (kernels/optim.cu).
//
// One optimizer step is two calls, in order on one stream:
//   StepBegin (once):      reads the gradient norm's finite flag; when it is set, counts
//                          the step and computes Adam's bias corrections; when not, counts
//                          a skipped step and clears `take`.
//   SgdUpdate / AdamUpdate (per element i): runs only when counters.take is set.
// So the skip decision, the step count and the bias corrections stay where the flag is
// (device memory on the GPU): no host round trip.
//
// The formulas are PyTorch's (torch.optim.SGD with dampening 0 and no Nesterov,
// torch.optim.Adam and AdamW):
//   SGD:   g = grad + wd*p;  buf = momentum*buf + g (if momentum > 0, else buf = g);
//          p -= lr*buf
//   Adam:  g = grad + wd*p (Adam) | p *= 1 - lr*wd (AdamW);
//          m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//          p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Element arithmetic is in T (float or double); the bias corrections in double.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

RECUR_HD float sqrt_(float x) { return sqrtf(x); }
RECUR_HD double sqrt_(double x) { return sqrt(x); }

// An optimizer's counters (device memory on the GPU). 40 bytes.
struct OptimCounters {
  std::int64_t step = 0;     // steps taken
  std::int64_t skipped = 0;  // steps skipped because the gradient was not finite
  double bias1 = 1.0;        // 1 - beta1^step (Adam), for the step being taken
  double bias2 = 1.0;        // 1 - beta2^step (Adam)
  int take = 0;              // 1 while the current step is taken
  int pad_ = 0;
};

// Once per step, before the element updates. `finite` points at the gradient norm's
// finite flag (NormState::finite, same memory as the counters), or is nullptr: always take
// the step. beta1 = beta2 = 0 for SGD.
struct StepBegin {
  double beta1 = 0.0, beta2 = 0.0;
  RECUR_HD void operator()(OptimCounters& c, const int* finite) const {
    c.take = finite == nullptr || *finite != 0 ? 1 : 0;
    if (!c.take) {
      ++c.skipped;
      return;
    }
    ++c.step;
    const double t = static_cast<double>(c.step);
    c.bias1 = 1.0 - pow(beta1, t);
    c.bias2 = 1.0 - pow(beta2, t);
  }
};

template <typename T>
struct SgdArgs {
  std::int64_t n = 0;       // elements
  T* param = nullptr;       // [n] updated in place
  const T* grad = nullptr;  // [n]
  T* momentum = nullptr;    // [n] the momentum buffer, or nullptr when momentum == 0
  T lr = T(0), mu = T(0), weight_decay = T(0);
};

template <typename T>
struct SgdUpdate {
  RECUR_HD void operator()(std::int64_t i, const SgdArgs<T>& a, const OptimCounters&) const {
    const T p = a.param[i];
    T d = a.grad[i];
    if (a.weight_decay != T(0)) d += a.weight_decay * p;
    if (a.momentum != nullptr) {
      d += a.mu * a.momentum[i];
      a.momentum[i] = d;
    }
    a.param[i] = p - a.lr * d;
  }
};

template <typename T>
struct AdamArgs {
  std::int64_t n = 0;       // elements
  T* param = nullptr;       // [n] updated in place
  const T* grad = nullptr;  // [n]
  T* exp_avg = nullptr;     // [n] m
  T* exp_avg_sq = nullptr;  // [n] v
  double lr = 0.0;          // the step size before bias correction
  T beta1 = T(0), beta2 = T(0), eps = T(0), weight_decay = T(0);
  bool decoupled = false;  // AdamW: decay the weights directly, not through the gradient
};

template <typename T>
struct AdamUpdate {
  RECUR_HD void operator()(std::int64_t i, const AdamArgs<T>& a, const OptimCounters& c) const {
    T p = a.param[i];
    T g = a.grad[i];
    if (a.weight_decay != T(0)) {
      if (a.decoupled) {
        p *= T(1) - static_cast<T>(a.lr) * a.weight_decay;
      } else {
        g += a.weight_decay * p;
      }
    }
    const T m = a.beta1 * a.exp_avg[i] + (T(1) - a.beta1) * g;
    const T v = a.beta2 * a.exp_avg_sq[i] + (T(1) - a.beta2) * g * g;
    a.exp_avg[i] = m;
    a.exp_avg_sq[i] = v;
    const T step_size = static_cast<T>(a.lr / c.bias1);
    const T denom = sqrt_(v) / static_cast<T>(sqrt(c.bias2)) + a.eps;
    a.param[i] = p - step_size * (m / denom);
  }
};

}  // namespace recur::kernels
