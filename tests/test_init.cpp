// tests/test_init.cpp: initialize() (recur/init.h): orthogonal blocks, Xavier's bounds and
// variance, PyTorch's default bound, the gate biases, determinism, and the named errors.
#include <cmath>
#include <string>
#include <vector>

#include "test_util.h"

namespace recur::test {
namespace {

RnnConfig config(CellKind cell, std::int64_t input, std::int64_t hidden, DType dtype) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = input;
  c.hidden_size = hidden;
  c.num_layers = 2;
  c.bidirectional = true;
  c.dtype = dtype;
  return c;
}

// max |B B^T - I| (rows orthonormal) or |B^T B - I| (columns) of a rows x cols block.
double orthogonality_error(const std::vector<double>& w, std::int64_t first_row, std::int64_t rows,
                           std::int64_t cols) {
  const bool tall = rows >= cols;
  const std::int64_t n = tall ? cols : rows, len = tall ? rows : cols;
  auto x = [&](std::int64_t vec, std::int64_t i) {
    return tall ? w[(first_row + i) * cols + vec] : w[(first_row + vec) * cols + i];
  };
  double worst = 0.0;
  for (std::int64_t a = 0; a < n; ++a) {
    for (std::int64_t b = 0; b < n; ++b) {
      double d = 0.0;
      for (std::int64_t i = 0; i < len; ++i) d += x(a, i) * x(b, i);
      worst = std::max(worst, std::fabs(d - (a == b ? 1.0 : 0.0)));
    }
  }
  return worst;
}

TEST(Init, OrthogonalRecurrentBlocksAndInputBlocks) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    SCOPED_TRACE(to_string(dtype));
    const std::int64_t H = 24, I = 10;
    Rnn rnn(config(CellKind::Lstm, I, H, dtype));
    InitOptions o;
    o.recurrent = WeightInit::Orthogonal;
    o.input = WeightInit::Orthogonal;
    initialize(rnn, o, 5);
    const double budget = dtype == DType::Float64 ? 1e-12 : 1e-5;
    for (const ParamInfo& p : rnn.parameter_info()) {
      if (p.name.rfind("weight_", 0) != 0) continue;
      SCOPED_TRACE(p.name);
      const TensorView view = rnn.parameter(p.name);
      std::vector<double> w;
      if (dtype == DType::Float64) {
        w = view.to_vector<double>();
      } else {
        for (float v : view.to_vector<float>()) w.push_back(v);
      }
      for (std::int64_t g = 0; g < 4; ++g) {
        EXPECT_LT(orthogonality_error(w, g * H, H, p.shape[1]), budget) << "gate " << g;
      }
    }
  }
}

TEST(Init, XavierAndPyTorchBoundsAndVariance) {
  const std::int64_t H = 64, I = 32;
  Rnn rnn(config(CellKind::GruLinearBeforeReset, I, H, DType::Float64));
  InitOptions o;
  o.input = WeightInit::XavierUniform;
  o.recurrent = WeightInit::XavierNormal;
  initialize(rnn, o, 9);
  const std::vector<double> w_ih = rnn.parameter("weight_ih_l0").to_vector<double>();
  const double a = std::sqrt(6.0 / static_cast<double>(3 * H + I));
  double lo = 0.0, hi = 0.0, sq = 0.0;
  for (double v : w_ih) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sq += v * v;
  }
  EXPECT_GE(lo, -a);
  EXPECT_LE(hi, a);
  EXPECT_GT(hi, 0.95 * a);  // the range is used
  const double n = static_cast<double>(w_ih.size());
  EXPECT_NEAR(sq / n, a * a / 3.0, 5.0 * a * a / 3.0 * std::sqrt(2.0 / n));  // U's variance
  const std::vector<double> w_hh = rnn.parameter("weight_hh_l1_reverse").to_vector<double>();
  double mean = 0.0, var = 0.0;
  for (double v : w_hh) mean += v / static_cast<double>(w_hh.size());
  for (double v : w_hh) var += (v - mean) * (v - mean) / static_cast<double>(w_hh.size());
  const double expected = 2.0 / static_cast<double>(3 * H + H);
  EXPECT_NEAR(var, expected, 5.0 * expected * std::sqrt(2.0 / static_cast<double>(w_hh.size())));
  EXPECT_NEAR(mean, 0.0, 5.0 * std::sqrt(expected / static_cast<double>(w_hh.size())));
  // Biases stayed PyTorch's: within 1/sqrt(H).
  for (double v : rnn.parameter("bias_hh_l0").to_vector<double>()) {
    EXPECT_LE(std::fabs(v), 1.0 / std::sqrt(static_cast<double>(H)));
  }
}

TEST(Init, GateBiasesKeepMemory) {
  const std::int64_t H = 8;
  for (CellKind cell : {CellKind::Lstm, CellKind::GruLinearBeforeReset}) {
    SCOPED_TRACE(to_string(cell));
    Rnn rnn(config(cell, 4, H, DType::Float32));
    InitOptions o;
    o.zero_biases = true;
    o.gate_bias = 1.5;
    initialize(rnn, o, 1);
    for (const char* name : {"bias_ih_l0", "bias_hh_l1_reverse"}) {
      const std::vector<float> b = rnn.parameter(name).to_vector<float>();
      const bool ih = std::string(name).rfind("bias_ih", 0) == 0;
      for (std::int64_t r = 0; r < static_cast<std::int64_t>(b.size()); ++r) {
        const bool gate = r >= H && r < 2 * H;  // LSTM's f, GRU's z
        EXPECT_EQ(b[r], gate && ih ? 1.5f : 0.0f) << name << " row " << r;
      }
    }
  }
  RnnConfig c = config(CellKind::Lstm, 4, H, DType::Float32);
  c.connection = Connection::Highway;
  c.num_layers = 3;
  c.input_size = 2 * H;
  Rnn highway(c);
  InitOptions o;
  o.highway_gate_bias = -2.0;
  initialize(highway, o, 1);
  for (float v : highway.parameter("highway_bias_l1").to_vector<float>()) EXPECT_EQ(v, -2.0f);
}

TEST(Init, DeterministicFromTheSeedAndDifferentAcrossSeeds) {
  InitOptions o;
  o.recurrent = WeightInit::Orthogonal;
  o.input = WeightInit::XavierNormal;
  Rnn a(config(CellKind::Lstm, 6, 10, DType::Float32)),
      b(config(CellKind::Lstm, 6, 10, DType::Float32));
  initialize(a, o, 42);
  initialize(b, o, 42);
  EXPECT_EQ(a.parameters().to_vector<float>(), b.parameters().to_vector<float>());
  initialize(b, o, 43);
  EXPECT_NE(a.parameters().to_vector<float>(), b.parameters().to_vector<float>());
  if (gpu_available()) {
    Rnn g(config(CellKind::Lstm, 6, 10, DType::Float32), Device::cuda(0));
    initialize(g, o, 42);
    EXPECT_EQ(g.parameters().to_vector<float>(), a.parameters().to_vector<float>());
  }
}

TEST(Init, BadOptionsAreNamedAndChangeNothing) {
  Rnn rnn(config(CellKind::RnnTanh, 4, 4, DType::Float32));
  const std::vector<float> before = rnn.parameters().to_vector<float>();
  InitOptions o;
  o.gate_bias = 1.0;
  EXPECT_EQ(error_of([&] { initialize(rnn, o, 1); }),
            "recur: initialize: argument 'options.gate_bias': expected a gated cell (LSTM or GRU), "
            "got cell RnnTanh");
  o = {};
  o.highway_gate_bias = -1.0;
  EXPECT_EQ(
      error_of([&] { initialize(rnn, o, 1); }),
      "recur: initialize: argument 'options.highway_gate_bias': expected a model with Highway "
      "connections, got connection None");
  o = {};
  o.recurrent = static_cast<WeightInit>(7);
  EXPECT_EQ(error_of([&] { initialize(rnn, o, 1); }),
            "recur: initialize: argument 'options.recurrent': expected a WeightInit, got 7");
  Rnn lstm(config(CellKind::Lstm, 4, 4, DType::Float32));
  o = {};
  o.gate_bias = std::nan("");
  EXPECT_EQ(error_of([&] { initialize(lstm, o, 1); }),
            "recur: initialize: argument 'options.gate_bias': expected a finite number, got nan");
  RnnConfig no_bias = config(CellKind::Lstm, 4, 4, DType::Float32);
  no_bias.bias = false;
  Rnn nb(no_bias);
  o = {};
  o.gate_bias = 1.0;
  EXPECT_EQ(error_of([&] { initialize(nb, o, 1); }),
            "recur: initialize: argument 'options.gate_bias': expected a model with biases "
            "(config.bias), got config.bias = false");
  EXPECT_EQ(rnn.parameters().to_vector<float>(), before);
}

}  // namespace
}  // namespace recur::test
