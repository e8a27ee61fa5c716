// tests/test_loss_scale.cpp: dynamic loss scaling (recur/loss_scale.h) on the CPU: the
// update rule, exact scaling, FP16 gradients that underflow without it, a forced overflow
// that halves the scale, skips the step on every optimizer and recovers, checkpoints of the
// state, and the named errors.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace recur::test {
namespace {

// A GradNorm whose finite flag is `finite`.
GradNorm norm_of(bool finite) {
  std::vector<float> g = {1.0f, finite ? 2.0f : std::numeric_limits<float>::infinity()};
  Tensor t = Tensor::from_vector(g, {2});
  return global_norm({t.view()});
}

TEST(LossScale, BacksOffOnOverflowAndGrowsAfterARunOfFiniteSteps) {
  LossScaleOptions o;
  o.initial_scale = 1024.0;
  o.growth_interval = 3;
  LossScaler scaler(Device::cpu(), o);
  EXPECT_EQ(scaler.current_scale(), 1024.0);
  const GradNorm good = norm_of(true), bad = norm_of(false);
  scaler.update(good);
  scaler.update(good);
  EXPECT_EQ(scaler.good_steps(), 2);
  scaler.update(bad);  // the run starts again
  EXPECT_EQ(scaler.current_scale(), 512.0);
  EXPECT_EQ(scaler.overflows(), 1);
  EXPECT_EQ(scaler.good_steps(), 0);
  for (int i = 0; i < 3; ++i) scaler.update(good);
  EXPECT_EQ(scaler.current_scale(), 1024.0);
  EXPECT_EQ(scaler.growths(), 1);
  EXPECT_EQ(scaler.good_steps(), 0);
}

TEST(LossScale, StaysWithinItsRange) {
  LossScaleOptions o;
  o.initial_scale = std::ldexp(1.0, -63);
  LossScaler scaler(Device::cpu(), o);
  const GradNorm bad = norm_of(false);
  for (int i = 0; i < 5; ++i) scaler.update(bad);
  EXPECT_EQ(scaler.current_scale(), std::ldexp(1.0, -64));
  o.initial_scale = std::ldexp(1.0, 63);
  o.growth_interval = 1;
  LossScaler up(Device::cpu(), o);
  const GradNorm good = norm_of(true);
  for (int i = 0; i < 5; ++i) up.update(good);
  EXPECT_EQ(up.current_scale(), std::ldexp(1.0, 64));
}

// A power-of-two scale and its inverse change no bits (short of overflow).
TEST(LossScale, ScalingByAPowerOfTwoIsExact) {
  LossScaler scaler;
  Random rng(3);
  const std::vector<float> v = rng.vector<float>(1000);
  Tensor a = Tensor::from_vector(v, {1000}), b = Tensor::from_vector(v, {10, 100});
  scaler.scale_loss_gradient(a);
  EXPECT_EQ(a.to_vector<float>()[7], v[7] * 65536.0f);
  scaler.unscale_gradients({a.view(), b.view()});
  EXPECT_EQ(a.to_vector<float>(), v);
  const std::vector<float> small = b.to_vector<float>();
  for (std::size_t i = 0; i < small.size(); ++i) EXPECT_EQ(small[i], v[i] / 65536.0f);
}

RnnConfig fp16_lstm() {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 8;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.math = Math::Fp16;
  return c;
}

// Why FP16 needs the scale: with a loss gradient of 1e-8 per element, FP16's operands
// (dgx, dgh: below its smallest subnormal, 2^-24 ~ 6e-8) round to zero and the weight
// gradients with them (W_hh's here; the bias gradients are float32 column sums and would
// survive); scaled by 2^16 first and unscaled after, they come out within FP16's roundoff
// of float32's.
TEST(LossScale, KeepsFp16GradientsThatWouldUnderflow) {
  RnnConfig c = fp16_lstm();
  RnnConfig f32 = c;
  f32.math = Math::Fp32;
  const std::int64_t T = 6, B = 4;
  Random rng(5);
  const Tensor x = rng.tensor<float>({T, B, 8});
  std::vector<float> dy = rng.vector<float>(T * B * 16);
  for (float& v : dy) v *= 1e-8f;
  auto weight_gradient = [&](const RnnConfig& config, LossScaler* scaler) {
    Rnn rnn(config, Device::cpu(), 9);
    rnn.forward(x);
    Tensor d = Tensor::from_vector(dy, {T, B, 16});
    if (scaler != nullptr) scaler->scale_loss_gradient(d);
    rnn.backward(d);
    const TensorView w = rnn.gradient("weight_hh_l0");
    Tensor g = Tensor::from_vector(w.to_vector<float>(), w.shape());
    if (scaler != nullptr) scaler->unscale_gradients({g.view()});
    return g.to_vector<float>();
  };
  LossScaler scaler;
  const std::vector<float> exact = weight_gradient(f32, nullptr);
  const std::vector<float> unscaled = weight_gradient(c, nullptr);
  const std::vector<float> scaled = weight_gradient(c, &scaler);
  double err_unscaled = 0.0, err_scaled = 0.0, size = 0.0;
  for (std::size_t i = 0; i < exact.size(); ++i) {
    err_unscaled += std::pow(unscaled[i] - exact[i], 2.0);
    err_scaled += std::pow(scaled[i] - exact[i], 2.0);
    size += std::pow(exact[i], 2.0);
  }
  const double u = std::ldexp(1.0, -11);
  EXPECT_GT(std::sqrt(err_unscaled / size), 0.9) << "the unscaled FP16 gradient survived";
  EXPECT_LT(std::sqrt(err_scaled / size), 16.0 * u) << "relative to float32's";
}

// One FP16 training step of `rnn` (and a bias of its own, standing for a second module with
// its own optimizer) under `scaler`: dy = S * (y - target) / size, backward, unscale,
// clip, both optimizers, update. Returns the loss.
struct Fp16Trainer {
  explicit Fp16Trainer(Device device = Device::cpu())
      : rnn(fp16_lstm(), device, 11),
        bias(Tensor::zeros({16}, DType::Float32, device)),
        bias_grad(Tensor::zeros({16}, DType::Float32, device)),
        opt(rnn.parameters(), {1e-2}),
        opt_bias(bias.view(), {1e-2}) {}

  Rnn rnn;
  Tensor bias, bias_grad;
  Adam opt;
  Sgd opt_bias;
  GradNorm norm;

  double step(LossScaler& scaler, const Tensor& x, const std::vector<float>& target) {
    const Device device = rnn.device();
    const ForwardResult r = rnn.forward(x.to(device));
    std::vector<float> y = r.y.to_vector<float>(), dy(y.size());
    const std::vector<float> b = bias.to_vector<float>();
    std::vector<float> db(16, 0.0f);
    double loss = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      const double e = y[i] + b[i % 16] - target[i];
      loss += e * e / static_cast<double>(y.size());
      dy[i] = static_cast<float>(2.0 * e / static_cast<double>(y.size()));
      db[i % 16] += dy[i];
    }
    Tensor d = Tensor::from_vector(dy, r.y.shape(), device);
    bias_grad.view().copy_from_host(db.data());
    void* stream = rnn.cuda_stream();
    scaler.scale_loss_gradient(d, stream);
    scaler.scale_loss_gradient(bias_grad, stream);
    rnn.zero_grad();
    rnn.backward(d);
    const std::vector<TensorView> grads = {rnn.gradients(), bias_grad.view()};
    scaler.unscale_gradients(grads, stream);
    clip_grad_norm(grads, 1.0, norm, stream);
    opt.step(rnn.gradients(), &norm, stream);
    opt_bias.step(bias_grad, &norm, stream);
    scaler.update(norm, stream);
    return loss;
  }
};

// A scale of 2^40 makes FP16's operands overflow: each such step is skipped by both
// optimizers (parameters untouched) and halves the scale, until it is small enough; from
// then on the steps are taken and the loss falls (with, at most, another overflow or two
// where the gradient grows past what the scale allows).
TEST(LossScale, ForcedOverflowHalvesTheScaleSkipsAndRecovers) {
  Fp16Trainer t;
  LossScaleOptions o;
  o.initial_scale = std::ldexp(1.0, 40);
  LossScaler scaler(Device::cpu(), o);
  Random rng(12);
  const Tensor x = rng.tensor<float>({5, 4, 8});
  const std::vector<float> target = rng.vector<float>(5 * 4 * 16);
  const std::vector<float> before = t.rnn.parameters().to_vector<float>();
  const double first = t.step(scaler, x, target);
  EXPECT_FALSE(t.norm.finite());
  EXPECT_EQ(scaler.overflows(), 1);
  EXPECT_EQ(scaler.current_scale(), std::ldexp(1.0, 39));
  EXPECT_EQ(t.rnn.parameters().to_vector<float>(), before) << "an overflowing step was taken";
  double last = first;
  int steps = 1;
  while (!t.norm.finite() && steps < 64) {
    last = t.step(scaler, x, target);
    ++steps;
  }
  ASSERT_TRUE(t.norm.finite()) << "never recovered";
  const std::int64_t overflows = scaler.overflows();
  EXPECT_GE(overflows, 2);
  EXPECT_EQ(scaler.current_scale(), std::ldexp(1.0, 40 - static_cast<int>(overflows)));
  EXPECT_EQ(t.opt.skipped_steps(), overflows);
  EXPECT_EQ(t.opt_bias.skipped_steps(), overflows);
  EXPECT_EQ(t.opt.step_count(), 1);
  EXPECT_NE(t.rnn.parameters().to_vector<float>(), before);
  for (int i = 0; i < 30; ++i) last = t.step(scaler, x, target);
  EXPECT_LE(scaler.overflows(), overflows + 2);
  EXPECT_EQ(t.opt.skipped_steps(), scaler.overflows());
  EXPECT_EQ(t.opt.step_count() + t.opt.skipped_steps(), steps + 30);
  EXPECT_LT(last, 0.8 * first);
}

TEST(LossScale, StateIsSavedAndRestoredByCheckpoints) {
  LossScaleOptions o;
  o.initial_scale = 256.0;
  LossScaler scaler(Device::cpu(), o);
  scaler.update(norm_of(false));
  scaler.update(norm_of(true));
  RnnConfig c = fp16_lstm();
  Rnn rnn(c, Device::cpu(), 1);
  const std::string path = ::testing::TempDir() + "recur_loss_scale.safetensors";
  CheckpointExtras extras;
  extras.tensors = {{"loss_scale", scaler.state()}};
  save_checkpoint(path, rnn, nullptr, 2, extras);
  LossScaler restored(Device::cpu());
  CheckpointExtras into;
  into.tensors = {{"loss_scale", restored.state()}};
  load_checkpoint(path, rnn, nullptr, into);
  EXPECT_EQ(restored.current_scale(), 128.0);
  EXPECT_EQ(restored.overflows(), 1);
  EXPECT_EQ(restored.good_steps(), 1);
  std::remove(path.c_str());
}

// Values a file may hold that are no state: the counters read as 0, and the next update
// brings the scale back into range.
TEST(LossScale, AHostileStateCannotDoHarm) {
  LossScaler scaler;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> junk = {nan, nan, -5.0, 1e300, nan, 0.0};
  scaler.state().copy_from_host(junk.data());
  EXPECT_EQ(scaler.good_steps(), 0);
  EXPECT_EQ(scaler.overflows(), std::int64_t{1} << 53);
  EXPECT_EQ(scaler.growths(), 0);
  scaler.update(norm_of(false));
  EXPECT_EQ(scaler.current_scale(), std::ldexp(1.0, -64));
  // An infinite or huge S comes down to 2^64 at once, overflowing or not (halving it would
  // take forever or ~930 skipped steps); a NaN count of good steps starts again.
  const double inf = std::numeric_limits<double>::infinity();
  for (const bool finite : {false, true}) {
    for (const double s : {inf, 1e300}) {
      const std::vector<double> big = {s, 0.0, nan, 0.0, 0.0, 0.0};
      scaler.state().copy_from_host(big.data());
      scaler.update(norm_of(finite));
      EXPECT_EQ(scaler.current_scale(), std::ldexp(1.0, 64)) << s << " " << finite;
      EXPECT_EQ(scaler.good_steps(), finite ? 1 : 0);
    }
  }
}

TEST(LossScale, BadArgumentsAreNamed) {
  LossScaleOptions o;
  o.initial_scale = 0.0;
  EXPECT_EQ(error_of([&] { LossScaler s(Device::cpu(), o); }),
            "recur: LossScaler: argument 'options.initial_scale': expected a number in "
            "[2^-64, 2^64], got 0");
  o = {};
  o.growth_factor = 1.0;
  EXPECT_EQ(error_of([&] { LossScaler s(Device::cpu(), o); }),
            "recur: LossScaler: argument 'options.growth_factor': expected a finite number > 1, "
            "got 1");
  o = {};
  o.backoff_factor = 1.0;
  EXPECT_EQ(error_of([&] { LossScaler s(Device::cpu(), o); }),
            "recur: LossScaler: argument 'options.backoff_factor': expected a number in (0, 1), "
            "got 1");
  o = {};
  o.growth_interval = 0;
  EXPECT_EQ(error_of([&] { LossScaler s(Device::cpu(), o); }),
            "recur: LossScaler: argument 'options.growth_interval': expected a count >= 1, got 0");
  LossScaler scaler;
  Tensor half = Tensor::zeros({4}, DType::Float16);
  EXPECT_EQ(error_of([&] { scaler.scale_loss_gradient(half); }),
            "recur: LossScaler::scale_loss_gradient: argument 'loss_gradient': expected dtype "
            "float32 or float64, got dtype float16");
  Tensor g = Tensor::zeros({8}, DType::Float32);
  EXPECT_EQ(error_of([&] {
              scaler.unscale_gradients({g.view(), g.view()});
            }),
            "recur: LossScaler::unscale_gradients: argument 'gradients[1]': expected memory "
            "that no other span covers, got memory that overlaps gradients[0]");
  EXPECT_EQ(error_of([&] { scaler.update(GradNorm()); }),
            "recur: LossScaler::update: argument 'norm': expected the result of global_norm or "
            "clip_grad_norm, got a GradNorm that holds no result");
  LossScaler moved = std::move(scaler);
  EXPECT_EQ(error_of([&] { scaler.current_scale(); }),
            "recur: LossScaler::current_scale: argument 'this': expected a live LossScaler, got "
            "one that was moved from");
}

// The same forced overflow on the GPU, where the skip and the backoff never leave the device:
// the scale, the counters and the parameters follow the CPU's run (the parameters within the
// FP16 budget: the two backends accumulate in different orders).
TEST(LossScale, GpuFollowsTheCpuThroughAnOverflow) {
  RECUR_REQUIRE_GPU();
  Fp16Trainer cpu, gpu(Device::cuda(0));
  LossScaleOptions o;
  o.initial_scale = std::ldexp(1.0, 40);
  LossScaler cpu_scaler(Device::cpu(), o), gpu_scaler(Device::cuda(0), o);
  Random rng(12);
  const Tensor x = rng.tensor<float>({5, 4, 8});
  const std::vector<float> target = rng.vector<float>(5 * 4 * 16);
  for (int i = 0; i < 20; ++i) {  // 16 overflows, then steps taken
    cpu.step(cpu_scaler, x, target);
    gpu.step(gpu_scaler, x, target);
    ASSERT_EQ(gpu.norm.finite(), cpu.norm.finite()) << "step " << i;
  }
  EXPECT_EQ(gpu_scaler.current_scale(), cpu_scaler.current_scale());
  EXPECT_EQ(gpu_scaler.overflows(), cpu_scaler.overflows());
  EXPECT_GE(gpu_scaler.overflows(), 2);
  EXPECT_EQ(gpu.opt.skipped_steps(), gpu_scaler.overflows());
  const Tolerance tol{std::ldexp(1.0, -11), 64.0};
  EXPECT_TRUE(all_close(gpu.rnn.parameters().to_vector<float>(),
                        cpu.rnn.parameters().to_vector<float>(), tol));
}

}  // namespace
}  // namespace recur::test
