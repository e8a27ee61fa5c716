// tests/test_gradcheck.cpp: float64 central-difference checks of every gradient the
// backward pass produces (every parameter, dx, dh0, dc0), for every cell, with and
// without bias; plus the behaviour of Mode and of gradient accumulation.
#include "gradcheck_util.h"

namespace recur::test {
namespace {

struct Case {
  CellKind cell;
  bool bias;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(to_string(info.param.cell)) + (info.param.bias ? "_bias" : "_nobias");
}

constexpr std::int64_t kT = 4, kB = 3, kI = 3, kH = 4;

class GradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(GradCheck, EveryGradientMatchesFiniteDifferences) {
  RnnConfig c;
  c.cell = GetParam().cell;
  c.input_size = kI;
  c.hidden_size = kH;
  c.bias = GetParam().bias;
  c.dtype = DType::Float64;
  Rnn rnn(c, Device::cpu(), 7);
  // The LSTM also with layer 0's h_{t-1} beside x (one GEMM for dW_ih and dW_hh), which
  // only problems of thousands of rows get by default.
  for (std::int64_t rows : {std::int64_t{2048}, std::int64_t{0}}) {
    if (rows == 0 && c.cell != CellKind::Lstm) continue;
    SCOPED_TRACE(rows == 0 ? "h_{t-1} beside x" : "default");
    keep_hp_beside_x_from(rnn, rows);
    check_all_gradients(rnn, kT, kB, 11 + static_cast<std::uint64_t>(c.cell));
  }
}

const Case kCases[] = {
    {CellKind::RnnTanh, true},
    {CellKind::RnnTanh, false},
    {CellKind::RnnRelu, true},
    {CellKind::RnnSigmoid, true},
    {CellKind::Lstm, true},
    {CellKind::Lstm, false},
    {CellKind::GruLinearBeforeReset, true},
    {CellKind::GruLinearBeforeReset, false},
    {CellKind::GruResetBeforeProduct, true},
    {CellKind::GruResetBeforeProduct, false},
};
INSTANTIATE_TEST_SUITE_P(AllCells, GradCheck, ::testing::ValuesIn(kCases), case_name);

// ---- behaviour around the gradient computation ----

RnnConfig small_lstm() {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = kI;
  c.hidden_size = kH;
  c.dtype = DType::Float64;
  return c;
}

TEST(Backward, AccumulatesIntoGradients) {
  Rnn rnn(small_lstm());
  Random rng(3);
  Tensor x = rng.tensor<double>({kT, kB, kI}), dy = rng.tensor<double>({kT, kB, kH});
  rnn.forward(x);
  rnn.backward(dy);
  const std::vector<double> once = rnn.gradients().to_vector<double>();
  rnn.forward(x);
  rnn.backward(dy);
  const std::vector<double> twice = rnn.gradients().to_vector<double>();
  std::vector<double> doubled(once.size());
  for (std::size_t i = 0; i < once.size(); ++i) doubled[i] = 2 * once[i];
  EXPECT_TRUE(all_close(twice, doubled, tolerance_for_depth<double>(4)));
  rnn.zero_grad();
  for (double v : rnn.gradients().to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(Forward, InferenceAndTrainingGiveTheSameOutputs) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct}) {
    RnnConfig c = small_lstm();
    c.cell = cell;
    Rnn rnn(c);
    Random rng(5);
    Tensor x = rng.tensor<double>({kT, kB, kI});
    ForwardResult a = rnn.forward(x, {}, {}, Mode::Training);
    ForwardResult b = rnn.forward(x, {}, {}, Mode::Inference);
    EXPECT_EQ(a.y.to_vector<double>(), b.y.to_vector<double>()) << to_string(cell);
    EXPECT_EQ(a.h_n.to_vector<double>(), b.h_n.to_vector<double>()) << to_string(cell);
  }
}

TEST(Forward, OutputsLastStepAsFinalState) {
  Rnn rnn(small_lstm());
  Random rng(6);
  ForwardResult r = rnn.forward(rng.tensor<double>({kT, kB, kI}), {}, {}, Mode::Inference);
  const std::vector<double> y = r.y.to_vector<double>(), h = r.h_n.to_vector<double>();
  EXPECT_EQ(std::vector<double>(y.end() - kB * kH, y.end()), h);
  EXPECT_EQ(r.c_n.shape(), (Shape{1, kB, kH}));
}

TEST(Forward, MissingStatesMeanZeros) {
  Rnn rnn(small_lstm());
  Random rng(8);
  Tensor x = rng.tensor<double>({kT, kB, kI});
  Tensor zeros = Tensor::zeros({1, kB, kH}, DType::Float64);
  ForwardResult a = rnn.forward(x, {}, {}, Mode::Inference);
  ForwardResult b = rnn.forward(x, zeros, zeros, Mode::Inference);
  EXPECT_EQ(a.y.to_vector<double>(), b.y.to_vector<double>());
}

TEST(Forward, FloatAndDoubleAgree) {
  RnnConfig c = small_lstm();
  Rnn r64(c, Device::cpu(), 9);
  c.dtype = DType::Float32;
  Rnn r32(c, Device::cpu(), 9);
  Random rng(9);
  const std::vector<double> x = rng.vector<double>(kT * kB * kI);
  std::vector<float> xf(x.begin(), x.end());
  const std::vector<double> p = r64.parameters().to_vector<double>();
  std::vector<float> pf(p.begin(), p.end());
  r32.parameters().copy_from_host(pf.data());
  const std::vector<float> y32 =
      r32.forward(Tensor::from_vector(xf, {kT, kB, kI})).y.to_vector<float>();
  const std::vector<double> y64 =
      r64.forward(Tensor::from_vector(x, {kT, kB, kI})).y.to_vector<double>();
  EXPECT_TRUE(all_close(y32, y64, tolerance_for_depth<float>(kT * (kI + kH))));
}

TEST(Parameters, NamesShapesAndLayoutFollowPyTorch) {
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = 5;
  c.hidden_size = 7;
  Rnn rnn(c);
  const auto& info = rnn.parameter_info();
  ASSERT_EQ(info.size(), 4u);
  EXPECT_EQ(info[0].name, "weight_ih_l0");
  EXPECT_EQ(info[0].shape, (Shape{21, 5}));
  EXPECT_EQ(info[1].name, "weight_hh_l0");
  EXPECT_EQ(info[1].shape, (Shape{21, 7}));
  EXPECT_EQ(info[1].offset, 105);
  EXPECT_EQ(info[2].name, "bias_ih_l0");
  EXPECT_EQ(info[3].name, "bias_hh_l0");
  EXPECT_EQ(info[3].offset, 105 + 147 + 21);
  EXPECT_EQ(rnn.parameters().numel(), 105 + 147 + 42);
  // Default init is U(-1/sqrt(H), 1/sqrt(H)) and depends on the seed only.
  const std::vector<float> p = rnn.parameters().to_vector<float>();
  for (float v : p) EXPECT_LE(std::fabs(v), 1.0 / std::sqrt(7.0));
  EXPECT_EQ(Rnn(c, Device::cpu(), 0).parameters().to_vector<float>(), p);
  EXPECT_NE(Rnn(c, Device::cpu(), 1).parameters().to_vector<float>(), p);
}

}  // namespace
}  // namespace recur::test
