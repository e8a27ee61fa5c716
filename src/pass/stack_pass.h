// src/pass/stack_pass.h: runs a pass plan's programs (pass_plan.h) over the whole stack
// (layers x directions x time), forward and backward, written once against Ops<T>. It
// prepares the per-step weights, stages the pointer tables (staging.h), hands the steps
// to the backend one by one or as step lists (step_calls.h), and calls the rooms that do
// the rest: projections.h, connections.h, weight_gradients.h.
#pragma once

#include <vector>

#include "pass_context.h"

namespace recur::detail {

template <typename T>
class StackPass {
 public:
  StackPass(const Plan& plan, const PassPlan& pass, Ops<T>& ops, const Timeline& timeline,
            const StackBuffers<T>& buffers, const T* params)
      : ctx_{plan, pass, timeline, buffers, params, ops} {}

  // Runs the forward program; h0/c0 are already in place (see the engine).
  void forward();
  // Runs the backward program and adds the weight gradients into `grads`; the output's
  // gradient, dh and dc are already in place and every other gradient buffer is zero. A
  // pass that recomputes layers (PassPlan::recomputes_layers) runs, from the top layer
  // down, each layer's forward steps again and then its backward and weight gradients.
  void backward(T* grads);

 private:
  // Runs `program`'s ops in order; its steps one by one, or with step_lists as lists of
  // each layer's steps (a wavefront's: all its waves), broken only where an op launches
  // work of its own (breaks_step_list).
  void run(const Program& program, bool backward, bool step_lists);
  // The forward's Transposed copies of W_hh (and a wavefront's upper W_ih).
  void transpose_weights();
  // Holds (Ops::hold_weights) every matrix the pass's per-step GEMMs read when they are
  // Packed, those of one layer or of kAllLayers; if any cannot be packed, none stays held
  // and all are read as stored. The pass releases them when it ends.
  void hold_step_weights(bool backward, int layer);
  // Runs `calls` (Ops::run_step_list, else one by one) and empties it.
  void run_steps(std::vector<StepCall<T>>& calls, bool as_list);
  void record_flow(const std::vector<StepBackward<T>>& args, const PassOp& op);

  PassContext<T> ctx_;
};

}  // namespace recur::detail
