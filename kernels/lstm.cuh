// kernels/lstm.cuh: the LSTM cell, gate order i, f, g, o (PyTorch).
//
//   i = σ(·), f = σ(·), g = tanh(·), o = σ(·)   (each W_ih x + b_ih + W_hh h + b_hh)
//   c_t = f∘c_{t-1} + i∘g,   h_t = o∘tanh(c_t)
// Saved for backward (S = 4): the activated gates i, f, g, o. c_t is kept by the caller's
// state buffer, so tanh(c_t) is recomputed rather than stored. dgh equals dgx.
// Sig and Th are the gate and cell activations (Identity in tests).
#pragma once

#include "activations.h"
#include "step_args.h"

namespace recur::kernels {

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LstmForward : PerElement<LstmForward<T, Sig, Th>> {
  static constexpr int kGates = 4;
  static constexpr int kSaved = 4;

  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepForward<T>& a) const {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T* gh = recurrent(a, b);
    const GateInputs<T> pi = gate_inputs(a, gh, b, j, 0, kGates);
    const GateInputs<T> pf = gate_inputs(a, gh, b, j, 1, kGates);
    const GateInputs<T> pg = gate_inputs(a, gh, b, j, 2, kGates);
    const GateInputs<T> po = gate_inputs(a, gh, b, j, 3, kGates);
    const T i = Sig::f(pi.x + pi.h);
    const T f = Sig::f(pf.x + pf.h);
    const T g = Th::f(pg.x + pg.h);
    const T o = Sig::f(po.x + po.h);
    if (a.hp != nullptr) a.hp[b * a.ldhp + j] = prev_h(a, b, j);
    const T c = f * prev_c(a, b, j) + i * g;
    a.c[idx] = c;
    a.h[b * a.ldh + j] = o * Th::f(c);
    if (a.saved != nullptr) {
      T* s = a.saved + b * kSaved * H + j;
      s[0 * H] = i;
      s[1 * H] = f;
      s[2 * H] = g;
      s[3 * H] = o;
    }
  }
};

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LstmBackward : PerElement<LstmBackward<T, Sig, Th>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepBackward<T>& a) const {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T* s = a.saved + b * 4 * H + j;
    const T i = s[0 * H], f = s[1 * H], g = s[2 * H], o = s[3 * H];
    const T tc = Th::f(a.c[idx]);
    const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
    const T dc = a.dc[idx] + dh * o * Th::df(tc);
    const T di = dc * g * Sig::df(i);
    const T df = dc * prev_c(a, b, j) * Sig::df(f);
    const T dg = dc * i * Th::df(g);
    const T d_o = dh * tc * Sig::df(o);
    T* dgx = a.dgx + b * 4 * H + j;  // also dJ/d(W_hh h): dgh == dgx for the LSTM
    dgx[0 * H] = di;
    dgx[1 * H] = df;
    dgx[2 * H] = dg;
    dgx[3 * H] = d_o;
    a.dc[idx] = dc * f;
    a.dh[idx] = T(0);  // h_{t-1} reaches J only through W_hh
  }
};

}  // namespace recur::kernels
