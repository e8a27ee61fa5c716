// kernels/step_args.h: the arguments of one time step's fused gate kernel.
//
// One struct for forward and one for backward serve every cell; a cell reads only the
// fields it needs. All pointers are device pointers on the GPU and host pointers on the
// CPU. Layouts are row-major with the batch outermost:
//   [B, ldh]  h, h_prev and dy: element (b, j) at b*ldh + j. They live inside a layer's
//             output [.., B, D*H], so ldh = D*H and a direction's pointer is offset by d*H
//   [B, H]    everything else per unit: element (b, j) at b*H + j
//   [B, G*H]  gate pre-activations, gate k of unit j at b*G*H + k*H + j (PyTorch order)
//   [B, S*H]  activations saved for backward, slot k of unit j at b*S*H + k*H + j
// A functor computes element (b, j) in `at(b, j, args)` for rows b < active; see PerElement.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

template <typename T>
struct StepForward {
  std::int64_t batch = 0;     // B: rows of the launch
  std::int64_t hidden = 0;    // H
  std::int64_t ldh = 0;       // row stride of h, h_prev and h0
  std::int64_t active = 0;    // rows b < active are computed; the rest are left alone
  std::int64_t carried = 0;   // rows b < carried continue from h_prev / c_prev / gh; rows
                              // carried <= b < active start here from h0 / c0 / g0
  const T* gx = nullptr;      // [B, G*H] W_ih x_t, without bias
  const T* gh = nullptr;      // [B, G*H] W_hh h_{t-1} (GRU reset-before-product: see gru.cuh)
  const T* b_ih = nullptr;    // [G*H] or nullptr when the model has no bias
  const T* b_hh = nullptr;    // [G*H] or nullptr
  const T* h_prev = nullptr;  // [B, ldh]
  const T* c_prev = nullptr;  // [B, H] LSTM
  const T* h0 = nullptr;      // [B, ldh] initial states of rows that start here
  const T* c0 = nullptr;      // [B, H]
  const T* g0 = nullptr;      // [B, G*H] W_hh h0 (first recurrent GEMM) for those rows
  T* h = nullptr;             // [B, ldh] out: h_t
  T* c = nullptr;             // [B, H] out: c_t (LSTM)
  T* hp = nullptr;            // [B, ldhp] out: the h_{t-1} used, kept for dW_hh; or nullptr
  std::int64_t ldhp = 0;      // row stride of hp: H, or wider where hp shares rows with x
  T* saved = nullptr;         // [B, S*H] out: activations for backward; nullptr in inference
  T* rh = nullptr;            // [B, H] out: r*h_{t-1} (GRU reset-before-product)
  const T* ln = nullptr;      // layer-norm parameters (layer_norm cells, layer_norm.cuh):
                              // gains [G*H] for W_ih x and [G*H] for W_hh h, then the LSTM's
                              // cell gain [H] and bias [H]
};

template <typename T>
struct StepBackward {
  std::int64_t batch = 0;
  std::int64_t hidden = 0;
  std::int64_t ldh = 0;       // row stride of dy and h
  std::int64_t active = 0;    // as in StepForward
  std::int64_t carried = 0;   // as in StepForward (selects c_prev or c0)
  const T* dy = nullptr;      // [B, ldh] dJ/dy_t from the layer above, or nullptr
  const T* h = nullptr;       // [B, ldh] h_t
  const T* h_prev = nullptr;  // [B, H] the h_{t-1} forward used (its hp; read by the GRUs,
                              // whose hp is never interleaved)
  const T* c = nullptr;       // [B, H] c_t (LSTM)
  const T* c_prev = nullptr;  // [B, H] c_{t-1} (LSTM)
  const T* c0 = nullptr;      // [B, H] c_{t-1} of rows that started at this step
  const T* saved = nullptr;   // [B, S*H] what forward saved
  const T* drh = nullptr;     // [B, H] dJ/d(r*h_{t-1}) (GRU reset-before-product)
  T* dh = nullptr;            // [B, H] in: dJ/dh_t through h_{t+1}; out: direct part of dJ/dh_{t-1}
  T* dc = nullptr;            // [B, H] in: dJ/dc_t through c_{t+1}; out: dJ/dc_{t-1} (LSTM)
  T* dgx = nullptr;           // [B, G*H] out: dJ/d(input pre-activation)
  T* dgh = nullptr;           // [B, G*H] out: dJ/d(W_hh h_{t-1}); the linear-before-reset
                              // GRU's own buffer; every other cell needs dgh == dgx and
                              // writes dgx only
  const T* ln = nullptr;      // as in StepForward (layer_norm cells)
  T* dpx = nullptr;           // [B, G*H] out: d/d(normalised input part + b_ih) (layer_norm)
  T* dph = nullptr;           // [B, G*H] out: d/d(recurrent part + b_hh) (layer-norm GRU)
  T* dln = nullptr;           // [B, 2*G*H (+2*H)] out: rows of the layer-norm parameters'
                              // gradients (layer_norm.cuh)
  T* dproj = nullptr;         // [B, P] out: dJ/dh_t of a projected LSTM (projection.cuh)
};

// The two ways into a step functor. A CUDA thread holds a flat index idx = b*H + j in
// [0, B*H) and calls operator(); the CPU loops call `at` for b < active row by row, so the
// loop over j is a plain contiguous loop the compiler vectorises (see src/cpu/cpu_steps.cpp).
template <class Cell>
struct PerElement {
  template <class Args>
  RECUR_HD void operator()(std::int64_t idx, const Args& a) const {
    const std::int64_t b = idx / a.hidden, j = idx % a.hidden;
    if (b < a.active) static_cast<const Cell&>(*this).at(b, j, a);
  }
};

// h_{t-1} and c_{t-1} of row b: carried over, or the initial state of a row that starts.
// (The pointer is chosen before the load, so a CPU loop over j sees no branch.)
template <typename T>
RECUR_HD T prev_h(const StepForward<T>& a, std::int64_t b, std::int64_t j) {
  return (b < a.carried ? a.h_prev : a.h0)[b * a.ldh + j];
}
template <class Args>
RECUR_HD auto prev_c(const Args& a, std::int64_t b, std::int64_t j) {
  return (b < a.carried ? a.c_prev : a.c0)[b * a.hidden + j];
}

// Gate k's input part W_ih x + b_ih and recurrent part W_hh h + b_hh for element (b, j).
// `gh` is the recurrent product to read: a.gh, or a.g0 for rows that start here.
template <typename T>
struct GateInputs {
  T x, h;
};

template <typename T>
RECUR_HD GateInputs<T> gate_inputs(const StepForward<T>& a, const T* gh, std::int64_t b,
                                   std::int64_t j, int k, int gates) {
  const std::int64_t o = k * a.hidden + j;
  const std::int64_t row = b * gates * a.hidden;
  GateInputs<T> in{a.gx[row + o], gh[row + o]};
  if (a.b_ih != nullptr) {
    in.x += a.b_ih[o];
    in.h += a.b_hh[o];
  }
  return in;
}

// The first recurrent GEMM's result for row b.
template <typename T>
RECUR_HD const T* recurrent(const StepForward<T>& a, std::int64_t b) {
  return b < a.carried ? a.gh : a.g0;
}

}  // namespace recur::kernels
