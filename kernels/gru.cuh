// kernels/gru.cuh: both GRU forms, gate order r, z, n (PyTorch), sharing one layout.
//
// Linear-before-reset (PyTorch, cuDNN):
//   r = σ(·), z = σ(·), n = tanh(W_in x + b_in + r∘(W_hn h + b_hn)),
//   h_t = (1−z)∘n + z∘h_{t-1}.
//   One step: the recurrent GEMM fills all of gh, then GruLbrForward.
//   Saved (S = 4): r, z, n and hn = W_hn h + b_hn. dgh differs from dgx in the n slot
//   (dgh_n = dgx_n∘r), so the two must not alias.
//
// Reset-before-product (Cho et al. 2014):
//   n = tanh(W_in x + b_in + W_hn (r∘h_{t-1}) + b_hn), r, z and h_t as above.
//   The n product depends on r, so a step is two phases around a second GEMM:
//     GEMM gh[r,z] = W_h[r,z] h;   GruRbpGatesForward  (r, z, rh = r∘h_{t-1})
//     GEMM gh[n]   = W_hn rh;      GruRbpOutputForward (n, h_t)
//   and backward runs them in reverse:
//     GruRbpOutputBackward (dn, dz);  GEMM drh = W_hn^T dgx[n];
//     GruRbpGatesBackward  (dr, dh += drh∘r);  GEMM dh += W_h[r,z]^T dgx[r,z]
//   Saved (S = 3): r, z, n; rh is kept by the caller for the W_hn gradient. dgh aliases dgx.
#pragma once

#include "activations.h"
#include "step_args.h"

namespace recur::kernels {

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct GruLbrForward : PerElement<GruLbrForward<T, Sig, Th>> {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 4;

  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepForward<T>& a) const {
    const std::int64_t H = a.hidden;
    const T* gh = recurrent(a, b);
    const GateInputs<T> pr = gate_inputs(a, gh, b, j, 0, kGates);
    const GateInputs<T> pz = gate_inputs(a, gh, b, j, 1, kGates);
    const GateInputs<T> pn = gate_inputs(a, gh, b, j, 2, kGates);
    const T r = Sig::f(pr.x + pr.h);
    const T z = Sig::f(pz.x + pz.h);
    const T hn = pn.h;
    const T n = Th::f(pn.x + r * hn);
    const T h_prev = prev_h(a, b, j);
    if (a.hp != nullptr) a.hp[b * a.ldhp + j] = h_prev;
    a.h[b * a.ldh + j] = (T(1) - z) * n + z * h_prev;
    if (a.saved != nullptr) {
      T* s = a.saved + b * kSaved * H + j;
      s[0 * H] = r;
      s[1 * H] = z;
      s[2 * H] = n;
      s[3 * H] = hn;
    }
  }
};

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct GruLbrBackward : PerElement<GruLbrBackward<T, Sig, Th>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepBackward<T>& a) const {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T* s = a.saved + b * 4 * H + j;
    const T r = s[0 * H], z = s[1 * H], n = s[2 * H], hn = s[3 * H];
    const T h_prev = a.h_prev[idx];
    const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
    const T dn = dh * (T(1) - z) * Th::df(n);
    const T dz = dh * (h_prev - n) * Sig::df(z);
    const T dr = dn * hn * Sig::df(r);
    T* dgx = a.dgx + b * 3 * H + j;
    T* dgh = a.dgh + b * 3 * H + j;
    dgx[0 * H] = dgh[0 * H] = dr;
    dgx[1 * H] = dgh[1 * H] = dz;
    dgx[2 * H] = dn;
    dgh[2 * H] = dn * r;
    a.dh[idx] = dh * z;
  }
};

// Phase 1 of a reset-before-product step: gh holds W_h[r,z] h in its r and z slots.
template <typename T, class Sig = Sigmoid>
struct GruRbpGatesForward : PerElement<GruRbpGatesForward<T, Sig>> {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 3;

  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepForward<T>& a) const {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T* gh = recurrent(a, b);
    const GateInputs<T> pr = gate_inputs(a, gh, b, j, 0, kGates);
    const GateInputs<T> pz = gate_inputs(a, gh, b, j, 1, kGates);
    const T r = Sig::f(pr.x + pr.h);
    const T z = Sig::f(pz.x + pz.h);
    const T h_prev = prev_h(a, b, j);
    if (a.hp != nullptr) a.hp[b * a.ldhp + j] = h_prev;
    a.rh[idx] = r * h_prev;
    // z is needed by phase 2 even in inference, so the first two slots are always
    // written: to `saved` in training, else to the z scratch the caller passes there.
    T* s = a.saved + b * kSaved * H + j;
    s[0 * H] = r;
    s[1 * H] = z;
  }
};

// Phase 2: gh's n slot now holds W_hn (r∘h_{t-1}).
template <typename T, class Th = Tanh>
struct GruRbpOutputForward : PerElement<GruRbpOutputForward<T, Th>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepForward<T>& a) const {
    const std::int64_t H = a.hidden;
    const GateInputs<T> pn = gate_inputs(a, a.gh, b, j, 2, 3);  // W_hn (r*h): always gh
    T* s = a.saved + b * 3 * H + j;
    const T z = s[1 * H];
    const T n = Th::f(pn.x + pn.h);
    s[2 * H] = n;
    a.h[b * a.ldh + j] = (T(1) - z) * n + z * prev_h(a, b, j);
  }
};

// Backward phase A: gradients of z and n; dh becomes the direct part z∘dh.
template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct GruRbpOutputBackward : PerElement<GruRbpOutputBackward<T, Sig, Th>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepBackward<T>& a) const {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T* s = a.saved + b * 3 * H + j;
    const T z = s[1 * H], n = s[2 * H];
    const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
    T* dgx = a.dgx + b * 3 * H + j;
    dgx[1 * H] = dh * (a.h_prev[idx] - n) * Sig::df(z);
    dgx[2 * H] = dh * (T(1) - z) * Th::df(n);
    a.dh[idx] = dh * z;
  }
};

// Backward phase B: drh = W_hn^T dgx[n] is known; gradient of r, and rh's share of dh.
template <typename T, class Sig = Sigmoid>
struct GruRbpGatesBackward : PerElement<GruRbpGatesBackward<T, Sig>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepBackward<T>& a) const {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T r = a.saved[b * 3 * H + j];
    const T drh = a.drh[idx];
    a.dgx[b * 3 * H + j] = drh * a.h_prev[idx] * Sig::df(r);
    a.dh[idx] += drh * r;
  }
};

}  // namespace recur::kernels
