// src/pass/connections.cpp: dropout and joins between layers.
#include "connections.h"

namespace recur::detail {
namespace {

// The rows of op's range of activation `y` (D*H wide), as a connection kernel reads them.
template <typename T>
ConnectionArgs<T> range_args(const PassContext<T>& ctx, const PassOp& op, int y_act) {
  const ActivationBuffers<T>& y = ctx.buf.acts[y_act];
  ConnectionArgs<T> a;
  a.rows = ctx.rows(op.t0, op.t1);
  a.width = ctx.plan.output_size();
  a.y = y.data + ctx.tl.offset[op.t0] * y.ld;
  a.ldy = y.ld;
  return a;
}

// The rows of op's range that a join reads: y_l and u_l (and the highway gate).
template <typename T>
ConnectionArgs<T> join_args(const PassContext<T>& ctx, const PassOp& op) {
  const Join& j = ctx.plan.layers[op.layer].join;
  const std::int64_t DH = ctx.plan.output_size(), r0 = ctx.tl.offset[op.t0];
  const ActivationBuffers<T>& u = ctx.buf.acts[j.u];
  ConnectionArgs<T> a = range_args(ctx, op, j.y);
  a.u = u.data + r0 * u.ld;
  a.ldu = u.ld;
  if (j.kind == Connection::Highway) a.gate = ctx.buf.gates[op.layer] + r0 * DH;
  return a;
}

// Dropout of layer op.layer's output into the activation the next layers read; the masks
// are keyed by the pass's stream and the layer.
template <typename T>
void dropout(const PassContext<T>& ctx, const PassOp& op, bool backward) {
  if (!ctx.drops_out(op.layer)) return;
  const LayerPlan& layer = ctx.plan.layers[op.layer];
  const std::int64_t DH = ctx.plan.output_size(), r0 = ctx.tl.offset[op.t0];
  const ActivationBuffers<T>& y = ctx.buf.acts[layer.output];
  const ActivationBuffers<T>& next_input = ctx.buf.acts[layer.next_input];
  ConnectionArgs<T> a = range_args(ctx, op, layer.output);
  a.p = static_cast<T>(ctx.plan.config.dropout);
  a.seed = ctx.buf.dropout_seed;
  a.stream = ctx.buf.dropout_stream * static_cast<std::uint64_t>(ctx.plan.layers.size()) +
             static_cast<std::uint64_t>(op.layer);
  a.row0 = ctx.buf.dropout_row0 + r0;
  if (backward) {
    a.dout = next_input.grad + r0 * DH;
    a.dy = y.grad + r0 * y.grad_ld();
    ctx.ops.connection(ConnectionKind::DropoutBackward, a);
  } else {
    a.out = next_input.data + r0 * DH;
    ctx.ops.connection(ConnectionKind::DropoutForward, a);
  }
}

}  // namespace

template <typename T>
void connection_forward(const PassContext<T>& ctx, const PassOp& op) {
  dropout(ctx, op, false);
  const Join& j = ctx.plan.layers[op.layer].join;
  if (j.kind == Connection::None) return;
  ConnectionArgs<T> a = join_args(ctx, op);
  a.out = ctx.buf.acts[j.out].data + ctx.tl.offset[op.t0] * a.width;
  if (j.kind == Connection::Residual) {
    ctx.ops.connection(ConnectionKind::ResidualForward, a);
    return;
  }
  a.bias = ctx.params + j.b_g;
  const std::int64_t DH = a.width;
  ctx.ops.gemm(Gemm<T>::op(Trans::T, Trans::N)
                   .shape(DH, a.rows, DH)
                   .from(ctx.params + j.w_g, DH, a.u, a.ldu)
                   .into(a.gate, DH));  // z = W_g u
  ctx.ops.connection(ConnectionKind::HighwayForward, a);
}

template <typename T>
void connection_backward(const PassContext<T>& ctx, const PassOp& op) {
  const Join& j = ctx.plan.layers[op.layer].join;
  if (j.kind != Connection::None) {
    const std::int64_t r0 = ctx.tl.offset[op.t0];
    ConnectionArgs<T> a = join_args(ctx, op);
    const std::int64_t DH = a.width;
    a.dout = ctx.buf.acts[j.out].grad + r0 * DH;
    a.dy = ctx.buf.acts[j.y].grad + r0 * a.ldy;
    a.du = ctx.buf.acts[j.u].grad + r0 * a.ldu;
    if (j.kind == Connection::Residual) {
      ctx.ops.connection(ConnectionKind::ResidualBackward, a);
    } else {
      a.dz = ctx.buf.dgates[op.layer] + r0 * DH;
      ctx.ops.connection(ConnectionKind::HighwayBackward, a);
      // du += W_g^T dz
      ctx.ops.gemm(Gemm<T>::op(Trans::N, Trans::N)
                       .shape(DH, a.rows, DH)
                       .from(ctx.params + j.w_g, DH, a.dz, DH)
                       .into(a.du, a.ldu)
                       .accumulate());
    }
  }
  dropout(ctx, op, true);
}

#define RECUR_PASS_CONNECTIONS(T)                                         \
  template void connection_forward(const PassContext<T>&, const PassOp&); \
  template void connection_backward(const PassContext<T>&, const PassOp&);
RECUR_PASS_CONNECTIONS(float)
RECUR_PASS_CONNECTIONS(double)
#undef RECUR_PASS_CONNECTIONS

}  // namespace recur::detail
