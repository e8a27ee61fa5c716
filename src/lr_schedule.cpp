// src/lr_schedule.cpp: LrSchedule: validation, the formulas of recur/lr_schedule.h, and the
// state tensor (the step count lives there, so that a checkpoint's load is a restore).
#include "recur/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "float_dispatch.h"
#include "live.h"
#include "recur/error.h"

namespace recur {
namespace {

using detail::exact_number;

// Step counts are held in a float64 slot: exact up to 2^53.
constexpr std::int64_t kMaxSteps = detail::kMaxSlotCount;
constexpr double kPi = 3.14159265358979323846;

void expect_finite_at_least(const char* name, double value, double lo) {
  if (!(value >= lo) || std::isinf(value)) {
    throw Error("LrSchedule", name, "a finite number >= " + exact_number(lo), exact_number(value));
  }
}

void expect_count_at_least(const char* name, std::int64_t value, std::int64_t lo) {
  if (value < lo) {
    throw Error("LrSchedule", name, "a count >= " + std::to_string(lo), std::to_string(value));
  }
}

void validate(const LrScheduleOptions& o) {
  expect_finite_at_least("options.base_lr", o.base_lr, 0.0);
  expect_count_at_least("options.warmup_steps", o.warmup_steps, 0);
  if (!(o.warmup_start_factor >= 0.0 && o.warmup_start_factor <= 1.0)) {
    throw Error("LrSchedule", "options.warmup_start_factor", "a number in [0, 1]",
                exact_number(o.warmup_start_factor));
  }
  switch (o.decay) {
    case LrDecay::Constant:
    case LrDecay::Cosine:
    case LrDecay::Linear:
    case LrDecay::Step: break;
    default:
      throw Error("LrSchedule", "options.decay", "Constant, Cosine, Linear or Step",
                  "LrDecay(" + std::to_string(static_cast<int>(o.decay)) + ")");
  }
  if (o.decay == LrDecay::Cosine || o.decay == LrDecay::Linear) {
    if (o.total_steps <= o.warmup_steps) {
      throw Error("LrSchedule", "options.total_steps",
                  std::string("a count > options.warmup_steps (") + std::to_string(o.warmup_steps) +
                      ") for " + (o.decay == LrDecay::Cosine ? "Cosine" : "Linear") + " decay",
                  std::to_string(o.total_steps));
    }
  } else {
    expect_count_at_least("options.total_steps", o.total_steps, 0);
  }
  if (!(o.min_lr >= 0.0 && o.min_lr <= o.base_lr)) {
    throw Error("LrSchedule", "options.min_lr",
                "a number in [0, options.base_lr] = [0, " + exact_number(o.base_lr) + "]",
                exact_number(o.min_lr));
  }
  expect_count_at_least("options.step_size", o.step_size, 1);
  if (!(o.gamma > 0.0 && o.gamma <= 1.0)) {
    throw Error("LrSchedule", "options.gamma", "a number in (0, 1]", exact_number(o.gamma));
  }
}

// `optimizer` as a live one (Optimizer's methods throw for one that was moved from).
bool is_live(const Optimizer& optimizer) {
  try {
    (void)optimizer.learning_rate();
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

struct LrSchedule::Impl {
  LrScheduleOptions options;
  std::vector<Optimizer*> optimizers;
  Tensor state;  // [2] float64 on the host: step count, lr at it

  double* slots() const { return static_cast<double*>(state.data()); }
  std::int64_t steps() const { return detail::count_in_slot(slots()[0]); }

  double lr_at(std::int64_t t) const {
    const LrScheduleOptions& o = options;
    if (t < o.warmup_steps) {
      const double f = o.warmup_start_factor;
      return o.base_lr *
             (f + (1.0 - f) * static_cast<double>(t) / static_cast<double>(o.warmup_steps));
    }
    const std::int64_t d = t - o.warmup_steps;  // steps since the warmup ended
    const std::int64_t span = o.total_steps - o.warmup_steps;
    switch (o.decay) {
      case LrDecay::Cosine:
        if (d >= span) return o.min_lr;
        return o.min_lr +
               (o.base_lr - o.min_lr) *
                   (1.0 + std::cos(kPi * static_cast<double>(d) / static_cast<double>(span))) / 2.0;
      case LrDecay::Linear:
        if (d >= span) return o.min_lr;
        return o.base_lr +
               (o.min_lr - o.base_lr) * static_cast<double>(d) / static_cast<double>(span);
      case LrDecay::Step:
        return std::max(o.min_lr,
                        o.base_lr * std::pow(o.gamma, static_cast<double>(d / o.step_size)));
      case LrDecay::Constant: break;
    }
    return o.base_lr;
  }

  // Moves to step `t` (in [0, 2^53]): every optimizer checked first, so that a moved-from
  // one changes nothing; then their rates and the state.
  void go_to(const char* where, std::int64_t t) {
    for (std::size_t i = 0; i < optimizers.size(); ++i) {
      if (!is_live(*optimizers[i])) {
        throw Error(where, "optimizers[" + std::to_string(i) + "]", "a live optimizer",
                    "one that was moved from");
      }
    }
    const double lr = lr_at(t);
    for (Optimizer* opt : optimizers) opt->set_learning_rate(lr);
    slots()[0] = static_cast<double>(t);
    slots()[1] = lr;
  }

  // Throws unless `optimizer` can join the attached ones.
  void check_new(const char* where, const std::string& name, const Optimizer* optimizer,
                 const std::vector<Optimizer*>& attached) const {
    if (optimizer == nullptr) throw Error(where, name, "an optimizer", "nullptr");
    if (!is_live(*optimizer))
      throw Error(where, name, "a live optimizer", "one that was moved from");
    const auto it = std::find(attached.begin(), attached.end(), optimizer);
    if (it != attached.end()) {
      throw Error(where, name, "an optimizer not attached yet",
                  "optimizers[" + std::to_string(it - attached.begin()) + "] again");
    }
  }
};

LrSchedule::LrSchedule(const LrScheduleOptions& options, const std::vector<Optimizer*>& optimizers)
    : impl_(std::make_unique<Impl>()) {
  validate(options);
  std::vector<Optimizer*> attached;
  for (std::size_t i = 0; i < optimizers.size(); ++i) {
    impl_->check_new("LrSchedule", "optimizers[" + std::to_string(i) + "]", optimizers[i],
                     attached);
    attached.push_back(optimizers[i]);
  }
  impl_->options = options;
  impl_->optimizers = std::move(attached);
  impl_->state = Tensor::zeros({2}, DType::Float64, Device::cpu());
  impl_->go_to("LrSchedule", 0);
}

LrSchedule::~LrSchedule() = default;
LrSchedule::LrSchedule(LrSchedule&&) noexcept = default;
LrSchedule& LrSchedule::operator=(LrSchedule&&) noexcept = default;

void LrSchedule::attach(Optimizer& optimizer) {
  Impl& self = detail::live(impl_, "LrSchedule", "LrSchedule::attach");
  self.check_new("LrSchedule::attach", "optimizer", &optimizer, self.optimizers);
  optimizer.set_learning_rate(self.lr_at(self.steps()));
  self.optimizers.push_back(&optimizer);
}

double LrSchedule::lr_at(std::int64_t step) const {
  const Impl& self = detail::live(impl_, "LrSchedule", "LrSchedule::lr_at");
  if (step < 0) throw Error("LrSchedule::lr_at", "step", "a count >= 0", std::to_string(step));
  return self.lr_at(step);
}

double LrSchedule::current_lr() const {
  const Impl& self = detail::live(impl_, "LrSchedule", "LrSchedule::current_lr");
  return self.lr_at(self.steps());
}

void LrSchedule::step() {
  Impl& self = detail::live(impl_, "LrSchedule", "LrSchedule::step");
  self.go_to("LrSchedule::step", std::min(self.steps() + 1, kMaxSteps));
}

std::int64_t LrSchedule::steps() const {
  return detail::live(impl_, "LrSchedule", "LrSchedule::steps").steps();
}

void LrSchedule::set_steps(std::int64_t steps) {
  Impl& self = detail::live(impl_, "LrSchedule", "LrSchedule::set_steps");
  if (steps < 0 || steps > kMaxSteps) {
    throw Error("LrSchedule::set_steps", "steps", "a count in [0, 2^53]", std::to_string(steps));
  }
  self.go_to("LrSchedule::set_steps", steps);
}

const LrScheduleOptions& LrSchedule::options() const {
  return detail::live(impl_, "LrSchedule", "LrSchedule::options").options;
}

std::vector<Optimizer*> LrSchedule::optimizers() const {
  return detail::live(impl_, "LrSchedule", "LrSchedule::optimizers").optimizers;
}

TensorView LrSchedule::state() const {
  return detail::live(impl_, "LrSchedule", "LrSchedule::state").state.view();
}

}  // namespace recur
