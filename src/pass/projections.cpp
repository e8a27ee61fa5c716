// src/pass/projections.cpp: input projections, input gradients and g0.
#include "projections.h"

namespace recur::detail {
namespace {

// The unit a range op works on, and its rows: from r0, n of them.
template <typename T>
struct RangeUnit {
  const LayerPlan& layer;
  const UnitOffsets& u;
  const UnitBuffers<T>& ub;
  std::int64_t r0, n;
};

template <typename T>
RangeUnit<T> range_unit(const PassContext<T>& ctx, const PassOp& op) {
  const int unit = op.layer * ctx.plan.directions + op.dir;
  return {ctx.plan.layers[op.layer], ctx.plan.units[unit], ctx.buf.units[unit],
          ctx.tl.offset[op.t0], ctx.rows(op.t0, op.t1)};
}

}  // namespace

template <typename T>
void initial_projection(const PassContext<T>& ctx, const PassOp& op) {
  const int unit = op.layer * ctx.plan.directions + op.dir;
  const std::int64_t H = ctx.hidden(), GH = ctx.gate_rows(), O = ctx.state();
  const std::int64_t m = ctx.reset_before_product() ? 2 * H : GH;
  const T* h0 = ctx.y_at(unit, ctx.h0_row(unit));
  const std::int64_t DH = ctx.plan.output_size(), B = ctx.batch();
  T* g0 = ctx.buf.units[unit].g0;
  if (ctx.transposed_weights()) {
    ctx.ops.gemm(Gemm<T>::op(Trans::N, Trans::N)
                     .shape(m, B, O)
                     .from(ctx.buf.units[unit].w_t, GH, h0, DH)
                     .into(g0, GH));
  } else {
    ctx.ops.gemm(Gemm<T>::op(Trans::T, Trans::N)
                     .shape(m, B, O)
                     .from(ctx.params + ctx.plan.units[unit].w_hh, O, h0, DH)
                     .into(g0, GH));
  }
}

template <typename T>
void input_projection(const PassContext<T>& ctx, const PassOp& op) {
  const auto [layer, u, ub, r0, n] = range_unit(ctx, op);
  const std::int64_t GH = ctx.gate_rows();
  for (std::size_t i = 0; i < layer.inputs.size(); ++i) {
    const Segment& seg = layer.inputs[i];
    const ActivationBuffers<T>& act = ctx.buf.acts[seg.act];
    const std::int64_t k = ctx.plan.activations[seg.act].width;
    const T* u_rows = act.data + r0 * act.ld;
    if (ub.w_ih_t != nullptr) {  // W_ih^T: the segment's columns of W_ih are rows here
      ctx.ops.gemm(Gemm<T>::op(Trans::N, Trans::N)
                       .shape(GH, n, k)
                       .from(ub.w_ih_t + seg.col * GH, GH, u_rows, act.ld)
                       .into(ub.gx + r0 * GH, GH)
                       .accumulate(i > 0));
    } else {
      ctx.ops.gemm(Gemm<T>::op(Trans::T, Trans::N)
                       .shape(GH, n, k)
                       .from(ctx.params + u.w_ih + seg.col, layer.input_size, u_rows, act.ld)
                       .into(ub.gx + r0 * GH, GH)
                       .accumulate(i > 0));
    }
  }
}

template <typename T>
void input_gradient(const PassContext<T>& ctx, const PassOp& op) {
  const auto [layer, u, ub, r0, n] = range_unit(ctx, op);
  const std::int64_t GH = ctx.gate_rows();
  for (const Segment& seg : layer.inputs) {
    const ActivationBuffers<T>& act = ctx.buf.acts[seg.act];
    // d(segment) += W_ih[:, segment]^T dgx
    ctx.ops.gemm(Gemm<T>::op(Trans::N, Trans::N)
                     .shape(ctx.plan.activations[seg.act].width, n, GH)
                     .from(ctx.params + u.w_ih + seg.col, layer.input_size, ub.dgx + r0 * GH, GH)
                     .into(act.grad + r0 * act.grad_ld(), act.grad_ld())
                     .accumulate());
  }
}

#define RECUR_PASS_PROJECTIONS(T)                                         \
  template void initial_projection(const PassContext<T>&, const PassOp&); \
  template void input_projection(const PassContext<T>&, const PassOp&);   \
  template void input_gradient(const PassContext<T>&, const PassOp&);
RECUR_PASS_PROJECTIONS(float)
RECUR_PASS_PROJECTIONS(double)
#undef RECUR_PASS_PROJECTIONS

}  // namespace recur::detail
