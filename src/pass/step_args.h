// src/pass/step_args.h: the arguments of one unit's step kernel (kernels/step_args.h) and
// the operands of its per-step input GEMM, from where the buffers keep its rows.
#pragma once

#include "pass_context.h"

namespace recur::detail {

template <typename T>
StepForward<T> step_forward_args(const PassContext<T>& ctx, const UnitStep& s);
template <typename T>
StepBackward<T> step_backward_args(const PassContext<T>& ctx, const UnitStep& s);

// A projected LSTM's (proj_size P) Projection kernel, P wide: forward it keeps h_{t-1} in
// hp, backward it sums dJ/dh_t into dproj. The cell's own arguments then read m_t and
// dJ/dm_t (H wide) where the plain cell reads h_t and dJ/dh_t.
template <typename T>
StepForward<T> projection_forward_args(const PassContext<T>& ctx, const UnitStep& s);
template <typename T>
StepBackward<T> projection_backward_args(const PassContext<T>& ctx, const UnitStep& s);

// Operand 0 (A), 1 (B) or 2 (C) of unit s's per-step input GEMM, where a wave fuses it or
// the step projects its own input: forward gx_t = W_ih u_t, with A as the step's recurrent
// GEMMs read W_hh (w_ih_t where they read w_t); backward du_t += W_ih^T dgx_t.
template <typename T>
const void* input_gemm_operand(const PassContext<T>& ctx, const UnitStep& s, bool backward,
                               int operand);

}  // namespace recur::detail
