// src/pass/connections.h: what joins a layer to the next over a time range: dropout of
// y_l into the copy later layers read, and the residual or highway join u_{l+1} of y_l and
// u_l (kernels/connection.cuh), forward and backward.
#pragma once

#include "pass_context.h"

namespace recur::detail {

template <typename T>
void connection_forward(const PassContext<T>& ctx, const PassOp& op);
// dJ/du_l and dJ/dz from dJ/du_{l+1}; then, dJ/dy_l complete, back through dropout.
template <typename T>
void connection_backward(const PassContext<T>& ctx, const PassOp& op);

}  // namespace recur::detail
