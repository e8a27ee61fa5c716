// tests/test_batches.cpp: what real batches bring: variable-length sequences (PyTorch's
// PackedSequence semantics), dropout between layers, batch-first tensors.
#include "../kernels/connection.cuh"
#include "gradcheck_util.h"

namespace recur::test {
namespace {

constexpr std::int64_t kT = 4, kB = 3, kI = 3, kH = 3;

RnnConfig config(CellKind cell, std::int64_t layers, bool bi, Connection conn) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = kI;
  c.hidden_size = kH;
  c.dtype = DType::Float64;
  c.num_layers = layers;
  c.bidirectional = bi;
  c.connection = conn;
  return c;
}

struct VarCase {
  CellKind cell;
  bool bidirectional;
  Connection connection;
};

std::vector<VarCase> var_grid() {
  std::vector<VarCase> cases;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::RnnSigmoid, CellKind::Lstm,
                        CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    for (bool bi : {false, true}) {
      for (Connection conn :
           {Connection::None, Connection::Residual, Connection::Highway, Connection::Dense}) {
        cases.push_back({cell, bi, conn});
      }
    }
  }
  return cases;
}

std::string var_name(const ::testing::TestParamInfo<VarCase>& p) {
  return std::string(to_string(p.param.cell)) + (p.param.bidirectional ? "_bi_" : "_uni_") +
         to_string(p.param.connection);
}

class VariableLengthGradCheck : public ::testing::TestWithParam<VarCase> {};

// Two layers, unsorted lengths with one sequence of length 1 and none of the full T, so the
// last step is never computed; the unidirectional stack both layer by layer and as the
// wavefront the GPU runs.
TEST_P(VariableLengthGradCheck, EveryGradientMatchesFiniteDifferences) {
  Rnn rnn(config(GetParam().cell, 2, GetParam().bidirectional, GetParam().connection),
          Device::cpu(), 4);
  for (bool wave : {false, true}) {
    if (wave && GetParam().bidirectional) continue;
    SCOPED_TRACE(wave ? "wavefront" : "layer by layer");
    run_as_wavefront(rnn, wave);
    // Layer by layer, the LSTM also with layer 0's h_{t-1} beside x (hp_beside_x).
    keep_hp_beside_x_from(rnn, !wave && GetParam().cell == CellKind::Lstm ? 0 : 2048);
    check_all_gradients(rnn, kT, kB, 200, {2, 3, 1});
  }
}

INSTANTIATE_TEST_SUITE_P(Grid, VariableLengthGradCheck, ::testing::ValuesIn(var_grid()), var_name);

TEST(VariableLength, OutputsPastTheEndAreZeroAndStatesAreTheLastReal) {
  for (bool bi : {false, true}) {
    Rnn rnn(config(CellKind::Lstm, 2, bi, Connection::None), Device::cpu(), 1);
    Random rng(1);
    const std::int64_t D = bi ? 2 : 1;
    Tensor x = rng.tensor<double>({kT, kB, kI});
    const std::vector<std::int64_t> lengths = {2, 4, 1};
    ForwardResult packed = rnn.forward(x, {}, {}, Mode::Inference, lengths);
    const std::vector<double> y = packed.y.to_vector<double>();
    const std::vector<double> hn = packed.h_n.to_vector<double>();
    for (std::int64_t b = 0; b < kB; ++b) {
      // Sequence b alone, truncated to its length, must give the same numbers.
      const std::int64_t len = lengths[b];
      std::vector<double> xb;
      const std::vector<double> xv = x.to_vector<double>();
      for (std::int64_t t = 0; t < len; ++t) {
        xb.insert(xb.end(), xv.begin() + (t * kB + b) * kI, xv.begin() + (t * kB + b + 1) * kI);
      }
      ForwardResult alone =
          rnn.forward(Tensor::from_vector(xb, {len, 1, kI}), {}, {}, Mode::Inference);
      const std::vector<double> ya = alone.y.to_vector<double>();
      const std::vector<double> ha = alone.h_n.to_vector<double>();
      for (std::int64_t t = 0; t < kT; ++t) {
        for (std::int64_t k = 0; k < D * kH; ++k) {
          const double got = y[(t * kB + b) * D * kH + k];
          if (t < len) {
            EXPECT_NEAR(got, ya[t * D * kH + k], 1e-12) << b << " " << t;
          } else {
            EXPECT_EQ(got, 0.0) << "padding at b " << b << " t " << t;
          }
        }
      }
      for (std::int64_t u = 0; u < 2 * D; ++u) {
        for (std::int64_t k = 0; k < kH; ++k) {
          EXPECT_NEAR(hn[(u * kB + b) * kH + k], ha[u * kH + k], 1e-12) << "h_n " << u;
        }
      }
    }
  }
}

TEST(VariableLength, FullLengthsEqualNoLengths) {
  Rnn rnn(config(CellKind::GruLinearBeforeReset, 3, true, Connection::Highway), Device::cpu(), 2);
  Random rng(2);
  Tensor x = rng.tensor<double>({kT, kB, kI});
  ForwardResult a = rnn.forward(x, {}, {}, Mode::Inference);
  ForwardResult b = rnn.forward(x, {}, {}, Mode::Inference, {kT, kT, kT});
  EXPECT_EQ(a.y.to_vector<double>(), b.y.to_vector<double>());
  EXPECT_EQ(a.h_n.to_vector<double>(), b.h_n.to_vector<double>());
}

TEST(VariableLength, BadLengthsAreNamed) {
  Rnn rnn(config(CellKind::Lstm, 1, false, Connection::None));
  Random rng(3);
  Tensor x = rng.tensor<double>({kT, kB, kI});
  auto expect = [&](const std::vector<std::int64_t>& lengths, const std::string& expected,
                    const std::string& got) {
    try {
      rnn.forward(x, {}, {}, Mode::Training, lengths);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "lengths");
      EXPECT_EQ(e.expected(), expected);
      EXPECT_EQ(e.got(), got);
    }
  };
  expect({1, 2}, "one length per sequence: 3", "2 lengths");
  expect({1, 0, 2}, "every length in [1, T = 4]", "lengths[1] = 0");
  expect({1, 5, 2}, "every length in [1, T = 4]", "lengths[1] = 5");
  expect({-1, 1, 1}, "every length in [1, T = 4]", "lengths[0] = -1");
  // The failed calls kept nothing: backward has no forward to consume.
  EXPECT_THROW(rnn.backward({}), Error);
}

// ---- dropout ----

TEST(Dropout, KeepRateWithinStatisticalBounds) {
  const std::int64_t n = 1 << 20;
  for (double p : {0.1, 0.5, 0.8}) {
    std::vector<float> y(n, 1.0f), out(n);
    kernels::ConnectionArgs<float> a;
    a.rows = n / 64;
    a.width = 64;
    a.y = y.data();
    a.ldy = 64;
    a.out = out.data();
    a.p = static_cast<float>(p);
    a.seed = 1234;
    a.stream = 7;
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      kernels::DropoutForward<float>{}(i, a);
      if (out[i] != 0.0f) {
        ++kept;
        ASSERT_FLOAT_EQ(out[i], static_cast<float>(1.0 / (1.0 - p)));  // inverted dropout
      }
    }
    const double rate = static_cast<double>(kept) / n;
    const double sigma = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(rate, 1.0 - p, 6 * sigma) << "p = " << p;
  }
}

TEST(Dropout, GradientsMatchFiniteDifferencesWithAFixedMask) {
  for (Connection conn : {Connection::None, Connection::Residual, Connection::Dense}) {
    RnnConfig c = config(CellKind::Lstm, 3, true, conn);
    c.input_size = 2 * kH;  // so residual applies at layer 0 too
    c.dropout = 0.4;
    Rnn rnn(c, Device::cpu(), 5);
    check_all_gradients(rnn, kT, kB, 300, {4, 2, 3}, /*training=*/true);
  }
}

TEST(Dropout, MasksFollowSeedAndStepAndInferenceIsUnaffected) {
  RnnConfig c = config(CellKind::GruLinearBeforeReset, 2, false, Connection::None);
  c.dropout = 0.5;
  Rnn rnn(c, Device::cpu(), 6);
  RnnConfig plain = c;
  plain.dropout = 0.0;
  Rnn reference(plain, Device::cpu(), 6);
  Random rng(6);
  Tensor x = rng.tensor<double>({kT, kB, kI});
  rnn.set_dropout_seed(42);
  const std::vector<double> first = rnn.forward(x).y.to_vector<double>();
  EXPECT_EQ(rnn.dropout_step(), 1u);
  const std::vector<double> second = rnn.forward(x).y.to_vector<double>();
  EXPECT_NE(first, second);  // a new mask every training forward
  rnn.set_dropout_seed(42);
  EXPECT_EQ(rnn.forward(x).y.to_vector<double>(), first);  // the same seed and step: the same
  // No dropout in inference, and never after the last layer.
  EXPECT_EQ(rnn.forward(x, {}, {}, Mode::Inference).y.to_vector<double>(),
            reference.forward(x, {}, {}, Mode::Inference).y.to_vector<double>());
  EXPECT_NE(first, reference.forward(x).y.to_vector<double>());
}

TEST(Dropout, BadProbabilityIsNamed) {
  RnnConfig c = config(CellKind::Lstm, 2, false, Connection::None);
  for (double p : {-0.1, 1.0, std::nan("")}) {
    c.dropout = p;
    try {
      Rnn rnn(c);
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "config.dropout");
      EXPECT_EQ(e.expected(), "a probability in [0, 1)");
    }
  }
}

// ---- batch-first ----

TEST(BatchFirst, EqualsTimeMajorTransposed) {
  for (bool packed : {false, true}) {
    RnnConfig c = config(CellKind::Lstm, 2, true, Connection::Residual);
    c.input_size = 2 * kH;
    Rnn tm(c, Device::cpu(), 7);
    c.batch_first = true;
    Rnn bf(c, Device::cpu(), 7);
    Random rng(7);
    const std::int64_t I = 2 * kH, O = 2 * kH;
    Tensor x = rng.tensor<double>({kT, kB, I}), dy = rng.tensor<double>({kT, kB, O});
    auto transpose = [](const Tensor& t) {
      const std::int64_t A = t.size(0), B = t.size(1), F = t.size(2);
      const std::vector<double> v = t.to_vector<double>();
      std::vector<double> out(v.size());
      for (std::int64_t a = 0; a < A; ++a)
        for (std::int64_t b = 0; b < B; ++b)
          for (std::int64_t f = 0; f < F; ++f) out[(b * A + a) * F + f] = v[(a * B + b) * F + f];
      return Tensor::from_vector(out, {B, A, F});
    };
    const std::vector<std::int64_t> lengths =
        packed ? std::vector<std::int64_t>{3, 4, 1} : std::vector<std::int64_t>{};
    ForwardResult a = tm.forward(x, {}, {}, Mode::Training, lengths);
    ForwardResult b = bf.forward(transpose(x), {}, {}, Mode::Training, lengths);
    EXPECT_EQ(b.y.shape(), (Shape{kB, kT, O}));
    EXPECT_EQ(transpose(a.y).to_vector<double>(), b.y.to_vector<double>());
    EXPECT_EQ(a.h_n.to_vector<double>(), b.h_n.to_vector<double>());
    BackwardResult ga = tm.backward(dy);
    BackwardResult gb = bf.backward(transpose(dy));
    EXPECT_EQ(transpose(ga.dx).to_vector<double>(), gb.dx.to_vector<double>());
    EXPECT_EQ(tm.gradients().to_vector<double>(), bf.gradients().to_vector<double>());
  }
}

TEST(BatchFirst, ShapesAreNamedInErrors) {
  RnnConfig c = config(CellKind::Lstm, 1, false, Connection::None);
  c.batch_first = true;
  Rnn rnn(c);
  Random rng(8);
  rnn.forward(rng.tensor<double>({kB, kT, kI}));
  try {
    rnn.backward(rng.tensor<double>({kT, kB, kH}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "dy");
    EXPECT_EQ(e.expected(), "shape [3, 4, 3] [B, T, D*hidden_size] of the forward");
  }
}

}  // namespace
}  // namespace recur::test
