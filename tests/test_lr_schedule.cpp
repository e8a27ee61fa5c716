// tests/test_lr_schedule.cpp: LrSchedule: each formula against hand-computed values (and
// PyTorch's schedulers' numbers, computed by hand from their formulas), warmup joined to
// each decay, the min_lr floor, rates set on two optimizers, the state through a checkpoint
// (a resumed run continues bit for bit; hostile values are harmless), every error message.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "io_test_util.h"
#include "recur/checkpoint.h"
#include "recur/lr_schedule.h"

namespace recur::test {
namespace {

constexpr double kTol = 1e-15;
constexpr std::int64_t kMaxSteps = std::int64_t{1} << 53;

LrScheduleOptions options(LrDecay decay, double base, std::int64_t warmup, std::int64_t total,
                          double min_lr = 0.0) {
  LrScheduleOptions o;
  o.base_lr = base;
  o.warmup_steps = warmup;
  o.decay = decay;
  o.total_steps = total;
  o.min_lr = min_lr;
  return o;
}

// lr_at(t) for t = 0, 1, ... against `expected`, within kTol.
void expect_rates(const LrSchedule& s, const std::vector<double>& expected) {
  for (std::size_t t = 0; t < expected.size(); ++t) {
    EXPECT_NEAR(s.lr_at(static_cast<std::int64_t>(t)), expected[t], kTol) << "step " << t;
  }
}

// ---- the formulas ----

TEST(LrSchedule, ConstantWithoutWarmupIsBaseLr) {
  LrSchedule s(options(LrDecay::Constant, 0.1, 0, 0));
  expect_rates(s, {0.1, 0.1, 0.1});
  EXPECT_EQ(s.lr_at(std::numeric_limits<std::int64_t>::max()), 0.1);
}

// PyTorch: LinearLR(SGD(lr=0.1), start_factor=0.25, end_factor=1.0, total_iters=4) gives
// 0.1 * (0.25 + 0.75 * t / 4) = 0.025, 0.04375, 0.0625, 0.08125, then 0.1.
TEST(LrSchedule, LinearWarmupFromAStartFactor) {
  LrScheduleOptions o = options(LrDecay::Constant, 0.1, 4, 0);
  o.warmup_start_factor = 0.25;
  LrSchedule s(o);
  expect_rates(s, {0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1});
  // The default factor 0 starts from nothing: 0, base/4, base/2, ...
  LrSchedule zero(options(LrDecay::Constant, 0.1, 4, 0));
  expect_rates(zero, {0.0, 0.025, 0.05, 0.075, 0.1});
}

// PyTorch: CosineAnnealingLR(SGD(lr=0.1), T_max=10, eta_min=0.01) gives
// 0.01 + 0.09 * (1 + cos(pi * t / 10)) / 2: t = 2: 0.0914057647468726,
// t = 3: 0.0814503363531613, t = 5: 0.055, t = 10: 0.01.
TEST(LrSchedule, CosineIsPyTorchsCosineAnnealing) {
  LrSchedule s(options(LrDecay::Cosine, 0.1, 0, 10, 0.01));
  EXPECT_NEAR(s.lr_at(0), 0.1, kTol);
  EXPECT_NEAR(s.lr_at(2), 0.0914057647468726, kTol);
  EXPECT_NEAR(s.lr_at(3), 0.0814503363531613, kTol);
  EXPECT_NEAR(s.lr_at(5), 0.055, kTol);
  EXPECT_NEAR(s.lr_at(10), 0.01, kTol);
  // Past T_max it stays at the floor (PyTorch's would rise again: 0.0185942352531274 at 12).
  EXPECT_EQ(s.lr_at(12), 0.01);
  EXPECT_EQ(s.lr_at(std::numeric_limits<std::int64_t>::max()), 0.01);
}

// Two warmup steps from 0, then the cosine above shifted by 2: total_steps counts both.
TEST(LrSchedule, WarmupThenCosine) {
  LrSchedule s(options(LrDecay::Cosine, 0.1, 2, 12, 0.01));
  expect_rates(s, {0.0, 0.05, 0.1});
  EXPECT_NEAR(s.lr_at(4), 0.0914057647468726, kTol);
  EXPECT_NEAR(s.lr_at(7), 0.055, kTol);
  EXPECT_NEAR(s.lr_at(12), 0.01, kTol);
  EXPECT_EQ(s.lr_at(13), 0.01);
}

// PyTorch: LinearLR(SGD(lr=0.1), start_factor=1.0, end_factor=0.2, total_iters=4) gives
// 0.1, 0.08, 0.06, 0.04, then 0.02 (min_lr = 0.2 * base_lr).
TEST(LrSchedule, LinearDecayToMinLr) {
  LrSchedule s(options(LrDecay::Linear, 0.1, 0, 4, 0.02));
  expect_rates(s, {0.1, 0.08, 0.06, 0.04, 0.02, 0.02, 0.02});
  EXPECT_EQ(s.lr_at(std::numeric_limits<std::int64_t>::max()), 0.02);
}

TEST(LrSchedule, WarmupThenLinear) {
  LrScheduleOptions o = options(LrDecay::Linear, 0.1, 2, 6, 0.0);
  o.warmup_start_factor = 0.5;
  LrSchedule s(o);
  expect_rates(s, {0.05, 0.075, 0.1, 0.075, 0.05, 0.025, 0.0, 0.0});
}

// PyTorch: StepLR(SGD(lr=0.1), step_size=3, gamma=0.5) gives 0.1 for t = 0..2, 0.05 for
// 3..5, 0.025 for 6..8, 0.0125 at 9.
TEST(LrSchedule, StepIsPyTorchsStepLr) {
  LrScheduleOptions o = options(LrDecay::Step, 0.1, 0, 0);
  o.step_size = 3;
  o.gamma = 0.5;
  LrSchedule s(o);
  expect_rates(s, {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125});
  EXPECT_EQ(s.lr_at(std::numeric_limits<std::int64_t>::max()), 0.0);  // gamma^huge: 0
  // gamma 1: never decays.
  o.gamma = 1.0;
  EXPECT_EQ(LrSchedule(o).lr_at(std::numeric_limits<std::int64_t>::max()), 0.1);
}

// The decay's steps count from the end of the warmup, and min_lr floors them.
TEST(LrSchedule, WarmupThenStepWithMinLrFloor) {
  LrScheduleOptions o = options(LrDecay::Step, 0.1, 2, 0, 0.03);
  o.step_size = 3;
  o.gamma = 0.5;
  LrSchedule s(o);
  expect_rates(s, {0.0, 0.05, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.03, 0.03});
  EXPECT_EQ(s.lr_at(std::numeric_limits<std::int64_t>::max()), 0.03);
}

// min_lr floors the decay, not the warmup; min_lr == base_lr makes any decay constant.
TEST(LrSchedule, MinLrFloorsTheDecayOnly) {
  LrSchedule s(options(LrDecay::Cosine, 0.1, 4, 8, 0.05));
  expect_rates(s, {0.0, 0.025, 0.05, 0.075, 0.1});
  for (std::int64_t t = 4; t < 20; ++t) EXPECT_GE(s.lr_at(t), 0.05) << "step " << t;
  for (LrDecay d : {LrDecay::Cosine, LrDecay::Linear, LrDecay::Step}) {
    LrSchedule flat(options(d, 0.1, 0, 5, 0.1));
    for (std::int64_t t : {0, 1, 3, 5, 100}) EXPECT_EQ(flat.lr_at(t), 0.1);
  }
}

// ---- steps and optimizers ----

TEST(LrSchedule, StepSetsTheRateOnEveryOptimizer) {
  Tensor p1 = Tensor::zeros({4}, DType::Float32);
  Tensor p2 = Tensor::zeros({3}, DType::Float64);
  Sgd sgd(p1.view(), {0.5});
  Adam adam(p2.view(), {0.5});
  LrScheduleOptions o = options(LrDecay::Linear, 0.1, 2, 6, 0.02);
  LrSchedule s(o, {&sgd, &adam});
  EXPECT_EQ(s.steps(), 0);
  EXPECT_EQ(sgd.learning_rate(), 0.0);  // lr_at(0) from the start
  EXPECT_EQ(adam.learning_rate(), 0.0);
  EXPECT_EQ(s.optimizers(), (std::vector<Optimizer*>{&sgd, &adam}));
  for (std::int64_t t = 1; t <= 8; ++t) {
    s.step();
    EXPECT_EQ(s.steps(), t);
    EXPECT_EQ(s.current_lr(), s.lr_at(t));
    EXPECT_EQ(sgd.learning_rate(), s.lr_at(t)) << "step " << t;
    EXPECT_EQ(adam.learning_rate(), s.lr_at(t)) << "step " << t;
  }
  EXPECT_NEAR(sgd.learning_rate(), 0.02, kTol);
  s.set_steps(3);
  EXPECT_EQ(s.steps(), 3);
  EXPECT_NEAR(sgd.learning_rate(), 0.08, kTol);
  EXPECT_NEAR(adam.learning_rate(), 0.08, kTol);
  EXPECT_EQ(s.state().to_vector<double>(), (std::vector<double>{3.0, s.lr_at(3)}));

  // attach: the current rate at once, and every step after.
  Tensor p3 = Tensor::zeros({2}, DType::Float32);
  Sgd late(p3.view(), {1.0});
  s.attach(late);
  EXPECT_EQ(late.learning_rate(), s.lr_at(3));
  s.step();
  EXPECT_EQ(late.learning_rate(), s.lr_at(4));
  EXPECT_EQ(s.optimizers().size(), 3u);
}

TEST(LrSchedule, StepCountSaturatesAt2To53) {
  LrSchedule s(options(LrDecay::Cosine, 0.1, 0, 10, 0.01));
  s.set_steps(kMaxSteps);
  s.step();
  EXPECT_EQ(s.steps(), kMaxSteps);
  EXPECT_EQ(s.current_lr(), 0.01);
}

TEST(LrSchedule, MoveKeepsTheStateView) {
  Tensor p = Tensor::zeros({2}, DType::Float32);
  Sgd sgd(p.view());
  LrSchedule a(options(LrDecay::Linear, 0.1, 0, 4, 0.0), {&sgd});
  a.step();
  const TensorView state = a.state();
  LrSchedule b(std::move(a));
  EXPECT_EQ(b.state().data(), state.data());
  b.step();
  EXPECT_EQ(b.steps(), 2);
  EXPECT_NEAR(sgd.learning_rate(), 0.05, kTol);
  EXPECT_EQ(error_of([&] { (void)a.steps(); }),  // NOLINT(bugprone-use-after-move)
            "recur: LrSchedule::steps: argument 'this': expected a live LrSchedule, got one "
            "that was moved from");
}

// ---- checkpoints ----

RnnConfig small_config() {
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = 3;
  c.hidden_size = 4;
  return c;
}

void train_step(Rnn& rnn, Optimizer& opt, std::uint64_t seed) {
  Random rng(seed);
  rnn.zero_grad();
  rnn.forward(rng.tensor<float>({3, 2, 3}));
  rnn.backward(rng.tensor<float>({3, 2, 4}));
  opt.step(rnn.gradients());
}

LrScheduleOptions resume_options() {
  LrScheduleOptions o = options(LrDecay::Cosine, 0.05, 3, 10, 0.005);
  o.warmup_start_factor = 0.1;
  return o;
}

// 4 steps, a checkpoint, 4 more in fresh objects: the same parameters, bit for bit, as 8
// steps in one run, and the same rate at every step.
TEST(LrScheduleCheckpoint, ResumeContinuesIdentically) {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  constexpr int kSteps = 8, kSaveAt = 4;

  Rnn straight(small_config(), Device::cpu(), 1);
  Adam straight_opt(straight.parameters());
  LrSchedule straight_schedule(resume_options(), {&straight_opt});
  std::vector<double> rates;
  for (int s = 0; s < kSteps; ++s) {
    rates.push_back(straight_opt.learning_rate());
    train_step(straight, straight_opt, 100 + static_cast<std::uint64_t>(s));
    straight_schedule.step();
  }

  {
    Rnn rnn(small_config(), Device::cpu(), 1);
    Adam opt(rnn.parameters());
    LrSchedule schedule(resume_options(), {&opt});
    for (int s = 0; s < kSaveAt; ++s) {
      train_step(rnn, opt, 100 + static_cast<std::uint64_t>(s));
      schedule.step();
    }
    CheckpointExtras extras;
    extras.tensors = {{"lr_schedule", schedule.state()}};
    save_checkpoint(path, rnn, &opt, schedule.steps(), extras);
  }
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.info("lr_schedule").dtype, "F64");
  EXPECT_EQ(f.info("lr_schedule").shape, (Shape{2}));

  Rnn rnn(small_config(), Device::cpu(), 7);
  Adam opt(rnn.parameters(), {0.9});
  LrSchedule schedule(resume_options(), {&opt});
  CheckpointExtras extras;
  extras.tensors = {{"lr_schedule", schedule.state()}};
  const CheckpointInfo info = load_checkpoint(path, rnn, &opt, extras);
  EXPECT_EQ(info.step, kSaveAt);
  EXPECT_EQ(schedule.steps(), kSaveAt);
  EXPECT_EQ(schedule.state().to_vector<double>(),
            (std::vector<double>{kSaveAt, schedule.lr_at(kSaveAt)}));
  EXPECT_EQ(opt.learning_rate(), schedule.lr_at(kSaveAt));
  schedule.set_steps(schedule.steps());  // as the header recommends; the same rate here
  for (int s = kSaveAt; s < kSteps; ++s) {
    EXPECT_EQ(opt.learning_rate(), rates[static_cast<std::size_t>(s)]) << "step " << s;
    train_step(rnn, opt, 100 + static_cast<std::uint64_t>(s));
    schedule.step();
  }
  EXPECT_EQ(schedule.steps(), kSteps);
  EXPECT_EQ(opt.learning_rate(), straight_opt.learning_rate());
  EXPECT_EQ(bytes_of(rnn.parameters()), bytes_of(straight.parameters()));
  EXPECT_EQ(bytes_of(opt.exp_avg_sq()), bytes_of(straight_opt.exp_avg_sq()));
}

// A file's state read into the schedule: NaN, negative, infinite, huge and fractional step
// counts are read as counts, and the schedule goes on from them.
TEST(LrScheduleCheckpoint, HostileStateIsHarmless) {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Rnn rnn(small_config());
  Tensor p = Tensor::zeros({2}, DType::Float32);
  Sgd sgd(p.view());
  LrSchedule schedule(options(LrDecay::Cosine, 0.1, 2, 12, 0.01), {&sgd});
  schedule.set_steps(5);

  const std::vector<std::pair<std::vector<double>, std::int64_t>> cases = {
      {{nan, nan}, 0},           {{-7.0, -1.0}, 0},         {{-inf, 0.5}, 0},
      {{inf, inf}, kMaxSteps},   {{1e300, 1.0}, kMaxSteps}, {{3.7, 123.0}, 3},
      {{0x1p60, 0.0}, kMaxSteps}};
  for (const auto& [values, steps] : cases) {
    // Through a real file: saved from a tensor of those values, loaded into state().
    const Tensor hostile = Tensor::from_vector(values, {2});
    CheckpointExtras out;
    out.tensors = {{"lr_schedule", hostile.view()}};
    save_checkpoint(path, rnn, nullptr, 1, out);
    CheckpointExtras in;
    in.tensors = {{"lr_schedule", schedule.state()}};
    load_checkpoint(path, rnn, nullptr, in);

    EXPECT_EQ(schedule.steps(), steps) << values[0];
    const double lr = schedule.current_lr();
    EXPECT_TRUE(std::isfinite(lr) && lr >= 0.0 && lr <= 0.1) << values[0];
    schedule.step();
    EXPECT_EQ(schedule.steps(), std::min(steps + 1, kMaxSteps)) << values[0];
    EXPECT_EQ(sgd.learning_rate(), schedule.lr_at(schedule.steps())) << values[0];
    EXPECT_EQ(schedule.state().to_vector<double>()[0], static_cast<double>(schedule.steps()));
  }
}

// ---- errors: every message, and nothing changes ----

std::string options_error(const LrScheduleOptions& o) {
  return error_of([&] { LrSchedule s(o); });
}

TEST(LrScheduleErrors, Options) {
  const std::string where = "recur: LrSchedule: argument ";
  LrScheduleOptions o;
  o.base_lr = -1.0;
  EXPECT_EQ(options_error(o), where + "'options.base_lr': expected a finite number >= 0, got -1");
  o.base_lr = std::numeric_limits<double>::infinity();
  EXPECT_EQ(options_error(o), where + "'options.base_lr': expected a finite number >= 0, got inf");

  o = {};
  o.warmup_steps = -1;
  EXPECT_EQ(options_error(o), where + "'options.warmup_steps': expected a count >= 0, got -1");

  o = {};
  o.warmup_start_factor = 1.5;
  EXPECT_EQ(options_error(o),
            where + "'options.warmup_start_factor': expected a number in [0, 1], got 1.5");
  o.warmup_start_factor = -0.25;
  EXPECT_EQ(options_error(o),
            where + "'options.warmup_start_factor': expected a number in [0, 1], got -0.25");

  o = {};
  o.decay = static_cast<LrDecay>(7);
  EXPECT_EQ(options_error(o), where +
                                  "'options.decay': expected Constant, Cosine, Linear or Step, "
                                  "got LrDecay(7)");

  o = options(LrDecay::Cosine, 0.1, 10, 10);
  EXPECT_EQ(options_error(o), where +
                                  "'options.total_steps': expected a count > "
                                  "options.warmup_steps (10) for Cosine decay, got 10");
  o = options(LrDecay::Linear, 0.1, 0, 0);
  EXPECT_EQ(options_error(o), where +
                                  "'options.total_steps': expected a count > "
                                  "options.warmup_steps (0) for Linear decay, got 0");
  o = options(LrDecay::Step, 0.1, 0, -3);
  EXPECT_EQ(options_error(o), where + "'options.total_steps': expected a count >= 0, got -3");

  o = options(LrDecay::Constant, 0.5, 0, 0, 0.75);
  EXPECT_EQ(options_error(o), where +
                                  "'options.min_lr': expected a number in [0, "
                                  "options.base_lr] = [0, 0.5], got 0.75");
  o.min_lr = -0.125;
  EXPECT_EQ(options_error(o), where +
                                  "'options.min_lr': expected a number in [0, "
                                  "options.base_lr] = [0, 0.5], got -0.125");

  o = {};
  o.step_size = 0;
  EXPECT_EQ(options_error(o), where + "'options.step_size': expected a count >= 1, got 0");

  o = {};
  o.gamma = 0.0;
  EXPECT_EQ(options_error(o), where + "'options.gamma': expected a number in (0, 1], got 0");
  o.gamma = 1.5;
  EXPECT_EQ(options_error(o), where + "'options.gamma': expected a number in (0, 1], got 1.5");
}

TEST(LrScheduleErrors, Optimizers) {
  Tensor p1 = Tensor::zeros({2}, DType::Float32);
  Tensor p2 = Tensor::zeros({2}, DType::Float32);
  Sgd a(p1.view(), {0.5});
  Sgd b(p2.view(), {0.25});
  const LrScheduleOptions o = options(LrDecay::Constant, 0.1, 0, 0);
  EXPECT_EQ(error_of([&] {
              LrSchedule s(o, {&a, nullptr});
            }),
            "recur: LrSchedule: argument 'optimizers[1]': expected an optimizer, got nullptr");
  EXPECT_EQ(error_of([&] {
              LrSchedule s(o, {&a, &b, &a});
            }),
            "recur: LrSchedule: argument 'optimizers[2]': expected an optimizer not attached "
            "yet, got optimizers[0] again");
  Sgd moved_to(std::move(b));
  EXPECT_EQ(error_of([&] {
              LrSchedule s(o, {&a, &b});
            }),  // NOLINT(bugprone-use-after-move)
            "recur: LrSchedule: argument 'optimizers[1]': expected a live optimizer, got one "
            "that was moved from");
  EXPECT_EQ(a.learning_rate(), 0.5);  // failed constructors set no rate

  LrSchedule s(options(LrDecay::Linear, 0.1, 0, 4), {&a});
  EXPECT_EQ(error_of([&] { s.attach(a); }),
            "recur: LrSchedule::attach: argument 'optimizer': expected an optimizer not "
            "attached yet, got optimizers[0] again");
  EXPECT_EQ(error_of([&] { s.attach(b); }),  // NOLINT(bugprone-use-after-move)
            "recur: LrSchedule::attach: argument 'optimizer': expected a live optimizer, got "
            "one that was moved from");
  EXPECT_EQ(s.optimizers().size(), 1u);

  // An attached optimizer moved away: step() and set_steps() change nothing.
  Tensor p3 = Tensor::zeros({2}, DType::Float32);
  Sgd c(p3.view());
  s.attach(c);
  s.attach(moved_to);
  s.step();
  Sgd elsewhere(std::move(c));
  const double rate = a.learning_rate();
  const std::vector<double> state = s.state().to_vector<double>();
  EXPECT_EQ(error_of([&] { s.step(); }),
            "recur: LrSchedule::step: argument 'optimizers[1]': expected a live optimizer, got "
            "one that was moved from");
  EXPECT_EQ(error_of([&] { s.set_steps(3); }),
            "recur: LrSchedule::set_steps: argument 'optimizers[1]': expected a live optimizer, "
            "got one that was moved from");
  EXPECT_EQ(s.steps(), 1);
  EXPECT_EQ(a.learning_rate(), rate);
  EXPECT_EQ(moved_to.learning_rate(), rate);
  EXPECT_EQ(s.state().to_vector<double>(), state);
}

TEST(LrScheduleErrors, Steps) {
  Tensor p = Tensor::zeros({2}, DType::Float32);
  Sgd sgd(p.view());
  LrSchedule s(options(LrDecay::Linear, 0.1, 0, 4), {&sgd});
  s.step();
  EXPECT_EQ(error_of([&] { (void)s.lr_at(-1); }),
            "recur: LrSchedule::lr_at: argument 'step': expected a count >= 0, got -1");
  EXPECT_EQ(error_of([&] { s.set_steps(-1); }),
            "recur: LrSchedule::set_steps: argument 'steps': expected a count in [0, 2^53], got "
            "-1");
  EXPECT_EQ(error_of([&] { s.set_steps(kMaxSteps + 1); }),
            "recur: LrSchedule::set_steps: argument 'steps': expected a count in [0, 2^53], got "
            "9007199254740993");
  EXPECT_EQ(s.steps(), 1);
  EXPECT_NEAR(sgd.learning_rate(), 0.075, kTol);
}

}  // namespace
}  // namespace recur::test
