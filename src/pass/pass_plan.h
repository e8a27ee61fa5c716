// src/pass/pass_plan.h: how a pass runs, decided once per forward (its shape: config,
// timeline, mode) from the backend's capabilities and the model's tuning. The engine lays
// its buffers out by it and the pass runs by it; no other place decides a rule of the pass.
//
// The rules:
//   - Schedule. Bidirectional stacks (or one layer) run layer by layer; within a layer each
//     Steps op holds the forward direction at step s and the reverse one at step T-1-s.
//     Unidirectional stacks, on a backend that runs them so (Ops::runs_wavefronts: the
//     GPU), run as a wavefront: Steps w holds layer l at step w-l for every l, so L layers
//     cost T+L-1 sequential steps instead of L*T; layers above the first project their
//     input one step at a time, fused into the wave's batch of GEMMs where the shapes allow
//     (fuses_input), and likewise backward for their input gradients. Elsewhere (the CPU)
//     layer by layer.
//   - Per-step weights (weights). The per-step GEMMs multiply by the same weights T
//     times, so a pass of at least 4 steps and 16 rows prepares them once:
//       - Packed, where the backend keeps packed copies (Ops::packs_weights: the CPU's
//         float GEMMs with oneDNN; under reduced math both backends, whose copies are
//         the weights rounded once for the pass): every matrix the per-step GEMMs read is held and
//         the backend runs those GEMMs on copies laid out for its kernels. The reset-before-
//         product GRU's per-step GEMMs read and write W_hh's gate blocks in strided rows,
//         which oneDNN's matmul takes only through copies, so that GRU packs only where
//         the pass runs row-parallel (Ops::takes_row_runs), where the copies pay;
//       - Transposed, elsewhere (the GPU, float64, that GRU otherwise): the forward
//         transposes each unit's W_hh [G*H, H] into w_t [H, G*H] (and a wavefront's upper
//         layers' W_ih into w_ih_t), the layout cuBLAS and oneDNN's sgemm run fastest at a
//         step's few columns.
//     With fewer rows the layouts run alike, and with few steps the preparation is not
//     repaid, so the weights are read as stored; except under reduced math, where a held
//     copy is W rounded once, which every GEMM on W as stored would do again: held from
//     two steps, at any batch.
//   - Step lists (step_lists). A layer-by-layer pass on packed weights, or on a backend
//     that replays call lists (CUDA graphs), hands each layer's steps to the backend at
//     once (Ops::run_step_list), which may run them row-parallel (row b of a step depends
//     only on row b of the steps before it) or replay them; a wavefront hands all its waves
//     over as one list where the backend replays lists and nothing launches between
//     the waves (every upper layer fuses its input, no joins, no dropout).
//   - Inputs projected inside the steps (projects_in_steps): where a layer-by-layer pass
//     on packed weights runs row-parallel, a layer's W_ih and W_hh together fit what a
//     row-parallel run takes, and the input is one segment.
//   - h_{t-1} beside x (hp_beside_x): LSTM training from Tuning::hp_beside_x_min_rows
//     rows, where no join reads x as its u.
//   - Graph branches (branches_pay): a wavefront's per-item backward batches of little
//     total work.
// The measurements behind each: docs/benchmarks.md, "The measurements behind the code's
// choices".
#pragma once

#include <cstdint>
#include <vector>

#include "../ops.h"
#include "../plan.h"
#include "../timeline.h"
#include "../tuning.h"
#include "program.h"

namespace recur::detail {

enum class StepWeights { AsStored, Transposed, Packed };

// What the pass plan asks of a backend, for one pass.
struct BackendCapabilities {
  bool runs_wavefronts = false;     // Ops::runs_wavefronts
  bool packs_weights = false;       // Ops::packs_weights
  bool replays_call_lists = false;  // Ops::replays_call_lists
  // Ops::takes_row_runs for W_hh, and per layer for W_ih and W_hh together.
  bool row_runs_w_hh = false;
  std::vector<bool> row_runs_both;
};

struct PassPlan {
  bool training = false;
  bool wavefront = false;
  StepWeights weights = StepWeights::AsStored;
  bool hp_beside_x = false;             // layer 0's forward unit keeps h_{t-1} beside x
  std::vector<bool> projects_in_steps;  // per layer
  std::vector<bool> fuses_input;        // per layer
  bool forward_step_lists = false, backward_step_lists = false;
  Program forward, backward;  // backward: training only
  // A training pass whose forward keeps only what flows between the layers (their outputs,
  // the connections' outputs and gates, the LSTM's cell states) and whose backward rebuilds
  // each layer's steps just before that layer's backward (recompute_by_layers): per layer,
  // its forward without its connection, and its backward.
  bool recomputes_layers = false;
  std::vector<Program> layer_forward, layer_backward;
};

PassPlan make_pass_plan(const Plan& plan, const Timeline& timeline, bool training,
                        const BackendCapabilities& backend, const Tuning& tuning);

// Makes a training pass recompute by layers (PassPlan::recomputes_layers). Only a
// layer-by-layer pass can (not a wavefront, whose layers run interleaved): the model is
// bidirectional (Rnn::forward sees to that).
void recompute_by_layers(PassPlan& pass, const Plan& plan, const Timeline& timeline);

// The capabilities of `ops` for passes of `plan` over `timeline`.
template <typename T>
BackendCapabilities capabilities_of(const Ops<T>& ops, const Plan& plan, const Timeline& timeline) {
  BackendCapabilities c;
  c.runs_wavefronts = ops.runs_wavefronts();
  c.packs_weights = ops.packs_weights();
  c.replays_call_lists = ops.replays_call_lists();
  const std::int64_t GH = plan.gates * plan.config.hidden_size;
  const std::int64_t recurrent = plan.step_weight_elements();
  c.row_runs_w_hh = ops.takes_row_runs(recurrent, timeline.batch);
  for (const LayerPlan& l : plan.layers) {
    c.row_runs_both.push_back(ops.takes_row_runs(recurrent + GH * l.input_size, timeline.batch));
  }
  return c;
}

// Whether an op of a program launches work of its own between steps: every op but the
// steps themselves and the connection ops of a layer with no join and no dropout.
bool breaks_step_list(const Plan& plan, const PassOp& op, bool training);

// Whether a batch of `count` per-step GEMMs of shape (m, n, k), run one GEMM each, pays
// for running as parallel branches of a recorded graph: in a wavefront, at most 2^28
// multiply-adds in all. GEMMs that each fill the GPU gain nothing side by side and contend
// for it.
bool branches_pay(const PassPlan& pass, int count, std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace recur::detail
