// src/pass/buffers.h: the memory a pass works in, laid out by the engine (src/engine.cpp)
// as the pass plan says.
//
// Rows follow the Timeline (src/timeline.h): step t is rows offset[t] .. + active[t] of
// every [rows, features] buffer, R = rows() in all. Each layer writes its output straight
// into Y_l [B + R + B, D*H]: rows [0, B) hold the forward h0, then the R rows of y_l (both
// directions side by side: no concatenation), then the reverse h0. So a forward step's
// h_{t-1} is the block of step t-1 (or the h0 block), and a reverse step's is the block
// of step t+1 (or, past the end, the reverse h0 block); a packed reverse step's rows that
// start there read h0 and g0 = W_hh h0 instead (the kernels' `carried`). Each step keeps
// the h_{t-1} it used in hp [R, H], so dW_hh is one GEMM. With proj_size P every H of
// h, y_l, hp and dh reads P (Plan::state_size): c and the gates stay H wide.
#pragma once

#include <cstdint>
#include <vector>

namespace recur::detail {

// A tensor of T*B rows: row r = t*B + b starts at data + r*ld and at grad + r*grad_ld()
// (backward). The two strides differ only for x where it shares its rows with layer 0's
// h_{t-1} (PassPlan::hp_beside_x).
template <typename T>
struct ActivationBuffers {
  T* data = nullptr;
  T* grad = nullptr;
  std::int64_t ld = 0;
  std::int64_t ld_grad = 0;  // 0: ld
  std::int64_t grad_ld() const { return ld_grad > 0 ? ld_grad : ld; }
};

// One layer-direction's buffers (R = timeline rows).
template <typename T>
struct UnitBuffers {
  T* cs = nullptr;           // [B + R + B, H] cell states (LSTM), laid out like Y_l
  T* gx = nullptr;           // [R, G*H] input projections, or [B, G*H] when gx_in_steps
  bool gx_in_steps = false;  // each step projects its own input (PassPlan::projects_in_steps)
  T* gh = nullptr;           // [B, G*H] this step's recurrent projection
  T* w_t = nullptr;          // [H, G*H] W_hh^T for the forward's recurrent GEMMs (Transposed)
  T* w_ih_t = nullptr;       // [I_l, G*H] W_ih^T for a wavefront's upper layers, or null
  T* g0 = nullptr;           // [B, G*H] W_hh h0 for rows that start mid-pass (packed reverse)
  T* hp = nullptr;           // [R, ldhp] the h_{t-1} each step used (training)
  std::int64_t ldhp = 0;
  bool hp_beside_x = false;  // hp is columns [I, I+H) of x's copy (PassPlan::hp_beside_x)
  T* saved = nullptr;        // [R, S*H] training; [B, S*H] reset-before-product inference
  T* rh = nullptr;           // [R, H] training; [B, H] inference (reset-before-product)
  T* m = nullptr;            // [R, H] training; [B, H] inference: o*tanh(c_t), what W_hr
                             // projects into h_t (proj_size)
  T* dgx = nullptr;          // [R, G*H]
  T* dgh = nullptr;          // [R, G*H]; equals dgx except for the linear-before-reset GRU
                             // and the layer-normalised cells
  T* dpx = nullptr;          // [R, G*H] layer_norm: d/d(input part), rows of db_ih (and the
                             // LSTM's db_hh); kernels/layer_norm.cuh
  T* dph = nullptr;          // [R, G*H] layer-norm GRU: d/d(recurrent part), rows of db_hh
  T* dln = nullptr;          // [R, Plan::ln_width] rows of the layer-norm parameters' gradients
  T* dproj = nullptr;        // [R, P] dJ/dh_t, the rows of dW_hr (proj_size)
  T* dm = nullptr;           // [B, H] W_hr^T dJ/dh_t, the cell's dJ/dm_t (proj_size)
  T* dh = nullptr;           // [B, O] (O: h's features, P with proj_size, else H)
  T* dc = nullptr;           // [B, H]
  T* drh = nullptr;          // [B, H]
};

template <typename T>
struct StackBuffers {
  std::uint64_t dropout_seed = 0, dropout_stream = 0;  // Philox key and stream of this pass
  std::int64_t dropout_row0 = 0;  // row 0's index in the masks: a recomputed segment's first row
  std::vector<T*> ys;             // per layer: Y_l [B + R + B, D*H]
  std::vector<ActivationBuffers<T>> acts;  // per activation of the plan
  std::vector<UnitBuffers<T>> units;       // per unit, index l*D + d
  std::vector<T*> gates;                   // per layer: highway gate [R, D*H] or null
  std::vector<T*> dgates;                  // per layer: highway dJ/dz [R, D*H] or null
  const T* ones = nullptr;                 // [2, R] of 1s for bias gradients
  T* dw_scratch = nullptr;  // [G*H, I+H]: [dW_ih | dW_hh] of layer 0 before it is added in
  // Gradient-flow diagnostics (backward only): when set, [L*D, steps] doubles, and each
  // backward step of unit u at step t writes ||dJ/dh_t||^2 (over the rows running at t)
  // into flow[u * steps + t]. Null in ordinary training: nothing is recorded.
  double* flow = nullptr;
  std::int64_t flow_steps = 0;
};

}  // namespace recur::detail
