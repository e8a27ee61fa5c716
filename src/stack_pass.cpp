// src/stack_pass.cpp: the schedule and its execution, forward and backward, every cell,
// every connection.
#include "stack_pass.h"

namespace recur::detail {
namespace {

template <typename T>
Gemm<T> gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
             std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
             bool accumulate) {
  Gemm<T> g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.beta = accumulate ? T(1) : T(0);
  return g;
}

bool reset_before_product(const Plan& p) {
  return p.config.cell == CellKind::GruResetBeforeProduct;
}

StepKind step_kind(CellKind cell) {
  switch (cell) {
    case CellKind::RnnTanh: return StepKind::RnnTanh;
    case CellKind::RnnRelu: return StepKind::RnnRelu;
    case CellKind::RnnSigmoid: return StepKind::RnnSigmoid;
    case CellKind::Lstm: return StepKind::Lstm;
    case CellKind::GruLinearBeforeReset: return StepKind::GruLinearBeforeReset;
    case CellKind::GruResetBeforeProduct: return StepKind::GruRbpOutput;
  }
  return StepKind::Lstm;
}

// Unidirectional stacks run as a wavefront; see stack_pass.h.
bool wavefront(const Plan& p) { return p.directions == 1 && p.config.num_layers > 1; }

PassOp range_op(PassOpKind kind, int layer, int dir, std::int64_t t0, std::int64_t t1) {
  PassOp op;
  op.kind = kind;
  op.layer = layer;
  op.dir = dir;
  op.t0 = t0;
  op.t1 = t1;
  return op;
}

PassOp steps_op(PassOpKind kind, std::vector<UnitStep> steps) {
  PassOp op;
  op.kind = kind;
  op.steps = std::move(steps);
  return op;
}

}  // namespace

std::vector<PassOp> schedule_forward(const Plan& plan, std::int64_t T) {
  const int L = static_cast<int>(plan.config.num_layers), D = plan.directions;
  std::vector<PassOp> program;
  if (wavefront(plan)) {
    program.push_back(range_op(PassOpKind::InputProjection, 0, 0, 0, T));
    for (std::int64_t w = 0; w < T + L - 1; ++w) {
      std::vector<UnitStep> steps;
      for (int l = 0; l < L; ++l) {
        const std::int64_t t = w - l;
        if (t < 0 || t >= T) continue;
        if (l > 0) program.push_back(range_op(PassOpKind::InputProjection, l, 0, t, t + 1));
        steps.push_back({l, t});
      }
      program.push_back(steps_op(PassOpKind::Steps, steps));
      for (const UnitStep& s : steps) {
        program.push_back(range_op(PassOpKind::Connection, s.unit, 0, s.t, s.t + 1));
      }
    }
    return program;
  }
  for (int l = 0; l < L; ++l) {
    for (int d = 0; d < D; ++d)
      program.push_back(range_op(PassOpKind::InputProjection, l, d, 0, T));
    for (std::int64_t s = 0; s < T; ++s) {
      std::vector<UnitStep> steps = {{l * D, s}};
      if (D == 2) steps.push_back({l * D + 1, T - 1 - s});
      program.push_back(steps_op(PassOpKind::Steps, steps));
    }
    program.push_back(range_op(PassOpKind::Connection, l, 0, 0, T));
  }
  return program;
}

std::vector<PassOp> schedule_backward(const Plan& plan, std::int64_t T) {
  const int L = static_cast<int>(plan.config.num_layers), D = plan.directions;
  std::vector<PassOp> program;
  program.push_back(range_op(PassOpKind::ConnectionBackward, L - 1, 0, 0, T));
  if (wavefront(plan)) {
    for (std::int64_t v = 0; v < T + L - 1; ++v) {
      std::vector<UnitStep> steps;
      for (int l = L - 1; l >= 0; --l) {
        const std::int64_t t = T - 1 - (v - (L - 1 - l));
        if (t >= 0 && t < T) steps.push_back({l, t});
      }
      program.push_back(steps_op(PassOpKind::StepsBackward, steps));
      for (const UnitStep& s : steps) {
        program.push_back(range_op(PassOpKind::InputGradient, s.unit, 0, s.t, s.t + 1));
        if (s.unit > 0) {
          program.push_back(range_op(PassOpKind::ConnectionBackward, s.unit - 1, 0, s.t, s.t + 1));
        }
      }
    }
    return program;
  }
  for (int l = L - 1; l >= 0; --l) {
    for (std::int64_t s = 0; s < T; ++s) {
      std::vector<UnitStep> steps = {{l * D, T - 1 - s}};
      if (D == 2) steps.push_back({l * D + 1, s});
      program.push_back(steps_op(PassOpKind::StepsBackward, steps));
    }
    for (int d = 0; d < D; ++d) program.push_back(range_op(PassOpKind::InputGradient, l, d, 0, T));
    if (l > 0) program.push_back(range_op(PassOpKind::ConnectionBackward, l - 1, 0, 0, T));
  }
  return program;
}

// ---- execution ----

template <typename T>
T* StackPass<T>::h_at(int unit, std::int64_t slot) const {
  const UnitOffsets& u = plan_.units[unit];
  const std::int64_t DH = plan_.output_size();
  return buf_.ys[u.layer] + slot * B_ * DH + u.dir * plan_.config.hidden_size;
}

template <typename T>
StepForward<T> StackPass<T>::step_forward_args(const UnitStep& s) const {
  const UnitOffsets& u = plan_.units[s.unit];
  const UnitBuffers<T>& ub = buf_.units[s.unit];
  const std::int64_t H = plan_.config.hidden_size, BH = B_ * H, t = s.t;
  const bool forward_dir = u.dir == 0;
  StepForward<T> a;
  a.batch = B_;
  a.hidden = H;
  a.ldh = plan_.output_size();
  a.gx = ub.gx + t * B_ * plan_.gates * H;
  a.gh = ub.gh;
  a.b_ih = param(u.b_ih);
  a.b_hh = param(u.b_hh);
  a.h_prev = h_at(s.unit, forward_dir ? t : t + 2);
  a.h = h_at(s.unit, t + 1);
  if (ub.cs != nullptr) {
    a.c_prev = ub.cs + (forward_dir ? t : t + 1) * BH;
    a.c = ub.cs + (forward_dir ? t + 1 : t) * BH;
  }
  if (ub.saved != nullptr) {
    a.saved = buf_.training ? ub.saved + t * BH * plan_.saved_slots : ub.saved;
  }
  if (ub.rh != nullptr) a.rh = buf_.training ? ub.rh + t * BH : ub.rh;
  return a;
}

template <typename T>
StepBackward<T> StackPass<T>::step_backward_args(const UnitStep& s) const {
  const UnitOffsets& u = plan_.units[s.unit];
  const UnitBuffers<T>& ub = buf_.units[s.unit];
  const std::int64_t H = plan_.config.hidden_size, BH = B_ * H, t = s.t, DH = plan_.output_size();
  const bool forward_dir = u.dir == 0;
  StepBackward<T> a;
  a.batch = B_;
  a.hidden = H;
  a.ldh = DH;
  a.dy = buf_.acts[plan_.layers[u.layer].output].grad + t * B_ * DH + u.dir * H;
  a.h = h_at(s.unit, t + 1);
  a.h_prev = h_at(s.unit, forward_dir ? t : t + 2);
  if (ub.cs != nullptr) {
    a.c = ub.cs + (forward_dir ? t + 1 : t) * BH;
    a.c_prev = ub.cs + (forward_dir ? t : t + 1) * BH;
  }
  if (ub.saved != nullptr) a.saved = ub.saved + t * BH * plan_.saved_slots;
  a.drh = ub.drh;
  a.dh = ub.dh;
  a.dc = ub.dc;
  a.dgx = ub.dgx + t * B_ * plan_.gates * H;
  a.dgh = ub.dgh + t * B_ * plan_.gates * H;
  return a;
}

// Builds the pointer tables of every batched GEMM in the program and stages them once.
// Per Steps op and per GEMM g of its step: count A pointers, count B, count C.
template <typename T>
void StackPass<T>::stage(std::vector<PassOp>& program, bool backward) {
  const std::int64_t H = plan_.config.hidden_size;
  const bool rbp = reset_before_product(plan_);
  table_.clear();
  for (PassOp& op : program) {
    if (op.kind != PassOpKind::Steps && op.kind != PassOpKind::StepsBackward) continue;
    op.table = table_.size();
    auto push = [&](auto a_of, auto b_of, auto c_of) {
      for (const UnitStep& s : op.steps) table_.push_back(a_of(s));
      for (const UnitStep& s : op.steps) table_.push_back(b_of(s));
      for (const UnitStep& s : op.steps) table_.push_back(c_of(s));
    };
    auto w_hh = [&](std::int64_t offset) {
      return [this, offset](const UnitStep& s) -> const void* {
        return params_ + plan_.units[s.unit].w_hh + offset;
      };
    };
    if (!backward) {
      auto h_prev = [&](const UnitStep& s) -> const void* { return step_forward_args(s).h_prev; };
      auto gh = [&](std::int64_t offset) {
        return [this, offset](const UnitStep& s) -> const void* {
          return buf_.units[s.unit].gh + offset;
        };
      };
      push(w_hh(0), h_prev, gh(0));
      if (rbp) {
        auto rh = [&](const UnitStep& s) -> const void* { return step_forward_args(s).rh; };
        push(w_hh(2 * H * H), rh, gh(2 * H));
      }
    } else {
      auto dgx = [&](std::int64_t offset) {
        return [this, offset](const UnitStep& s) -> const void* {
          return step_backward_args(s).dgx + offset;
        };
      };
      auto dgh = [&](const UnitStep& s) -> const void* { return step_backward_args(s).dgh; };
      auto dh = [&](const UnitStep& s) -> const void* { return buf_.units[s.unit].dh; };
      auto drh = [&](const UnitStep& s) -> const void* { return buf_.units[s.unit].drh; };
      if (rbp) {
        push(w_hh(2 * H * H), dgx(2 * H), drh);
        push(w_hh(0), dgx(0), dh);
      } else {
        push(w_hh(0), dgh, dh);
      }
    }
  }
  staged_ = ops_.stage_pointers(table_.data(), table_.size());
}

namespace {

// The batched GEMM number g of a Steps op whose tables start at `table`.
template <typename T>
GemmBatch<T> batch_at(const void* const* staged, std::size_t table, int g, int count) {
  GemmBatch<T> b;
  const void* const* base = staged + table + static_cast<std::size_t>(g) * 3 * count;
  b.a = reinterpret_cast<const T* const*>(base);
  b.b = reinterpret_cast<const T* const*>(base + count);
  b.c = reinterpret_cast<T* const*>(const_cast<void* const*>(base + 2 * count));
  b.count = count;
  return b;
}

}  // namespace

template <typename T>
void StackPass<T>::input_projection(const PassOp& op) {
  const LayerPlan& layer = plan_.layers[op.layer];
  const UnitOffsets& u = plan_.units[op.layer * plan_.directions + op.dir];
  const UnitBuffers<T>& ub = buf_.units[op.layer * plan_.directions + op.dir];
  const std::int64_t GH = plan_.gates * plan_.config.hidden_size, rows = (op.t1 - op.t0) * B_;
  for (std::size_t i = 0; i < layer.inputs.size(); ++i) {
    const Segment& seg = layer.inputs[i];
    const ActivationBuffers<T>& act = buf_.acts[seg.act];
    ops_.gemm(gemm<T>(Trans::T, Trans::N, GH, rows, plan_.activations[seg.act].width,
                      params_ + u.w_ih + seg.col, layer.input_size, act.data + op.t0 * B_ * act.ld,
                      act.ld, ub.gx + op.t0 * B_ * GH, GH, i > 0));
  }
}

template <typename T>
void StackPass<T>::steps_forward(const PassOp& op) {
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H;
  const std::int64_t DH = plan_.output_size();
  const int count = static_cast<int>(op.steps.size());
  std::vector<StepForward<T>> args;
  args.reserve(op.steps.size());
  for (const UnitStep& s : op.steps) args.push_back(step_forward_args(s));

  GemmBatch<T> g = batch_at<T>(staged_, op.table, 0, count);
  g.trans_a = Trans::T;
  g.trans_b = Trans::N;
  g.n = B_;
  g.k = H;
  g.lda = H;
  g.ldb = DH;
  g.ldc = GH;
  if (reset_before_product(plan_)) {
    g.m = 2 * H;  // gh[r, z] = W_h[r, z] h_prev
    ops_.gemm_batched(g);
    ops_.step_forward(StepKind::GruRbpGates, args.data(), count);
    GemmBatch<T> n = batch_at<T>(staged_, op.table, 1, count);  // gh[n] = W_hn (r*h_prev)
    n.trans_a = Trans::T;
    n.m = H;
    n.n = B_;
    n.k = H;
    n.lda = H;
    n.ldb = H;
    n.ldc = GH;
    ops_.gemm_batched(n);
    ops_.step_forward(StepKind::GruRbpOutput, args.data(), count);
  } else {
    g.m = GH;
    ops_.gemm_batched(g);
    ops_.step_forward(step_kind(plan_.config.cell), args.data(), count);
  }
}

template <typename T>
void StackPass<T>::steps_backward(const PassOp& op) {
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H;
  const int count = static_cast<int>(op.steps.size());
  std::vector<StepBackward<T>> args;
  args.reserve(op.steps.size());
  for (const UnitStep& s : op.steps) args.push_back(step_backward_args(s));

  if (reset_before_product(plan_)) {
    ops_.step_backward(StepKind::GruRbpOutput, args.data(), count);
    GemmBatch<T> r = batch_at<T>(staged_, op.table, 0, count);  // drh = W_hn^T dgx[n]
    r.m = H;
    r.n = B_;
    r.k = H;
    r.lda = H;
    r.ldb = GH;
    r.ldc = H;
    ops_.gemm_batched(r);
    ops_.step_backward(StepKind::GruRbpGates, args.data(), count);
    GemmBatch<T> d = batch_at<T>(staged_, op.table, 1, count);  // dh += W_h[r,z]^T dgx[r,z]
    d.m = H;
    d.n = B_;
    d.k = 2 * H;
    d.lda = H;
    d.ldb = GH;
    d.ldc = H;
    d.beta = T(1);
    ops_.gemm_batched(d);
  } else {
    ops_.step_backward(step_kind(plan_.config.cell), args.data(), count);
    GemmBatch<T> d = batch_at<T>(staged_, op.table, 0, count);  // dh += W_hh^T dgh
    d.m = H;
    d.n = B_;
    d.k = GH;
    d.lda = H;
    d.ldb = GH;
    d.ldc = H;
    d.beta = T(1);
    ops_.gemm_batched(d);
  }
}

template <typename T>
void StackPass<T>::connection_forward(const PassOp& op) {
  const Join& j = plan_.layers[op.layer].join;
  if (j.kind == Connection::None) return;
  const std::int64_t DH = plan_.output_size(), r0 = op.t0 * B_;
  const ActivationBuffers<T>& y = buf_.acts[j.y];
  const ActivationBuffers<T>& u = buf_.acts[j.u];
  ConnectionArgs<T> a;
  a.rows = (op.t1 - op.t0) * B_;
  a.width = DH;
  a.y = y.data + r0 * y.ld;
  a.ldy = y.ld;
  a.u = u.data + r0 * u.ld;
  a.ldu = u.ld;
  a.out = buf_.acts[j.out].data + r0 * DH;
  if (j.kind == Connection::Residual) {
    ops_.connection(ConnectionKind::ResidualForward, a);
    return;
  }
  a.gate = buf_.gates[op.layer] + r0 * DH;
  a.bias = params_ + j.b_g;
  ops_.gemm(gemm<T>(Trans::T, Trans::N, DH, a.rows, DH, params_ + j.w_g, DH, a.u, u.ld, a.gate, DH,
                    false));  // z = W_g u
  ops_.connection(ConnectionKind::HighwayForward, a);
}

template <typename T>
void StackPass<T>::connection_backward(const PassOp& op) {
  const Join& j = plan_.layers[op.layer].join;
  if (j.kind == Connection::None) return;
  const std::int64_t DH = plan_.output_size(), r0 = op.t0 * B_;
  const ActivationBuffers<T>& y = buf_.acts[j.y];
  const ActivationBuffers<T>& u = buf_.acts[j.u];
  ConnectionArgs<T> a;
  a.rows = (op.t1 - op.t0) * B_;
  a.width = DH;
  a.y = y.data + r0 * y.ld;
  a.ldy = y.ld;
  a.u = u.data + r0 * u.ld;
  a.ldu = u.ld;
  a.dout = buf_.acts[j.out].grad + r0 * DH;
  a.dy = y.grad + r0 * y.ld;
  a.du = u.grad + r0 * u.ld;
  if (j.kind == Connection::Residual) {
    ops_.connection(ConnectionKind::ResidualBackward, a);
    return;
  }
  a.gate = buf_.gates[op.layer] + r0 * DH;
  a.dz = buf_.dgates[op.layer] + r0 * DH;
  ops_.connection(ConnectionKind::HighwayBackward, a);
  // du += W_g^T dz
  ops_.gemm(
      gemm<T>(Trans::N, Trans::N, DH, a.rows, DH, params_ + j.w_g, DH, a.dz, DH, a.du, u.ld, true));
}

template <typename T>
void StackPass<T>::input_gradient(const PassOp& op) {
  const LayerPlan& layer = plan_.layers[op.layer];
  const UnitOffsets& u = plan_.units[op.layer * plan_.directions + op.dir];
  const UnitBuffers<T>& ub = buf_.units[op.layer * plan_.directions + op.dir];
  const std::int64_t GH = plan_.gates * plan_.config.hidden_size, rows = (op.t1 - op.t0) * B_;
  for (const Segment& seg : layer.inputs) {
    const ActivationBuffers<T>& act = buf_.acts[seg.act];
    // d(segment) += W_ih[:, segment]^T dgx
    ops_.gemm(gemm<T>(Trans::N, Trans::N, plan_.activations[seg.act].width, rows, GH,
                      params_ + u.w_ih + seg.col, layer.input_size, ub.dgx + op.t0 * B_ * GH, GH,
                      act.grad + op.t0 * B_ * act.ld, act.ld, true));
  }
}

template <typename T>
void StackPass<T>::weight_gradients(T* grads) {
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H, DH = plan_.output_size();
  const std::int64_t TB = T_ * B_;
  for (int unit = 0; unit < plan_.unit_count(); ++unit) {
    const UnitOffsets& u = plan_.units[unit];
    const UnitBuffers<T>& ub = buf_.units[unit];
    const LayerPlan& layer = plan_.layers[u.layer];
    // dW_ih^T[segment] += u_segment dgx^T
    for (const Segment& seg : layer.inputs) {
      const ActivationBuffers<T>& act = buf_.acts[seg.act];
      ops_.gemm(gemm<T>(Trans::N, Trans::T, plan_.activations[seg.act].width, GH, TB, act.data,
                        act.ld, ub.dgx, GH, grads + u.w_ih + seg.col, layer.input_size, true));
    }
    // dW_hh^T += h_prev dgh^T, all h_prev of the direction as one matrix (see stack_pass.h)
    const T* h_prev = h_at(unit, u.dir == 0 ? 0 : 2);
    if (reset_before_product(plan_)) {
      ops_.gemm(gemm<T>(Trans::N, Trans::T, H, 2 * H, TB, h_prev, DH, ub.dgx, GH, grads + u.w_hh, H,
                        true));
      ops_.gemm(gemm<T>(Trans::N, Trans::T, H, H, TB, ub.rh, H, ub.dgx + 2 * H, GH,
                        grads + u.w_hh + 2 * H * H, H, true));
    } else {
      ops_.gemm(
          gemm<T>(Trans::N, Trans::T, H, GH, TB, h_prev, DH, ub.dgh, GH, grads + u.w_hh, H, true));
    }
    if (u.b_ih >= 0) {  // bias gradients: column sums as GEMMs with a ones vector
      ops_.gemm(gemm<T>(Trans::N, Trans::N, GH, 1, TB, ub.dgx, GH, buf_.ones, TB, grads + u.b_ih,
                        GH, true));
      ops_.gemm(gemm<T>(Trans::N, Trans::N, GH, 1, TB, ub.dgh, GH, buf_.ones, TB, grads + u.b_hh,
                        GH, true));
    }
  }
  for (std::size_t l = 0; l < plan_.layers.size(); ++l) {
    const Join& j = plan_.layers[l].join;
    if (j.kind != Connection::Highway) continue;
    const ActivationBuffers<T>& u = buf_.acts[j.u];
    ops_.gemm(gemm<T>(Trans::N, Trans::T, DH, DH, TB, u.data, u.ld, buf_.dgates[l], DH,
                      grads + j.w_g, DH, true));
    ops_.gemm(gemm<T>(Trans::N, Trans::N, DH, 1, TB, buf_.dgates[l], DH, buf_.ones, TB,
                      grads + j.b_g, DH, true));
  }
}

template <typename T>
void StackPass<T>::forward() {
  std::vector<PassOp> program = schedule_forward(plan_, T_);
  stage(program, false);
  for (const PassOp& op : program) {
    switch (op.kind) {
      case PassOpKind::InputProjection: input_projection(op); break;
      case PassOpKind::Steps: steps_forward(op); break;
      case PassOpKind::Connection: connection_forward(op); break;
      default: break;
    }
  }
}

template <typename T>
void StackPass<T>::backward(T* grads) {
  std::vector<PassOp> program = schedule_backward(plan_, T_);
  stage(program, true);
  for (const PassOp& op : program) {
    switch (op.kind) {
      case PassOpKind::StepsBackward: steps_backward(op); break;
      case PassOpKind::InputGradient: input_gradient(op); break;
      case PassOpKind::ConnectionBackward: connection_backward(op); break;
      default: break;
    }
  }
  weight_gradients(grads);
}

template class StackPass<float>;
template class StackPass<double>;

}  // namespace recur::detail
