// src/stack_pass.cpp: the schedule and its execution, forward and backward, every cell,
// every connection.
#include "stack_pass.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "env_switch.h"

namespace recur::detail {
namespace {

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

std::atomic<std::int64_t> wavefront_passes_so_far{0};        // wavefront_passes()
std::atomic<std::int64_t> fused_wave_gemms_so_far{0};        // fused_wave_gemms()
std::atomic<std::int64_t> step_projection_passes_so_far{0};  // step_projection_passes()

std::atomic<bool>& wave_fusion_switch() {
  static std::atomic<bool> on{env_switch("RECUR_WAVE_FUSION", true)};
  return on;
}

std::atomic<bool>& step_projection_switch() {
  static std::atomic<bool> on{env_switch("RECUR_STEP_PROJECTION", true)};
  return on;
}

}  // namespace

bool step_projection() { return step_projection_switch().load(); }
void set_step_projection(bool enabled) { step_projection_switch().store(enabled); }
std::int64_t step_projection_passes() { return step_projection_passes_so_far.load(); }
std::int64_t wavefront_passes() { return wavefront_passes_so_far.load(); }
std::int64_t fused_wave_gemms() { return fused_wave_gemms_so_far.load(); }
bool wave_fusion() { return wave_fusion_switch().load(); }
void set_wave_fusion(bool enabled) { wave_fusion_switch().store(enabled); }

bool fuses_input(const Plan& p, int layer) {
  if (!wave_fusion() || layer == 0 || reset_before_product(p)) return false;
  const LayerPlan& l = p.layers[layer];
  const std::int64_t H = p.config.hidden_size;
  return l.inputs.size() == 1 && l.input_size == H && p.activations[l.inputs[0].act].width == H;
}

// 2048 unless RECUR_X_HP_MIN_ROWS says otherwise (a larger number than any batch's rows
// turns the layout off, for comparisons).
std::atomic<std::int64_t>& hp_beside_x_rows() {
  static std::atomic<std::int64_t> rows{[] {
    const char* env = std::getenv("RECUR_X_HP_MIN_ROWS");
    return env != nullptr ? std::atoll(env) : std::int64_t{2048};
  }()};
  return rows;
}
std::int64_t hp_beside_x_min_rows() { return hp_beside_x_rows().load(); }
void set_hp_beside_x_min_rows(std::int64_t rows) { hp_beside_x_rows().store(rows); }

bool hp_beside_x(const Plan& p, std::int64_t rows) {
  // Below a few thousand rows adding the scratch in costs more than the GEMM saves.
  if (p.config.cell != CellKind::Lstm || rows < hp_beside_x_min_rows()) return false;
  const Join& j = p.layers[0].join;
  return j.kind == Connection::None || j.u != 0;
}

bool wavefront(const Plan& p, bool backend_runs_wavefronts) {
  return backend_runs_wavefronts && p.directions == 1 && p.config.num_layers > 1;
}

StepWeights step_weights(const Plan& plan, const Timeline& timeline, StepBackend backend) {
  if (timeline.steps < 4 || timeline.batch < 16) return StepWeights::AsStored;
  const bool packs = backend.packs && (!reset_before_product(plan) || backend.row_runs);
  return packs ? StepWeights::Packed : StepWeights::Transposed;
}

std::vector<PassOp> schedule_forward(const Plan& plan, const Timeline& tl, bool wavefront,
                                     const std::vector<bool>& projected_in_steps) {
  const int L = static_cast<int>(plan.config.num_layers), D = plan.directions;
  const std::int64_t T = tl.steps;
  std::vector<PassOp> program;
  if (wavefront) {
    program.push_back(range_op(PassOpKind::InputProjection, 0, 0, 0, T));
    for (std::int64_t w = 0; w < T + L - 1; ++w) {
      std::vector<UnitStep> steps;
      for (int l = 0; l < L; ++l) {
        const std::int64_t t = w - l;
        if (t < 0 || t >= T) continue;
        if (l > 0 && !fuses_input(plan, l))
          program.push_back(range_op(PassOpKind::InputProjection, l, 0, t, t + 1));
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
    for (int d = 0; d < D; ++d) {
      if (!projected_in_steps[l])
        program.push_back(range_op(PassOpKind::InputProjection, l, d, 0, T));
      // Packed reverse passes start sequences mid-way: their first W_hh h0, ahead.
      if (d == 1 && !tl.uniform)
        program.push_back(range_op(PassOpKind::InitialProjection, l, d, 0, T));
    }
    for (std::int64_t s = 0; s < T; ++s) {
      std::vector<UnitStep> steps = {{l * D, s}};
      if (D == 2) steps.push_back({l * D + 1, T - 1 - s});
      program.push_back(steps_op(PassOpKind::Steps, steps));
    }
    program.push_back(range_op(PassOpKind::Connection, l, 0, 0, T));
  }
  return program;
}

std::vector<PassOp> schedule_backward(const Plan& plan, const Timeline& tl, bool wavefront) {
  const int L = static_cast<int>(plan.config.num_layers), D = plan.directions;
  const std::int64_t T = tl.steps;
  std::vector<PassOp> program;
  program.push_back(range_op(PassOpKind::ConnectionBackward, L - 1, 0, 0, T));
  if (wavefront) {
    for (std::int64_t v = 0; v < T + L - 1; ++v) {
      std::vector<UnitStep> steps;
      for (int l = L - 1; l >= 0; --l) {
        const std::int64_t t = T - 1 - (v - (L - 1 - l));
        if (t >= 0 && t < T) steps.push_back({l, t});
      }
      program.push_back(steps_op(PassOpKind::StepsBackward, steps));
      for (const UnitStep& s : steps) {
        if (s.unit == 0) continue;  // dx: below
        if (!fuses_input(plan, s.unit))
          program.push_back(range_op(PassOpKind::InputGradient, s.unit, 0, s.t, s.t + 1));
        program.push_back(range_op(PassOpKind::ConnectionBackward, s.unit - 1, 0, s.t, s.t + 1));
      }
    }
    // Nothing in the pass reads layer 0's input gradient (dx), so it is one GEMM over all
    // steps at the end, not one of B columns per wave.
    program.push_back(range_op(PassOpKind::InputGradient, 0, 0, 0, T));
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
std::int64_t StackPass<T>::prev_row(int unit, std::int64_t t) const {
  if (plan_.units[unit].dir == 0) return t == 0 ? 0 : out_row(t - 1);
  return out_row(t + 1);  // past the last step this is the reverse h0 block
}

template <typename T>
std::int64_t StackPass<T>::h0_row(int unit) const {
  return plan_.units[unit].dir == 0 ? 0 : B_ + tl_.rows();
}

template <typename T>
T* StackPass<T>::y_at(int unit, std::int64_t row) const {
  const UnitOffsets& u = plan_.units[unit];
  return buf_.ys[u.layer] + row * plan_.output_size() + u.dir * plan_.config.hidden_size;
}

// Rows of step t that continue from the previous block; the rest start here (packed
// reverse direction only).
template <typename T>
std::int64_t StackPass<T>::carried(int unit, std::int64_t t) const {
  if (plan_.units[unit].dir == 0) return tl_.active[t];
  return std::min(tl_.active[t], tl_.active[t + 1]);
}

template <typename T>
StepForward<T> StackPass<T>::step_forward_args(const UnitStep& s) const {
  const UnitOffsets& u = plan_.units[s.unit];
  const UnitBuffers<T>& ub = buf_.units[s.unit];
  const std::int64_t H = plan_.config.hidden_size, t = s.t, r = tl_.offset[t];
  StepForward<T> a;
  a.batch = tl_.active[t];
  a.hidden = H;
  a.ldh = plan_.output_size();
  a.active = tl_.active[t];
  a.carried = carried(s.unit, t);
  a.gx = ub.gx + (ub.gx_in_steps ? 0 : r * plan_.gates * H);
  a.gh = ub.gh;
  a.g0 = ub.g0;
  a.b_ih = param(u.b_ih);
  a.b_hh = param(u.b_hh);
  a.h_prev = y_at(s.unit, prev_row(s.unit, t));
  a.h0 = y_at(s.unit, h0_row(s.unit));
  a.h = y_at(s.unit, out_row(t));
  if (ub.cs != nullptr) {
    a.c_prev = ub.cs + prev_row(s.unit, t) * H;
    a.c0 = ub.cs + h0_row(s.unit) * H;
    a.c = ub.cs + out_row(t) * H;
  }
  if (buf_.training) a.hp = ub.hp + r * ub.ldhp;
  a.ldhp = ub.ldhp;
  if (ub.saved != nullptr) {
    a.saved = buf_.training ? ub.saved + r * H * plan_.saved_slots : ub.saved;
  }
  if (ub.rh != nullptr) a.rh = buf_.training ? ub.rh + r * H : ub.rh;
  return a;
}

template <typename T>
StepBackward<T> StackPass<T>::step_backward_args(const UnitStep& s) const {
  const UnitOffsets& u = plan_.units[s.unit];
  const UnitBuffers<T>& ub = buf_.units[s.unit];
  const std::int64_t H = plan_.config.hidden_size, t = s.t, r = tl_.offset[t];
  const std::int64_t DH = plan_.output_size();
  StepBackward<T> a;
  a.batch = tl_.active[t];
  a.hidden = H;
  a.ldh = DH;
  a.active = tl_.active[t];
  a.carried = carried(s.unit, t);
  a.dy = buf_.acts[plan_.layers[u.layer].output].grad + r * DH + u.dir * H;
  a.h = y_at(s.unit, out_row(t));
  a.h_prev = ub.hp + r * ub.ldhp;
  if (ub.cs != nullptr) {
    a.c = ub.cs + out_row(t) * H;
    a.c_prev = ub.cs + prev_row(s.unit, t) * H;
    a.c0 = ub.cs + h0_row(s.unit) * H;
  }
  if (ub.saved != nullptr) a.saved = ub.saved + r * H * plan_.saved_slots;
  a.drh = ub.drh;
  a.dh = ub.dh;
  a.dc = ub.dc;
  a.dgx = ub.dgx + r * plan_.gates * H;
  a.dgh = ub.dgh + r * plan_.gates * H;
  return a;
}

// Operand 0 (A), 1 (B) or 2 (C) of unit s's per-step input GEMM, where a wave fuses it or
// the step projects its own input (projects_in_steps()): forward gx_t = W_ih u_t, with A
// as the step's recurrent GEMMs read W_hh (w_ih_t where they read w_t); backward du_t +=
// W_ih^T dgx_t.
template <typename T>
const void* StackPass<T>::input_gemm_operand(const UnitStep& s, bool backward, int operand) const {
  const UnitOffsets& u = plan_.units[s.unit];
  const UnitBuffers<T>& ub = buf_.units[s.unit];
  const ActivationBuffers<T>& in = buf_.acts[plan_.layers[u.layer].inputs[0].act];
  const std::int64_t GH = plan_.gates * plan_.config.hidden_size, r = tl_.offset[s.t];
  if (operand == 0) {
    return !backward && transposed_weights() ? static_cast<const void*>(ub.w_ih_t)
                                             : static_cast<const void*>(params_ + u.w_ih);
  }
  if (backward) {
    return operand == 1 ? static_cast<const void*>(ub.dgx + r * GH) : in.grad + r * in.grad_ld();
  }
  return operand == 1 ? static_cast<const void*>(in.data + r * in.ld)
                      : ub.gx + (ub.gx_in_steps ? 0 : r * GH);
}

// Builds the pointer tables of every batched GEMM in the program and stages them once.
// A Steps op's units are grouped by their active rows (the GEMMs' n); per group and GEMM:
// count A pointers, count B, count C.
template <typename T>
void StackPass<T>::stage(std::vector<PassOp>& program, bool backward) {
  const std::int64_t H = plan_.config.hidden_size;
  const bool rbp = reset_before_product(plan_);
  table_.clear();
  for (PassOp& op : program) {
    if (op.kind != PassOpKind::Steps && op.kind != PassOpKind::StepsBackward) continue;
    std::stable_sort(op.steps.begin(), op.steps.end(), [&](const UnitStep& x, const UnitStep& y) {
      return tl_.active[x.t] > tl_.active[y.t];
    });
    std::vector<GemmGroup> groups;
    for (std::size_t i = 0; i < op.steps.size(); ++i) {
      const std::int64_t n = tl_.active[op.steps[i].t];
      if (groups.empty() || groups.back().n != n) groups.push_back({i, 0, n, 0});
      ++groups.back().count;
    }
    // Per group: the units' own GEMMs, then (a wavefront's first GEMM, whose schedule left
    // out their own ops) the input GEMMs of the units whose layer fuses_input(); all A
    // pointers, then all B, then all C.
    auto push = [&](int gemm, auto a_of, auto b_of, auto c_of) {
      op.groups[gemm] = groups;
      for (GemmGroup& g : op.groups[gemm]) {
        g.table = table_.size();
        std::vector<const UnitStep*> fused;
        if (gemm == 0 && buf_.wavefront) {
          for (std::size_t i = g.first; i < g.first + g.count; ++i)
            if (fuses_input(plan_, plan_.units[op.steps[i].unit].layer))
              fused.push_back(&op.steps[i]);
        }
        g.inputs = fused.size();
        fused_wave_gemms_so_far += static_cast<std::int64_t>(fused.size());
        for (int operand = 0; operand < 3; ++operand) {
          for (std::size_t i = g.first; i < g.first + g.count; ++i) {
            const UnitStep& s = op.steps[i];
            table_.push_back(operand == 0 ? a_of(s) : operand == 1 ? b_of(s) : c_of(s));
          }
          for (const UnitStep* s : fused)
            table_.push_back(input_gemm_operand(*s, backward, operand));
        }
      }
    };
    // W_hh's rows [first, ...) as op(A): W_hh itself (its row `first`), or in a forward
    // pass that transposed it, the copy (its column `first`).
    const bool transposed = !backward && transposed_weights();
    auto w_hh = [&](std::int64_t first) {
      return [this, first, transposed, H](const UnitStep& s) -> const void* {
        return transposed ? buf_.units[s.unit].w_t + first
                          : params_ + plan_.units[s.unit].w_hh + first * H;
      };
    };
    if (!backward) {
      auto h_prev = [&](const UnitStep& s) -> const void* { return step_forward_args(s).h_prev; };
      auto gh = [&](std::int64_t offset) {
        return [this, offset](const UnitStep& s) -> const void* {
          return buf_.units[s.unit].gh + offset;
        };
      };
      push(0, w_hh(0), h_prev, gh(0));
      // A Steps op of a layer-by-layer pass holds one layer's units.
      if (!op.steps.empty() && projects_in_steps(plan_.units[op.steps[0].unit].layer)) {
        auto operand = [&](int i) {  // gx_t = W_ih u_t of each unit
          return [this, i](const UnitStep& s) { return input_gemm_operand(s, false, i); };
        };
        push(2, operand(0), operand(1), operand(2));
      }
      if (rbp) {
        auto rh = [&](const UnitStep& s) -> const void* { return step_forward_args(s).rh; };
        push(1, w_hh(2 * H), rh, gh(2 * H));
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
        push(0, w_hh(2 * H), dgx(2 * H), drh);
        push(1, w_hh(0), dgx(0), dh);
      } else {
        push(0, w_hh(0), dgh, dh);
      }
    }
  }
  staged_ = ops_.stage_pointers(table_.data(), table_.size());
}

namespace {

// The batched GEMM of one group, its pointer arrays (staged, and the host table they were
// staged from) set; the caller sets the shape.
template <typename T>
GemmBatch<T> batch_of(const void* const* staged, const void* const* host, const GemmGroup& g) {
  GemmBatch<T> b;
  const std::size_t count = g.items();
  const void* const* base = staged + g.table;
  b.a = reinterpret_cast<const T* const*>(base);
  b.b = reinterpret_cast<const T* const*>(base + count);
  b.c = reinterpret_cast<T* const*>(const_cast<void* const*>(base + 2 * count));
  const void* const* host_base = host + g.table;
  b.host_a = reinterpret_cast<const T* const*>(host_base);
  b.host_b = reinterpret_cast<const T* const*>(host_base + count);
  b.host_c = reinterpret_cast<T* const*>(const_cast<void* const*>(host_base + 2 * count));
  b.count = static_cast<int>(count);
  b.n = g.n;
  return b;
}

// The batched GEMM call of one group of a Steps op: C = op(A) B, or C += op(A) B.
template <typename T>
StepCall<T> gemm_call(const void* const* staged, const void* const* host, const GemmGroup& group,
                      Trans trans_a, std::int64_t m, std::int64_t k, std::int64_t lda,
                      std::int64_t ldb, std::int64_t ldc, bool accumulate) {
  StepCall<T> c;
  c.gemms = batch_of<T>(staged, host, group);
  c.gemms.trans_a = trans_a;
  c.gemms.m = m;
  c.gemms.k = k;
  c.gemms.lda = lda;
  c.gemms.ldb = ldb;
  c.gemms.ldc = ldc;
  c.gemms.beta = accumulate ? T(1) : T(0);
  return c;
}

// Releases whatever a pass held (Ops::hold_weights) when the pass ends, however it ends,
// a hold that threw halfway included: a copy still held into the next pass would serve
// GEMMs on weights the optimizer has changed since.
template <typename T>
class WeightsRelease {
 public:
  explicit WeightsRelease(Ops<T>& ops) : ops_(ops) {}
  WeightsRelease(const WeightsRelease&) = delete;
  WeightsRelease& operator=(const WeightsRelease&) = delete;
  ~WeightsRelease() { ops_.release_weights(); }

 private:
  Ops<T>& ops_;
};

}  // namespace

template <typename T>
void StackPass<T>::initial_projection(const PassOp& op) {
  const int unit = op.layer * plan_.directions + op.dir;
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H;
  const std::int64_t m = reset_before_product(plan_) ? 2 * H : GH;
  const T* h0 = y_at(unit, h0_row(unit));
  const std::int64_t DH = plan_.output_size();
  if (transposed_weights()) {
    ops_.gemm(Gemm<T>::op(Trans::N, Trans::N)
                  .shape(m, B_, H)
                  .from(buf_.units[unit].w_t, GH, h0, DH)
                  .into(buf_.units[unit].g0, GH));
  } else {
    ops_.gemm(Gemm<T>::op(Trans::T, Trans::N)
                  .shape(m, B_, H)
                  .from(params_ + plan_.units[unit].w_hh, H, h0, DH)
                  .into(buf_.units[unit].g0, GH));
  }
}

template <typename T>
void StackPass<T>::transpose_weights() {
  const std::int64_t GH = plan_.gates * plan_.config.hidden_size;
  for (std::size_t u = 0; u < buf_.units.size(); ++u) {
    const UnitOffsets& offsets = plan_.units[u];
    const UnitBuffers<T>& ub = buf_.units[u];
    ops_.transpose({GH, plan_.config.hidden_size, ub.w_t, params_ + offsets.w_hh});
    if (ub.w_ih_t != nullptr) {
      ops_.transpose(
          {GH, plan_.layers[offsets.layer].input_size, ub.w_ih_t, params_ + offsets.w_ih});
    }
  }
}

template <typename T>
void StackPass<T>::hold_step_weights(bool backward) {
  if (step_weights(plan_, tl_, ops_, buf_.wavefront) != StepWeights::Packed) return;
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H;
  const bool rbp = reset_before_product(plan_);
  bool all = true;
  // W_hh's rows [first, first + rows) as the stage() tables pass them: op(A) = W^T forward
  // (m = rows, k = H), W itself backward (m = H, k = rows).
  auto hold = [&](const UnitOffsets& u, std::int64_t first, std::int64_t rows) {
    const T* w = params_ + u.w_hh + first * H;
    all = all && (backward ? ops_.hold_weights(w, Trans::N, H, rows, H, B_)
                           : ops_.hold_weights(w, Trans::T, rows, H, H, B_));
  };
  for (const UnitOffsets& u : plan_.units) {
    if (rbp) {
      hold(u, 0, 2 * H);
      hold(u, 2 * H, H);
    } else {
      hold(u, 0, GH);
    }
    // W_ih by segments: backward's input gradients (W_ih^T dgx, all steps or, in a
    // wavefront, one at a time), a wavefront's per-step input projections above layer 0,
    // and the projections inside steps (projects_in_steps()). (The other input projections
    // cover all steps in one GEMM that packing does not speed.)
    const LayerPlan& layer = plan_.layers[u.layer];
    if (!backward && (!buf_.wavefront || u.layer == 0) && !projects_in_steps(u.layer)) continue;
    for (const Segment& seg : layer.inputs) {
      const std::int64_t width = plan_.activations[seg.act].width;
      const T* w = params_ + u.w_ih + seg.col;
      all = all && (backward ? ops_.hold_weights(w, Trans::N, width, GH, layer.input_size, B_)
                             : ops_.hold_weights(w, Trans::T, GH, width, layer.input_size, B_));
    }
  }
  if (!all) ops_.release_weights();  // all or none: one pass, one way
}

template <typename T>
void StackPass<T>::input_projection(const PassOp& op) {
  const LayerPlan& layer = plan_.layers[op.layer];
  const UnitOffsets& u = plan_.units[op.layer * plan_.directions + op.dir];
  const UnitBuffers<T>& ub = buf_.units[op.layer * plan_.directions + op.dir];
  const std::int64_t GH = plan_.gates * plan_.config.hidden_size, r0 = tl_.offset[op.t0];
  const std::int64_t n = rows(op.t0, op.t1);
  for (std::size_t i = 0; i < layer.inputs.size(); ++i) {
    const Segment& seg = layer.inputs[i];
    const ActivationBuffers<T>& act = buf_.acts[seg.act];
    const std::int64_t k = plan_.activations[seg.act].width;
    const T* u_rows = act.data + r0 * act.ld;
    if (ub.w_ih_t != nullptr) {  // W_ih^T: the segment's columns of W_ih are rows here
      ops_.gemm(Gemm<T>::op(Trans::N, Trans::N)
                    .shape(GH, n, k)
                    .from(ub.w_ih_t + seg.col * GH, GH, u_rows, act.ld)
                    .into(ub.gx + r0 * GH, GH)
                    .accumulate(i > 0));
    } else {
      ops_.gemm(Gemm<T>::op(Trans::T, Trans::N)
                    .shape(GH, n, k)
                    .from(params_ + u.w_ih + seg.col, layer.input_size, u_rows, act.ld)
                    .into(ub.gx + r0 * GH, GH)
                    .accumulate(i > 0));
    }
  }
}

template <typename T>
void StackPass<T>::forward_calls(const PassOp& op, std::vector<StepCall<T>>& calls) const {
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H;
  const std::int64_t DH = plan_.output_size();
  std::vector<StepForward<T>> args;
  args.reserve(op.steps.size());
  std::int64_t widest = 0;
  for (const UnitStep& s : op.steps) widest = std::max(widest, tl_.active[s.t]);
  for (const UnitStep& s : op.steps) {
    args.push_back(step_forward_args(s));
    args.back().batch = widest;  // one launch covers every unit; each masks its own rows
  }
  // gh = W h for every group of units (C pointers, e.g. gh's n slot, come from the table).
  auto recurrent = [&](int gemm_index, std::int64_t m, std::int64_t ldb) {
    const bool t = transposed_weights();  // w_t, or W_hh
    for (const GemmGroup& group : op.groups[gemm_index]) {
      calls.push_back(gemm_call<T>(staged_, table_.data(), group, t ? Trans::N : Trans::T, m, H,
                                   t ? GH : H, ldb, GH, false));
    }
  };
  // The last kernel call takes `args` over; the reset-before-product GRU's first copies it.
  auto kernel = [&](StepKind kind, std::vector<StepForward<T>> units) {
    StepCall<T> c;
    c.kind = StepCall<T>::Kind::Forward;
    c.step = kind;
    c.forward = std::move(units);
    calls.push_back(std::move(c));
  };
  if (!op.groups[2].empty()) {  // gx_t = W_ih u_t (projects_in_steps())
    const LayerPlan& layer = plan_.layers[plan_.units[op.steps[0].unit].layer];
    const std::int64_t ld = buf_.acts[layer.inputs[0].act].ld;
    for (const GemmGroup& group : op.groups[2]) {
      calls.push_back(gemm_call<T>(staged_, table_.data(), group, Trans::T, GH, layer.input_size,
                                   layer.input_size, ld, GH, false));
    }
  }
  if (reset_before_product(plan_)) {
    recurrent(0, 2 * H, DH);  // gh[r, z] = W_h[r, z] h_prev
    kernel(StepKind::GruRbpGates, args);
    recurrent(1, H, H);  // gh[n] = W_hn (r*h_prev)
    kernel(StepKind::GruRbpOutput, std::move(args));
  } else {
    recurrent(0, GH, DH);
    kernel(step_kind(plan_.config.cell), std::move(args));
  }
}

template <typename T>
void StackPass<T>::backward_calls(const PassOp& op, std::vector<StepCall<T>>& calls) const {
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H;
  std::vector<StepBackward<T>> args;
  args.reserve(op.steps.size());
  std::int64_t widest = 0;
  for (const UnitStep& s : op.steps) widest = std::max(widest, tl_.active[s.t]);
  for (const UnitStep& s : op.steps) {
    args.push_back(step_backward_args(s));
    args.back().batch = widest;
  }
  // dh (+)= W^T d: m = H, ldb = G*H, ldc = H.
  auto recurrent = [&](int gemm_index, std::int64_t k, bool accumulate) {
    for (const GemmGroup& group : op.groups[gemm_index]) {
      calls.push_back(
          gemm_call<T>(staged_, table_.data(), group, Trans::N, H, k, H, GH, H, accumulate));
    }
  };
  // The last kernel call takes `args` over; the reset-before-product GRU's first copies it.
  auto kernel = [&](StepKind kind, std::vector<StepBackward<T>> units) {
    StepCall<T> c;
    c.kind = StepCall<T>::Kind::Backward;
    c.step = kind;
    c.backward = std::move(units);
    calls.push_back(std::move(c));
  };
  if (reset_before_product(plan_)) {
    kernel(StepKind::GruRbpOutput, args);
    recurrent(0, H, false);  // drh = W_hn^T dgx[n]
    kernel(StepKind::GruRbpGates, std::move(args));
    recurrent(1, 2 * H, true);  // dh += W_h[r,z]^T dgx[r,z]
  } else {
    kernel(step_kind(plan_.config.cell), std::move(args));
    recurrent(0, GH, true);  // dh += W_hh^T dgh
  }
}

template <typename T>
bool StackPass<T>::row_runs(const std::vector<PassOp>& program, bool backward) const {
  if (backward && buf_.flow != nullptr) return false;
  if (buf_.wavefront) {
    // One list of all the waves' steps, where nothing launches between them (no
    // per-step projections, connections or dropout): a graph per pass, not per wave.
    if (!ops_.replays_call_lists()) return false;
    auto is_steps = [](const PassOp& op) {
      return op.kind == PassOpKind::Steps || op.kind == PassOpKind::StepsBackward;
    };
    const auto first = std::find_if(program.begin(), program.end(), is_steps);
    const auto last = std::find_if(program.rbegin(), program.rend(), is_steps).base();
    return std::none_of(first, last, [this](const PassOp& op) { return breaks_step_list(op); });
  }
  return step_weights(plan_, tl_, ops_, buf_.wavefront) == StepWeights::Packed ||
         ops_.replays_call_lists();
}

template <typename T>
bool StackPass<T>::breaks_step_list(const PassOp& op) const {
  switch (op.kind) {
    case PassOpKind::Steps:
    case PassOpKind::StepsBackward: return false;
    case PassOpKind::Connection:
    case PassOpKind::ConnectionBackward:
      return drops_out(op.layer) || plan_.layers[op.layer].join.kind != Connection::None;
    default: return true;
  }
}

template <typename T>
bool StackPass<T>::drops_out(int layer) const {
  const LayerPlan& l = plan_.layers[layer];
  return l.next_input != l.output && buf_.training;
}

template <typename T>
bool StackPass<T>::projects_in_steps(int layer) const {
  return buf_.units[layer * plan_.directions].gx_in_steps;  // the engine's projects_in_steps()
}

template <typename T>
void StackPass<T>::run_steps(std::vector<StepCall<T>>& calls, bool by_rows) {
  if (calls.empty()) return;
  // A backend that replays lists gets a pass's whole lists only: it would record the
  // calls of one step (or wave) and never replay them. One that runs rows in parallel
  // may take those too (the CPU's wavefront).
  const bool offer = by_rows || !ops_.replays_call_lists();
  if (!offer || !ops_.run_step_list(calls, B_)) ops_.run_calls(calls);
  calls.clear();
}

// dJ/dh_t of each unit of the op is dh (through h_{t+1}) + dy_t (from above): its squared
// norm over the rows running at step t goes into flow[unit * steps + t].
template <typename T>
void StackPass<T>::record_flow(const std::vector<StepBackward<T>>& args, const PassOp& op) {
  std::vector<FlowArgs<T>> items(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    const UnitStep& s = op.steps[i];
    FlowArgs<T>& f = items[i];
    f.rows = tl_.active[s.t];
    f.width = plan_.config.hidden_size;
    f.a = args[i].dh;
    f.lda = f.width;
    f.b = args[i].dy;
    f.ldb = args[i].ldh;
    f.out = buf_.flow + s.unit * buf_.flow_steps + s.t;
  }
  ops_.flow(items.data(), static_cast<int>(items.size()));
}

// Dropout of layer op.layer's output into the activation the next layers read.
template <typename T>
void StackPass<T>::dropout(const PassOp& op, bool backward) {
  if (!drops_out(op.layer)) return;
  const LayerPlan& layer = plan_.layers[op.layer];
  const std::int64_t DH = plan_.output_size(), r0 = tl_.offset[op.t0];
  const ActivationBuffers<T>& y = buf_.acts[layer.output];
  const ActivationBuffers<T>& next_input = buf_.acts[layer.next_input];
  ConnectionArgs<T> a = range_args(op, layer.output);
  a.p = static_cast<T>(plan_.config.dropout);
  a.seed = buf_.dropout_seed;
  a.stream = buf_.dropout_stream * static_cast<std::uint64_t>(plan_.layers.size()) +
             static_cast<std::uint64_t>(op.layer);
  a.row0 = r0;
  if (backward) {
    a.dout = next_input.grad + r0 * DH;
    a.dy = y.grad + r0 * y.grad_ld();
    ops_.connection(ConnectionKind::DropoutBackward, a);
  } else {
    a.out = next_input.data + r0 * DH;
    ops_.connection(ConnectionKind::DropoutForward, a);
  }
}

// The rows of op's range of activation `y` (D*H wide), as a connection kernel reads them.
template <typename T>
ConnectionArgs<T> StackPass<T>::range_args(const PassOp& op, int y_act) const {
  const ActivationBuffers<T>& y = buf_.acts[y_act];
  ConnectionArgs<T> a;
  a.rows = rows(op.t0, op.t1);
  a.width = plan_.output_size();
  a.y = y.data + tl_.offset[op.t0] * y.ld;
  a.ldy = y.ld;
  return a;
}

// The rows of op's range that a join reads: y_l and u_l (and the highway gate).
template <typename T>
ConnectionArgs<T> StackPass<T>::join_args(const PassOp& op) const {
  const Join& j = plan_.layers[op.layer].join;
  const std::int64_t DH = plan_.output_size(), r0 = tl_.offset[op.t0];
  const ActivationBuffers<T>& u = buf_.acts[j.u];
  ConnectionArgs<T> a = range_args(op, j.y);
  a.u = u.data + r0 * u.ld;
  a.ldu = u.ld;
  if (j.kind == Connection::Highway) a.gate = buf_.gates[op.layer] + r0 * DH;
  return a;
}

template <typename T>
void StackPass<T>::connection_forward(const PassOp& op) {
  dropout(op, false);
  const Join& j = plan_.layers[op.layer].join;
  if (j.kind == Connection::None) return;
  ConnectionArgs<T> a = join_args(op);
  a.out = buf_.acts[j.out].data + tl_.offset[op.t0] * a.width;
  if (j.kind == Connection::Residual) {
    ops_.connection(ConnectionKind::ResidualForward, a);
    return;
  }
  a.bias = params_ + j.b_g;
  const std::int64_t DH = a.width;
  ops_.gemm(Gemm<T>::op(Trans::T, Trans::N)
                .shape(DH, a.rows, DH)
                .from(params_ + j.w_g, DH, a.u, a.ldu)
                .into(a.gate, DH));  // z = W_g u
  ops_.connection(ConnectionKind::HighwayForward, a);
}

template <typename T>
void StackPass<T>::connection_backward(const PassOp& op) {
  const Join& j = plan_.layers[op.layer].join;
  if (j.kind != Connection::None) {
    const std::int64_t r0 = tl_.offset[op.t0];
    ConnectionArgs<T> a = join_args(op);
    const std::int64_t DH = a.width;
    a.dout = buf_.acts[j.out].grad + r0 * DH;
    a.dy = buf_.acts[j.y].grad + r0 * a.ldy;
    a.du = buf_.acts[j.u].grad + r0 * a.ldu;
    if (j.kind == Connection::Residual) {
      ops_.connection(ConnectionKind::ResidualBackward, a);
    } else {
      a.dz = buf_.dgates[op.layer] + r0 * DH;
      ops_.connection(ConnectionKind::HighwayBackward, a);
      // du += W_g^T dz
      ops_.gemm(Gemm<T>::op(Trans::N, Trans::N)
                    .shape(DH, a.rows, DH)
                    .from(params_ + j.w_g, DH, a.dz, DH)
                    .into(a.du, a.ldu)
                    .accumulate());
    }
  }
  dropout(op, true);  // dJ/dy_l complete: back through the dropout mask
}

template <typename T>
void StackPass<T>::input_gradient(const PassOp& op) {
  const LayerPlan& layer = plan_.layers[op.layer];
  const UnitOffsets& u = plan_.units[op.layer * plan_.directions + op.dir];
  const UnitBuffers<T>& ub = buf_.units[op.layer * plan_.directions + op.dir];
  const std::int64_t GH = plan_.gates * plan_.config.hidden_size, r0 = tl_.offset[op.t0];
  const std::int64_t n = rows(op.t0, op.t1);
  for (const Segment& seg : layer.inputs) {
    const ActivationBuffers<T>& act = buf_.acts[seg.act];
    // d(segment) += W_ih[:, segment]^T dgx
    ops_.gemm(Gemm<T>::op(Trans::N, Trans::N)
                  .shape(plan_.activations[seg.act].width, n, GH)
                  .from(params_ + u.w_ih + seg.col, layer.input_size, ub.dgx + r0 * GH, GH)
                  .into(act.grad + r0 * act.grad_ld(), act.grad_ld())
                  .accumulate());
  }
}

template <typename T>
void StackPass<T>::weight_gradients(T* grads) {
  const std::int64_t H = plan_.config.hidden_size, GH = plan_.gates * H, DH = plan_.output_size();
  const std::int64_t R = tl_.rows();
  for (int unit = 0; unit < plan_.unit_count(); ++unit) {
    const UnitOffsets& u = plan_.units[unit];
    const UnitBuffers<T>& ub = buf_.units[unit];
    const LayerPlan& layer = plan_.layers[u.layer];
    if (ub.hp_beside_x) {
      // [dW_ih | dW_hh]^T = [x | h_{t-1}]^T dgx: one GEMM on the shared rows into the
      // scratch ([I+H, G*H] column-major), then each block added into its gradient.
      const ActivationBuffers<T>& x = buf_.acts[0];
      const std::int64_t I = layer.input_size, IH = x.ld;
      ops_.gemm(Gemm<T>::op(Trans::N, Trans::T)
                    .shape(IH, GH, R)
                    .from(x.data, IH, ub.dgx, GH)
                    .into(buf_.dw_scratch, IH));
      ops_.add_rows(grads + u.w_ih, I, buf_.dw_scratch, IH, GH, I);
      ops_.add_rows(grads + u.w_hh, H, buf_.dw_scratch + I, IH, GH, H);
    } else {
      // dW_ih^T[segment] += u_segment dgx^T
      for (const Segment& seg : layer.inputs) {
        const ActivationBuffers<T>& act = buf_.acts[seg.act];
        ops_.gemm(Gemm<T>::op(Trans::N, Trans::T)
                      .shape(plan_.activations[seg.act].width, GH, R)
                      .from(act.data, act.ld, ub.dgx, GH)
                      .into(grads + u.w_ih + seg.col, layer.input_size)
                      .accumulate());
      }
      // dW_hh^T += hp dgh^T, over the h_{t-1} every step used
      if (reset_before_product(plan_)) {
        ops_.gemm(Gemm<T>::op(Trans::N, Trans::T)
                      .shape(H, 2 * H, R)
                      .from(ub.hp, ub.ldhp, ub.dgx, GH)
                      .into(grads + u.w_hh, H)
                      .accumulate());
        ops_.gemm(Gemm<T>::op(Trans::N, Trans::T)
                      .shape(H, H, R)
                      .from(ub.rh, H, ub.dgx + 2 * H, GH)
                      .into(grads + u.w_hh + 2 * H * H, H)
                      .accumulate());
      } else {
        ops_.gemm(Gemm<T>::op(Trans::N, Trans::T)
                      .shape(H, GH, R)
                      .from(ub.hp, ub.ldhp, ub.dgh, GH)
                      .into(grads + u.w_hh, H)
                      .accumulate());
      }
    }
    // Bias gradients: column sums. Where dgh is dgx (every cell but the linear-before-
    // reset GRU), db_hh is the same sum as db_ih: one pass over dgx writes both.
    if (u.b_ih >= 0 && ub.dgh == ub.dgx) {
      ops_.add_column_sums(ub.dgx, R, GH, grads + u.b_ih, grads + u.b_hh, buf_.ones);
    } else if (u.b_ih >= 0) {
      ops_.add_column_sums(ub.dgx, R, GH, grads + u.b_ih, nullptr, buf_.ones);
      ops_.add_column_sums(ub.dgh, R, GH, grads + u.b_hh, nullptr, buf_.ones);
    }
  }
  for (std::size_t l = 0; l < plan_.layers.size(); ++l) {
    const Join& j = plan_.layers[l].join;
    if (j.kind != Connection::Highway) continue;
    const ActivationBuffers<T>& u = buf_.acts[j.u];
    ops_.gemm(Gemm<T>::op(Trans::N, Trans::T)
                  .shape(DH, DH, R)
                  .from(u.data, u.ld, buf_.dgates[l], DH)
                  .into(grads + j.w_g, DH)
                  .accumulate());
    ops_.add_column_sums(buf_.dgates[l], R, DH, grads + j.b_g, nullptr, buf_.ones);
  }
}

// A layer-by-layer pass hands each layer's steps to the backend at once (Ops::run_step_list),
// which may run them row-parallel or replay them as a graph (row_runs()), as does a
// wavefront its steps where the backend replays lists; otherwise each step's calls run as
// they come, between the ops they depend on. In a wavefront, ops that launch nothing (a
// plain stack's connections) do not break the list.
template <typename T>
void StackPass<T>::forward() {
  if (buf_.wavefront) ++wavefront_passes_so_far;
  std::vector<bool> in_steps(plan_.layers.size());
  for (std::size_t l = 0; l < in_steps.size(); ++l)
    in_steps[l] = projects_in_steps(static_cast<int>(l));
  if (std::find(in_steps.begin(), in_steps.end(), true) != in_steps.end()) {
    ++step_projection_passes_so_far;
  }
  std::vector<PassOp> program = schedule_forward(plan_, tl_, buf_.wavefront, in_steps);
  const WeightsRelease<T> release(ops_);
  hold_step_weights(false);
  stage(program, false);
  if (transposed_weights()) transpose_weights();
  const bool by_rows = row_runs(program, false);
  std::vector<StepCall<T>> steps;
  for (const PassOp& op : program) {
    if (op.kind == PassOpKind::Steps) {
      forward_calls(op, steps);
      if (!by_rows) run_steps(steps, false);
      continue;
    }
    if (buf_.wavefront && !breaks_step_list(op)) continue;  // keeps the waves one list
    run_steps(steps, by_rows);
    switch (op.kind) {
      case PassOpKind::InitialProjection: initial_projection(op); break;
      case PassOpKind::InputProjection: input_projection(op); break;
      case PassOpKind::Connection: connection_forward(op); break;
      default: break;
    }
  }
  run_steps(steps, by_rows);
}

template <typename T>
void StackPass<T>::backward(T* grads) {
  if (buf_.wavefront) ++wavefront_passes_so_far;
  std::vector<PassOp> program = schedule_backward(plan_, tl_, buf_.wavefront);
  const WeightsRelease<T> release(ops_);
  hold_step_weights(true);
  stage(program, true);
  const bool by_rows = row_runs(program, true);
  std::vector<StepCall<T>> steps;
  for (const PassOp& op : program) {
    if (op.kind == PassOpKind::StepsBackward) {
      const std::size_t first = steps.size();
      backward_calls(op, steps);
      // Before the kernels overwrite dh. (Recording the flow rules out row_runs.)
      if (buf_.flow != nullptr) record_flow(steps[first].backward, op);
      if (!by_rows) run_steps(steps, false);
      continue;
    }
    if (buf_.wavefront && !breaks_step_list(op)) continue;  // keeps the waves one list
    run_steps(steps, by_rows);
    switch (op.kind) {
      case PassOpKind::InputGradient: input_gradient(op); break;
      case PassOpKind::ConnectionBackward: connection_backward(op); break;
      default: break;
    }
  }
  run_steps(steps, by_rows);
  weight_gradients(grads);
}

template class StackPass<float>;
template class StackPass<double>;

}  // namespace recur::detail
