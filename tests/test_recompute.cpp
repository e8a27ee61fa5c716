// tests/test_recompute.cpp: ActivationMemory::Recompute. A recomputed training step gives
// the stored step's outputs, final states and every gradient (bitwise for the outputs and
// states, whose arithmetic is the same; by segments within the rounding of the weight
// gradients' sums, which add segment by segment; by layers, bidirectional stacks, bitwise)
// over cells, stacks, connections, lengths, batch-first, dropout, layer norm, projection
// and segment sizes; through a SavedForward; its peak memory falls with the segment and by
// layers; and the errors. On the CPU, and on a GPU where there is one.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "plan.h"
#include "test_util.h"

namespace recur::test {
namespace {

struct Case {
  const char* name;
  RnnConfig config;
  std::int64_t steps, batch;
  std::vector<std::int64_t> lengths;
};

RnnConfig make(CellKind cell, std::int64_t I, std::int64_t H, std::int64_t L) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = I;
  c.hidden_size = H;
  c.num_layers = L;
  c.dtype = DType::Float64;
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  Case lstm{"lstm, residual", make(CellKind::Lstm, 6, 6, 2), 17, 3, {}};
  lstm.config.connection = Connection::Residual;
  out.push_back(lstm);
  Case gru{"gru, highway, lengths, batch-first",
           make(CellKind::GruLinearBeforeReset, 5, 4, 3),
           13,
           5,
           {13, 4, 9, 1, 13}};
  gru.config.connection = Connection::Highway;
  gru.config.batch_first = true;
  out.push_back(gru);
  Case dense{"tanh rnn, dense, dropout", make(CellKind::RnnTanh, 3, 5, 3), 11, 4, {}};
  dense.config.connection = Connection::Dense;
  dense.config.dropout = 0.3;
  out.push_back(dense);
  Case rbp{"reset-before-product gru, layer norm, lengths",
           make(CellKind::GruResetBeforeProduct, 4, 5, 2),
           9,
           3,
           {5, 9, 2}};
  rbp.config.layer_norm = true;
  out.push_back(rbp);
  Case one{"lstm, one layer, no bias", make(CellKind::Lstm, 3, 4, 1), 10, 2, {}};
  one.config.bias = false;
  out.push_back(one);
  Case projected{"projected lstm, lengths", make(CellKind::Lstm, 4, 6, 2), 12, 3, {12, 5, 8}};
  projected.config.proj_size = 3;
  out.push_back(projected);
  return out;
}

// Bidirectional stacks, which recompute layer by layer: every cell, connection and
// layout, and (float32, 40 x 64 rows) the CPU's packed weights, row-parallel runs, inputs
// projected inside the steps and h_{t-1} beside x.
std::vector<Case> bidirectional_cases() {
  std::vector<Case> out;
  auto bi = [](CellKind cell, std::int64_t I, std::int64_t H, std::int64_t L) {
    RnnConfig c = make(cell, I, H, L);
    c.bidirectional = true;
    return c;
  };
  Case lstm{"bi lstm, residual", bi(CellKind::Lstm, 6, 3, 2), 9, 3, {}};
  lstm.config.connection = Connection::Residual;
  out.push_back(lstm);
  Case gru{"bi gru, highway, lengths, batch-first",
           bi(CellKind::GruLinearBeforeReset, 5, 4, 3),
           8,
           4,
           {8, 3, 6, 1}};
  gru.config.connection = Connection::Highway;
  gru.config.batch_first = true;
  out.push_back(gru);
  Case dense{"bi tanh rnn, dense, dropout", bi(CellKind::RnnTanh, 3, 4, 3), 7, 3, {}};
  dense.config.connection = Connection::Dense;
  dense.config.dropout = 0.3;
  out.push_back(dense);
  Case rbp{"bi reset-before-product gru, layer norm, lengths",
           bi(CellKind::GruResetBeforeProduct, 4, 5, 2),
           6,
           3,
           {4, 6, 2}};
  rbp.config.layer_norm = true;
  out.push_back(rbp);
  Case ln{"bi lstm, layer norm, no bias", bi(CellKind::Lstm, 3, 4, 2), 5, 2, {}};
  ln.config.layer_norm = true;
  ln.config.bias = false;
  out.push_back(ln);
  Case projected{"bi projected lstm, lengths", bi(CellKind::Lstm, 4, 6, 3), 7, 3, {7, 5, 2}};
  projected.config.proj_size = 3;
  out.push_back(projected);
  Case relu{"bi relu rnn, highway, dropout", bi(CellKind::RnnRelu, 4, 4, 2), 6, 2, {}};
  relu.config.connection = Connection::Highway;
  relu.config.dropout = 0.2;
  out.push_back(relu);
  Case wide{"bi lstm, float32, 40 x 64 rows", bi(CellKind::Lstm, 16, 32, 3), 40, 64, {}};
  wide.config.dtype = DType::Float32;
  out.push_back(wide);
  Case wide_gru{"bi gru, float32, lengths", bi(CellKind::GruResetBeforeProduct, 8, 16, 2), 12, 32,
                std::vector<std::int64_t>(32, 12)};
  wide_gru.config.dtype = DType::Float32;
  for (std::size_t b = 0; b < wide_gru.lengths.size(); ++b) wide_gru.lengths[b] = 1 + b % 12;
  out.push_back(wide_gru);
  return out;
}

struct Step {
  std::vector<double> y, h_n, c_n, dx, dh0, dc0, grads;
};

// A tensor's values as doubles (exactly, from float32 too).
std::vector<double> values(const TensorView& t) {
  if (!t.defined()) return {};
  if (t.dtype() == DType::Float64) return t.to_vector<double>();
  const std::vector<float> v = t.to_vector<float>();
  return std::vector<double>(v.begin(), v.end());
}

// One training step of `rnn` (its parameters as they are, gradients from zero) on fixed
// data, with activations kept or recomputed in segments of `segment` steps.
Step run(Rnn& rnn, const Case& c, ActivationMemory memory, std::int64_t segment,
         bool return_saved) {
  const RnnConfig& cfg = rnn.config();
  const Device d = rnn.device();
  const std::int64_t L = cfg.num_layers, H = cfg.hidden_size, T = c.steps, B = c.batch;
  const std::int64_t O = detail::state_size_of(cfg);  // h's features
  const std::int64_t LD = L * (cfg.bidirectional ? 2 : 1), DO = O * (cfg.bidirectional ? 2 : 1);
  Random rng(5);
  const Shape xs = cfg.batch_first ? Shape{B, T, cfg.input_size} : Shape{T, B, cfg.input_size};
  const Shape ys = cfg.batch_first ? Shape{B, T, DO} : Shape{T, B, DO};
  auto tensor = [&](const Shape& shape) {
    return cfg.dtype == DType::Float32 ? rng.tensor<float>(shape, d) : rng.tensor<double>(shape, d);
  };
  const Tensor x = tensor(xs);
  const Tensor h0 = tensor({LD, B, O});
  const Tensor c0 = tensor({LD, B, H});
  const Tensor dy = tensor(ys);
  const Tensor dh_n = tensor({LD, B, O});
  const Tensor dc_n = tensor({LD, B, H});
  const bool lstm = cfg.cell == CellKind::Lstm;
  rnn.zero_grad();
  rnn.set_dropout_seed(9);
  ForwardOptions fo;
  fo.h0 = h0;
  if (lstm) fo.c0 = c0;
  fo.lengths = c.lengths;
  fo.activations = memory;
  fo.segment_steps = segment;
  fo.return_saved = return_saved;
  ForwardResult r = rnn.forward(x, fo);
  BackwardOptions bo;
  bo.dh_n = dh_n;
  if (lstm) bo.dc_n = dc_n;
  BackwardResult g = return_saved ? rnn.backward(std::move(r.saved), dy, bo) : rnn.backward(dy, bo);
  return {values(r.y),   values(r.h_n), values(r.c_n),          values(g.dx),
          values(g.dh0), values(g.dc0), values(rnn.gradients())};
}

void expect_same(const Step& got, const Step& want, const Tolerance& tol) {
  EXPECT_EQ(got.y, want.y);  // the same arithmetic, step for step
  EXPECT_EQ(got.h_n, want.h_n);
  EXPECT_EQ(got.c_n, want.c_n);
  EXPECT_TRUE(all_close(got.dx, want.dx, tol)) << "dx";
  EXPECT_TRUE(all_close(got.dh0, want.dh0, tol)) << "dh0";
  EXPECT_EQ(got.dc0.size(), want.dc0.size());
  if (!want.dc0.empty()) {
    EXPECT_TRUE(all_close(got.dc0, want.dc0, tol)) << "dc0";
  }
  EXPECT_TRUE(all_close(got.grads, want.grads, tol)) << "gradients";
}

void recomputed_steps_match_stored_ones(Device d) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Rnn rnn(c.config, d, 4);
    const Step stored = run(rnn, c, ActivationMemory::Store, 0, false);
    // Sums of T*B terms of depth ~(I + H) * T, split into segments: their rounding only.
    const Tolerance tol = tolerance_for_depth<double>(
        static_cast<double>(c.steps * c.batch * (c.config.input_size + c.config.hidden_size)));
    for (std::int64_t segment :
         {std::int64_t{0}, std::int64_t{1}, std::int64_t{3}, c.steps, c.steps + 5}) {
      SCOPED_TRACE("segment_steps " + std::to_string(segment));
      expect_same(run(rnn, c, ActivationMemory::Recompute, segment, false), stored, tol);
    }
    SCOPED_TRACE("through a SavedForward");
    expect_same(run(rnn, c, ActivationMemory::Recompute, 4, true), stored, tol);
  }
}

TEST(Recompute, MatchesTheStoredStep) { recomputed_steps_match_stored_ones(Device::cpu()); }

// By layers the backward runs each layer's steps as the forward ran them and then the same
// backward and weight-gradient products: every result is the stored step's, bit for bit.
void layer_recomputation_matches_stored_steps(Device d) {
  for (const Case& c : bidirectional_cases()) {
    SCOPED_TRACE(c.name);
    Rnn rnn(c.config, d, 4);
    const Step stored = run(rnn, c, ActivationMemory::Store, 0, false);
    for (bool return_saved : {false, true}) {
      SCOPED_TRACE(return_saved ? "through a SavedForward" : "kept by the Rnn");
      const Step got = run(rnn, c, ActivationMemory::Recompute, 0, return_saved);
      EXPECT_EQ(got.y, stored.y);
      EXPECT_EQ(got.h_n, stored.h_n);
      EXPECT_EQ(got.c_n, stored.c_n);
      EXPECT_EQ(got.dx, stored.dx);
      EXPECT_EQ(got.dh0, stored.dh0);
      EXPECT_EQ(got.dc0, stored.dc0);
      EXPECT_EQ(got.grads, stored.grads);
      EXPECT_FALSE(got.grads.empty());
    }
  }
}

TEST(Recompute, ByLayersMatchesTheStoredStepBitwise) {
  layer_recomputation_matches_stored_steps(Device::cpu());
}

// The peak of a training step's allocations over x, dy and the model's own, stored and
// recomputed: the recomputed one keeps x in timeline rows and a segment's activations. A
// fresh model each time: one that ran before keeps its workspaces for the next step.
std::int64_t step_peak(const RnnConfig& c, Device d, const Tensor& x, const Tensor& dy,
                       ActivationMemory memory, std::int64_t segment) {
  Rnn rnn(c, d, 1);
  reset_peak_memory();
  const std::int64_t before = memory_stats(rnn.device()).bytes;
  {
    ForwardOptions fo;
    fo.activations = memory;
    fo.segment_steps = segment;
    ForwardResult r = rnn.forward(x, fo);
    BackwardResult g = rnn.backward(dy);
    rnn.synchronize();
  }
  return memory_stats(rnn.device()).peak_bytes - before;
}

void peak_falls_with_recomputation(Device d) {
  RnnConfig c = make(CellKind::Lstm, 8, 64, 2);
  c.dtype = DType::Float32;
  const std::int64_t T = 1024, B = 8;
  Random rng(3);
  const Tensor x = rng.tensor<float>({T, B, 8}, d);
  const Tensor dy = rng.tensor<float>({T, B, 64}, d);
  const std::int64_t stored = step_peak(c, d, x, dy, ActivationMemory::Store, 0);
  const std::int64_t root = step_peak(c, d, x, dy, ActivationMemory::Recompute, 0);  // 32 steps
  const std::int64_t small = step_peak(c, d, x, dy, ActivationMemory::Recompute, 4);
  std::printf(
      "LSTM 2 x 64, T = %lld, B = %lld: step peak stored %lld bytes, recomputed "
      "(sqrt(T) = 32 steps) %lld, (4 steps) %lld\n",
      static_cast<long long>(T), static_cast<long long>(B), static_cast<long long>(stored),
      static_cast<long long>(root), static_cast<long long>(small));
  // y and dx (the caller's) and x's copy stay; every step's gates, states and projections
  // do not.
  EXPECT_LT(root * 4, stored);
  EXPECT_LT(small * 4, stored);
  EXPECT_GT(small, 0);
}

TEST(Recompute, ThePeakFallsWithTheSegment) { peak_falls_with_recomputation(Device::cpu()); }

// A 4-layer bidirectional LSTM keeps each layer's output, cell states and output gradient,
// and one layer's gates, input projections and their gradients: about 0.4x the stored
// step's peak.
void peak_falls_by_layers(Device d) {
  RnnConfig c = make(CellKind::Lstm, 8, 64, 4);
  c.dtype = DType::Float32;
  c.bidirectional = true;
  const std::int64_t T = 256, B = 8;
  Random rng(3);
  const Tensor x = rng.tensor<float>({T, B, 8}, d);
  const Tensor dy = rng.tensor<float>({T, B, 128}, d);
  const std::int64_t stored = step_peak(c, d, x, dy, ActivationMemory::Store, 0);
  const std::int64_t layers = step_peak(c, d, x, dy, ActivationMemory::Recompute, 0);
  std::printf(
      "bidirectional LSTM 4 x 64, T = %lld, B = %lld: step peak stored %lld bytes, "
      "recomputed by layers %lld (%.2fx)\n",
      static_cast<long long>(T), static_cast<long long>(B), static_cast<long long>(stored),
      static_cast<long long>(layers), static_cast<double>(layers) / static_cast<double>(stored));
  EXPECT_LT(layers * 2, stored);
  EXPECT_GT(layers, 0);
  ForwardOptions fo;
  fo.activations = ActivationMemory::Recompute;
  const StepMemory model = Rnn(c, d, 1).step_memory(T, B, fo, 0);
  const std::int64_t modelled = model.activations + model.workspace + model.outputs;
  EXPECT_NEAR(static_cast<double>(modelled), static_cast<double>(layers), 0.05 * layers);
}

TEST(Recompute, ThePeakFallsByLayers) { peak_falls_by_layers(Device::cpu()); }

TEST(Recompute, BadUsesAreErrorsNamingThem) {
  RnnConfig c = make(CellKind::GruLinearBeforeReset, 2, 3, 1);
  Random rng(1);
  const Tensor x = rng.tensor<double>({4, 2, 2});
  ForwardOptions fo;
  fo.activations = ActivationMemory::Recompute;
  {
    Rnn rnn(c, Device::cpu(), 1);
    ForwardOptions inference = fo;
    inference.mode = Mode::Inference;
    EXPECT_NE(error_of([&] { rnn.forward(x, inference); }).find("'options.activations'"),
              std::string::npos);
    ForwardOptions negative = fo;
    negative.segment_steps = -2;
    EXPECT_NE(error_of([&] { rnn.forward(x, negative); }).find("'options.segment_steps'"),
              std::string::npos);
    ForwardOptions bad = fo;
    bad.activations = static_cast<ActivationMemory>(5);
    EXPECT_NE(error_of([&] { rnn.forward(x, bad); }).find("value 5"), std::string::npos);
    EXPECT_EQ(rnn.dropout_step(), 0u);  // nothing ran
  }
  c.bidirectional = true;
  {
    Rnn bi(c, Device::cpu(), 1);
    const std::string one_layer = error_of([&] { bi.forward(x, fo); });
    EXPECT_NE(one_layer.find("'options.activations'"), std::string::npos) << one_layer;
    EXPECT_NE(one_layer.find("one-layer bidirectional"), std::string::npos) << one_layer;
    EXPECT_EQ(bi.dropout_step(), 0u);
  }
  c.num_layers = 2;
  Rnn bi(c, Device::cpu(), 1);
  ForwardOptions segments = fo;
  segments.segment_steps = 2;
  const std::string by_segments = error_of([&] { bi.forward(x, segments); });
  EXPECT_NE(by_segments.find("'options.segment_steps'"), std::string::npos) << by_segments;
  EXPECT_NE(by_segments.find("0 for a bidirectional model"), std::string::npos) << by_segments;
  EXPECT_NE(error_of([&] { bi.step_memory(4, 2, segments); }).find("'options.segment_steps'"),
            std::string::npos);
  EXPECT_EQ(bi.dropout_step(), 0u);
}

TEST(RecomputeCuda, MatchesTheStoredStepAndThePeakFalls) {
  RECUR_REQUIRE_GPU();
  recomputed_steps_match_stored_ones(Device::cuda(0));
  layer_recomputation_matches_stored_steps(Device::cuda(0));
  peak_falls_with_recomputation(Device::cuda(0));
  peak_falls_by_layers(Device::cuda(0));
}

}  // namespace
}  // namespace recur::test
