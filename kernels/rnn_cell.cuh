// kernels/rnn_cell.cuh: the vanilla RNN cell, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).
//
// One gate (G = 1); nothing is saved beyond h_t itself, since act'(·) is computed from
// the output. The recurrent gradient dgh equals dgx.
#pragma once

#include "activations.h"
#include "step_args.h"

namespace recur::kernels {

template <typename T, class Act>
struct RnnForward : PerElement<RnnForward<T, Act>> {
  static constexpr int kGates = 1;
  static constexpr int kSaved = 0;

  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepForward<T>& a) const {
    const GateInputs<T> in = gate_inputs(a, recurrent(a, b), b, j, 0, kGates);
    if (a.hp != nullptr) a.hp[b * a.ldhp + j] = prev_h(a, b, j);
    a.h[b * a.ldh + j] = Act::f(in.x + in.h);
  }
};

template <typename T, class Act>
struct RnnBackward : PerElement<RnnBackward<T, Act>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepBackward<T>& a) const {
    const std::int64_t idx = b * a.hidden + j, row = b * a.ldh + j;
    const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[row] : T(0));
    const T dpre = dh * Act::df(a.h[row]);
    a.dgx[idx] = dpre;  // also dJ/d(W_hh h): the engine passes dgh == dgx for this cell
    a.dh[idx] = T(0);   // h_{t-1} reaches J only through W_hh
  }
};

}  // namespace recur::kernels
