// src/pass/weight_gradients.h: the weight gradients of a whole backward pass at once, each
// one GEMM over all T*B rows (dW_ih, dW_hh, the highway W_g) or a column sum (biases),
// added into `grads` (the flat gradient buffer, the plan's layout): those of one layer's
// units and of its connection, or of kAllLayers.
#pragma once

#include "pass_context.h"

namespace recur::detail {

template <typename T>
void weight_gradients(const PassContext<T>& ctx, T* grads, int layer);

}  // namespace recur::detail
