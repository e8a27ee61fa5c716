// tests/test_golden.cpp: recur against PyTorch (and, for the two cells PyTorch lacks, a
// float64 reference written from the equations), on the data of tests/golden/gen_golden.py:
// outputs, final states and every gradient, in float64 and in float32.
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

template <typename T>
void check_case(const GoldenCase& gc) {
  const Golden g = read_golden(std::string(gc.file) + ".txt");
  const GoldenTensor& w_ih = g.at("weight_ih_l0");
  const GoldenTensor& x = g.at("x");
  RnnConfig c;
  c.cell = gc.cell;
  c.input_size = w_ih.shape[1];
  c.hidden_size = g.at("weight_hh_l0").shape[1];
  c.bias = g.count("bias_ih_l0") > 0;
  c.dtype = dtype_of<T>();
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

  // Accumulation depth: a GEMM of K = in + H per step, over T steps and L layers; twice for
  // gradients.
  const std::int64_t widest = std::max(c.input_size, 2 * c.hidden_size) + c.hidden_size;
  const double depth = static_cast<double>(x.shape[0] * widest * c.num_layers);
  const Tolerance fwd = tolerance_for_depth<T>(depth), bwd = tolerance_for_depth<T>(2 * depth);
  EXPECT_TRUE(all_close(f.y.to_vector<T>(), g.at("y").values, fwd)) << "y";
  EXPECT_TRUE(all_close(f.h_n.to_vector<T>(), g.at("h_n").values, fwd)) << "h_n";
  if (lstm) {
    EXPECT_TRUE(all_close(f.c_n.to_vector<T>(), g.at("c_n").values, fwd)) << "c_n";
  }
  EXPECT_TRUE(all_close(b.dx.to_vector<T>(), g.at("dx").values, bwd)) << "dx";
  EXPECT_TRUE(all_close(b.dh0.to_vector<T>(), g.at("dh0").values, bwd)) << "dh0";
  if (lstm) {
    EXPECT_TRUE(all_close(b.dc0.to_vector<T>(), g.at("dc0").values, bwd)) << "dc0";
  }
  for (const ParamInfo& info : rnn.parameter_info()) {
    EXPECT_TRUE(
        all_close(rnn.gradient(info.name).to_vector<T>(), g.at("grad." + info.name).values, bwd))
        << "grad." << info.name;
  }
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, Float64MatchesReference) { check_case<double>(GetParam()); }
TEST_P(GoldenTest, Float32MatchesReference) { check_case<float>(GetParam()); }

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
};

std::string golden_name(const ::testing::TestParamInfo<GoldenCase>& p) { return p.param.file; }

INSTANTIATE_TEST_SUITE_P(PyTorch, GoldenTest, ::testing::ValuesIn(kGolden), golden_name);

}  // namespace
}  // namespace recur::test
