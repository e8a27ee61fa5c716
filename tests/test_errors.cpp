// tests/test_errors.cpp: every validation path gives a recur::Error whose message names the
// argument, what was expected and what was given, and leaves the model unchanged.
#include "test_util.h"

namespace recur::test {
namespace {

constexpr std::int64_t kT = 3, kB = 2, kI = 4, kH = 5;

RnnConfig config(CellKind cell = CellKind::Lstm, DType dtype = DType::Float32) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = kI;
  c.hidden_size = kH;
  c.dtype = dtype;
  return c;
}

TEST(Errors, ConfigSizes) {
  RnnConfig c = config();
  c.input_size = 0;
  try {
    Rnn rnn(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "recur: Rnn: argument 'config.input_size': expected > 0, got 0");
  }
  c = config();
  c.hidden_size = -3;
  EXPECT_THROW(Rnn rnn(c), Error);
  c = config();
  c.cell = static_cast<CellKind>(42);
  EXPECT_THROW(Rnn rnn(c), Error);
}

// The argument and message of the Error that `fn` throws; a failure if it throws
// anything else or nothing.
template <class Fn>
std::pair<std::string, std::string> error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return {e.argument(), e.what()};
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a recur::Error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no error";
  return {};
}

TEST(Errors, ImpossibleConfigSizes) {
  // Sizes whose parameter count overflows int64 (they used to wrap into a small buffer,
  // or none), sizes no host holds, and stacks too deep to plan.
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  struct Case {
    CellKind cell;
    std::int64_t input, hidden, layers;
    bool bias;
    const char* argument;
    const char* message;
  };
  const Case cases[] = {
      {CellKind::RnnTanh, 1, max, 1, true, "config", "parameter count fits in int64"},
      {CellKind::Lstm, std::int64_t(1) << 32, std::int64_t(1) << 31, 1, false, "config",
       "parameter count fits in int64"},
      {CellKind::Lstm, 8, 8, std::int64_t(1) << 40, true, "config.num_layers", "<= 65536"},
      {CellKind::Lstm, 8, std::int64_t(1) << 20, 1, true, "config", "fits in the host's"},
  };
  for (const Case& k : cases) {
    RnnConfig c = config(k.cell, DType::Float64);
    c.input_size = k.input;
    c.hidden_size = k.hidden;
    c.num_layers = k.layers;
    c.bias = k.bias;
    const auto [argument, message] = error_of([&] { Rnn rnn(c); });
    EXPECT_EQ(argument, k.argument) << message;
    EXPECT_NE(message.find(k.message), std::string::npos) << message;
  }
  RnnConfig dense = config();
  dense.connection = Connection::Dense;
  dense.hidden_size = std::int64_t(1) << 40;
  dense.num_layers = 4;
  EXPECT_EQ(error_of([&] { Rnn rnn(dense); }).first, "config");
  // The modules' sizes likewise.
  EXPECT_EQ(error_of([&] { Embedding e(std::int64_t(1) << 40, 4); }).first,
            "num_embeddings");  // ids sort as int32 keys
  EXPECT_EQ(error_of([&] { Embedding e(std::int64_t(1) << 30, std::int64_t(1) << 40); }).first,
            "sizes");
  EXPECT_EQ(error_of([&] { Linear l(std::int64_t(1) << 62, 4); }).first, "sizes");
  EXPECT_EQ(error_of([&] { Linear l(std::int64_t(1) << 30, std::int64_t(1) << 30); }).first,
            "sizes");
}

TEST(Errors, ProjectionSize) {
  // proj_size P: 0, or in (0, H) for the Lstm without layer_norm; then h's width is P.
  struct Case {
    CellKind cell;
    bool layer_norm;
    std::int64_t proj;
    const char* expected;
  };
  const Case cases[] = {
      {CellKind::Lstm, false, -1, "0 (none) or in (0, hidden_size = 5)"},
      {CellKind::Lstm, false, kH, "0 (none) or in (0, hidden_size = 5)"},
      {CellKind::Lstm, false, kH + 3, "0 (none) or in (0, hidden_size = 5)"},
      {CellKind::GruLinearBeforeReset, false, 2, "0 unless the cell is Lstm without layer_norm"},
      {CellKind::RnnTanh, false, 2, "0 unless the cell is Lstm without layer_norm"},
      {CellKind::Lstm, true, 2, "0 unless the cell is Lstm without layer_norm"},
  };
  for (const Case& k : cases) {
    RnnConfig c = config(k.cell);
    c.layer_norm = k.layer_norm;
    c.proj_size = k.proj;
    try {
      Rnn rnn(c);
      ADD_FAILURE() << "no error for proj_size " << k.proj;
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "config.proj_size");
      EXPECT_EQ(e.expected(), k.expected);
      EXPECT_NE(e.got().find(std::to_string(k.proj)), std::string::npos) << e.what();
    }
  }
  // A one-layer residual stack needs x as wide as y: D*P, not D*H.
  RnnConfig residual = config();
  residual.proj_size = 2;
  residual.connection = Connection::Residual;
  residual.input_size = kH;
  EXPECT_EQ(error_of([&] { Rnn rnn(residual); }).first, "config.connection");
  residual.input_size = 2;
  EXPECT_NO_THROW(Rnn rnn(residual));

  RnnConfig projected = config();
  projected.proj_size = 2;
  Rnn rnn(projected);
  Random rng(4);
  Tensor x = rng.tensor<float>({kT, kB, kI});
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(x, rng.tensor<float>({1, kB, kH}));
      },
      "h0", "[num_layers*D, B, proj_size]", "[1, 2, 5]");
  ForwardResult f =
      rnn.forward(x, rng.tensor<float>({1, kB, 2}), rng.tensor<float>({1, kB, kH}), Mode::Training);
  EXPECT_EQ(f.y.shape(), (Shape{kT, kB, 2}));
  EXPECT_EQ(f.h_n.shape(), (Shape{1, kB, 2}));
  EXPECT_EQ(f.c_n.shape(), (Shape{1, kB, kH}));
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward(rng.tensor<float>({kT, kB, kH}));
      },
      "dy", "[T, B, D*proj_size]", "[3, 2, 5]");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward({}, rng.tensor<float>({1, kB, kH}));
      },
      "dh_n", "[num_layers*D, B, proj_size]", "[1, 2, 5]");
}

TEST(Errors, MovedFromObjectsThrow) {
  // Every method of a moved-from Rnn, module or optimizer names 'this', not a segfault.
  auto expect_moved = [](auto&& fn, const char* where) {
    const auto [argument, message] = error_of(fn);
    EXPECT_EQ(argument, "this") << where;
    EXPECT_NE(message.find(std::string("recur: ") + where + ": argument 'this'"), std::string::npos)
        << message;
    EXPECT_NE(message.find("moved from"), std::string::npos) << message;
  };
  Rnn rnn(config());
  Rnn other = std::move(rnn);
  Random rng(3);
  Tensor x = rng.tensor<float>({kT, kB, kI});
  // NOLINTBEGIN(bugprone-use-after-move): the point of the test
  expect_moved([&] { rnn.forward(x); }, "Rnn::forward");
  expect_moved([&] { rnn.backward(x); }, "Rnn::backward");
  expect_moved([&] { (void)rnn.parameters(); }, "Rnn::parameters");
  expect_moved([&] { (void)rnn.gradients(); }, "Rnn::gradients");
  expect_moved([&] { (void)rnn.config(); }, "Rnn::config");
  expect_moved([&] { (void)rnn.parameter("weight_ih_l0"); }, "Rnn::parameter");
  expect_moved([&] { rnn.zero_grad(); }, "Rnn::zero_grad");
  expect_moved([&] { rnn.reset_parameters(1); }, "Rnn::reset_parameters");
  expect_moved([&] { rnn.synchronize(); }, "Rnn::synchronize");
  expect_moved([&] { save_checkpoint("never_written.safetensors", rnn, nullptr, 0, {}); },
               "Rnn::parameter_info");
  Embedding emb(5, 3), emb2 = std::move(emb);
  expect_moved([&] { emb.forward({1}, {1}); }, "Embedding::forward");
  expect_moved([&] { (void)emb.weight(); }, "Embedding::weight");
  Linear lin(3, 2), lin2 = std::move(lin);
  expect_moved([&] { lin.forward(x); }, "Linear::forward");
  expect_moved([&] { (void)lin.bias(); }, "Linear::bias");
  SoftmaxCrossEntropy loss, loss2 = std::move(loss);
  expect_moved([&] { loss.forward(x, {0}); }, "SoftmaxCrossEntropy::forward");
  Adam adam(other.parameters()), adam2 = std::move(adam);
  expect_moved([&] { adam.step(other.gradients()); }, "Optimizer::step");
  expect_moved([&] { (void)adam.exp_avg(); }, "Adam::exp_avg");
  expect_moved([&] { (void)adam.step_count(); }, "Optimizer::step_count");
  Sgd sgd(other.parameters()), sgd2 = std::move(sgd);
  expect_moved([&] { (void)sgd.learning_rate(); }, "Optimizer::learning_rate");
  // NOLINTEND(bugprone-use-after-move)
  // The objects moved into work.
  EXPECT_EQ(other.forward(x).y.size(2), kH);
  EXPECT_EQ(emb2.num_embeddings(), 5);
}

TEST(Errors, UnusableCudaDevice) {
  if (cuda_device_count() > 7) GTEST_SKIP() << "this machine has a cuda:7";
  try {
    Rnn rnn(config(), Device::cuda(7));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "device");
    EXPECT_EQ(e.got(), "cuda:7");
  }
}

TEST(Errors, ForwardInputShape) {
  Rnn rnn(config());
  Random rng(1);
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(rng.tensor<float>({kT, kI}));
      },
      "x", "rank 3 [T, B, input_size]", "rank 2 [3, 4]");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(rng.tensor<float>({kT, kB, kI + 1}));
      },
      "x", "shape [>=1, >=1, 4]", "[3, 2, 5]");
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(TensorView()); }, "x", "a defined tensor", "undefined");
}

TEST(Errors, ZeroStepsOrBatch) {
  Rnn rnn(config());
  Tensor no_steps = Tensor::zeros({0, kB, kI}, DType::Float32);
  Tensor no_batch = Tensor::zeros({kT, 0, kI}, DType::Float32);
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(no_steps); }, "x", "shape [>=1, >=1, 4]", "[0, 2, 4]");
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(no_batch); }, "x", "shape [>=1, >=1, 4]", "[3, 0, 4]");
}

TEST(Errors, ForwardDtype) {
  Rnn rnn(config());
  Random rng(2);
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(rng.tensor<double>({kT, kB, kI}));
      },
      "x", "dtype float32 (the model's)", "dtype float64");
}

TEST(Errors, ReducedPrecisionTensorsForAFloat32Model) {
  // A BF16 or FP16 x is refused by name unless the model's math is that format
  // (test_math); the states stay float32 in every precision.
  Rnn rnn(config());
  Random rng(2);
  Tensor x = rng.tensor<float>({kT, kB, kI});
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(x.to(DType::BFloat16)); }, "x", "dtype float32 (the model's)",
      "dtype bfloat16");
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(x.to(DType::Float16)); }, "x", "dtype float32 (the model's)",
      "dtype float16");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(x, rng.tensor<float>({1, kB, kH}).to(DType::BFloat16));
      },
      "h0", "dtype float32", "dtype bfloat16");
  rnn.forward(x, {}, {}, Mode::Training);
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward(rng.tensor<float>({kT, kB, kH}).to(DType::Float16));
      },
      "dy", "dtype float32", "dtype float16");
}

TEST(Errors, ConfigDtypeIsFloat32OrFloat64) {
  for (DType reduced : {DType::BFloat16, DType::Float16}) {
    const auto [argument, what] = error_of([&] { Rnn rnn(config(CellKind::Lstm, reduced)); });
    EXPECT_EQ(argument, "config.dtype");
    EXPECT_EQ(what, std::string("recur: Rnn: argument 'config.dtype': expected Float32 or "
                                "Float64 (the dtypes recur computes in), got ") +
                        to_string(reduced));
  }
  const auto [argument, what] =
      error_of([&] { Rnn rnn(config(CellKind::Lstm, static_cast<DType>(9))); });
  EXPECT_EQ(argument, "config.dtype");
  EXPECT_NE(what.find("got value 9"), std::string::npos) << what;
}

TEST(Errors, ForwardStates) {
  Rnn rnn(config());
  Random rng(3);
  Tensor x = rng.tensor<float>({kT, kB, kI});
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(x, rng.tensor<float>({1, kB + 1, kH}));
      },
      "h0", "shape [1, 2, 5] [num_layers*D, B, hidden_size]", "[1, 3, 5]");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(x, {}, rng.tensor<float>({2, kB, kH}));
      },
      "c0", "shape [1, 2, 5]", "[2, 2, 5]");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.forward(x, rng.tensor<double>({1, kB, kH}));
      },
      "h0", "dtype float32", "dtype float64");
  Rnn gru(config(CellKind::GruLinearBeforeReset));
  expect_error_keeps_model(
      gru,
      [&] {
        gru.forward(x, {}, rng.tensor<float>({1, kB, kH}));
      },
      "c0", "only Lstm has a cell state", "GruLinearBeforeReset");
}

TEST(Errors, ForwardMode) {
  Rnn rnn(config());
  Random rng(4);
  Tensor x = rng.tensor<float>({kT, kB, kI});
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(x, {}, {}, static_cast<Mode>(9)); }, "mode", "Mode::Training",
      "value 9");
}

TEST(Errors, BackwardWithoutTrainingForward) {
  Rnn rnn(config());
  Random rng(5);
  Tensor x = rng.tensor<float>({kT, kB, kI}), dy = rng.tensor<float>({kT, kB, kH});
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(dy); }, "this", "a preceding forward() in Mode::Training", "none");
  rnn.forward(x, {}, {}, Mode::Inference);
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(dy); }, "this", "Mode::Training", "none");
  rnn.forward(x);
  rnn.backward(dy);
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(dy); }, "this", "not yet consumed", "consumed");
}

TEST(Errors, BackwardShapesAndAFailedCallKeepsTheSavedState) {
  Rnn rnn(config());
  Random rng(6);
  Tensor x = rng.tensor<float>({kT, kB, kI});
  rnn.forward(x);
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward(rng.tensor<float>({kT + 1, kB, kH}));
      },
      "dy", "shape [3, 2, 5] [T, B, D*hidden_size] of the forward", "[4, 2, 5]");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward({}, rng.tensor<float>({1, kB, kH + 1}));
      },
      "dh_n", "shape [1, 2, 5]", "[1, 2, 6]");
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward({}, {}, rng.tensor<double>({1, kB, kH}));
      },
      "dc_n", "dtype float32", "dtype float64");
  // The saved forward survived the failed calls.
  EXPECT_NO_THROW(rnn.backward(rng.tensor<float>({kT, kB, kH})));
}

TEST(Errors, UnknownParameterName) {
  Rnn rnn(config());
  try {
    rnn.parameter("weight_ih_l1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "name");
    EXPECT_EQ(e.got(), "'weight_ih_l1'");
    EXPECT_NE(e.expected().find("weight_ih_l0"), std::string::npos);
  }
  EXPECT_THROW(rnn.gradient("bias"), Error);
}

TEST(Errors, DeviceMismatchIsNamed) {
  Rnn rnn(config());
  // A view that claims to live on a GPU: rejected before anything touches it.
  float dummy[kT * kB * kI] = {};
  TensorView on_gpu(dummy, {kT, kB, kI}, DType::Float32, Device::cuda(0));
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(on_gpu); }, "x", "device cpu (the model's)", "device cuda:0");
}

}  // namespace
}  // namespace recur::test
