// kernels/projection.cuh: the element-wise parts of a projected LSTM's step (proj_size P).
//
//   c_t = f∘c_{t-1} + i∘g,   m_t = o∘tanh(c_t)   (H wide: LstmForward, writing m_t)
//   h_t = W_hr m_t                               (P wide: a GEMM of the step)
// The cell functor's j runs over H while h_{t-1} has P features, so it cannot keep h_{t-1}
// for dW_hh, and backward needs dJ/dh_t whole before W_hr^T maps it onto m_t. These two
// functors do those jobs over j < P (a.hidden = P in their arguments).
#pragma once

#include "step_args.h"

namespace recur::kernels {

// hp_t = h_{t-1} (or h0 for rows that start here): what dW_hh multiplies.
template <typename T>
struct ProjectionForward : PerElement<ProjectionForward<T>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepForward<T>& a) const {
    if (a.hp != nullptr) a.hp[b * a.ldhp + j] = prev_h(a, b, j);  // null in inference
  }
};

// dJ/dh_t = dh (through h_{t+1}) + dy_t, into dproj, the rows dW_hr and the GEMM
// dJ/dm_t = W_hr^T dJ/dh_t read; dh then restarts from zero for the recurrent GEMM's sum.
template <typename T>
struct ProjectionBackward : PerElement<ProjectionBackward<T>> {
  RECUR_HD void at(std::int64_t b, std::int64_t j, const StepBackward<T>& a) const {
    const std::int64_t idx = b * a.hidden + j;
    a.dproj[idx] = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
    a.dh[idx] = T(0);
  }
};

}  // namespace recur::kernels
