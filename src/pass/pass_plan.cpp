// src/pass/pass_plan.cpp: the rules of a pass (pass_plan.h), in one place.
#include "pass_plan.h"

#include <algorithm>

#include "schedule.h"

namespace recur::detail {
namespace {

bool reset_before_product(const Plan& p) {
  return p.config.cell == CellKind::GruResetBeforeProduct;
}

// A wavefront fuses layer `layer`'s per-step input GEMM into its wave's batch of recurrent
// GEMMs: forward gx_t = W_ih u_t beside gh = W_hh h_{t-1}, backward du_t += W_ih^T dgx_t
// beside dh += W_hh^T dgh. They must have the recurrent GEMMs' shape (one input segment,
// O wide: k = O forward, m = O backward) and write their own buffers; all of a wave's GEMMs
// then depend only on the wave before. Not the reset-before-product GRU (its recurrent
// GEMMs cover 2H and H rows of W_hh, its input GEMMs 3H) nor layer 0 (projected for all
// steps at once).
bool fuses_input(const Plan& p, int layer, const Tuning& tuning) {
  if (!tuning.wave_fusion || layer == 0 || reset_before_product(p)) return false;
  const LayerPlan& l = p.layers[layer];
  const std::int64_t O = p.state_size();
  return l.inputs.size() == 1 && l.input_size == O && p.activations[l.inputs[0].act].width == O;
}

// Training keeps layer 0's forward unit's h_{t-1} in the rows of x's copy, beside x
// ([R, I+H]: row r = [x_r | h_{t-1} of row r]), so that dW_ih and dW_hh of that unit are
// one GEMM on those rows, with dgx (which is dgh) as the other operand. For the LSTM, where
// no join reads x as its u (layer 0's residual or highway); vanilla cells keep two GEMMs
// (one gate: the joined GEMM ran slower), and the GRUs' dgh is not dgx. Below a few
// thousand rows the adds into the gradients cost more than the GEMM saves.
bool hp_beside_x(const Plan& p, std::int64_t rows, const Tuning& tuning) {
  // (Not the layer-normalised LSTM: its dgh is not dgx.)
  if (p.config.cell != CellKind::Lstm || p.config.layer_norm ||
      rows < tuning.hp_beside_x_min_rows) {
    return false;
  }
  const Join& j = p.layers[0].join;
  return j.kind == Connection::None || j.u != 0;
}

StepWeights step_weights(const Plan& plan, const Timeline& tl, bool wavefront,
                         const BackendCapabilities& backend) {
  // Under reduced math a backend's held copy is the weights rounded (and packed) once,
  // which every GEMM on the weights as stored would do again: that pays from the second
  // step, at any batch.
  if (backend.packs_weights && plan.config.math != Math::Fp32 && tl.steps >= 2) {
    return StepWeights::Packed;
  }
  if (tl.steps < 4 || tl.batch < 16) return StepWeights::AsStored;
  const bool row_runs = !wavefront && backend.row_runs_w_hh;
  const bool packs = backend.packs_weights && (!reset_before_product(plan) || row_runs);
  return packs ? StepWeights::Packed : StepWeights::Transposed;
}

// Whether a layer's steps project its input into one step's gx [B, G*H] that stays in
// cache for the step's gate math, instead of one GEMM over all steps into gx [R, G*H] that
// the loop then reads back from memory. Each thread then reads W_ih as well as W_hh at
// every step, so both together must fit what a row-parallel run takes for one matrix; and
// the input must be one segment (dense connections' layers keep one GEMM per segment).
bool projects_in_steps(const Plan& plan, const PassPlan& pass, int layer,
                       const BackendCapabilities& backend, const Tuning& tuning) {
  return tuning.step_projection && !pass.wavefront && !backend.replays_call_lists &&
         plan.layers[layer].inputs.size() == 1 && pass.weights == StepWeights::Packed &&
         backend.row_runs_both[layer];
}

// A wavefront's waves are one list where the backend replays lists and nothing launches
// between the first steps and the last; a layer-by-layer pass hands its layers' steps over
// on packed weights (row-parallel runs) or where the backend replays lists.
bool step_lists(const Plan& plan, const PassPlan& pass, const Program& program,
                const BackendCapabilities& backend) {
  if (!pass.wavefront) return pass.weights == StepWeights::Packed || backend.replays_call_lists;
  if (!backend.replays_call_lists) return false;
  auto is_steps = [](const PassOp& op) {
    return op.kind == PassOpKind::Steps || op.kind == PassOpKind::StepsBackward;
  };
  const auto first = std::find_if(program.begin(), program.end(), is_steps);
  const auto last = std::find_if(program.rbegin(), program.rend(), is_steps).base();
  return std::none_of(first, last,
                      [&](const PassOp& op) { return breaks_step_list(plan, op, pass.training); });
}

}  // namespace

bool breaks_step_list(const Plan& plan, const PassOp& op, bool training) {
  switch (op.kind) {
    case PassOpKind::Steps:
    case PassOpKind::StepsBackward: return false;
    case PassOpKind::Connection:
    case PassOpKind::ConnectionBackward: {
      const LayerPlan& l = plan.layers[op.layer];
      return (training && l.next_input != l.output) || l.join.kind != Connection::None;
    }
    default: return true;
  }
}

PassPlan make_pass_plan(const Plan& plan, const Timeline& timeline, bool training,
                        const BackendCapabilities& backend, const Tuning& tuning) {
  PassPlan pass;
  const int L = static_cast<int>(plan.layers.size());
  pass.training = training;
  pass.wavefront = backend.runs_wavefronts && plan.directions == 1 && L > 1;
  pass.weights = step_weights(plan, timeline, pass.wavefront, backend);
  pass.hp_beside_x = training && hp_beside_x(plan, timeline.rows(), tuning);
  pass.projects_in_steps.assign(L, false);
  pass.fuses_input.assign(L, false);
  for (int l = 0; l < L; ++l) {
    pass.projects_in_steps[l] = projects_in_steps(plan, pass, l, backend, tuning);
    pass.fuses_input[l] = pass.wavefront && fuses_input(plan, l, tuning);
  }
  pass.forward = schedule_forward(plan, timeline, pass);
  pass.forward_step_lists = step_lists(plan, pass, pass.forward, backend);
  if (training) {
    pass.backward = schedule_backward(plan, timeline, pass);
    pass.backward_step_lists = step_lists(plan, pass, pass.backward, backend);
  }
  return pass;
}

void recompute_by_layers(PassPlan& pass, const Plan& plan, const Timeline& timeline) {
  pass.recomputes_layers = true;
  for (int l = 0; l < static_cast<int>(plan.layers.size()); ++l) {
    pass.layer_forward.push_back(schedule_layer_forward(plan, timeline, pass, l));
    pass.layer_backward.push_back(schedule_layer_backward(plan, timeline, pass, l));
  }
}

bool branches_pay(const PassPlan& pass, int count, std::int64_t m, std::int64_t n, std::int64_t k) {
  constexpr double kMostWork = static_cast<double>(std::int64_t{1} << 28);
  return pass.wavefront && count > 1 &&
         static_cast<double>(count) * static_cast<double>(m) * static_cast<double>(n) *
                 static_cast<double>(k) <=
             kMostWork;
}

}  // namespace recur::detail
