// src/pass/step_args.cpp: a step's kernel arguments and input GEMM operands.
#include "step_args.h"

namespace recur::detail {
namespace {

// What every step kernel's arguments start from: unit s's rows at its step, `hidden` wide,
// h read and written inside Y_l (row stride D*O).
template <class Args, typename T>
Args step_rows(const PassContext<T>& ctx, const UnitStep& s, std::int64_t hidden) {
  Args a;
  a.batch = ctx.tl.active[s.t];
  a.hidden = hidden;
  a.ldh = ctx.plan.output_size();
  a.active = ctx.tl.active[s.t];
  a.carried = ctx.carried(s.unit, s.t);
  return a;
}

}  // namespace

template <typename T>
StepForward<T> step_forward_args(const PassContext<T>& ctx, const UnitStep& s) {
  const Plan& plan = ctx.plan;
  const UnitOffsets& u = plan.units[s.unit];
  const UnitBuffers<T>& ub = ctx.buf.units[s.unit];
  const std::int64_t H = ctx.hidden(), t = s.t, r = ctx.tl.offset[t];
  StepForward<T> a = step_rows<StepForward<T>>(ctx, s, H);
  a.gx = ub.gx + (ub.gx_in_steps ? 0 : r * ctx.gate_rows());
  a.gh = ub.gh;
  a.g0 = ub.g0;
  a.b_ih = ctx.param(u.b_ih);
  a.b_hh = ctx.param(u.b_hh);
  a.h_prev = ctx.y_at(s.unit, ctx.prev_row(s.unit, t));
  a.h0 = ctx.y_at(s.unit, ctx.h0_row(s.unit));
  a.h = ctx.y_at(s.unit, ctx.out_row(t));
  if (ub.cs != nullptr) {
    a.c_prev = ub.cs + ctx.prev_row(s.unit, t) * H;
    a.c0 = ub.cs + ctx.h0_row(s.unit) * H;
    a.c = ub.cs + ctx.out_row(t) * H;
  }
  const bool training = ctx.pass.training;
  if (training) a.hp = ub.hp + r * ub.ldhp;
  a.ldhp = ub.ldhp;
  if (ub.saved != nullptr) a.saved = training ? ub.saved + r * H * plan.saved_slots : ub.saved;
  if (ub.rh != nullptr) a.rh = training ? ub.rh + r * H : ub.rh;
  a.ln = ctx.param(u.ln);
  if (plan.projects()) {  // the cell writes m_t; projection_forward_args keeps h_{t-1}
    a.h = ub.m + (training ? r * H : 0);
    a.ldh = H;
    a.hp = nullptr;
  }
  return a;
}

template <typename T>
StepForward<T> projection_forward_args(const PassContext<T>& ctx, const UnitStep& s) {
  StepForward<T> a = step_rows<StepForward<T>>(ctx, s, ctx.state());
  const std::int64_t t = s.t;
  a.h_prev = ctx.y_at(s.unit, ctx.prev_row(s.unit, t));
  a.h0 = ctx.y_at(s.unit, ctx.h0_row(s.unit));
  const UnitBuffers<T>& ub = ctx.buf.units[s.unit];
  if (ctx.pass.training) a.hp = ub.hp + ctx.tl.offset[t] * ub.ldhp;
  a.ldhp = ub.ldhp;
  return a;
}

template <typename T>
StepBackward<T> step_backward_args(const PassContext<T>& ctx, const UnitStep& s) {
  const Plan& plan = ctx.plan;
  const UnitOffsets& u = plan.units[s.unit];
  const UnitBuffers<T>& ub = ctx.buf.units[s.unit];
  const std::int64_t H = ctx.hidden(), t = s.t, r = ctx.tl.offset[t];
  const std::int64_t DH = plan.output_size();
  StepBackward<T> a = step_rows<StepBackward<T>>(ctx, s, H);
  a.dy = ctx.buf.acts[plan.layers[u.layer].output].grad + r * DH + u.dir * ctx.state();
  a.h = ctx.y_at(s.unit, ctx.out_row(t));
  a.h_prev = ub.hp + r * ub.ldhp;
  if (ub.cs != nullptr) {
    a.c = ub.cs + ctx.out_row(t) * H;
    a.c_prev = ub.cs + ctx.prev_row(s.unit, t) * H;
    a.c0 = ub.cs + ctx.h0_row(s.unit) * H;
  }
  if (ub.saved != nullptr) a.saved = ub.saved + r * H * plan.saved_slots;
  a.drh = ub.drh;
  a.dh = ub.dh;
  a.dc = ub.dc;
  a.dgx = ub.dgx + r * ctx.gate_rows();
  a.dgh = ub.dgh + r * ctx.gate_rows();
  a.ln = ctx.param(u.ln);
  if (ub.dpx != nullptr) a.dpx = ub.dpx + r * ctx.gate_rows();
  if (ub.dph != nullptr) a.dph = ub.dph + r * ctx.gate_rows();
  if (ub.dln != nullptr) a.dln = ub.dln + r * plan.ln_width;
  if (plan.projects()) {  // dJ/dm_t, whole: projection_backward_args adds dy in first
    a.dh = ub.dm;
    a.dy = nullptr;
  }
  return a;
}

template <typename T>
StepBackward<T> projection_backward_args(const PassContext<T>& ctx, const UnitStep& s) {
  const Plan& plan = ctx.plan;
  const UnitOffsets& u = plan.units[s.unit];
  const UnitBuffers<T>& ub = ctx.buf.units[s.unit];
  const std::int64_t t = s.t, r = ctx.tl.offset[t], O = ctx.state();
  StepBackward<T> a = step_rows<StepBackward<T>>(ctx, s, O);
  a.dy = ctx.buf.acts[plan.layers[u.layer].output].grad + r * a.ldh + u.dir * O;
  a.dh = ub.dh;
  a.dproj = ub.dproj + r * O;
  return a;
}

template <typename T>
const void* input_gemm_operand(const PassContext<T>& ctx, const UnitStep& s, bool backward,
                               int operand) {
  const UnitOffsets& u = ctx.plan.units[s.unit];
  const UnitBuffers<T>& ub = ctx.buf.units[s.unit];
  const ActivationBuffers<T>& in = ctx.buf.acts[ctx.plan.layers[u.layer].inputs[0].act];
  const std::int64_t GH = ctx.gate_rows(), r = ctx.tl.offset[s.t];
  if (operand == 0) {
    return !backward && ctx.transposed_weights() ? static_cast<const void*>(ub.w_ih_t)
                                                 : static_cast<const void*>(ctx.params + u.w_ih);
  }
  if (backward) {
    return operand == 1 ? static_cast<const void*>(ub.dgx + r * GH) : in.grad + r * in.grad_ld();
  }
  return operand == 1 ? static_cast<const void*>(in.data + r * in.ld)
                      : ub.gx + (ub.gx_in_steps ? 0 : r * GH);
}

#define RECUR_PASS_STEP_ARGS(T)                                                              \
  template StepForward<T> step_forward_args(const PassContext<T>&, const UnitStep&);         \
  template StepBackward<T> step_backward_args(const PassContext<T>&, const UnitStep&);       \
  template StepForward<T> projection_forward_args(const PassContext<T>&, const UnitStep&);   \
  template StepBackward<T> projection_backward_args(const PassContext<T>&, const UnitStep&); \
  template const void* input_gemm_operand(const PassContext<T>&, const UnitStep&, bool, int);
RECUR_PASS_STEP_ARGS(float)
RECUR_PASS_STEP_ARGS(double)
#undef RECUR_PASS_STEP_ARGS

}  // namespace recur::detail
