// src/pass/schedule.cpp: the programs of a pass, wavefront or layer by layer.
#include "schedule.h"

#include <algorithm>
#include <utility>

#include "pass_plan.h"

namespace recur::detail {
namespace {

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

// Orders each Steps op's units by their active rows (the GEMMs' n), longest first, and
// groups the units of equal rows for each of the step's GEMMs: [0] the recurrent GEMM
// (with a wavefront's fused input GEMMs), [1] the reset-before-product GRU's second, [2]
// the input projections inside the steps, [3] the LSTM projection's. Then lays out the
// pass's pointer table: per op, groups [0], [2], [1], [3], each group's A pointers, then
// its B, then its C (staging.h fills it in this order).
void group_steps(Program& program, const Plan& plan, const Timeline& tl, const PassPlan& pass,
                 bool backward) {
  const bool rbp = plan.config.cell == CellKind::GruResetBeforeProduct;
  std::size_t table = 0;
  for (PassOp& op : program) {
    if (op.kind != PassOpKind::Steps && op.kind != PassOpKind::StepsBackward) continue;
    std::stable_sort(op.steps.begin(), op.steps.end(), [&](const UnitStep& x, const UnitStep& y) {
      return tl.active[x.t] > tl.active[y.t];
    });
    std::vector<GemmGroup> groups;
    for (std::size_t i = 0; i < op.steps.size(); ++i) {
      const std::int64_t n = tl.active[op.steps[i].t];
      if (groups.empty() || groups.back().n != n) groups.push_back({i, 0, n, 0, 0});
      ++groups.back().count;
    }
    // A Steps op of a layer-by-layer pass holds one layer's units; a wavefront's steps
    // hold one unit per layer, the unit's index being its layer.
    const int layer = plan.units[op.steps[0].unit].layer;
    op.groups[0] = groups;
    if (pass.wavefront) {
      for (GemmGroup& g : op.groups[0]) {
        for (std::size_t i = g.first; i < g.first + g.count; ++i) {
          if (pass.fuses_input[plan.units[op.steps[i].unit].layer]) ++g.inputs;
        }
      }
    }
    if (rbp) op.groups[1] = groups;
    if (!backward && pass.projects_in_steps[layer]) op.groups[2] = groups;
    if (plan.projects()) op.groups[3] = groups;
    for (int gemm : {0, 2, 1, 3}) {
      for (GemmGroup& g : op.groups[gemm]) {
        g.table = table;
        table += 3 * g.items();
      }
    }
  }
}

// Layer `layer`'s input projections and steps, in a layer-by-layer forward: both
// directions side by side, the reverse one at step T-1-s.
void append_layer_forward(Program& program, const Plan& plan, const Timeline& tl,
                          const PassPlan& pass, int layer) {
  const int D = plan.directions;
  const std::int64_t T = tl.steps;
  for (int d = 0; d < D; ++d) {
    if (!pass.projects_in_steps[layer])
      program.push_back(range_op(PassOpKind::InputProjection, layer, d, 0, T));
    // Packed reverse passes start sequences mid-way: their first W_hh h0, ahead.
    if (d == 1 && !tl.uniform)
      program.push_back(range_op(PassOpKind::InitialProjection, layer, d, 0, T));
  }
  for (std::int64_t s = 0; s < T; ++s) {
    std::vector<UnitStep> steps = {{layer * D, s}};
    if (D == 2) steps.push_back({layer * D + 1, T - 1 - s});
    program.push_back(steps_op(PassOpKind::Steps, steps));
  }
}

// Layer `layer`'s backward steps and input gradients, then the backward of the connection
// below it, which hands the layer below its output's gradient.
void append_layer_backward(Program& program, const Plan& plan, const Timeline& tl, int layer) {
  const int D = plan.directions;
  const std::int64_t T = tl.steps;
  for (std::int64_t s = 0; s < T; ++s) {
    std::vector<UnitStep> steps = {{layer * D, T - 1 - s}};
    if (D == 2) steps.push_back({layer * D + 1, s});
    program.push_back(steps_op(PassOpKind::StepsBackward, steps));
  }
  for (int d = 0; d < D; ++d)
    program.push_back(range_op(PassOpKind::InputGradient, layer, d, 0, T));
  if (layer > 0) program.push_back(range_op(PassOpKind::ConnectionBackward, layer - 1, 0, 0, T));
}

}  // namespace

Program schedule_forward(const Plan& plan, const Timeline& tl, const PassPlan& pass) {
  const int L = static_cast<int>(plan.config.num_layers);
  const std::int64_t T = tl.steps;
  Program program;
  if (pass.wavefront) {
    program.push_back(range_op(PassOpKind::InputProjection, 0, 0, 0, T));
    for (std::int64_t w = 0; w < T + L - 1; ++w) {
      std::vector<UnitStep> steps;
      for (int l = 0; l < L; ++l) {
        const std::int64_t t = w - l;
        if (t < 0 || t >= T) continue;
        if (l > 0 && !pass.fuses_input[l])
          program.push_back(range_op(PassOpKind::InputProjection, l, 0, t, t + 1));
        steps.push_back({l, t});
      }
      program.push_back(steps_op(PassOpKind::Steps, steps));
      for (const UnitStep& s : steps) {
        program.push_back(range_op(PassOpKind::Connection, s.unit, 0, s.t, s.t + 1));
      }
    }
  } else {
    for (int l = 0; l < L; ++l) {
      append_layer_forward(program, plan, tl, pass, l);
      program.push_back(range_op(PassOpKind::Connection, l, 0, 0, T));
    }
  }
  group_steps(program, plan, tl, pass, false);
  return program;
}

Program schedule_backward(const Plan& plan, const Timeline& tl, const PassPlan& pass) {
  const int L = static_cast<int>(plan.config.num_layers);
  const std::int64_t T = tl.steps;
  Program program;
  program.push_back(range_op(PassOpKind::ConnectionBackward, L - 1, 0, 0, T));
  if (pass.wavefront) {
    for (std::int64_t v = 0; v < T + L - 1; ++v) {
      std::vector<UnitStep> steps;
      for (int l = L - 1; l >= 0; --l) {
        const std::int64_t t = T - 1 - (v - (L - 1 - l));
        if (t >= 0 && t < T) steps.push_back({l, t});
      }
      program.push_back(steps_op(PassOpKind::StepsBackward, steps));
      for (const UnitStep& s : steps) {
        if (s.unit == 0) continue;  // dx: below
        if (!pass.fuses_input[s.unit])
          program.push_back(range_op(PassOpKind::InputGradient, s.unit, 0, s.t, s.t + 1));
        program.push_back(range_op(PassOpKind::ConnectionBackward, s.unit - 1, 0, s.t, s.t + 1));
      }
    }
    // Nothing in the pass reads layer 0's input gradient (dx), so it is one GEMM over all
    // steps at the end, not one of B columns per wave.
    program.push_back(range_op(PassOpKind::InputGradient, 0, 0, 0, T));
  } else {
    for (int l = L - 1; l >= 0; --l) append_layer_backward(program, plan, tl, l);
  }
  group_steps(program, plan, tl, pass, true);
  return program;
}

Program schedule_layer_forward(const Plan& plan, const Timeline& tl, const PassPlan& pass,
                               int layer) {
  Program program;
  append_layer_forward(program, plan, tl, pass, layer);
  group_steps(program, plan, tl, pass, false);
  return program;
}

Program schedule_layer_backward(const Plan& plan, const Timeline& tl, const PassPlan& pass,
                                int layer) {
  Program program;
  if (layer + 1 == static_cast<int>(plan.config.num_layers)) {
    program.push_back(range_op(PassOpKind::ConnectionBackward, layer, 0, 0, tl.steps));
  }
  append_layer_backward(program, plan, tl, layer);
  group_steps(program, plan, tl, pass, true);
  return program;
}

}  // namespace recur::detail
