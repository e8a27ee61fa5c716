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
//   - unidirectional stacks: a wavefront, Steps w holds layer l at step w-l for every l,
//     so L layers cost T+L-1 sequential steps instead of L*T; layers above the first
//     project their input one step at a time.
//
// Buffers (see docs/design.md): each layer writes its output straight into
// Y_l [T+2, B, D*H]: slot t+1 holds step t of both directions side by side, slot 0 the
// forward h0 and slot T+1 the reverse h0. So y_l needs no concatenation, step t's h_prev
// is slot t (forward) or t+2 (reverse), and all h_prev of a direction form one matrix
// with leading dimension D*H for the dW_hh GEMM.
#pragma once

#include <cstdint>
#include <vector>

#include "ops.h"
#include "plan.h"

namespace recur::detail {

// A tensor of T*B rows: row r = t*B + b starts at data + r*ld; grad likewise (backward).
template <typename T>
struct ActivationBuffers {
  T* data = nullptr;
  T* grad = nullptr;
  std::int64_t ld = 0;
};

// One layer-direction's buffers.
template <typename T>
struct UnitBuffers {
  T* cs = nullptr;     // [T+1, B, H] cell states (LSTM)
  T* gx = nullptr;     // [T, B, G*H] input projections
  T* gh = nullptr;     // [B, G*H] this step's recurrent projection
  T* saved = nullptr;  // [T, B, S*H] training; [B, S*H] reset-before-product inference
  T* rh = nullptr;     // [T, B, H] training; [B, H] inference (reset-before-product)
  T* dgx = nullptr;    // [T, B, G*H]
  T* dgh = nullptr;    // [T, B, G*H]; equals dgx except for the linear-before-reset GRU
  T* dh = nullptr;     // [B, H]
  T* dc = nullptr;     // [B, H]
  T* drh = nullptr;    // [B, H]
};

template <typename T>
struct StackBuffers {
  bool training = false;
  std::vector<T*> ys;                      // per layer: Y_l [T+2, B, D*H]
  std::vector<ActivationBuffers<T>> acts;  // per activation of the plan
  std::vector<UnitBuffers<T>> units;       // per unit, index l*D + d
  std::vector<T*> gates;                   // per layer: highway gate [T, B, D*H] or null
  std::vector<T*> dgates;                  // per layer: highway dJ/dz [T, B, D*H] or null
  const T* ones = nullptr;                 // [T*B] of 1s for bias gradients
};

enum class PassOpKind {
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

struct PassOp {
  PassOpKind kind = PassOpKind::Steps;
  int layer = 0, dir = 0;
  std::int64_t t0 = 0, t1 = 0;
  std::vector<UnitStep> steps;  // Steps / StepsBackward
  std::size_t table = 0;        // first pointer of this op's batched-GEMM tables
};

// The forward and backward programs for a plan and T steps.
std::vector<PassOp> schedule_forward(const Plan& plan, std::int64_t steps);
std::vector<PassOp> schedule_backward(const Plan& plan, std::int64_t steps);

template <typename T>
class StackPass {
 public:
  StackPass(const Plan& plan, Ops<T>& ops, std::int64_t steps, std::int64_t batch,
            const StackBuffers<T>& buffers, const T* params)
      : plan_(plan), ops_(ops), T_(steps), B_(batch), buf_(buffers), params_(params) {}

  // Runs the forward program; h0/c0 are already in place (see the engine).
  void forward();
  // Runs the backward program and adds the weight gradients into `grads`; the output's
  // gradient, dh and dc are already in place and every other gradient buffer is zero.
  void backward(T* grads);

 private:
  void stage(std::vector<PassOp>& program, bool backward);
  void input_projection(const PassOp& op);
  void steps_forward(const PassOp& op);
  void connection_forward(const PassOp& op);
  void steps_backward(const PassOp& op);
  void input_gradient(const PassOp& op);
  void connection_backward(const PassOp& op);
  void weight_gradients(T* grads);

  StepForward<T> step_forward_args(const UnitStep& s) const;
  StepBackward<T> step_backward_args(const UnitStep& s) const;
  T* h_at(int unit, std::int64_t slot) const;
  const T* param(std::int64_t offset) const { return offset >= 0 ? params_ + offset : nullptr; }

  const Plan& plan_;
  Ops<T>& ops_;
  std::int64_t T_, B_;
  const StackBuffers<T>& buf_;
  const T* params_;
  std::vector<const void*> table_;  // host pointer tables of the program being run
  const void* const* staged_ = nullptr;
};

}  // namespace recur::detail
