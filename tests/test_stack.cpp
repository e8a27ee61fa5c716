// tests/test_stack.cpp: stacked, bidirectional networks with connections between layers:
// float64 gradient checks over the grid cell x {1, 2, 3} layers x {uni, bi} x
// {none, residual, highway, dense}; identities the connections must satisfy; the
// parameter layout of deep stacks.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"
#include "cpu/onednn_matmul.h"
#include "gradcheck_util.h"
#include "pass/pass_plan.h"

namespace recur::test {
namespace {

struct StackCase {
  CellKind cell;
  std::int64_t layers;
  bool bidirectional;
  Connection connection;
};

constexpr std::int64_t kT = 3, kB = 2, kI = 3, kH = 3;

RnnConfig config_of(const StackCase& s, std::int64_t input = kI) {
  RnnConfig c;
  c.cell = s.cell;
  c.input_size = input;
  c.hidden_size = kH;
  c.dtype = DType::Float64;
  c.num_layers = s.layers;
  c.bidirectional = s.bidirectional;
  c.connection = s.connection;
  return c;
}

// A float32 model with H hidden units: the CPU packs (and runs row-parallel) float passes
// only.
RnnConfig float_config_of(const StackCase& s, std::int64_t input, std::int64_t hidden) {
  RnnConfig c = config_of(s, input);
  c.hidden_size = hidden;
  c.dtype = DType::Float32;
  return c;
}

std::vector<StackCase> grid() {
  std::vector<StackCase> cases;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::RnnSigmoid, CellKind::Lstm,
                        CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    for (std::int64_t layers : {1, 2, 3}) {
      for (bool bi : {false, true}) {
        for (Connection conn :
             {Connection::None, Connection::Residual, Connection::Highway, Connection::Dense}) {
          // One layer whose input width differs from D*H has nowhere to put a residual or
          // highway connection: a config error (tested below), not a grid point.
          const bool nowhere = layers == 1 && kI != (bi ? 2 : 1) * kH &&
                               (conn == Connection::Residual || conn == Connection::Highway);
          if (!nowhere) cases.push_back({cell, layers, bi, conn});
        }
      }
    }
  }
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<StackCase>& p) {
  return std::string(to_string(p.param.cell)) + "_L" + std::to_string(p.param.layers) +
         (p.param.bidirectional ? "_bi_" : "_uni_") + to_string(p.param.connection);
}

class StackGradCheck : public ::testing::TestWithParam<StackCase> {};

TEST_P(StackGradCheck, EveryGradientMatchesFiniteDifferences) {
  Rnn rnn(config_of(GetParam()), Device::cpu(), 5);
  check_all_gradients(rnn, kT, kB, 100 + static_cast<std::uint64_t>(GetParam().layers));
}

INSTANTIATE_TEST_SUITE_P(Grid, StackGradCheck, ::testing::ValuesIn(grid()), case_name);

// ---- identities ----

TEST(StackIdentity, ResidualWithZeroWeightsPassesTheInputThrough) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct}) {
    for (bool bi : {false, true}) {
      const std::int64_t width = (bi ? 2 : 1) * kH;  // x as wide as y: residual at layer 0 too
      Rnn rnn(config_of({cell, 3, bi, Connection::Residual}, width));
      rnn.parameters().copy_from(Tensor::zeros({rnn.parameters().numel()}, DType::Float64));
      Random rng(1);
      Tensor x = rng.tensor<double>({kT, kB, width});
      ForwardResult r = rnn.forward(x, {}, {}, Mode::Inference);
      // Zero weights and biases and zero initial states give y_l = 0 for every cell, so
      // u_{l+1} = u_l = ... = x.
      EXPECT_EQ(r.y.to_vector<double>(), x.to_vector<double>()) << to_string(cell) << bi;
    }
  }
}

TEST(StackIdentity, HighwayWithGateBiasMinusInfinityIsTheIdentity) {
  for (bool bi : {false, true}) {
    const std::int64_t width = (bi ? 2 : 1) * kH;
    Rnn rnn(config_of({CellKind::Lstm, 3, bi, Connection::Highway}, width), Device::cpu(), 3);
    for (std::int64_t l = 0; l < 3; ++l) {
      TensorView b = rnn.parameter("highway_bias_l" + std::to_string(l));
      std::vector<double> minus_inf(static_cast<std::size_t>(b.numel()),
                                    -std::numeric_limits<double>::infinity());
      b.copy_from_host(minus_inf.data());
    }
    Random rng(2);
    Tensor x = rng.tensor<double>({kT, kB, width});
    ForwardResult r =
        rnn.forward(x, rng.tensor<double>({3 * (bi ? 2 : 1), kB, kH}), {}, Mode::Inference);
    EXPECT_EQ(r.y.to_vector<double>(), x.to_vector<double>()) << bi;
  }
}

TEST(StackIdentity, DenseLayerInputsHaveTheExpectedWidths) {
  for (bool bi : {false, true}) {
    const std::int64_t D = bi ? 2 : 1, L = 4, I = 5;
    Rnn rnn(config_of({CellKind::GruLinearBeforeReset, L, bi, Connection::Dense}, I));
    for (std::int64_t l = 0; l < L; ++l) {
      for (const char* sfx : {"", "_reverse"}) {
        if (!bi && std::string(sfx) == "_reverse") continue;
        const std::string name = "weight_ih_l" + std::to_string(l) + sfx;
        EXPECT_EQ(rnn.parameter(name).shape(), (Shape{3 * kH, I + l * D * kH})) << name;
      }
    }
    Random rng(3);
    ForwardResult r = rnn.forward(rng.tensor<double>({kT, kB, I}), {}, {}, Mode::Inference);
    EXPECT_EQ(r.y.shape(), (Shape{kT, kB, D * kH}));
    EXPECT_EQ(r.h_n.shape(), (Shape{L * D, kB, kH}));
  }
}

TEST(StackLayout, NamesFollowPyTorchThenHighway) {
  RnnConfig c = config_of({CellKind::Lstm, 2, true, Connection::Highway}, 2 * kH);
  Rnn rnn(c);
  std::vector<std::string> names;
  for (const ParamInfo& p : rnn.parameter_info()) names.push_back(p.name);
  const std::vector<std::string> expected = {
      "weight_ih_l0",         "weight_hh_l0",         "bias_ih_l0",         "bias_hh_l0",
      "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
      "weight_ih_l1",         "weight_hh_l1",         "bias_ih_l1",         "bias_hh_l1",
      "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse",
      "highway_weight_l0",    "highway_bias_l0",      "highway_weight_l1",  "highway_bias_l1"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(rnn.parameter("weight_ih_l1").shape(), (Shape{4 * kH, 2 * kH}));
  EXPECT_EQ(rnn.parameter("highway_weight_l1").shape(), (Shape{2 * kH, 2 * kH}));
  // The buffer is dense: offsets are consecutive.
  std::int64_t next = 0;
  for (const ParamInfo& p : rnn.parameter_info()) {
    EXPECT_EQ(p.offset, next) << p.name;
    next += numel(p.shape);
  }
  EXPECT_EQ(next, rnn.parameters().numel());
}

TEST(StackLayout, HighwaySkipsLayerZeroWhenWidthsDiffer) {
  Rnn rnn(config_of({CellKind::RnnTanh, 2, false, Connection::Highway}, kI + 1));
  EXPECT_THROW(rnn.parameter("highway_weight_l0"), Error);
  EXPECT_EQ(rnn.parameter("highway_weight_l1").shape(), (Shape{kH, kH}));
}

// ---- bad input ----

TEST(StackErrors, ConnectionThatCanApplyNowhere) {
  for (Connection conn : {Connection::Residual, Connection::Highway}) {
    try {
      Rnn rnn(config_of({CellKind::Lstm, 1, true, conn}, 5));
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "config.connection");
      EXPECT_NE(e.expected().find("input_size == D*hidden_size = 6"), std::string::npos)
          << e.what();
      EXPECT_NE(e.got().find("input_size 5"), std::string::npos) << e.what();
    }
  }
}

TEST(StackErrors, LayersAndConnectionEnum) {
  RnnConfig c = config_of({CellKind::Lstm, 0, false, Connection::None});
  try {
    Rnn rnn(c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "recur: Rnn: argument 'config.num_layers': expected >= 1, got 0");
  }
  c.num_layers = 2;
  c.connection = static_cast<Connection>(9);
  EXPECT_THROW(Rnn rnn(c), Error);
}

TEST(StackErrors, StatesMustBeLayersTimesDirections) {
  Rnn rnn(config_of({CellKind::Lstm, 2, true, Connection::None}));
  Random rng(4);
  Tensor x = rng.tensor<double>({kT, kB, kI});
  const std::vector<double> before = rnn.parameters().to_vector<double>();
  try {
    rnn.forward(x, rng.tensor<double>({2, kB, kH}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "h0");
    EXPECT_EQ(e.expected(), "shape [4, 2, 3] [num_layers*D, B, hidden_size]");
    EXPECT_EQ(e.got(), "[2, 2, 3]");
  }
  rnn.forward(x);
  try {
    rnn.backward(rng.tensor<double>({kT, kB, kH}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "dy");
    EXPECT_EQ(e.expected(), "shape [3, 2, 6] [T, B, D*hidden_size] of the forward");
  }
  EXPECT_EQ(rnn.parameters().to_vector<double>(), before);
  EXPECT_NO_THROW(rnn.backward(rng.tensor<double>({kT, kB, 2 * kH})));
}

// ---- the transposed-weights forward (src/pass/pass_plan.h) ----

// Columns [b0, b1) of a [T, B, W] time-major host tensor.
std::vector<double> batch_slice(const std::vector<double>& v, std::int64_t T, std::int64_t B,
                                std::int64_t W, std::int64_t b0, std::int64_t b1) {
  std::vector<double> out;
  for (std::int64_t t = 0; t < T; ++t) {
    const auto row = v.begin() + (t * B + b0) * W;
    out.insert(out.end(), row, row + (b1 - b0) * W);
  }
  return out;
}

// A float Tensor's or TensorView's values, widened for all_close.
template <class Values>
std::vector<double> widened(const Values& t) {
  const std::vector<float> v = t.template to_vector<float>();
  return std::vector<double>(v.begin(), v.end());
}

// The models the per-step weight layouts are checked on: every cell as a wavefront with
// dense connections (upper layers read W_ih per step, by segments; the CPU runs it when
// asked, see schedules()) and as a packed bidirectional stack.
// The schedules a case runs in: a unidirectional stack both as the wavefront (the GPU's
// schedule) and layer by layer (the CPU's), a bidirectional one layer by layer only.
std::string case_name(const StackCase& s, bool wavefront) {
  return std::string(to_string(s.cell)) + (s.bidirectional ? " bi"
                                           : wavefront     ? " uni wavefront"
                                                           : " uni");
}

std::vector<bool> schedules(const StackCase& s) {
  return s.bidirectional || s.layers == 1 ? std::vector<bool>{false}
                                          : std::vector<bool>{true, false};
}

std::vector<StackCase> per_step_weight_cases() {
  std::vector<StackCase> cases;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct}) {
    cases.push_back({cell, 3, false, Connection::Dense});
    cases.push_back({cell, 2, true, Connection::Residual});
  }
  return cases;
}

// A batch of 16 runs its forward recurrent GEMMs on transposed weights; the same sequences
// as two batches of 8 run them on W_hh as stored. Outputs, dx and the accumulated
// parameter gradients must agree to rounding: every cell, a wavefront with dense
// connections (whose upper layers also read a transposed W_ih, by segments), and a packed
// bidirectional stack.
TEST(StackTransposedWeights, BatchOf16MatchesTwoBatchesOf8) {
  const std::int64_t T = 5, B = 16, I = 4, half = 8;
  for (const StackCase& s : per_step_weight_cases()) {
    for (bool wave : schedules(s)) {
      const std::string what = case_name(s, wave);
      Rnn rnn(config_of(s, I), Device::cpu(), 11);
      run_as_wavefront(rnn, wave);
      const std::int64_t D = s.bidirectional ? 2 : 1;
      std::vector<std::int64_t> lengths;
      if (s.bidirectional) {
        for (std::int64_t b = 0; b < B; ++b) lengths.push_back(1 + (b * 7) % T);
      }
      Random rng(12);
      const std::vector<double> x = rng.vector<double>(T * B * I);
      const std::vector<double> dy = rng.vector<double>(T * B * D * kH);

      auto run = [&](std::int64_t b0, std::int64_t b1) {
        const std::int64_t n = b1 - b0;
        std::vector<std::int64_t> len;
        if (!lengths.empty()) len.assign(lengths.begin() + b0, lengths.begin() + b1);
        ForwardResult f =
            rnn.forward(Tensor::from_vector(batch_slice(x, T, B, I, b0, b1), {T, n, I}), {}, {},
                        Mode::Training, len);
        BackwardResult g = rnn.backward(
            Tensor::from_vector(batch_slice(dy, T, B, D * kH, b0, b1), {T, n, D * kH}));
        return std::make_pair(f.y.to_vector<double>(), g.dx.to_vector<double>());
      };
      rnn.zero_grad();
      const auto [y_all, dx_all] = run(0, B);
      const std::vector<double> grads_all = rnn.gradients().to_vector<double>();
      rnn.zero_grad();
      const auto [y_lo, dx_lo] = run(0, half);
      const auto [y_hi, dx_hi] = run(half, B);
      const std::vector<double> grads_halves = rnn.gradients().to_vector<double>();

      const Tolerance tol = tolerance_for_depth<double>(T * B * 3 * kH);
      EXPECT_TRUE(all_close(batch_slice(y_all, T, B, D * kH, 0, half), y_lo, tol)) << what;
      EXPECT_TRUE(all_close(batch_slice(y_all, T, B, D * kH, half, B), y_hi, tol)) << what;
      EXPECT_TRUE(all_close(batch_slice(dx_all, T, B, I, 0, half), dx_lo, tol)) << what;
      EXPECT_TRUE(all_close(batch_slice(dx_all, T, B, I, half, B), dx_hi, tol)) << what;
      EXPECT_TRUE(all_close(grads_all, grads_halves, tol)) << what;
    }
  }
}

// A float pass of 16 rows and 6 steps holds its per-step weights, which the CPU packs for
// oneDNN's matmul (src/pass/pass_plan.h; the reset-before-product GRU only where its steps run
// row-parallel); with packing off the same model reads them transposed.
// Outputs, final states, dx and the parameter gradients must agree to rounding: every
// cell, a wavefront with dense connections (whose upper layers also hold W_ih, by
// segments) and a packed bidirectional stack (strided rows, fewer columns at later steps).
TEST(StackPackedWeights, MatchTheTransposedWeights) {
  if (!detail::PackedGemms::available()) GTEST_SKIP() << "oneDNN's C API is not loaded";
  const std::int64_t T = 6, B = 16, I = 5, H = 8;
  for (const StackCase& s : per_step_weight_cases()) {
    for (bool wave : schedules(s)) {
      const CellKind cell = s.cell;
      const std::string what = case_name(s, wave);
      Rnn rnn(float_config_of(s, I, H), Device::cpu(), 21);
      run_as_wavefront(rnn, wave);
      const std::int64_t D = s.bidirectional ? 2 : 1;
      std::vector<std::int64_t> lengths;
      if (s.bidirectional) {
        for (std::int64_t b = 0; b < B; ++b) lengths.push_back(1 + (b * 5) % T);
      }
      Random rng(22);
      const Tensor x = rng.tensor<float>({T, B, I});
      const Tensor dy = rng.tensor<float>({T, B, D * H});
      struct Run {
        std::vector<double> y, h_n, dx, grads;
        std::int64_t packed_gemms;
      };
      auto run = [&](bool packing) {
        tune(rnn, [packing](detail::Tuning& t) { t.cpu_pack_weights = packing; });
        rnn.zero_grad();
        const ForwardResult f = rnn.forward(x, {}, {}, Mode::Training, lengths);
        const std::int64_t forward_packed = forward_statistics(rnn).packed_gemms;
        const BackwardResult g = rnn.backward(dy);
        return Run{widened(f.y), widened(f.h_n), widened(g.dx), widened(rnn.gradients()),
                   forward_packed + backward_statistics(rnn).packed_gemms};
      };
      const Run transposed = run(false), packed = run(true);
      EXPECT_EQ(transposed.packed_gemms, 0) << what;
      // The reset-before-product GRU packs only where its steps run row-parallel
      // (src/pass/pass_plan.h): layer by layer, with two threads, unless the model's tuning
      // turns row-parallel runs off (RECUR_CPU_ROW_PARALLEL=0).
      const bool row_runs = !wave && detail::cpu_step_threads() >= 2 &&
                            detail::RnnAccess::engine(rnn).tuning().cpu_row_parallel;
      if (cell == CellKind::GruResetBeforeProduct && !row_runs) {
        EXPECT_EQ(packed.packed_gemms, 0) << what;
      } else {
        EXPECT_GE(packed.packed_gemms, 2 * (T - 1) * s.layers * D) << what;  // forward, backward
      }
      const Tolerance tol = tolerance_for_depth<float>(T * B * 3 * H);
      EXPECT_TRUE(all_close(packed.y, transposed.y, tol)) << what;
      EXPECT_TRUE(all_close(packed.h_n, transposed.h_n, tol)) << what;
      EXPECT_TRUE(all_close(packed.dx, transposed.dx, tol)) << what;
      EXPECT_TRUE(all_close(packed.grads, transposed.grads, tol)) << what;
    }
  }
}

// Packed copies live for one pass: after the parameters change (as an optimizer step
// changes them), the next pass packs them afresh. Two forward passes around a change of
// every weight must give what a model without packing gives for the new weights.
TEST(StackPackedWeights, FollowParameterChanges) {
  if (!detail::PackedGemms::available()) GTEST_SKIP() << "oneDNN's C API is not loaded";
  const std::int64_t T = 6, B = 16, I = 5, H = 8;
  const RnnConfig config = float_config_of({CellKind::Lstm, 1, false, Connection::None}, I, H);
  Random rng(31);
  const Tensor x = rng.tensor<float>({T, B, I});
  const Tensor changed = rng.tensor<float>({Rnn(config).parameters().numel()});
  auto run = [&](bool packing) {
    Rnn rnn(config, Device::cpu(), 32);
    tune(rnn, [packing](detail::Tuning& t) { t.cpu_pack_weights = packing; });
    rnn.forward(x);  // packs the first weights
    const bool packed_first = forward_statistics(rnn).packed_gemms > 0;
    rnn.parameters().copy_from(changed.view());
    const std::vector<float> y = rnn.forward(x).y.to_vector<float>();
    EXPECT_EQ(packed_first, packing);
    EXPECT_EQ(forward_statistics(rnn).packed_gemms > 0, packing);
    return std::vector<double>(y.begin(), y.end());
  };
  const std::vector<double> transposed = run(false), packed = run(true);
  EXPECT_TRUE(all_close(packed, transposed, tolerance_for_depth<float>(T * 3 * H)));
}

// The CPU's two ways of running a layer-by-layer float pass that a tuning choice picks
// between must agree to rounding: outputs (training and inference), final states, dx and
// the parameter gradients. The models: every cell, one layer, a packed bidirectional stack
// with residual connections (rows finishing at different steps, so the threads' shares of
// a step shrink unevenly and later steps have fewer columns) and a unidirectional stack
// with dense connections (layer by layer on the CPU; its layer 1 reads two segments).
// `set(tuning, on)` picks a way; `count(statistics)`, summed over a run's three passes
// (inference, training forward, backward), must come to `counted(case)` with it on and to
// 0 with it off.
void expect_both_ways_agree(std::uint64_t seed,
                            const std::function<void(detail::Tuning&, bool)>& set,
                            const std::function<std::int64_t(const detail::PassStatistics&)>& count,
                            const std::function<std::int64_t(const StackCase&)>& counted) {
  const std::int64_t T = 6, B = 24, I = 5, H = 8;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct}) {
    for (const StackCase& s : {StackCase{cell, 1, false, Connection::None},
                               StackCase{cell, 2, true, Connection::Residual},
                               StackCase{cell, 2, false, Connection::Dense}}) {
      const std::string what = std::string(to_string(cell)) + (s.bidirectional ? " L2 bi"
                                                               : s.layers == 2 ? " L2 dense"
                                                                               : " L1");
      Rnn rnn(float_config_of(s, I, H), Device::cpu(), seed);
      run_as_wavefront(rnn, false);  // the default, whatever RECUR_CPU_WAVEFRONT says
      const std::int64_t D = s.bidirectional ? 2 : 1;
      std::vector<std::int64_t> lengths;
      if (s.bidirectional) {
        for (std::int64_t b = 0; b < B; ++b) lengths.push_back(T - (b * 5) % T);
      }
      Random rng(seed + 1);
      const Tensor x = rng.tensor<float>({T, B, I});
      const Tensor dy = rng.tensor<float>({T, B, D * H});
      struct Run {
        std::vector<double> y, inference_y, h_n, dx, grads;
        std::int64_t counted;
      };
      auto run = [&](bool on) {
        tune(rnn, [&](detail::Tuning& t) { set(t, on); });
        rnn.zero_grad();
        const ForwardResult inference = rnn.forward(x, {}, {}, Mode::Inference, lengths);
        std::int64_t counts = count(forward_statistics(rnn));
        const ForwardResult f = rnn.forward(x, {}, {}, Mode::Training, lengths);
        counts += count(forward_statistics(rnn));
        const BackwardResult g = rnn.backward(dy);
        counts += count(backward_statistics(rnn));
        return Run{widened(f.y),  widened(inference.y),     widened(f.h_n),
                   widened(g.dx), widened(rnn.gradients()), counts};
      };
      const Run off = run(false), on = run(true);
      EXPECT_EQ(off.counted, 0) << what;
      EXPECT_EQ(on.counted, counted(s)) << what;
      const Tolerance tol = tolerance_for_depth<float>(T * B * 3 * H);
      EXPECT_TRUE(all_close(on.y, off.y, tol)) << what;
      EXPECT_TRUE(all_close(on.inference_y, off.inference_y, tol)) << what;
      EXPECT_TRUE(all_close(on.h_n, off.h_n, tol)) << what;
      EXPECT_TRUE(all_close(on.dx, off.dx, tol)) << what;
      EXPECT_TRUE(all_close(on.grads, off.grads, tol)) << what;
    }
  }
}

// A layer-by-layer float pass on packed weights runs each layer's steps row-parallel
// (CpuOps::run_step_list: every thread all steps of its own rows); with that off, step by step.
TEST(StackRowParallel, MatchesStepByStep) {
  // With one thread nothing runs row-parallel, and both ways would be the same path.
  if (!detail::PackedGemms::available() || detail::cpu_step_threads() < 2) {
    GTEST_SKIP() << "needs oneDNN's C API and two OpenMP threads";
  }
  // Per layer: an inference, a training forward and a backward run (the
  // reset-before-product GRU too: it packs its weights for these runs, pass_plan.h).
  expect_both_ways_agree(
      41, [](detail::Tuning& t, bool on) { t.cpu_row_parallel = on; },
      [](const detail::PassStatistics& p) { return p.row_parallel_runs; },
      [&](const StackCase& s) { return 3 * s.layers; });
}

// A caller may run models on its own OpenMP threads. Inside its parallel region, recur's
// nested regions get one thread each: a row-parallel run (and a column-split GEMM) must
// then run every slice of rows on that thread rather than only the first. Two models, one
// per outer thread, must give what one model gives alone: LSTM and the reset-before-product
// GRU (both packed and row-parallel at B = 32), training step and inference.
TEST(StackRowParallel, InsideTheCallersParallelRegion) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "the tests are built without OpenMP";
#else
  if (!detail::PackedGemms::available() || detail::cpu_step_threads() < 2) {
    GTEST_SKIP() << "needs oneDNN's C API and two OpenMP threads";
  }
  const std::int64_t T = 6, B = 32, I = 5, H = 8;
  for (CellKind cell : {CellKind::Lstm, CellKind::GruResetBeforeProduct}) {
    const RnnConfig config = float_config_of({cell, 1, false, Connection::None}, I, H);
    Random rng(51);
    const Tensor x = rng.tensor<float>({T, B, I}), dy = rng.tensor<float>({T, B, H});
    struct Run {
      std::vector<double> inference_y, y, dx, grads;
    };
    std::int64_t row_runs = 0;  // of the run alone
    auto run = [&] {
      Rnn rnn(config, Device::cpu(), 52);
      tune(rnn, [](detail::Tuning& t) { t.cpu_row_parallel = true; });
      const ForwardResult inference = rnn.forward(x, {}, {}, Mode::Inference);
      const std::int64_t inference_runs = forward_statistics(rnn).row_parallel_runs;
      const ForwardResult f = rnn.forward(x);
      const BackwardResult g = rnn.backward(dy);
      if (omp_get_thread_num() == 0 && !omp_in_parallel()) {
        row_runs = inference_runs + forward_statistics(rnn).row_parallel_runs +
                   backward_statistics(rnn).row_parallel_runs;
      }
      return Run{widened(inference.y), widened(f.y), widened(g.dx), widened(rnn.gradients())};
    };
    const Run alone = run();
    ASSERT_EQ(row_runs, 3) << to_string(cell);
    Run nested[2];
    int team = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      team = omp_get_num_threads();
      nested[omp_get_thread_num()] = run();
    }
    ASSERT_EQ(team, 2);
    const Tolerance tol = tolerance_for_depth<float>(T * 3 * H);
    for (const Run& r : nested) {
      EXPECT_TRUE(all_close(r.inference_y, alone.inference_y, tol)) << to_string(cell);
      EXPECT_TRUE(all_close(r.y, alone.y, tol)) << to_string(cell);
      EXPECT_TRUE(all_close(r.dx, alone.dx, tol)) << to_string(cell);
      EXPECT_TRUE(all_close(r.grads, alone.grads, tol)) << to_string(cell);
    }
  }
#endif
}

// Where a layer's steps run row-parallel and both its matrices are small, each step
// projects its own input into one step's gx (PassPlan::projects_in_steps); with that off,
// one GEMM projects all steps first (and a dense stack's layer 1, of two segments, one GEMM
// each either way). The statistics show the forwards that projected inside their steps.
TEST(StackStepProjection, MatchesOneProjectionOfAllSteps) {
  // With one thread there are no row-parallel runs, so no step projects its input, and
  // both ways would be the same path.
  if (!detail::PackedGemms::available() || detail::cpu_step_threads() < 2) {
    GTEST_SKIP() << "needs oneDNN's C API and two OpenMP threads";
  }
  expect_both_ways_agree(
      61,
      [](detail::Tuning& t, bool on) {
        t.cpu_row_parallel = true;
        t.step_projection = on;
      },
      [](const detail::PassStatistics& p) -> std::int64_t {
        return p.layers_projecting_in_steps > 0;
      },
      [&](const StackCase&) -> std::int64_t { return 2; });
}

// A row-parallel run's weight limit follows its lanes' rows: lanes of 32 rows or more take
// up to four times one core's L2 counted as float32, whatever the products read; narrower
// ones 1 MiB as read (4 bytes an element, 2 in native BF16); too few rows for two lanes,
// nothing.
TEST(StackRowParallel, TheWeightLimitFollowsTheLanesRows) {
  const std::int64_t threads = detail::cpu_step_threads();
  if (threads < 2) GTEST_SKIP() << "needs two OpenMP threads";
  const std::int64_t narrow = 8 * threads, wide = 32 * threads, mib = std::int64_t{1} << 20;
  EXPECT_EQ(detail::cpu_row_run_weight_elements(narrow, 4), mib / 4);
  EXPECT_EQ(detail::cpu_row_run_weight_elements(narrow, 2), mib / 2);
  EXPECT_EQ(detail::cpu_row_run_weight_elements(wide - 1, 4), mib / 4);  // lanes of 31 rows
  EXPECT_EQ(detail::cpu_row_run_weight_elements(wide, 2),
            detail::cpu_row_run_weight_elements(wide, 4));
  EXPECT_GE(detail::cpu_row_run_weight_elements(wide, 4), mib / 4);
  EXPECT_EQ(detail::cpu_row_run_weight_elements(15, 4), 0);
}

// The rule: a layer-by-layer float pass on packed weights whose row-parallel runs would
// take W_ih and W_hh together (Ops::takes_row_runs on their total elements), of one input
// segment; not a wavefront, not float64, not with the switch off, not with too few rows.
TEST(StackStepProjection, OnlyWhereARowRunTakesBothMatrices) {
  if (!detail::PackedGemms::available() || detail::cpu_step_threads() < 2) {
    GTEST_SKIP() << "needs oneDNN's C API and two OpenMP threads";
  }
  const std::int64_t H = 8, GH = 4 * H, limit = detail::cpu_row_run_weight_elements(32, 4);
  const std::int64_t fits = limit / GH - H;
  // On, whatever RECUR_STEP_PROJECTION and RECUR_CPU_ROW_PARALLEL say.
  detail::Tuning tuning;
  tuning.step_projection = true;
  tuning.cpu_row_parallel = true;
  detail::CpuOps<float> ops;
  ops.set_tuning(tuning);
  auto projects_with = [&](const auto& backend_ops, const RnnConfig& config, std::int64_t batch,
                           int layer, bool wavefront) -> bool {
    const detail::Plan plan = detail::Plan::make(config);
    const detail::Timeline tl = detail::Timeline::full(10, batch);
    detail::BackendCapabilities backend = detail::capabilities_of(backend_ops, plan, tl);
    backend.runs_wavefronts = wavefront;
    return detail::make_pass_plan(plan, tl, false, backend, backend_ops.tuning())
        .projects_in_steps[layer];
  };
  auto projects = [&](std::int64_t input, const StackCase& s, std::int64_t batch, int layer,
                      bool wavefront) -> bool {
    return projects_with(ops, float_config_of(s, input, H), batch, layer, wavefront);
  };
  const StackCase lstm{CellKind::Lstm, 1, false, Connection::None};
  EXPECT_TRUE(projects(fits, lstm, 32, 0, false));
  EXPECT_FALSE(projects(fits + 1, lstm, 32, 0, false));  // one input column too many
  EXPECT_FALSE(projects(fits, lstm, 8, 0, false));       // 8 rows: one thread's share at most
  const StackCase two_layers{CellKind::Lstm, 2, false, Connection::None};
  EXPECT_TRUE(projects(fits, two_layers, 32, 0, false));
  EXPECT_FALSE(projects(fits, two_layers, 32, 0, true));  // as a wavefront
  const StackCase dense{CellKind::Lstm, 2, false, Connection::Dense};
  EXPECT_TRUE(projects(5, dense, 32, 0, false));
  EXPECT_FALSE(projects(5, dense, 32, 1, false));  // [x | y_0]: two segments
  tuning.step_projection = false;
  ops.set_tuning(tuning);
  EXPECT_FALSE(projects(fits, lstm, 32, 0, false));
  RnnConfig f64 = float_config_of(lstm, 5, H);
  f64.dtype = DType::Float64;
  detail::CpuOps<double> f64_ops;
  tuning.step_projection = true;
  f64_ops.set_tuning(tuning);
  EXPECT_FALSE(projects_with(f64_ops, f64, 32, 0, false));
}

// Unidirectional stacks run as a wavefront on the GPU and layer by layer on the CPU
// (Ops::runs_wavefronts); forced on the CPU, the wavefront must give the same outputs,
// final states and gradients (float64): every cell, 2 and 3 layers, every connection, full
// and packed batches, dropout in some. The pass statistics show which schedule ran.
TEST(StackWavefront, MatchesLayerByLayer) {
  const std::int64_t T = 5, B = 4, I = 3;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::RnnSigmoid, CellKind::Lstm,
                        CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    for (std::int64_t layers : {2, 3}) {
      for (Connection conn :
           {Connection::None, Connection::Residual, Connection::Highway, Connection::Dense}) {
        const bool packed = (layers + static_cast<int>(conn)) % 2 == 0;
        const std::string what = std::string(to_string(cell)) + " L" + std::to_string(layers) +
                                 " " + to_string(conn) + (packed ? " packed" : "");
        RnnConfig config =
            config_of({cell, layers, false, conn}, conn == Connection::None ? I : kH);
        config.dropout = conn == Connection::Dense ? 0.25 : 0.0;
        Rnn rnn(config, Device::cpu(), 51);
        const std::vector<std::int64_t> lengths =
            packed ? std::vector<std::int64_t>{T, 2, 5, 1} : std::vector<std::int64_t>{};
        Random rng(52);
        const Tensor x = rng.tensor<double>({T, B, config.input_size});
        const Tensor h0 = rng.tensor<double>({layers, B, kH});
        const Tensor c0 = rng.tensor<double>({layers, B, kH});
        const Tensor dy = rng.tensor<double>({T, B, kH});
        const Tensor dh_n = rng.tensor<double>({layers, B, kH});
        const bool lstm = cell == CellKind::Lstm;
        struct Run {
          std::vector<double> y, h_n, c_n, dx, dh0, dc0, grads;
          std::int64_t wavefront_passes, fused_gemms;
        };
        auto run = [&](bool wave, bool fusion) {
          run_as_wavefront(rnn, wave);
          fuse_wave_inputs(rnn, fusion);
          rnn.zero_grad();
          rnn.set_dropout_seed(7);
          const ForwardResult f =
              rnn.forward(x, h0, lstm ? c0.view() : TensorView(), Mode::Training, lengths);
          const detail::PassStatistics forward = forward_statistics(rnn);
          const BackwardResult g = rnn.backward(dy, dh_n);
          const detail::PassStatistics& backward = backward_statistics(rnn);
          return Run{f.y.to_vector<double>(),
                     f.h_n.to_vector<double>(),
                     lstm ? f.c_n.to_vector<double>() : std::vector<double>{},
                     g.dx.to_vector<double>(),
                     g.dh0.to_vector<double>(),
                     lstm ? g.dc0.to_vector<double>() : std::vector<double>{},
                     rnn.gradients().to_vector<double>(),
                     std::int64_t{forward.wavefront} + backward.wavefront,
                     forward.fused_wave_gemms + backward.fused_wave_gemms};
        };
        const Run layered = run(false, true);
        EXPECT_EQ(layered.wavefront_passes, 0) << what;
        EXPECT_EQ(layered.fused_gemms, 0) << what;
        // Layers above the first fuse their input GEMMs into the waves (forward and
        // backward: one per step each; the longest sequence has all T) unless their input is not H
        // wide (dense) or the cell is the reset-before-product GRU.
        const bool fuses = conn != Connection::Dense && cell != CellKind::GruResetBeforeProduct;
        for (bool fusion : {true, false}) {
          const Run waves = run(true, fusion);
          const std::string how = what + (fusion ? ", fused" : ", not fused");
          EXPECT_EQ(waves.wavefront_passes, 2) << how;  // the forward and the backward
          EXPECT_EQ(waves.fused_gemms, fusion && fuses ? 2 * (layers - 1) * T : 0) << how;
          const Tolerance tol = tolerance_for_depth<double>(T * B * 3 * kH * layers);
          EXPECT_TRUE(all_close(waves.y, layered.y, tol)) << how;
          EXPECT_TRUE(all_close(waves.h_n, layered.h_n, tol)) << how;
          EXPECT_TRUE(all_close(waves.dx, layered.dx, tol)) << how;
          EXPECT_TRUE(all_close(waves.dh0, layered.dh0, tol)) << how;
          if (lstm) {
            EXPECT_TRUE(all_close(waves.c_n, layered.c_n, tol)) << how;
            EXPECT_TRUE(all_close(waves.dc0, layered.dc0, tol)) << how;
          }
          EXPECT_TRUE(all_close(waves.grads, layered.grads, tol)) << how;
        }
      }
    }
  }
}

}  // namespace
}  // namespace recur::test
