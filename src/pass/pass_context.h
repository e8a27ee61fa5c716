// src/pass/pass_context.h: what every room of a pass reads: the plans, the timeline, the
// buffers, the parameters and the backend, and where a unit's rows lie in them
// (buffers.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../ops.h"
#include "../plan.h"
#include "../timeline.h"
#include "buffers.h"
#include "pass_plan.h"

namespace recur::detail {

// A layer argument that stands for every layer of the stack.
constexpr int kAllLayers = -1;
// Whether a layer argument (a layer, or kAllLayers) covers layer l.
constexpr bool covers(int layer, int l) { return layer == kAllLayers || layer == l; }

template <typename T>
struct PassContext {
  const Plan& plan;
  const PassPlan& pass;
  const Timeline& tl;
  const StackBuffers<T>& buf;
  const T* params;
  Ops<T>& ops;

  std::int64_t batch() const { return tl.batch; }
  std::int64_t hidden() const { return plan.config.hidden_size; }
  std::int64_t state() const { return plan.state_size(); }  // O: h's features
  std::int64_t gate_rows() const { return plan.gates * plan.config.hidden_size; }
  bool reset_before_product() const { return plan.config.cell == CellKind::GruResetBeforeProduct; }
  bool transposed_weights() const { return pass.weights == StepWeights::Transposed; }
  // Whether layer `layer`'s output goes through dropout in this pass (training, p > 0).
  bool drops_out(int layer) const {
    const LayerPlan& l = plan.layers[layer];
    return l.next_input != l.output && pass.training;
  }

  // Row of Y_l / cs holding h_{t-1} (prev_row) or h_t (out_row) of unit `unit` at step t.
  std::int64_t out_row(std::int64_t t) const { return tl.batch + tl.offset[t]; }
  std::int64_t prev_row(int unit, std::int64_t t) const {
    if (plan.units[unit].dir == 0) return t == 0 ? 0 : out_row(t - 1);
    return out_row(t + 1);  // past the last step this is the reverse h0 block
  }
  std::int64_t h0_row(int unit) const {
    return plan.units[unit].dir == 0 ? 0 : tl.batch + tl.rows();
  }
  T* y_at(int unit, std::int64_t row) const {
    const UnitOffsets& u = plan.units[unit];
    return buf.ys[u.layer] + row * plan.output_size() + u.dir * plan.state_size();
  }
  // Rows of step t that continue from the previous block; the rest start here (packed
  // reverse direction only).
  std::int64_t carried(int unit, std::int64_t t) const {
    if (plan.units[unit].dir == 0) return tl.active[t];
    return std::min(tl.active[t], tl.active[t + 1]);
  }
  std::int64_t rows(std::int64_t t0, std::int64_t t1) const {
    return tl.offset[t1] - tl.offset[t0];
  }
  const T* param(std::int64_t offset) const { return offset >= 0 ? params + offset : nullptr; }
};

}  // namespace recur::detail
