// src/stack_pass.h: the whole stack (layers x directions x time), forward and backward,
// written once against Ops<T>.
//
// A pass is a program of a few kinds of operations over time ranges [t0, t1):
//   InputProjection(l, d)  gx = W_ih u_l                  GEMMs, one per input segment
//   Steps(units)           per unit (l, d, t): gh = W_hh h_prev, then the fused step
//                          kernel; the units' GEMMs are one batched call and their
//                          kernels one launch
//   Connection(l)          u_{l+1} from y_l and u_l (residual, highway)
// and, backward, StepsBackward, InputGradient and ConnectionBackward, then the weight
// gradients of all steps at once. schedule() decides the order:
//   - bidirectional (or one layer): layer by layer; within a layer each Steps holds the
//     forward direction at step s and the reverse direction at step T-1-s;
//   - unidirectional stacks, on a backend that runs them so (Ops::runs_wavefronts: the
//     GPU): a wavefront, Steps w holds layer l at step w-l for every l, so L layers cost
//     T+L-1 sequential steps instead of L*T; layers above the first project their input
//     one step at a time, inside the wave's batch of GEMMs where the shapes allow
//     (fuses_input()), and likewise backward for their input gradients. Elsewhere (the
//     CPU) layer by layer, as bidirectional stacks.
//
// Rows follow the Timeline (src/timeline.h): step t is rows offset[t] .. + active[t] of
// every [rows, features] buffer, R = rows() in all. Each layer writes its output straight
// into Y_l [B + R + B, D*H]: rows [0, B) hold the forward h0, then the R rows of y_l (both
// directions side by side: no concatenation), then the reverse h0. So a forward step's
// h_{t-1} is the block of step t-1 (or the h0 block), and a reverse step's is the block
// of step t+1 (or, past the end, the reverse h0 block); a packed reverse step's rows that
// start there read h0 and g0 = W_hh h0 instead (the kernels' `carried`). Each step keeps
// the h_{t-1} it used in hp [R, H], so dW_hh is one GEMM.
//
// The per-step GEMMs multiply by the same weights T times, so a pass of at least 4 steps
// and 16 rows prepares them once, in one of two ways (step_weights()):
//   - Packed, where the backend keeps packed copies (Ops::packs_weights: the CPU's float
//     GEMMs with oneDNN): forward and backward hold every matrix their per-step GEMMs read
//     (W_hh, backward's W_ih, and a wavefront's upper-layer W_ih) and the backend runs
//     those GEMMs on copies laid out for its kernels. The reset-before-product GRU's
//     per-step GEMMs read and write W_hh's gate blocks in strided rows, which oneDNN's
//     matmul takes only through copies, so that GRU packs only where the pass runs
//     row-parallel (Ops::takes_row_runs), where the copies pay;
//   - Transposed, elsewhere (the GPU, float64, that GRU otherwise): the forward transposes each
//     unit's W_hh [G*H, H] into w_t [H, G*H], so every forward recurrent GEMM reads
//     op(A) = A with unit stride along the gates, the layout cuBLAS and oneDNN's sgemm run
//     fastest at a step's few columns, for one pass over the weights. A wavefront's upper layers
//     project their input one step (B columns) at a time, so they get the same treatment for W_ih
//     (w_ih_t); other input projections cover all R columns at once, where the layout
//     makes no difference. Backward reads W_hh itself (dh = W_hh^T dg is that layout).
// With fewer rows the layouts run alike, and with few steps the preparation is not repaid
// (the measurements: docs/benchmarks.md, "The measurements behind the code's choices"), so the
// weights are read as stored (gemm(T, N) forward).
//
// On packed weights, a layer-by-layer pass hands each layer's steps to the backend at
// once (Ops::run_step_list), which may run them row-parallel: row b of a step depends only on
// row b of the steps before it (row_runs()). A backend that replays call lists (the GPU's
// CUDA graphs) gets them so too, and a wavefront's steps as one list where nothing
// launches between its waves. Where it would, and a layer's W_ih and W_hh
// together are small enough, each step also projects its own input just before its
// recurrent GEMM (projects_in_steps()), instead of the layer's InputProjection.
#pragma once

#include <cstdint>
#include <vector>

#include "ops.h"
#include "plan.h"
#include "timeline.h"

namespace recur::detail {

// A tensor of T*B rows: row r = t*B + b starts at data + r*ld and at grad + r*grad_ld()
// (backward). The two strides differ only for x where it shares its rows with layer 0's
// h_{t-1} (hp_beside_x below).
template <typename T>
struct ActivationBuffers {
  T* data = nullptr;
  T* grad = nullptr;
  std::int64_t ld = 0;
  std::int64_t ld_grad = 0;  // 0: ld
  std::int64_t grad_ld() const { return ld_grad > 0 ? ld_grad : ld; }
};

// One layer-direction's buffers (R = timeline rows).
template <typename T>
struct UnitBuffers {
  T* cs = nullptr;           // [B + R + B, H] cell states (LSTM), laid out like Y_l
  T* gx = nullptr;           // [R, G*H] input projections, or [B, G*H] when gx_in_steps
  bool gx_in_steps = false;  // each step projects its own input (projects_in_steps())
  T* gh = nullptr;           // [B, G*H] this step's recurrent projection
  T* w_t = nullptr;          // [H, G*H] W_hh^T for the forward's recurrent GEMMs, or null (above)
  T* w_ih_t = nullptr;       // [I_l, G*H] W_ih^T for a wavefront's upper layers, or null
  T* g0 = nullptr;           // [B, G*H] W_hh h0 for rows that start mid-pass (packed reverse)
  T* hp = nullptr;           // [R, ldhp] the h_{t-1} each step used (training)
  std::int64_t ldhp = 0;
  bool hp_beside_x = false;  // hp is columns [I, I+H) of x's copy (hp_beside_x())
  T* saved = nullptr;        // [R, S*H] training; [B, S*H] reset-before-product inference
  T* rh = nullptr;           // [R, H] training; [B, H] inference (reset-before-product)
  T* dgx = nullptr;          // [R, G*H]
  T* dgh = nullptr;          // [R, G*H]; equals dgx except for the linear-before-reset GRU
  T* dh = nullptr;           // [B, H]
  T* dc = nullptr;           // [B, H]
  T* drh = nullptr;          // [B, H]
};

template <typename T>
struct StackBuffers {
  bool training = false;
  bool wavefront = false;  // the schedule the forward chose (wavefront()); backward follows
  std::uint64_t dropout_seed = 0, dropout_stream = 0;  // Philox key and stream of this pass
  std::vector<T*> ys;                                  // per layer: Y_l [B + R + B, D*H]
  std::vector<ActivationBuffers<T>> acts;              // per activation of the plan
  std::vector<UnitBuffers<T>> units;                   // per unit, index l*D + d
  std::vector<T*> gates;                               // per layer: highway gate [R, D*H] or null
  std::vector<T*> dgates;                              // per layer: highway dJ/dz [R, D*H] or null
  const T* ones = nullptr;                             // [2, R] of 1s for bias gradients
  T* dw_scratch = nullptr;  // [G*H, I+H]: [dW_ih | dW_hh] of layer 0 before it is added in
  // Gradient-flow diagnostics (backward only): when set, [L*D, steps] doubles, and each
  // backward step of unit u at step t writes ||dJ/dh_t||^2 (over the rows running at t)
  // into flow[u * steps + t]. Null in ordinary training: nothing is recorded.
  double* flow = nullptr;
  std::int64_t flow_steps = 0;
};

enum class PassOpKind {
  InitialProjection,  // g0 = W_hh h0 of a packed reverse unit
  InputProjection,
  Steps,
  Connection,
  StepsBackward,
  InputGradient,
  ConnectionBackward
};

struct UnitStep {
  int unit = 0;
  std::int64_t t = 0;
};

// One batched GEMM of a Steps op: the units steps[first .. first+count) (reordered so that
// units with equal active rows are adjacent) share n = their active rows.
struct GemmGroup {
  std::size_t first = 0, count = 0;
  std::int64_t n = 0;
  std::size_t table = 0;   // their A, B and C pointers in the staged table
  std::size_t inputs = 0;  // fused input GEMMs that follow the units' own (fuses_input())
  std::size_t items() const { return count + inputs; }
};

struct PassOp {
  PassOpKind kind = PassOpKind::Steps;
  int layer = 0, dir = 0;
  std::int64_t t0 = 0, t1 = 0;
  std::vector<UnitStep> steps;  // Steps / StepsBackward
  // Per GEMM of the step: [0] and [1] the recurrent ones (two for reset-before-product),
  // [2] the input projections when they run inside the steps (projects_in_steps()).
  std::vector<GemmGroup> groups[3];
};

// Whether training keeps layer 0's forward unit's h_{t-1} in the rows of x's copy, beside
// x ([R, I+H]: row r = [x_r | h_{t-1} of row r]), so that dW_ih and dW_hh of that unit are
// one GEMM on those rows, with dgx (which is dgh) as the other operand. For the LSTM, where
// no join reads x as its u (layer 0's residual or highway); vanilla cells keep two GEMMs
// (one gate: the joined GEMM ran slower), and the GRUs' dgh is not dgx. At least 2048 rows
// (T*B): below, the adds into the gradients cost more than the GEMM saves
// (docs/benchmarks.md, "The measurements behind the code's choices").
bool hp_beside_x(const Plan& plan, std::int64_t rows);
// The least rows for that (2048, or RECUR_X_HP_MIN_ROWS at start); tests set 0 to run it
// on small problems.
std::int64_t hp_beside_x_min_rows();
void set_hp_beside_x_min_rows(std::int64_t rows);

// Whether the passes run as a wavefront: unidirectional stacks of more than one layer, on
// a backend that runs wavefronts (Ops::runs_wavefronts).
bool wavefront(const Plan& plan, bool backend_runs_wavefronts);
// How a pass over `timeline` prepares its per-step weights (see above), given whether the
// backend packs them and whether it would run the pass's steps row-parallel on them. The
// engine gives every unit a w_t (and a wavefront's upper layers a w_ih_t) when they are
// Transposed.
enum class StepWeights { AsStored, Transposed, Packed };
struct StepBackend {
  bool packs = false;     // Ops::packs_weights
  bool row_runs = false;  // Ops::takes_row_runs for W_hh, in a layer-by-layer pass
};
StepWeights step_weights(const Plan& plan, const Timeline& timeline, StepBackend backend);
// The same, asking `ops`, for a pass that runs as a wavefront or layer by layer.
template <typename T>
StepWeights step_weights(const Plan& plan, const Timeline& timeline, const Ops<T>& ops,
                         bool wavefront) {
  const std::int64_t H = plan.config.hidden_size;
  const std::int64_t w_hh_bytes = plan.gates * H * H * static_cast<std::int64_t>(sizeof(T));
  return step_weights(
      plan, timeline,
      {ops.packs_weights(), !wavefront && ops.takes_row_runs(w_hh_bytes, timeline.batch)});
}

bool step_projection();
void set_step_projection(bool enabled);

// Whether a pass projects layer `layer`'s input inside its steps (the CPU's row-parallel
// runs): gx_t = W_ih u_t for each step's rows just before its recurrent GEMM, into one
// step's gx [B, G*H] that stays in cache for the step's gate math, instead of one GEMM over
// all steps into gx [R, G*H] that the loop then reads back from memory. Each thread then
// reads W_ih as well as W_hh at every step, so both together must fit what a row-parallel
// run takes for one matrix (Ops::takes_row_runs); and the input must be one segment
// (dense connections' layers keep one GEMM per segment). Both matrices within the limit,
// because past it the extra reads cost more than the cache saves (docs/benchmarks.md, "The
// measurements behind the code's choices"). On unless step_projection() is off
// (RECUR_STEP_PROJECTION=0 at start, or set_step_projection(false), for comparisons and tests).
template <typename T>
bool projects_in_steps(const Plan& plan, const Timeline& timeline, const Ops<T>& ops,
                       bool wavefront, int layer) {
  const LayerPlan& l = plan.layers[layer];
  if (!step_projection() || wavefront || ops.replays_call_lists() || l.inputs.size() != 1 ||
      step_weights(plan, timeline, ops, wavefront) != StepWeights::Packed) {
    return false;
  }
  const std::int64_t gate_rows = plan.gates * plan.config.hidden_size;
  const std::int64_t both =
      static_cast<std::int64_t>(sizeof(T)) * gate_rows * (l.input_size + plan.config.hidden_size);
  return ops.takes_row_runs(both, timeline.batch);
}
// How many forward passes have projected some layer's input inside its steps, for tests.
std::int64_t step_projection_passes();

// How many forward and backward passes have run as a wavefront so far, for tests.
std::int64_t wavefront_passes();

// Whether a wavefront fuses layer `layer`'s per-step input GEMM into its wave's batch of
// recurrent GEMMs: forward gx_t = W_ih u_t beside gh = W_hh h_{t-1}, backward du_t +=
// W_ih^T dgx_t beside dh += W_hh^T dgh. They must have the recurrent GEMMs' shape (one
// input segment, H wide: k = H forward, m = H backward) and write their own buffers; all
// of a wave's GEMMs then depend only on the wave before. Not the reset-before-product GRU
// (its recurrent GEMMs cover 2H and H rows of W_hh, its input GEMMs 3H) nor layer 0
// (projected for all steps at once). On unless wave_fusion() is off
// (RECUR_WAVE_FUSION=0 at start, or set_wave_fusion(false), for comparisons and tests).
bool fuses_input(const Plan& plan, int layer);
bool wave_fusion();
void set_wave_fusion(bool enabled);
// How many input GEMMs have been fused into wave batches so far (staged), for tests.
std::int64_t fused_wave_gemms();

// The forward and backward programs for a plan and a timeline, as a wavefront or layer by
// layer; forward, layer by layer, without the InputProjection of the layers whose steps
// project their own input (projected_in_steps[layer], projects_in_steps()).
std::vector<PassOp> schedule_forward(const Plan& plan, const Timeline& timeline, bool wavefront,
                                     const std::vector<bool>& projected_in_steps);
std::vector<PassOp> schedule_backward(const Plan& plan, const Timeline& timeline, bool wavefront);

template <typename T>
class StackPass {
 public:
  StackPass(const Plan& plan, Ops<T>& ops, const Timeline& timeline, const StackBuffers<T>& buffers,
            const T* params)
      : plan_(plan), ops_(ops), tl_(timeline), B_(timeline.batch), buf_(buffers), params_(params) {}

  // Runs the forward program; h0/c0 are already in place (see the engine).
  void forward();
  // Runs the backward program and adds the weight gradients into `grads`; the output's
  // gradient, dh and dc are already in place and every other gradient buffer is zero.
  void backward(T* grads);

 private:
  void stage(std::vector<PassOp>& program, bool backward);
  const void* input_gemm_operand(const UnitStep& s, bool backward, int operand) const;
  void transpose_weights();
  // Holds (Ops::hold_weights) every matrix the pass's per-step GEMMs read when they are
  // Packed; if any cannot be packed, none stays held and all are read as stored. The pass
  // releases them when it ends.
  void hold_step_weights(bool backward);
  bool transposed_weights() const { return !buf_.units.empty() && buf_.units[0].w_t != nullptr; }
  void initial_projection(const PassOp& op);
  void input_projection(const PassOp& op);
  // The calls of one Steps / StepsBackward op, appended to `calls`.
  void forward_calls(const PassOp& op, std::vector<StepCall<T>>& calls) const;
  void backward_calls(const PassOp& op, std::vector<StepCall<T>>& calls) const;
  // Whether a pass hands a layer's steps to Ops::run_step_list at once: layer by layer on
  // Packed weights (the CPU runs row-parallel runs only on those) or where the backend
  // replays call lists (Ops::replays_call_lists: CUDA graphs); a wavefront, whose steps
  // interleave with per-step projections and connections, only where it replays lists and
  // none of those launches anything (then all its waves are one list); and not while
  // recording the gradient flow (a reduction over all rows at every step).
  bool row_runs(const std::vector<PassOp>& program, bool backward) const;
  // Whether `op` launches work of its own between steps: every op but the steps
  // themselves and the connection ops of a layer with no join and no dropout.
  bool breaks_step_list(const PassOp& op) const;
  // Whether layer `layer`'s output goes through dropout in this pass (training, p > 0).
  bool drops_out(int layer) const;
  bool projects_in_steps(int layer) const;
  // Runs `calls` (Ops::run_step_list, else one by one) and empties it; by_rows: row_runs().
  void run_steps(std::vector<StepCall<T>>& calls, bool by_rows);
  void connection_forward(const PassOp& op);
  void record_flow(const std::vector<StepBackward<T>>& args, const PassOp& op);
  void input_gradient(const PassOp& op);
  void connection_backward(const PassOp& op);
  void weight_gradients(T* grads);

  StepForward<T> step_forward_args(const UnitStep& s) const;
  StepBackward<T> step_backward_args(const UnitStep& s) const;
  // Row of Y_l / cs holding h_{t-1} (prev) or h_t of unit `unit` at step t.
  std::int64_t prev_row(int unit, std::int64_t t) const;
  std::int64_t out_row(std::int64_t t) const { return B_ + tl_.offset[t]; }
  std::int64_t h0_row(int unit) const;
  T* y_at(int unit, std::int64_t row) const;
  std::int64_t carried(int unit, std::int64_t t) const;
  std::int64_t rows(std::int64_t t0, std::int64_t t1) const {
    return tl_.offset[t1] - tl_.offset[t0];
  }
  void dropout(const PassOp& op, bool backward);
  ConnectionArgs<T> range_args(const PassOp& op, int y_act) const;
  ConnectionArgs<T> join_args(const PassOp& op) const;
  const T* param(std::int64_t offset) const { return offset >= 0 ? params_ + offset : nullptr; }

  const Plan& plan_;
  Ops<T>& ops_;
  const Timeline& tl_;
  std::int64_t B_;
  const StackBuffers<T>& buf_;
  const T* params_;
  std::vector<const void*> table_;  // host pointer tables of the program being run
  const void* const* staged_ = nullptr;
};

}  // namespace recur::detail
