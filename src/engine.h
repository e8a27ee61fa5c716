// src/engine.h: runs a Plan's forward and backward passes on one backend. Each training
// forward's state (its workspace, timeline, row maps, pass plan) lives in a SavedState of
// its own, which any later backward consumes; released workspaces go back to a pool the
// engine reuses by size. Arguments arrive validated.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "pass_statistics.h"
#include "plan.h"
#include "recur/rnn.h"
#include "tuning.h"

namespace recur::detail {

// What a Mode::Training forward keeps for its backward (recur::SavedForward's state). The
// engine that made it derives from it; destroying it gives its workspace back to that
// engine's pool (or frees it, when the engine is gone).
struct SavedState {
  virtual ~SavedState() = default;
  std::uint64_t engine = 0;        // Engine::id() of the engine that made it
  std::int64_t steps = 0;          // the caller's T
  std::int64_t batch = 0;          // B
  DType x_dtype = DType::Float32;  // the dtype the caller's x had: dx comes back so (Rnn)
};

// The bytes of one pass on the engine's device, by part (Rnn::step_memory).
struct PassMemory {
  std::int64_t saved = 0;          // the forward's workspace: what a training forward keeps
  std::int64_t workspace = 0;      // backward's arena, the zeros standing for absent states
  std::int64_t outputs = 0;        // y, h_n, c_n; training: dx, dh0, dc0
  std::int64_t weight_copies = 0;  // the backend's held copies (Ops::held_weight_bytes)
  std::int64_t total() const { return saved + workspace + outputs + weight_copies; }
};

// An engine's forward workspaces: held by SavedStates, spare in its pool, and how many it
// ever allocated.
struct WorkspaceCounts {
  std::int64_t held = 0;
  std::int64_t spare = 0;
  std::int64_t allocations = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // A number no other engine of this process has: SavedStates name their engine by it.
  virtual std::uint64_t id() const = 0;

  // lengths: empty (every sequence runs all T steps) or one per sequence, each in 1..T.
  // dropout_stream: which masks this pass draws (a new one per training forward).
  // recompute_layers (training, bidirectional stacks): keep only what flows between the
  // layers, and let the backward rebuild each layer's steps before that layer's backward
  // (design.md, "Recomputation").
  // saved: null for Mode::Inference; for Mode::Training, where the pass's state goes (its
  // steps and batch set; x_dtype is the caller's to set).
  virtual ForwardResult forward(const TensorView& x, const TensorView& h0, const TensorView& c0,
                                const std::vector<std::int64_t>& lengths,
                                std::uint64_t dropout_seed, std::uint64_t dropout_stream,
                                const TensorView& params, bool recompute_layers,
                                std::unique_ptr<SavedState>* saved) = 0;
  // A training forward that keeps only x and the states at the start of each segment of
  // `segment_steps` steps (unidirectional stacks); its backward recomputes each segment's
  // forward, last segment first, and runs that segment's backward (design.md,
  // "Recomputation"). Otherwise as forward().
  virtual ForwardResult forward_recomputed(const TensorView& x, const TensorView& h0,
                                           const TensorView& c0,
                                           const std::vector<std::int64_t>& lengths,
                                           std::uint64_t dropout_seed, std::uint64_t dropout_stream,
                                           const TensorView& params, std::int64_t segment_steps,
                                           std::unique_ptr<SavedState>* saved) = 0;
  // saved: a state this engine's forward made, not yet given to a backward (the caller
  // destroys it afterwards). dy, dh_n, dc_n match its T and B.
  // flow: null, or [L*D, T] doubles in the engine's device memory (T = the forward's
  // caller steps): each unit's ||dJ/dh_t||^2 at each step is written there (gradient-flow
  // diagnostics; steps past the longest sequence are left alone).
  virtual BackwardResult backward(SavedState& saved, const TensorView& dy, const TensorView& dh_n,
                                  const TensorView& dc_n, const TensorView& params,
                                  const TensorView& grads, double* flow) = 0;

  // What a forward of steps x batch (lengths: as forward's) and, training, its backward
  // lay out, as this engine would plan them now; segment_steps > 0: a recomputed forward's
  // (forward_recomputed); recompute_layers: forward's with recompute_layers. Nothing is
  // allocated.
  virtual PassMemory memory(std::int64_t steps, std::int64_t batch,
                            const std::vector<std::int64_t>& lengths, bool training,
                            std::int64_t segment_steps, bool recompute_layers) = 0;

  // The model's tuning choices (tuning.h); set_tuning applies from the next forward.
  virtual const Tuning& tuning() const = 0;
  virtual void set_tuning(const Tuning& tuning) = 0;
  // What the last forward and the last backward did (pass_statistics.h), for tests.
  virtual const PassStatistics& forward_statistics() const = 0;
  virtual const PassStatistics& backward_statistics() const = 0;
  // The forward workspaces (for tests: a loop of one shape allocates nothing after the
  // first; a dropped SavedState's workspace is reused).
  virtual WorkspaceCounts workspaces() const = 0;

  virtual void* stream() const = 0;
  virtual void set_stream(void* stream) = 0;
  virtual void synchronize() = 0;
};

std::unique_ptr<Engine> make_engine(const Plan& plan, Device device);

}  // namespace recur::detail
