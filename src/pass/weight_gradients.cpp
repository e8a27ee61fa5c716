// src/pass/weight_gradients.cpp: dW and db after the backward steps.
#include "weight_gradients.h"

namespace recur::detail {

template <typename T>
void weight_gradients(const PassContext<T>& ctx, T* grads, int layer) {
  const Plan& plan = ctx.plan;
  const StackBuffers<T>& buf = ctx.buf;
  Ops<T>& ops = ctx.ops;
  const std::int64_t H = ctx.hidden(), GH = ctx.gate_rows(), DH = plan.output_size();
  const std::int64_t O = ctx.state();
  const std::int64_t R = ctx.tl.rows();
  for (int unit = 0; unit < plan.unit_count(); ++unit) {
    const UnitOffsets& u = plan.units[unit];
    if (!covers(layer, u.layer)) continue;
    const UnitBuffers<T>& ub = buf.units[unit];
    const LayerPlan& unit_layer = plan.layers[u.layer];
    if (ub.hp_beside_x) {
      // [dW_ih | dW_hh]^T = [x | h_{t-1}]^T dgx: one GEMM on the shared rows into the
      // scratch ([I+H, G*H] column-major), then each block added into its gradient.
      const ActivationBuffers<T>& x = buf.acts[0];
      const std::int64_t I = unit_layer.input_size, IH = x.ld;
      ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                   .shape(IH, GH, R)
                   .from(x.data, IH, ub.dgx, GH)
                   .into(buf.dw_scratch, IH));
      ops.add_rows(grads + u.w_ih, I, buf.dw_scratch, IH, GH, I);
      ops.add_rows(grads + u.w_hh, O, buf.dw_scratch + I, IH, GH, O);
    } else {
      // dW_ih^T[segment] += u_segment dgx^T
      for (const Segment& seg : unit_layer.inputs) {
        const ActivationBuffers<T>& act = buf.acts[seg.act];
        ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                     .shape(plan.activations[seg.act].width, GH, R)
                     .from(act.data, act.ld, ub.dgx, GH)
                     .into(grads + u.w_ih + seg.col, unit_layer.input_size)
                     .accumulate());
      }
      // dW_hh^T += hp dgh^T, over the h_{t-1} every step used
      if (ctx.reset_before_product()) {
        ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                     .shape(H, 2 * H, R)
                     .from(ub.hp, ub.ldhp, ub.dgh, GH)
                     .into(grads + u.w_hh, H)
                     .accumulate());
        ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                     .shape(H, H, R)
                     .from(ub.rh, H, ub.dgh + 2 * H, GH)
                     .into(grads + u.w_hh + 2 * H * H, H)
                     .accumulate());
      } else {
        ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                     .shape(O, GH, R)
                     .from(ub.hp, ub.ldhp, ub.dgh, GH)
                     .into(grads + u.w_hh, O)
                     .accumulate());
      }
    }
    // dW_hr^T += m dproj^T: h_t = W_hr m_t over every step's rows
    if (u.w_hr >= 0) {
      ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                   .shape(H, O, R)
                   .from(ub.m, H, ub.dproj, O)
                   .into(grads + u.w_hr, H)
                   .accumulate());
    }
    // Bias gradients: column sums. Where dgh is dgx (every cell but the linear-before-
    // reset GRU), db_hh is the same sum as db_ih: one pass over dgx writes both. A
    // layer-normalised cell's biases follow its normalisations: their rows are dpx (and
    // the GRU's dph), and dln's are those of the layer-norm parameters.
    if (u.ln >= 0) {
      if (u.b_ih >= 0 && ub.dph == nullptr) {
        ops.add_column_sums(ub.dpx, R, GH, grads + u.b_ih, grads + u.b_hh, buf.ones);
      } else if (u.b_ih >= 0) {
        ops.add_column_sums(ub.dpx, R, GH, grads + u.b_ih, nullptr, buf.ones);
        ops.add_column_sums(ub.dph, R, GH, grads + u.b_hh, nullptr, buf.ones);
      }
      ops.add_column_sums(ub.dln, R, plan.ln_width, grads + u.ln, nullptr, buf.ones);
    } else if (u.b_ih >= 0 && ub.dgh == ub.dgx) {
      ops.add_column_sums(ub.dgx, R, GH, grads + u.b_ih, grads + u.b_hh, buf.ones);
    } else if (u.b_ih >= 0) {
      ops.add_column_sums(ub.dgx, R, GH, grads + u.b_ih, nullptr, buf.ones);
      ops.add_column_sums(ub.dgh, R, GH, grads + u.b_hh, nullptr, buf.ones);
    }
  }
  for (std::size_t l = 0; l < plan.layers.size(); ++l) {
    const Join& j = plan.layers[l].join;
    if (j.kind != Connection::Highway || !covers(layer, static_cast<int>(l))) continue;
    const ActivationBuffers<T>& u = buf.acts[j.u];
    ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                 .shape(DH, DH, R)
                 .from(u.data, u.ld, buf.dgates[l], DH)
                 .into(grads + j.w_g, DH)
                 .accumulate());
    ops.add_column_sums(buf.dgates[l], R, DH, grads + j.b_g, nullptr, buf.ones);
  }
}

template void weight_gradients(const PassContext<float>&, float*, int);
template void weight_gradients(const PassContext<double>&, double*, int);

}  // namespace recur::detail
