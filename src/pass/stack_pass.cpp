// src/pass/stack_pass.cpp: the execution of a pass.
#include "stack_pass.h"

#include "connections.h"
#include "projections.h"
#include "staging.h"
#include "step_calls.h"
#include "weight_gradients.h"

namespace recur::detail {
namespace {

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
void StackPass<T>::transpose_weights() {
  const std::int64_t GH = ctx_.gate_rows();
  for (std::size_t u = 0; u < ctx_.buf.units.size(); ++u) {
    const UnitOffsets& offsets = ctx_.plan.units[u];
    const UnitBuffers<T>& ub = ctx_.buf.units[u];
    ctx_.ops.transpose({GH, ctx_.state(), ub.w_t, ctx_.params + offsets.w_hh});
    if (ub.w_ih_t != nullptr) {
      ctx_.ops.transpose(
          {GH, ctx_.plan.layers[offsets.layer].input_size, ub.w_ih_t, ctx_.params + offsets.w_ih});
    }
  }
}

template <typename T>
void StackPass<T>::hold_step_weights(bool backward, int layer) {
  if (ctx_.pass.weights != StepWeights::Packed) return;
  const std::int64_t H = ctx_.hidden(), GH = ctx_.gate_rows(), B = ctx_.batch();
  const std::int64_t O = ctx_.state();
  Ops<T>& ops = ctx_.ops;
  bool all = true;
  // W_hh's rows [first, first + rows) as the staged tables pass them: op(A) = W^T forward
  // (m = rows, k = O), W itself backward (m = O, k = rows).
  auto hold = [&](const UnitOffsets& u, std::int64_t first, std::int64_t rows) {
    const T* w = ctx_.params + u.w_hh + first * O;
    all = all && (backward ? ops.hold_weights(w, Trans::N, O, rows, O, B)
                           : ops.hold_weights(w, Trans::T, rows, O, O, B));
  };
  for (const UnitOffsets& u : ctx_.plan.units) {
    if (!covers(layer, u.layer)) continue;
    if (ctx_.reset_before_product()) {
      hold(u, 0, 2 * H);
      hold(u, 2 * H, H);
    } else {
      hold(u, 0, GH);
    }
    if (u.w_hr >= 0) {  // W_hr [P, H]: h_t = W_hr m_t forward, W_hr^T dJ/dh_t backward
      const T* w = ctx_.params + u.w_hr;
      all = all && (backward ? ops.hold_weights(w, Trans::N, H, O, H, B)
                             : ops.hold_weights(w, Trans::T, O, H, H, B));
    }
    // W_ih by segments: backward's input gradients (W_ih^T dgx, all steps or, in a
    // wavefront, one at a time), a wavefront's per-step input projections above layer 0,
    // and the projections inside steps. (The other input projections cover all steps in
    // one GEMM that packing does not speed.)
    const LayerPlan& unit_layer = ctx_.plan.layers[u.layer];
    if (!backward && (!ctx_.pass.wavefront || u.layer == 0) &&
        !ctx_.pass.projects_in_steps[u.layer]) {
      continue;
    }
    const std::int64_t in = unit_layer.input_size;
    for (const Segment& seg : unit_layer.inputs) {
      const std::int64_t width = ctx_.plan.activations[seg.act].width;
      const T* w = ctx_.params + u.w_ih + seg.col;
      all = all && (backward ? ops.hold_weights(w, Trans::N, width, GH, in, B)
                             : ops.hold_weights(w, Trans::T, GH, width, in, B));
    }
  }
  if (!all) ops.release_weights();  // all or none: one pass, one way
}

template <typename T>
void StackPass<T>::run_steps(std::vector<StepCall<T>>& calls, bool as_list) {
  if (calls.empty()) return;
  // A backend that replays lists gets a pass's whole lists only: it would record the
  // calls of one step (or wave) and never replay them. One that runs rows in parallel
  // may take those too (the CPU's wavefront).
  Ops<T>& ops = ctx_.ops;
  const bool offer = as_list || !ops.replays_call_lists();
  if (!offer || !ops.run_step_list(calls, ctx_.batch())) ops.run_calls(calls);
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
    f.rows = ctx_.tl.active[s.t];
    f.width = args[i].hidden;  // O: the Projection kernel's where the LSTM projects
    f.a = args[i].dh;
    f.lda = f.width;
    f.b = args[i].dy;
    f.ldb = args[i].ldh;
    f.out = ctx_.buf.flow + s.unit * ctx_.buf.flow_steps + s.t;
  }
  ctx_.ops.flow(items.data(), static_cast<int>(items.size()));
}

template <typename T>
void StackPass<T>::run(const Program& program, bool backward, bool step_lists) {
  const PointerTables tables = stage_pointer_tables(ctx_, program, backward);
  const PassOpKind steps_kind = backward ? PassOpKind::StepsBackward : PassOpKind::Steps;
  std::vector<StepCall<T>> steps;
  for (const PassOp& op : program) {
    if (op.kind == steps_kind) {
      const std::size_t first = steps.size();
      if (backward) {
        backward_calls(ctx_, tables, op, steps);
        // Before the kernels overwrite dh. (Recording the flow rules out step lists.)
        if (ctx_.buf.flow != nullptr) record_flow(steps[first].backward, op);
      } else {
        forward_calls(ctx_, tables, op, steps);
      }
      if (!step_lists) run_steps(steps, false);
      continue;
    }
    // Ops that launch nothing (a plain wavefront's connections) keep the waves one list.
    if (ctx_.pass.wavefront && !breaks_step_list(ctx_.plan, op, ctx_.pass.training)) continue;
    run_steps(steps, step_lists);
    switch (op.kind) {
      case PassOpKind::InitialProjection: initial_projection(ctx_, op); break;
      case PassOpKind::InputProjection: input_projection(ctx_, op); break;
      case PassOpKind::Connection: connection_forward(ctx_, op); break;
      case PassOpKind::InputGradient: input_gradient(ctx_, op); break;
      case PassOpKind::ConnectionBackward: connection_backward(ctx_, op); break;
      default: break;
    }
  }
  run_steps(steps, step_lists);
}

template <typename T>
void StackPass<T>::forward() {
  const WeightsRelease<T> release(ctx_.ops);
  if (ctx_.transposed_weights()) transpose_weights();
  hold_step_weights(false, kAllLayers);
  run(ctx_.pass.forward, false, ctx_.pass.forward_step_lists);
}

template <typename T>
void StackPass<T>::backward(T* grads) {
  const bool step_lists = ctx_.pass.backward_step_lists && ctx_.buf.flow == nullptr;
  const WeightsRelease<T> release(ctx_.ops);
  if (!ctx_.pass.recomputes_layers) {
    hold_step_weights(true, kAllLayers);
    run(ctx_.pass.backward, true, step_lists);
    weight_gradients(ctx_, grads, kAllLayers);
    return;
  }
  // Each layer's steps again (the forward's transposed weights are still in place), then
  // its backward while its steps' buffers hold its own activations; the layer below then
  // reuses them.
  Ops<T>& ops = ctx_.ops;
  for (int l = static_cast<int>(ctx_.plan.layers.size()) - 1; l >= 0; --l) {
    hold_step_weights(false, l);
    run(ctx_.pass.layer_forward[l], false, ctx_.pass.forward_step_lists);
    ops.release_weights();
    hold_step_weights(true, l);
    run(ctx_.pass.layer_backward[l], true, step_lists);
    weight_gradients(ctx_, grads, l);
    ops.release_weights();
  }
}

template class StackPass<float>;
template class StackPass<double>;

}  // namespace recur::detail
