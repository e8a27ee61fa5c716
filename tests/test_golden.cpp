// tests/test_golden.cpp: recur against PyTorch (and, for the two cells PyTorch lacks, a
// float64 reference written from the equations), on the data of tests/golden/gen_golden.py:
// outputs, final states and every gradient, in float64, in float32, and in float32 with
// each reduced math (recur/config.h's Math: TF32, BF16, FP16 products), whose budget is the
// format's unit roundoff with the same depth factor; those runs print how much of their
// budget each tensor used.
#include <cstdio>

#include "math_format.h"
#include "test_util.h"

namespace recur::test {
namespace {

struct GoldenCase {
  const char* file;
  CellKind cell;
};

template <typename T>
Tensor to_tensor(const GoldenTensor& g) {
  std::vector<T> v(g.values.begin(), g.values.end());
  return Tensor::from_vector(v, g.shape);
}

// The largest share of its budget any tensor of a case used, and which.
struct WorstShare {
  double share = 0.0;
  std::string what;
};

// EXPECT all_close, and keep the worst error's share of the budget.
template <typename A, typename B>
void expect_close(const std::vector<A>& got, const std::vector<B>& ref, const Tolerance& tol,
                  const std::string& what, WorstShare& worst) {
  EXPECT_TRUE(all_close(got, ref, tol)) << what;
  for (std::size_t i = 0; i < got.size() && i < ref.size(); ++i) {
    const double r = static_cast<double>(ref[i]);
    const double share = std::fabs(static_cast<double>(got[i]) - r) / tol.of(r);
    if (share > worst.share) worst = {share, what};
  }
}

template <typename T>
void check_case(const GoldenCase& gc, Math math = Math::Fp32) {
  const Golden g = read_golden(std::string(gc.file) + ".txt");
  const GoldenTensor& w_ih = g.at("weight_ih_l0");
  const GoldenTensor& x = g.at("x");
  RnnConfig c;
  c.cell = gc.cell;
  c.input_size = w_ih.shape[1];
  // A projected LSTM's W_hh is [4H, P]; its weight_hr [P, H] gives both.
  const bool projected = g.count("weight_hr_l0") > 0;
  c.hidden_size = g.at(projected ? "weight_hr_l0" : "weight_hh_l0").shape[1];
  if (projected) c.proj_size = g.at("weight_hr_l0").shape[0];
  c.bias = g.count("bias_ih_l0") > 0;
  c.dtype = dtype_of<T>();
  c.math = math;
  c.bidirectional = g.count("weight_ih_l0_reverse") > 0;
  while (g.count("weight_ih_l" + std::to_string(c.num_layers))) ++c.num_layers;
  Rnn rnn(c);
  for (const ParamInfo& info : rnn.parameter_info()) {
    ASSERT_EQ(info.shape, g.at(info.name).shape) << info.name;
    rnn.parameter(info.name).copy_from(to_tensor<T>(g.at(info.name)));
  }
  const bool lstm = has_cell_state(gc.cell);
  auto opt = [&](const char* name) { return g.count(name) ? to_tensor<T>(g.at(name)) : Tensor(); };
  Tensor c0 = opt("c0"), dc_n = opt("dc_n");
  std::vector<std::int64_t> lengths;
  if (g.count("lengths")) {
    for (double v : g.at("lengths").values) lengths.push_back(static_cast<std::int64_t>(v));
  }
  ForwardResult f =
      rnn.forward(to_tensor<T>(x), to_tensor<T>(g.at("h0")), c0, Mode::Training, lengths);
  BackwardResult b = rnn.backward(to_tensor<T>(g.at("dy")), to_tensor<T>(g.at("dh_n")), dc_n);

  // Accumulation depth: a GEMM of K = in + H per step (and the projection's K = H), over T
  // steps and L layers; twice for gradients.
  const std::int64_t widest = std::max(c.input_size, 2 * c.hidden_size) + c.hidden_size +
                              (c.proj_size > 0 ? c.hidden_size : 0);
  const double depth = static_cast<double>(x.shape[0] * widest * c.num_layers);
  Tolerance fwd = tolerance_for_depth<T>(depth), bwd = tolerance_for_depth<T>(2 * depth);
  if (math != Math::Fp32) fwd.eps = bwd.eps = detail::unit_roundoff(math);
  WorstShare worst;
  expect_close(f.y.to_vector<T>(), g.at("y").values, fwd, "y", worst);
  expect_close(f.h_n.to_vector<T>(), g.at("h_n").values, fwd, "h_n", worst);
  if (lstm) expect_close(f.c_n.to_vector<T>(), g.at("c_n").values, fwd, "c_n", worst);
  expect_close(b.dx.to_vector<T>(), g.at("dx").values, bwd, "dx", worst);
  expect_close(b.dh0.to_vector<T>(), g.at("dh0").values, bwd, "dh0", worst);
  if (lstm) expect_close(b.dc0.to_vector<T>(), g.at("dc0").values, bwd, "dc0", worst);
  for (const ParamInfo& info : rnn.parameter_info()) {
    expect_close(rnn.gradient(info.name).to_vector<T>(), g.at("grad." + info.name).values, bwd,
                 "grad." + info.name, worst);
  }
  std::printf("  %s %s: worst error %.2f%% of the budget (%s)\n", to_string(math), gc.file,
              100.0 * worst.share, worst.what.c_str());
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, Float64MatchesReference) { check_case<double>(GetParam()); }
TEST_P(GoldenTest, Float32MatchesReference) { check_case<float>(GetParam()); }
TEST_P(GoldenTest, Tf32MatchesReference) { check_case<float>(GetParam(), Math::Tf32); }
TEST_P(GoldenTest, Bf16MatchesReference) { check_case<float>(GetParam(), Math::Bf16); }
TEST_P(GoldenTest, Fp16MatchesReference) { check_case<float>(GetParam(), Math::Fp16); }

const GoldenCase kGolden[] = {
    {"rnn_tanh", CellKind::RnnTanh},
    {"rnn_relu", CellKind::RnnRelu},
    {"rnn_sigmoid", CellKind::RnnSigmoid},
    {"lstm", CellKind::Lstm},
    {"lstm_nobias", CellKind::Lstm},
    {"gru", CellKind::GruLinearBeforeReset},
    {"gru_rbp", CellKind::GruResetBeforeProduct},
    {"lstm_l2_bi", CellKind::Lstm},
    {"lstm_l3_bi", CellKind::Lstm},
    {"gru_l2_bi", CellKind::GruLinearBeforeReset},
    {"gru_l3_bi", CellKind::GruLinearBeforeReset},
    {"rnn_tanh_l3", CellKind::RnnTanh},
    {"lstm_l3", CellKind::Lstm},
    {"lstm_l2_bi_packed_sorted", CellKind::Lstm},
    {"lstm_l2_bi_packed", CellKind::Lstm},
    {"gru_l2_bi_packed_sorted", CellKind::GruLinearBeforeReset},
    {"gru_l2_bi_packed", CellKind::GruLinearBeforeReset},
    {"lstm_l3_packed", CellKind::Lstm},
    {"lstm_proj", CellKind::Lstm},
    {"lstm_proj_nobias", CellKind::Lstm},
    {"lstm_proj_l3", CellKind::Lstm},
    {"lstm_proj_l2_bi", CellKind::Lstm},
    {"lstm_proj_l2_bi_packed", CellKind::Lstm},
    {"lstm_proj_l3_packed", CellKind::Lstm},
};

std::string golden_name(const ::testing::TestParamInfo<GoldenCase>& p) { return p.param.file; }

INSTANTIATE_TEST_SUITE_P(PyTorch, GoldenTest, ::testing::ValuesIn(kGolden), golden_name);

}  // namespace
}  // namespace recur::test
