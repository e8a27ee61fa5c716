// src/engine.h: runs a Plan's forward and backward passes on one backend, owning the
// workspace and what a training forward keeps for backward. Arguments arrive validated.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "pass_statistics.h"
#include "plan.h"
#include "recur/rnn.h"
#include "tuning.h"

namespace recur::detail {

class Engine {
 public:
  virtual ~Engine() = default;

  // lengths: empty (every sequence runs all T steps) or one per sequence, each in 1..T.
  // dropout_stream: which masks this pass draws (a new one per training forward).
  virtual ForwardResult forward(const TensorView& x, const TensorView& h0, const TensorView& c0,
                                Mode mode, const std::vector<std::int64_t>& lengths,
                                std::uint64_t dropout_seed, std::uint64_t dropout_stream,
                                const TensorView& params) = 0;
  // flow: null, or [L*D, T] doubles in the engine's device memory (T = the forward's
  // caller steps): each unit's ||dJ/dh_t||^2 at each step is written there (gradient-flow
  // diagnostics; steps past the longest sequence are left alone).
  virtual BackwardResult backward(const TensorView& dy, const TensorView& dh_n,
                                  const TensorView& dc_n, const TensorView& params,
                                  const TensorView& grads, double* flow) = 0;

  // The model's tuning choices (tuning.h); set_tuning applies from the next forward.
  virtual const Tuning& tuning() const = 0;
  virtual void set_tuning(const Tuning& tuning) = 0;
  // What the last forward and the last backward did (pass_statistics.h), for tests.
  virtual const PassStatistics& forward_statistics() const = 0;
  virtual const PassStatistics& backward_statistics() const = 0;

  virtual void* stream() const = 0;
  virtual void set_stream(void* stream) = 0;
  virtual void synchronize() = 0;

  // What the last Mode::Training forward() kept: its T and B, or 0 when nothing is kept.
  virtual std::int64_t saved_steps() const = 0;
  virtual std::int64_t saved_batch() const = 0;
};

std::unique_ptr<Engine> make_engine(const Plan& plan, Device device);

}  // namespace recur::detail
