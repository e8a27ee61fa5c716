// tests/test_projection.cpp: the projected LSTM (RnnConfig::proj_size) in each float32
// schedule of the CPU: weights packed or not, steps row-parallel or one at a time, layer
// by layer or as a wavefront, a recomputed backward; each against the float64 model of the
// same parameters. (PyTorch's own numbers: test_golden; every gradient against finite
// differences: test_random_configs; the GPU against the CPU: test_parity_cuda.)
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/cpu_steps.h"
#include "cpu/onednn_matmul.h"
#include "recur/checkpoint.h"
#include "recur/model_checkpoint.h"
#include "test_util.h"

namespace recur::test {
namespace {

constexpr std::int64_t kT = 6, kB = 24, kI = 5, kH = 12, kP = 5;

RnnConfig projected(DType dtype, std::int64_t layers, bool bidirectional, Connection connection) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = kI;
  c.hidden_size = kH;
  c.proj_size = kP;
  c.num_layers = layers;
  c.bidirectional = bidirectional;
  c.connection = connection;
  c.dtype = dtype;
  return c;
}

struct Outputs {
  std::vector<double> y, h_n, c_n, dx, dh0, dc0, grads;
  detail::PassStatistics statistics;  // the training forward's and backward's
};

template <typename T>
std::vector<double> widened(const TensorView& t) {
  const std::vector<T> v = t.to_vector<T>();
  return std::vector<double>(v.begin(), v.end());
}

// A training step of `rnn` on fixed data, in rnn's dtype (T).
template <typename T>
Outputs step(Rnn& rnn, const std::vector<std::int64_t>& lengths, ActivationMemory memory) {
  const RnnConfig& c = rnn.config();
  const std::int64_t D = c.bidirectional ? 2 : 1, LD = c.num_layers * D;
  Random rng(77);
  const Tensor x = rng.tensor<double>({kT, kB, kI}).to(dtype_of<T>());
  const Tensor h0 = rng.tensor<double>({LD, kB, kP}).to(dtype_of<T>());
  const Tensor c0 = rng.tensor<double>({LD, kB, kH}).to(dtype_of<T>());
  const Tensor dy = rng.tensor<double>({kT, kB, D * kP}).to(dtype_of<T>());
  const Tensor dh_n = rng.tensor<double>({LD, kB, kP}).to(dtype_of<T>());
  const Tensor dc_n = rng.tensor<double>({LD, kB, kH}).to(dtype_of<T>());
  rnn.zero_grad();
  ForwardOptions fo;
  fo.h0 = h0;
  fo.c0 = c0;
  fo.lengths = lengths;
  fo.activations = memory;
  const ForwardResult f = rnn.forward(x, fo);
  Outputs out;
  out.statistics = forward_statistics(rnn);
  BackwardOptions bo;
  bo.dh_n = dh_n;
  bo.dc_n = dc_n;
  const BackwardResult g = rnn.backward(dy, bo);
  out.statistics += backward_statistics(rnn);
  out.y = widened<T>(f.y);
  out.h_n = widened<T>(f.h_n);
  out.c_n = widened<T>(f.c_n);
  out.dx = widened<T>(g.dx);
  out.dh0 = widened<T>(g.dh0);
  out.dc0 = widened<T>(g.dc0);
  out.grads = widened<T>(rnn.gradients());
  return out;
}

struct Schedule {
  const char* name;
  bool pack, row_parallel, wavefront;
  ActivationMemory memory = ActivationMemory::Store;
};

TEST(Projection, EveryCpuScheduleMatchesFloat64) {
  const Schedule schedules[] = {
      {"packed, row-parallel", true, true, false},
      {"packed, step by step", true, false, false},
      {"not packed", false, false, false},
      {"wavefront", true, true, true},
      {"recomputed", true, true, false, ActivationMemory::Recompute},
  };
  const bool packs = detail::PackedGemms::available();
  const bool two_threads = detail::cpu_step_threads() >= 2;
  for (const auto& [layers, bi, connection] :
       {std::tuple<std::int64_t, bool, Connection>{1, false, Connection::None},
        {2, true, Connection::Residual},
        {3, false, Connection::Dense}}) {
    Rnn reference(projected(DType::Float64, layers, bi, connection), Device::cpu(), 5);
    Rnn model(projected(DType::Float32, layers, bi, connection), Device::cpu(), 5);
    // The float64 model holds the float32 model's values: the two differ by rounding only.
    const std::vector<double> drawn = reference.parameters().to_vector<double>();
    const std::vector<float> rounded(drawn.begin(), drawn.end());
    model.parameters().copy_from(Tensor::from_vector(rounded, {model.parameters().numel()}));
    reference.parameters().copy_from(Tensor::from_vector(
        std::vector<double>(rounded.begin(), rounded.end()), {reference.parameters().numel()}));
    std::vector<std::int64_t> lengths;
    if (bi) {
      for (std::int64_t b = 0; b < kB; ++b) lengths.push_back(kT - (b * 5) % kT);
    }
    const Outputs want = step<double>(reference, lengths, ActivationMemory::Store);
    // A GEMM of K = I + P (W_ih x, W_hh h) and one of K = H (W_hr m) per step and layer.
    const Tolerance tol = tolerance_for_depth<float>(2.0 * kT * (kI + kP + kH) * layers);
    for (const Schedule& s : schedules) {
      const bool recomputed = s.memory == ActivationMemory::Recompute;
      // Bidirectional stacks run layer by layer, and store their activations.
      if ((s.wavefront || recomputed) && bi) continue;
      const std::string what = std::to_string(layers) + " layers" + (bi ? " bi " : " ") +
                               to_string(connection) + ", " + s.name;
      tune(model, [&](detail::Tuning& t) {
        t.cpu_pack_weights = s.pack;
        t.cpu_row_parallel = s.row_parallel;
        t.cpu_wavefront = s.wavefront;
      });
      const Outputs got = step<float>(model, lengths, s.memory);
      // (A recomputed step's statistics are its last segment's: its own short passes.)
      EXPECT_EQ(got.statistics.wavefront, s.wavefront && layers > 1) << what;
      if (s.pack && packs && !recomputed) {
        EXPECT_GT(got.statistics.packed_gemms, 0) << what;
      } else if (!s.pack) {
        EXPECT_EQ(got.statistics.packed_gemms, 0) << what;
      }
      if (s.row_parallel && packs && two_threads && !s.wavefront && !recomputed) {
        EXPECT_GT(got.statistics.row_parallel_runs, 0) << what;
      }
      EXPECT_TRUE(all_close(got.y, want.y, tol)) << what << ": y";
      EXPECT_TRUE(all_close(got.h_n, want.h_n, tol)) << what << ": h_n";
      EXPECT_TRUE(all_close(got.c_n, want.c_n, tol)) << what << ": c_n";
      EXPECT_TRUE(all_close(got.dx, want.dx, tol)) << what << ": dx";
      EXPECT_TRUE(all_close(got.dh0, want.dh0, tol)) << what << ": dh0";
      EXPECT_TRUE(all_close(got.dc0, want.dc0, tol)) << what << ": dc0";
      EXPECT_TRUE(all_close(got.grads, want.grads, tol)) << what << ": gradients";
    }
  }
}

// The parameters PyTorch's nn.LSTM(proj_size=P) has, in its order, and the widths they
// give h (P) and c (H).
TEST(Projection, ParametersAndStatesHavePyTorchsShapes) {
  Rnn rnn(projected(DType::Float32, 2, true, Connection::None));
  std::vector<std::string> names;
  for (const ParamInfo& p : rnn.parameter_info()) names.push_back(p.name);
  const std::vector<std::string> want = {
      "weight_ih_l0",         "weight_hh_l0",         "bias_ih_l0",
      "bias_hh_l0",           "weight_hr_l0",         "weight_ih_l0_reverse",
      "weight_hh_l0_reverse", "bias_ih_l0_reverse",   "bias_hh_l0_reverse",
      "weight_hr_l0_reverse", "weight_ih_l1",         "weight_hh_l1",
      "bias_ih_l1",           "bias_hh_l1",           "weight_hr_l1",
      "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse",
      "bias_hh_l1_reverse",   "weight_hr_l1_reverse"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(rnn.parameter("weight_hh_l0").shape(), (Shape{4 * kH, kP}));
  EXPECT_EQ(rnn.parameter("weight_hr_l0").shape(), (Shape{kP, kH}));
  EXPECT_EQ(rnn.parameter("weight_ih_l1").shape(), (Shape{4 * kH, 2 * kP}));
  Random rng(3);
  const ForwardResult f = rnn.forward(rng.tensor<float>({kT, 2, kI}));
  EXPECT_EQ(f.y.shape(), (Shape{kT, 2, 2 * kP}));
  EXPECT_EQ(f.h_n.shape(), (Shape{4, 2, kP}));
  EXPECT_EQ(f.c_n.shape(), (Shape{4, 2, kH}));
}

// The diagnostics read h's P features: the gradient flow over P, sigma_max of W_hh [4H, P].
TEST(Projection, DiagnosticsReadTheProjectedState) {
  Rnn rnn(projected(DType::Float64, 2, false, Connection::None), Device::cpu(), 9);
  Random rng(10);
  const Tensor x = rng.tensor<double>({kT, 3, kI});
  const GradientFlow flow = gradient_flow(rnn, x, kT - 1);
  ASSERT_EQ(flow.norms.size(), static_cast<std::size_t>(2 * kT));
  for (double n : flow.norms) {
    EXPECT_TRUE(std::isfinite(n));
    EXPECT_GT(n, 0.0);
  }
  // ||dJ/dh_{T-1}|| of the top layer is ||w|| = 1 for the default normalised weight.
  EXPECT_NEAR(flow.norm(1, 0, kT - 1), 1.0, 1e-12);
  const std::vector<double> sigma = largest_singular_values(rnn);
  ASSERT_EQ(sigma.size(), 2u);
  for (double v : sigma) EXPECT_GT(v, 0.0);
  const std::vector<double> after = set_largest_singular_values(rnn, 0.5);
  EXPECT_NEAR(largest_singular_values(rnn)[0], 0.5, 1e-6);
  EXPECT_EQ(after.size(), 2u);
}

// Checkpoints keep proj_size: a model checkpoint rebuilds the projected config from the
// file, and a plain model of the same sizes refuses the projected one's checkpoint.
TEST(Projection, CheckpointsKeepTheProjection) {
  const std::string path = ::testing::TempDir() + "recur_projected.safetensors";
  Rnn rnn(projected(DType::Float32, 2, false, Connection::None), Device::cpu(), 12);
  TrainingParts training;
  save_model_checkpoint(path, {{{"lstm", &rnn}}, {}, {}}, training);
  const ModelCheckpointInfo info = read_model_checkpoint(path);
  ASSERT_EQ(info.rnns.size(), 1u);
  EXPECT_EQ(info.rnns[0].second.proj_size, kP);
  Rnn restored(info.rnns[0].second);
  load_model_checkpoint(path, {{{"lstm", &restored}}, {}, {}}, training);
  EXPECT_EQ(restored.parameters().to_vector<float>(), rnn.parameters().to_vector<float>());

  save_checkpoint(path, rnn, nullptr, 3);
  Rnn same(projected(DType::Float32, 2, false, Connection::None));
  EXPECT_EQ(load_checkpoint(path, same, nullptr).step, 3);
  EXPECT_EQ(same.parameters().to_vector<float>(), rnn.parameters().to_vector<float>());
  RnnConfig plain = projected(DType::Float32, 2, false, Connection::None);
  plain.proj_size = 0;
  Rnn unprojected(plain);
  const std::string message = error_of([&] { load_checkpoint(path, unprojected, nullptr); });
  EXPECT_NE(message.find("config mismatch: the checkpoint's proj_size is 5, the model's is 0"),
            std::string::npos)
      << message;
}

}  // namespace
}  // namespace recur::test
