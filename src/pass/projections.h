// src/pass/projections.h: the GEMMs of a pass over whole time ranges, outside the steps:
// a unit's input projections gx = W_ih u (forward), its input gradients du += W_ih^T dgx
// (backward), and a packed reverse unit's g0 = W_hh h0.
#pragma once

#include "pass_context.h"

namespace recur::detail {

template <typename T>
void initial_projection(const PassContext<T>& ctx, const PassOp& op);
template <typename T>
void input_projection(const PassContext<T>& ctx, const PassOp& op);
template <typename T>
void input_gradient(const PassContext<T>& ctx, const PassOp& op);

}  // namespace recur::detail
