// recur/lr_schedule.h: learning-rate schedules: a linear warmup, then constant, cosine,
// linear or step decay, applied to one or more optimizers; the step count is saved in
// checkpoints.
//
//   recur::Adam adam(rnn.parameters());
//   recur::LrScheduleOptions o;
//   o.base_lr = 3e-4;
//   o.warmup_steps = 100;                 // from 0 up to 3e-4 over the first 100 steps
//   o.decay = recur::LrDecay::Cosine;     // then down to min_lr at step total_steps
//   o.total_steps = 3000;
//   o.min_lr = 3e-5;
//   recur::LrSchedule schedule(o, {&adam});   // adam's lr: lr_at(0)
//
//   recur::CheckpointExtras extras;
//   extras.tensors = {{"lr_schedule", schedule.state()}};
//   if (resuming) {
//     recur::load_checkpoint(path, rnn, &adam, extras);  // steps() as saved
//     schedule.set_steps(schedule.steps());              // this schedule's lr at that step
//   }
//   for (...) {
//     ... rnn.backward(dy); clip_grad_norm(...);
//     adam.step(rnn.gradients(), &norm, rnn.cuda_stream());
//     schedule.step();                                   // the lr of the next step
//     if (...) recur::save_checkpoint(path, rnn, &adam, schedule.steps(), extras);
//   }
//
// The rate of step t (t = the number of step() calls so far; the optimizer's step t + 1
// uses it), with W = warmup_steps, f = warmup_start_factor and d = t - W:
//   t < W (warmup):  base_lr * (f + (1 - f) * t / W)            PyTorch's LinearLR(f, 1, W)
//   t >= W, by decay:
//     Constant:      base_lr
//     Cosine:        min_lr + (base_lr - min_lr) * (1 + cos(pi * d / D)) / 2 for d < D,
//                    min_lr from then on, D = total_steps - W    CosineAnnealingLR(D, min_lr)
//     Linear:        base_lr + (min_lr - base_lr) * d / D for d < D, min_lr from then on
//                                                     LinearLR(1, min_lr / base_lr, D)
//     Step:          max(min_lr, base_lr * gamma^floor(d / step_size))     StepLR, floored
// So total_steps counts the warmup too, and the rate at t = W is base_lr: warmup and
// decay join without a jump. Past total_steps, Cosine stays at min_lr (PyTorch's
// CosineAnnealingLR would rise again). min_lr floors the decay, not the warmup (which
// starts at f * base_lr, e.g. 0).
//
// The optimizers are attached by pointer; they are not owned and must outlive the
// schedule, where they are: after an attached Optimizer is moved from, step() and
// set_steps() throw and change nothing. The constructor, attach, step and set_steps set
// lr_at(steps()) on every attached optimizer (Optimizer::set_learning_rate). step()
// counts calls, not the steps an optimizer took: a step skipped for a non-finite gradient
// still advances the schedule (as PyTorch's schedulers do when GradScaler skips).
//
// Checkpoints: state() is the schedule's state, a [2] float64 tensor in host memory that
// the schedule owns and reads at every call: slot 0 the step count, slot 1 the rate at
// that step (written beside it, as PyTorch keeps _last_lr; only read by people). Put it
// in CheckpointExtras::tensors, as above; load_checkpoint writes the file's values into it
// in place. The options are not saved: the caller builds the same schedule again (or a
// changed one, e.g. a longer total_steps; set_steps(steps()) then applies its rate). Values
// from a file cannot do harm: a step count that is NaN or negative reads as 0, a fraction
// is rounded down, and anything above 2^53 reads as 2^53.
//
// Every argument is validated before anything changes; a bad one throws recur::Error
// naming it, and a failed call changes nothing. Move-only (state() stays valid through a
// move); not safe to use from two threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "recur/export.h"
#include "recur/optim.h"
#include "recur/tensor.h"

namespace recur {

enum class LrDecay { Constant, Cosine, Linear, Step };

struct LrScheduleOptions {
  double base_lr = 1e-3;              // finite, >= 0: the rate after warmup
  std::int64_t warmup_steps = 0;      // >= 0; 0: no warmup
  double warmup_start_factor = 0.0;   // in [0, 1]: warmup starts at this times base_lr
  LrDecay decay = LrDecay::Constant;  // what follows the warmup
  std::int64_t total_steps = 0;       // Cosine, Linear: > warmup_steps; else >= 0, unused
  double min_lr = 0.0;                // in [0, base_lr]: the floor of the decay
  std::int64_t step_size = 1;         // >= 1: Step's steps between two decays
  double gamma = 0.1;                 // in (0, 1]: Step's factor at each decay
};

class RECUR_API LrSchedule {
 public:
  // Validates `options` and every optimizer (not nullptr, not moved from, none twice),
  // then sets lr_at(0) on each.
  explicit LrSchedule(const LrScheduleOptions& options,
                      const std::vector<Optimizer*>& optimizers = {});
  ~LrSchedule();
  LrSchedule(LrSchedule&&) noexcept;
  LrSchedule& operator=(LrSchedule&&) noexcept;
  LrSchedule(const LrSchedule&) = delete;
  LrSchedule& operator=(const LrSchedule&) = delete;

  // One more optimizer (not moved from, not attached yet); sets lr_at(steps()) on it.
  void attach(Optimizer& optimizer);

  // The rate of step `step` (>= 0), by the formulas above. Pure: changes nothing.
  double lr_at(std::int64_t step) const;
  // lr_at(steps()).
  double current_lr() const;

  // Advances the step count by one (it stays at 2^53 once there) and sets lr_at(steps())
  // on every attached optimizer.
  void step();
  std::int64_t steps() const;
  // Sets the step count (in [0, 2^53]), and lr_at(steps) on every attached optimizer.
  void set_steps(std::int64_t steps);

  const LrScheduleOptions& options() const;
  std::vector<Optimizer*> optimizers() const;
  // [2] float64, host memory: {step count, lr at it}. See above.
  TensorView state() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
