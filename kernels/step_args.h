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
// A functor is called once per (b, j), with idx = b*H + j in [0, B*H).
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

template <typename T>
struct StepForward {
  std::int64_t batch = 0;     // B
  std::int64_t hidden = 0;    // H
  std::int64_t ldh = 0;       // row stride of h and h_prev
  const T* gx = nullptr;      // [B, G*H] W_ih x_t, without bias
  const T* gh = nullptr;      // [B, G*H] W_hh h_{t-1} (GRU reset-before-product: see gru.cuh)
  const T* b_ih = nullptr;    // [G*H] or nullptr when the model has no bias
  const T* b_hh = nullptr;    // [G*H] or nullptr
  const T* h_prev = nullptr;  // [B, ldh]
  const T* c_prev = nullptr;  // [B, H] LSTM
  T* h = nullptr;             // [B, ldh] out: h_t
  T* c = nullptr;             // [B, H] out: c_t (LSTM)
  T* saved = nullptr;         // [B, S*H] out: activations for backward; nullptr in inference
  T* rh = nullptr;            // [B, H] out: r*h_{t-1} (GRU reset-before-product)
};

template <typename T>
struct StepBackward {
  std::int64_t batch = 0;
  std::int64_t hidden = 0;
  std::int64_t ldh = 0;       // row stride of dy, h and h_prev
  const T* dy = nullptr;      // [B, ldh] dJ/dy_t from the layer above, or nullptr
  const T* h = nullptr;       // [B, ldh] h_t
  const T* h_prev = nullptr;  // [B, ldh] h_{t-1}
  const T* c = nullptr;       // [B, H] c_t (LSTM)
  const T* c_prev = nullptr;  // [B, H] c_{t-1} (LSTM)
  const T* saved = nullptr;   // [B, S*H] what forward saved
  const T* drh = nullptr;     // [B, H] dJ/d(r*h_{t-1}) (GRU reset-before-product)
  T* dh = nullptr;            // [B, H] in: dJ/dh_t through h_{t+1}; out: direct part of dJ/dh_{t-1}
  T* dc = nullptr;            // [B, H] in: dJ/dc_t through c_{t+1}; out: dJ/dc_{t-1} (LSTM)
  T* dgx = nullptr;           // [B, G*H] out: dJ/d(input pre-activation)
  T* dgh = nullptr;           // [B, G*H] out: dJ/d(W_hh h_{t-1}); may alias dgx (see each cell)
};

// Gate k's input part W_ih x + b_ih and recurrent part W_hh h + b_hh for element idx.
template <typename T>
struct GateInputs {
  T x, h;
};

template <typename T>
RECUR_HD GateInputs<T> gate_inputs(const StepForward<T>& a, std::int64_t b, std::int64_t j, int k,
                                   int gates) {
  const std::int64_t o = k * a.hidden + j;
  const std::int64_t row = b * gates * a.hidden;
  GateInputs<T> in{a.gx[row + o], a.gh[row + o]};
  if (a.b_ih != nullptr) {
    in.x += a.b_ih[o];
    in.h += a.b_hh[o];
  }
  return in;
}

}  // namespace recur::kernels
