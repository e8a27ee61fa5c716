// tests/test_optim.cpp: Sgd and Adam/AdamW against a float64 reference over several steps,
// the non-finite skip, the counters and checkpoint-style restore, bad arguments; then the
// GPU against the reference and the CPU (SKIPPED without a GPU).
#include <cstring>

#include "test_util.h"

namespace recur::test {
namespace {

const Device kGpu = Device::cuda(0);
constexpr int kSteps = 6;

// The reference, written from the textbook formulas in double (not from optim.cuh).
struct RefSgd {
  SgdOptions o;
  std::vector<double> p, buf;
  bool first = true;
  void step(const std::vector<double>& g) {
    if (buf.empty()) buf.assign(p.size(), 0.0);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + o.weight_decay * p[i];
      if (o.momentum > 0.0) {
        buf[i] = first ? d : o.momentum * buf[i] + d;
        d = buf[i];
      }
      p[i] -= o.lr * d;
    }
    first = false;
  }
};

struct RefAdam {
  AdamOptions o;
  std::vector<double> p, m, v;
  int t = 0;
  void step(const std::vector<double>& g) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    for (std::size_t i = 0; i < p.size(); ++i) {
      double gi = g[i];
      if (o.decoupled_weight_decay) {
        p[i] *= 1.0 - o.lr * o.weight_decay;
      } else {
        gi += o.weight_decay * p[i];
      }
      m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * gi;
      v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * gi * gi;
      const double m_hat = m[i] / (1.0 - std::pow(o.beta1, t));
      const double v_hat = v[i] / (1.0 - std::pow(o.beta2, t));
      p[i] -= o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
    }
  }
};

template <typename T>
std::vector<double> as_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Each step is about ten rounded operations per element, and errors carry over steps.
template <typename T>
Tolerance steps_tolerance(int steps) {
  return tolerance_for_depth<T>(10.0 * steps);
}

const std::vector<SgdOptions> kSgdCases = {
    {0.1, 0.0, 0.0}, {0.1, 0.9, 0.0}, {0.05, 0.5, 0.01}, {0.2, 0.0, 0.1}};
const std::vector<AdamOptions> kAdamCases = {
    {1e-2, 0.9, 0.999, 1e-8, 0.0, false},
    {1e-2, 0.8, 0.99, 1e-6, 0.1, false},  // Adam, L2 through the gradient
    {1e-2, 0.9, 0.999, 1e-8, 0.1, true},  // AdamW
};

template <typename T>
class Optim : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Optim, Types, TypeIndexNames);

// Runs kSteps steps of `opt` (parameters `params` on `device`) and of `ref` on the same
// gradients, and checks parameters, state and counters after every step.
template <typename T, class Opt, class Ref, class StateCheck>
void run_against_reference(Opt& opt, const Tensor& params, Ref& ref, Device device,
                           StateCheck&& check_state) {
  Random rng(100);
  const std::int64_t n = params.numel();
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<T> g = rng.vector<T>(n, -1.0, 1.0);
    const Tensor grad = Tensor::from_vector(g, {n}, device);
    opt.step(grad);
    ref.step(as_double(g));
    ASSERT_TRUE(all_close(params.to_vector<T>(), ref.p, steps_tolerance<T>(s + 1))) << "step " << s;
    check_state(s + 1);
  }
  EXPECT_EQ(opt.step_count(), kSteps);
  EXPECT_EQ(opt.skipped_steps(), 0);
}

template <typename T>
void sgd_against_reference(Device device) {
  for (const SgdOptions& o : kSgdCases) {
    Random rng(7);
    const std::vector<T> p0 = rng.vector<T>(1001);
    Tensor params = Tensor::from_vector(p0, {7, 11, 13}, device);
    Sgd opt(params, o);
    EXPECT_EQ(opt.momentum_buffer().defined(), o.momentum > 0.0);
    EXPECT_EQ(opt.state().size(), o.momentum > 0.0 ? 1u : 0u);
    RefSgd ref{o, as_double(p0), {}, true};
    run_against_reference<T>(opt, params, ref, device, [&](int steps) {
      if (o.momentum == 0.0) return;
      EXPECT_EQ(opt.state()[0].name, "momentum_buffer");
      EXPECT_TRUE(all_close(opt.momentum_buffer().template to_vector<T>(), ref.buf,
                            steps_tolerance<T>(steps)));
    });
  }
}

template <typename T>
void adam_against_reference(Device device) {
  for (const AdamOptions& o : kAdamCases) {
    Random rng(8);
    const std::vector<T> p0 = rng.vector<T>(777);
    Tensor params = Tensor::from_vector(p0, {777}, device);
    Adam opt(params, o);
    RefAdam ref{o, as_double(p0), {}, {}, 0};
    run_against_reference<T>(opt, params, ref, device, [&](int steps) {
      const std::vector<OptimizerState> state = opt.state();
      ASSERT_EQ(state.size(), 2u);
      EXPECT_EQ(state[0].name, "exp_avg");
      EXPECT_EQ(state[1].name, "exp_avg_sq");
      EXPECT_TRUE(
          all_close(opt.exp_avg().template to_vector<T>(), ref.m, steps_tolerance<T>(steps)));
      EXPECT_TRUE(
          all_close(opt.exp_avg_sq().template to_vector<T>(), ref.v, steps_tolerance<T>(steps)));
    });
  }
}

TYPED_TEST(Optim, SgdMatchesFloat64Reference) { sgd_against_reference<TypeParam>(Device::cpu()); }
TYPED_TEST(Optim, AdamMatchesFloat64Reference) { adam_against_reference<TypeParam>(Device::cpu()); }

// A non-finite gradient: the step is skipped (parameters, state and the step count as they
// were), the skipped counter goes up, and the next good step is Adam's step 1.
template <typename T>
void skip_on_non_finite(Device device) {
  Random rng(9);
  const std::int64_t n = 5000;
  const std::vector<T> p0 = rng.vector<T>(n);
  Tensor params = Tensor::from_vector(p0, {n}, device);
  const AdamOptions o{1e-2, 0.9, 0.999, 1e-8, 0.01, true};
  Adam opt(params, o);
  Sgd sgd(params, {0.1, 0.9, 0.0});  // shares the parameters: both must skip
  GradNorm norm;
  for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    std::vector<T> g = rng.vector<T>(n);
    g[1234] = bad;
    const Tensor grad = Tensor::from_vector(g, {n}, device);
    clip_grad_norm({grad}, 1.0, norm);  // no host read between the clip and the steps
    opt.step(grad, &norm);
    sgd.step(grad, &norm);
  }
  EXPECT_FALSE(norm.finite());
  EXPECT_EQ(opt.step_count(), 0);
  EXPECT_EQ(opt.skipped_steps(), 2);
  EXPECT_EQ(sgd.skipped_steps(), 2);
  EXPECT_EQ(params.to_vector<T>(), p0);
  for (const OptimizerState& s : opt.state()) {
    for (T x : s.view.to_vector<T>()) ASSERT_EQ(x, T(0)) << s.name;
  }
  for (T x : sgd.momentum_buffer().to_vector<T>()) ASSERT_EQ(x, T(0));
  // A good step after the bad ones: clipped, then Adam's first step.
  const std::vector<T> g = rng.vector<T>(n, -10.0, 10.0);
  Tensor grad = Tensor::from_vector(g, {n}, device);
  clip_grad_norm({grad}, 1.0, norm);
  opt.step(grad, &norm);
  EXPECT_TRUE(norm.finite());
  EXPECT_LT(norm.scale(), 1.0);
  EXPECT_EQ(opt.step_count(), 1);
  EXPECT_EQ(opt.skipped_steps(), 2);
  RefAdam ref{o, as_double(p0), {}, {}, 0};
  ref.step(as_double(grad.to_vector<T>()));  // the clipped gradient
  EXPECT_TRUE(all_close(params.to_vector<T>(), ref.p, steps_tolerance<T>(1)));
}

TYPED_TEST(Optim, SkipsNonFiniteSteps) { skip_on_non_finite<TypeParam>(Device::cpu()); }

// Restoring state and counters (as a checkpoint would) continues the same trajectory.
template <typename T>
void restore_continues(Device device) {
  const AdamOptions o{1e-2, 0.9, 0.99, 1e-8, 0.0, false};
  Random rng(10);
  const std::int64_t n = 300;
  const std::vector<T> p0 = rng.vector<T>(n);
  RefAdam ref{o, as_double(p0), {}, {}, 0};
  std::vector<std::vector<T>> grads;
  for (int s = 0; s < 4; ++s) grads.push_back(rng.vector<T>(n));
  for (int s = 0; s < 3; ++s) ref.step(as_double(grads[static_cast<std::size_t>(s)]));
  const auto to_t = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
  Tensor params = Tensor::from_vector(to_t(ref.p), {n}, device);
  Adam opt(params, o);
  opt.exp_avg().copy_from_host(to_t(ref.m).data());
  opt.exp_avg_sq().copy_from_host(to_t(ref.v).data());
  opt.set_step_count(3, 5);
  EXPECT_EQ(opt.step_count(), 3);
  EXPECT_EQ(opt.skipped_steps(), 5);
  opt.step(Tensor::from_vector(grads[3], {n}, device));
  ref.step(as_double(grads[3]));
  EXPECT_EQ(opt.step_count(), 4);
  EXPECT_TRUE(all_close(params.to_vector<T>(), ref.p, steps_tolerance<T>(4)));
  // And the learning rate can change between steps.
  opt.set_learning_rate(0.5);
  EXPECT_EQ(opt.learning_rate(), 0.5);
  ref.o.lr = 0.5;
  opt.step(Tensor::from_vector(grads[0], {n}, device));
  ref.step(as_double(grads[0]));
  EXPECT_TRUE(all_close(params.to_vector<T>(), ref.p, steps_tolerance<T>(5)));
}

TYPED_TEST(Optim, RestoredCountersContinue) { restore_continues<TypeParam>(Device::cpu()); }

TEST(Optim, EmptyParameters) {
  Tensor params = Tensor::zeros({0}, DType::Float32);
  Adam opt(params);
  opt.step(Tensor::zeros({0}, DType::Float32));
  EXPECT_EQ(opt.step_count(), 1);
  EXPECT_EQ(opt.exp_avg().numel(), 0);
}

// ---- bad arguments: each names the argument, and changes nothing ----

TEST(OptimErrors, GradientsMustMatchTheParameters) {
  Random rng(11);
  Tensor params = rng.tensor<float>({10});
  const std::vector<float> before = params.to_vector<float>();
  Sgd sgd(params, {0.1, 0.9, 0.0});
  Adam adam(params);
  EXPECT_EQ(error_of([&] { sgd.step(Tensor::zeros({9}, DType::Float32)); }),
            "recur: Sgd::step: argument 'gradients': expected 10 elements (as the parameters, "
            "[10]), got 9 elements [9]");
  EXPECT_EQ(error_of([&] {
              adam.step(Tensor::zeros({2, 5}, DType::Float64));
            }),
            "recur: Adam::step: argument 'gradients': expected dtype float32 (that of the "
            "parameters), got dtype float64");
  float fake = 0.0f;
  EXPECT_EQ(error_of([&] { adam.step(TensorView(&fake, {10}, DType::Float32, Device::cuda(0))); }),
            "recur: Adam::step: argument 'gradients': expected device cpu (that of the "
            "parameters), got device cuda:0");
  EXPECT_EQ(error_of([&] { sgd.step(TensorView()); }),
            "recur: Sgd::step: argument 'gradients': expected a defined tensor, got an undefined "
            "TensorView");
  GradNorm empty;
  EXPECT_EQ(error_of([&] { sgd.step(Tensor::zeros({10}, DType::Float32), &empty); }),
            "recur: Sgd::step: argument 'norm': expected the result of global_norm or "
            "clip_grad_norm, got a GradNorm that holds no result");
  EXPECT_EQ(params.to_vector<float>(), before);
  EXPECT_EQ(sgd.step_count(), 0);
  EXPECT_EQ(adam.step_count(), 0);
  EXPECT_EQ(sgd.skipped_steps(), 0);
}

TEST(OptimErrors, ParametersAreFloat32OrFloat64) {
  Tensor reduced = Tensor::zeros({4}, DType::BFloat16);
  EXPECT_EQ(error_of([&] { Sgd sgd(reduced); }),
            "recur: Sgd: argument 'parameters': expected dtype float32 or float64, got dtype "
            "bfloat16");
  EXPECT_EQ(error_of([&] { Adam adam(Tensor::zeros({4}, DType::Float16)); }),
            "recur: Adam: argument 'parameters': expected dtype float32 or float64, got dtype "
            "float16");
  Tensor params = Tensor::zeros({4}, DType::Float32);
  Sgd sgd(params);
  EXPECT_EQ(error_of([&] { sgd.step(reduced); }),
            "recur: Sgd::step: argument 'gradients': expected dtype float32 (that of the "
            "parameters), got dtype bfloat16");
}

TEST(OptimErrors, Options) {
  Tensor params = Tensor::zeros({4}, DType::Float64);
  EXPECT_EQ(
      error_of([&] {
        Sgd(params, {-0.1, 0.0, 0.0});
      }),
      "recur: Sgd: argument 'options.lr': expected a finite number >= 0, got -0.10000000000000001");
  EXPECT_EQ(error_of([&] {
              Sgd(params, {0.1, 1.0, 0.0});
            }),
            "recur: Sgd: argument 'options.momentum': expected a number in [0, 1), got 1");
  EXPECT_EQ(error_of([&] {
              Sgd(params, {0.1, 0.0, -1.0});
            }),
            "recur: Sgd: argument 'options.weight_decay': expected a finite number >= 0, got -1");
  EXPECT_EQ(error_of([&] {
              Adam(params, {std::nan(""), 0.9, 0.999, 1e-8, 0.0, false});
            }),
            "recur: Adam: argument 'options.lr': expected a finite number >= 0, got nan");
  EXPECT_EQ(error_of([&] {
              Adam(params, {1e-3, 1.0, 0.999, 1e-8, 0.0, false});
            }),
            "recur: Adam: argument 'options.beta1': expected a number in [0, 1), got 1");
  EXPECT_EQ(error_of([&] {
              Adam(params, {1e-3, 0.9, -0.5, 1e-8, 0.0, false});
            }),
            "recur: Adam: argument 'options.beta2': expected a number in [0, 1), got -0.5");
  EXPECT_EQ(error_of([&] {
              Adam(params, {1e-3, 0.9, 0.999, 0.0, 0.0, false});
            }),
            "recur: Adam: argument 'options.eps': expected a finite number > 0, got 0");
  EXPECT_EQ(error_of([&] { Adam(TensorView(), {}); }),
            "recur: Adam: argument 'parameters': expected a defined tensor, got an undefined "
            "TensorView");
  Adam adam(params);
  EXPECT_EQ(error_of([&] { adam.set_learning_rate(-1.0); }),
            "recur: Adam::set_learning_rate: argument 'lr': expected a finite number >= 0, got -1");
  EXPECT_EQ(error_of([&] { adam.set_step_count(-1); }),
            "recur: Adam::set_step_count: argument 'steps': expected a count >= 0, got -1");
  EXPECT_EQ(adam.learning_rate(), 1e-3);
  EXPECT_EQ(adam.step_count(), 0);
}

// ---- the GPU against the reference and the CPU ----

template <typename T>
class OptimCuda : public ::testing::Test {
 protected:
  void SetUp() override { RECUR_REQUIRE_GPU(); }
};
TYPED_TEST_SUITE(OptimCuda, Types, TypeIndexNames);

TYPED_TEST(OptimCuda, SgdMatchesFloat64Reference) { sgd_against_reference<TypeParam>(kGpu); }
TYPED_TEST(OptimCuda, AdamMatchesFloat64Reference) { adam_against_reference<TypeParam>(kGpu); }
TYPED_TEST(OptimCuda, SkipsNonFiniteStepsOnTheDevice) { skip_on_non_finite<TypeParam>(kGpu); }
TYPED_TEST(OptimCuda, RestoredCountersContinue) { restore_continues<TypeParam>(kGpu); }

// The same clipped training loop on both devices, bad steps included.
TYPED_TEST(OptimCuda, ClipAndStepParity) {
  using T = TypeParam;
  const std::int64_t n = 70'001;
  Random rng(12);
  const std::vector<T> p0 = rng.vector<T>(n);
  Tensor pc = Tensor::from_vector(p0, {n}, Device::cpu()), pg = pc.to(kGpu);
  const AdamOptions o{1e-2, 0.9, 0.999, 1e-8, 0.01, true};
  Adam ac(pc, o), ag(pg, o);
  GradNorm nc, ng;
  for (int s = 0; s < kSteps; ++s) {
    std::vector<T> g = rng.vector<T>(n, -3.0, 3.0);
    if (s == 2) g[n / 2] = std::numeric_limits<T>::quiet_NaN();
    Tensor gc = Tensor::from_vector(g, {n}, Device::cpu()), gg = gc.to(kGpu);
    clip_grad_norm({gc}, 10.0, nc);
    clip_grad_norm({gg}, 10.0, ng);
    ac.step(gc, &nc);
    ag.step(gg, &ng);
  }
  EXPECT_EQ(ag.step_count(), kSteps - 1);
  EXPECT_EQ(ag.skipped_steps(), 1);
  EXPECT_EQ(ac.step_count(), ag.step_count());
  EXPECT_TRUE(all_close(pg.to_vector<T>(), pc.to_vector<T>(), steps_tolerance<T>(kSteps)));
  EXPECT_TRUE(all_close(ag.exp_avg().to_vector<T>(), ac.exp_avg().to_vector<T>(),
                        steps_tolerance<T>(kSteps)));
  EXPECT_TRUE(all_close(ag.exp_avg_sq().to_vector<T>(), ac.exp_avg_sq().to_vector<T>(),
                        steps_tolerance<T>(kSteps)));
}

TEST(OptimCudaErrors, NormOnAnotherDevice) {
  RECUR_REQUIRE_GPU();
  Tensor params = Tensor::zeros({4}, DType::Float32, kGpu);
  Sgd sgd(params);
  Tensor cpu_grad = Tensor::zeros({4}, DType::Float32);
  const GradNorm cpu_norm = global_norm({cpu_grad});
  EXPECT_EQ(error_of([&] { sgd.step(Tensor::zeros({4}, DType::Float32, kGpu), &cpu_norm); }),
            "recur: Sgd::step: argument 'norm': expected a result on device cuda:0 (that of the "
            "parameters), got a result on device cpu");
  EXPECT_EQ(sgd.step_count(), 0);
}

}  // namespace
}  // namespace recur::test
