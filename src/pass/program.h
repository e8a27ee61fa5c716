// src/pass/program.h: a pass as a program: a few kinds of operations over time ranges
// [t0, t1) (src/pass/schedule.h builds them):
//   InputProjection(l, d)  gx = W_ih u_l                  GEMMs, one per input segment
//   InitialProjection(l,d) g0 = W_hh h0 of a packed reverse unit
//   Steps(units)           per unit (l, d, t): gh = W_hh h_prev, then the fused step
//                          kernel (and with proj_size h_t = W_hr m_t); the units' GEMMs
//                          are one batched call and their kernels one launch
//   Connection(l)          u_{l+1} from y_l and u_l (residual, highway), dropout
// and, backward, StepsBackward, InputGradient and ConnectionBackward, then the weight
// gradients of all steps at once (src/pass/weight_gradients.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace recur::detail {

enum class PassOpKind {
  InitialProjection,
  InputProjection,
  Steps,
  Connection,
  StepsBackward,
  InputGradient,
  ConnectionBackward
};

struct UnitStep {
  int unit = 0;
  std::int64_t t = 0;
};

// One batched GEMM of a Steps op: the units steps[first .. first+count) (ordered so that
// units with equal active rows are adjacent) share n = their active rows; `inputs` fused
// input GEMMs follow the units' own (a wavefront's fuses_input()). `table`: where staging
// put their A, B and C pointers.
struct GemmGroup {
  std::size_t first = 0, count = 0;
  std::int64_t n = 0;
  std::size_t inputs = 0;
  std::size_t table = 0;
  std::size_t items() const { return count + inputs; }
};

struct PassOp {
  PassOpKind kind = PassOpKind::Steps;
  int layer = 0, dir = 0;
  std::int64_t t0 = 0, t1 = 0;
  std::vector<UnitStep> steps;  // Steps / StepsBackward
  // Per GEMM of the step: [0] and [1] the recurrent ones (two for reset-before-product),
  // [2] the input projections when they run inside the steps (projects_in_steps()), [3] the
  // LSTM projection's (h_t = W_hr m_t forward, dJ/dm_t = W_hr^T dJ/dh_t backward).
  std::vector<GemmGroup> groups[4];
};

using Program = std::vector<PassOp>;

}  // namespace recur::detail
