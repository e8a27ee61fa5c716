// tests/test_in_flight.cpp: forwards in flight (recur::SavedForward). A decoder trained one
// step at a time (teacher forcing) matches one T-step pass; micro-batches whose backwards
// run in another order than their forwards match the pairs run one by one (bitwise where
// the arithmetic is the same); an inference forward no longer discards a training one; the
// errors; workspaces go back to the engine's pool and are reused; the named options. On
// the CPU, and on a GPU where there is one.
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "memory.h"
#include "test_util.h"

namespace recur::test {
namespace {

constexpr std::int64_t kI = 3, kH = 4;

RnnConfig make(CellKind cell, std::int64_t layers, bool bidirectional,
               DType dtype = DType::Float64) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = kI;
  c.hidden_size = kH;
  c.num_layers = layers;
  c.bidirectional = bidirectional;
  c.dtype = dtype;
  return c;
}

std::vector<double> host(const TensorView& t) {
  if (!t.defined()) return {};
  if (t.dtype() == DType::Float64) return t.to_vector<double>();
  const std::vector<float> f = t.to_vector<float>();
  return std::vector<double>(f.begin(), f.end());
}

// Steps [t0, t1) of a time-major [T, B, W] host tensor.
std::vector<double> steps_of(const std::vector<double>& v, std::int64_t B, std::int64_t W,
                             std::int64_t t0, std::int64_t t1) {
  return std::vector<double>(v.begin() + t0 * B * W, v.begin() + t1 * B * W);
}

detail::WorkspaceCounts workspaces(Rnn& rnn) { return detail::RnnAccess::engine(rnn).workspaces(); }

// ---- (a) teacher forcing ----

// T forwards of one step each, the states carried from each step's h_n/c_n into the next,
// then T backwards in reverse order, each passing its dh0/dc0 to the step before as
// dh_n/dc_n: the outputs, final states, dx, dh0, dc0 and the accumulated gradients of one
// T-step forward and backward.
void check_teacher_forcing(const RnnConfig& config, Device device) {
  const std::int64_t T = 5, B = 3, L = config.num_layers;
  const bool lstm = config.cell == CellKind::Lstm;
  const std::string what =
      std::string(to_string(config.cell)) + " L" + std::to_string(L) + " on " + device.str();
  Rnn rnn(config, device, 21);
  Random rng(22);
  const std::vector<double> x = rng.vector<double>(T * B * kI);
  const std::vector<double> dy = rng.vector<double>(T * B * kH);
  const Tensor h0 = rng.tensor<double>({L, B, kH}, device);
  const Tensor c0 = rng.tensor<double>({L, B, kH}, device);
  const Tensor dh_n = rng.tensor<double>({L, B, kH}, device);
  const Tensor dc_n = rng.tensor<double>({L, B, kH}, device);

  // One T-step pass.
  rnn.zero_grad();
  ForwardOptions whole;
  whole.h0 = h0;
  if (lstm) whole.c0 = c0;
  const ForwardResult f = rnn.forward(Tensor::from_vector(x, {T, B, kI}, device), whole);
  BackwardOptions at_end;
  at_end.dh_n = dh_n;
  if (lstm) at_end.dc_n = dc_n;
  const BackwardResult g = rnn.backward(Tensor::from_vector(dy, {T, B, kH}, device), at_end);
  const std::vector<double> grads = host(rnn.gradients());

  // Step by step.
  rnn.zero_grad();
  std::vector<SavedForward> saved;
  std::vector<double> y_steps;
  Tensor h = h0.clone(), c = c0.clone();
  for (std::int64_t t = 0; t < T; ++t) {
    ForwardOptions step;
    step.h0 = h;
    if (lstm) step.c0 = c;
    step.return_saved = true;
    ForwardResult r =
        rnn.forward(Tensor::from_vector(steps_of(x, B, kI, t, t + 1), {1, B, kI}, device), step);
    ASSERT_TRUE(r.saved.defined()) << what;
    EXPECT_EQ(r.saved.steps(), 1);
    EXPECT_EQ(r.saved.batch(), B);
    for (double v : host(r.y)) y_steps.push_back(v);
    h = std::move(r.h_n);
    c = std::move(r.c_n);
    saved.push_back(std::move(r.saved));
  }
  EXPECT_EQ(workspaces(rnn).held, T) << what;
  std::vector<std::vector<double>> dx_steps(static_cast<std::size_t>(T));
  Tensor dh = dh_n.clone(), dc = dc_n.clone();
  for (std::int64_t t = T - 1; t >= 0; --t) {
    BackwardOptions carried;
    carried.dh_n = dh;
    if (lstm) carried.dc_n = dc;
    BackwardResult b = rnn.backward(
        std::move(saved[static_cast<std::size_t>(t)]),
        Tensor::from_vector(steps_of(dy, B, kH, t, t + 1), {1, B, kH}, device), carried);
    EXPECT_TRUE(saved[static_cast<std::size_t>(t)].consumed());
    dx_steps[static_cast<std::size_t>(t)] = host(b.dx);
    dh = std::move(b.dh0);
    dc = std::move(b.dc0);
  }
  EXPECT_EQ(workspaces(rnn).held, 0) << what;
  std::vector<double> dx;
  for (const std::vector<double>& d : dx_steps) dx.insert(dx.end(), d.begin(), d.end());

  const Tolerance tol = tolerance_for_depth<double>(T * B * 3 * kH * L);
  EXPECT_TRUE(all_close(y_steps, host(f.y), tol)) << what;
  EXPECT_TRUE(all_close(host(h), host(f.h_n), tol)) << what;
  EXPECT_TRUE(all_close(dx, host(g.dx), tol)) << what;
  EXPECT_TRUE(all_close(host(dh), host(g.dh0), tol)) << what;
  if (lstm) {
    EXPECT_TRUE(all_close(host(c), host(f.c_n), tol)) << what;
    EXPECT_TRUE(all_close(host(dc), host(g.dc0), tol)) << what;
  }
  EXPECT_TRUE(all_close(host(rnn.gradients()), grads, tol)) << what;
}

TEST(InFlight, TeacherForcingMatchesOneWholePass) {
  for (CellKind cell : {CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct, CellKind::RnnTanh}) {
    for (std::int64_t layers : {1, 2})
      check_teacher_forcing(make(cell, layers, false), Device::cpu());
  }
}

// ---- (b) micro-batches in flight ----

struct MicroBatch {
  std::int64_t T, B;
  std::vector<std::int64_t> lengths;
  Tensor x, dy, dh_n;
};

std::vector<MicroBatch> micro_batches(const RnnConfig& config, Device device) {
  const std::int64_t D = config.bidirectional ? 2 : 1, LD = config.num_layers * D;
  std::vector<MicroBatch> out(3);
  out[0].T = 4, out[0].B = 3, out[0].lengths = {4, 1, 3};
  out[1].T = 6, out[1].B = 2;
  out[2].T = 5, out[2].B = 4, out[2].lengths = {2, 5, 5, 1};
  Random rng(31);
  for (MicroBatch& m : out) {
    const Shape x_shape = config.batch_first ? Shape{m.B, m.T, kI} : Shape{m.T, m.B, kI};
    const Shape y_shape = config.batch_first ? Shape{m.B, m.T, D * kH} : Shape{m.T, m.B, D * kH};
    m.x = rng.tensor<double>(x_shape, device).to(config.dtype);
    m.dy = rng.tensor<double>(y_shape, device).to(config.dtype);
    m.dh_n = rng.tensor<double>({LD, m.B, kH}, device).to(config.dtype);
  }
  return out;
}

struct PassOutputs {
  std::vector<double> y, dx, dh0, grads;  // grads: this backward's contribution
};

ForwardOptions options_of(const MicroBatch& m, bool return_saved) {
  ForwardOptions o;
  o.lengths = m.lengths;
  o.return_saved = return_saved;
  return o;
}

// Three forwards in flight, then their backwards in the order 2, 0, 1, against the three
// forward+backward pairs one by one; the dropout streams are the same (each forward draws
// the next), so every output and each backward's gradient contribution is the same bits.
// Accumulated into the gradients (+=), the three sums agree to rounding with the pairs'
// (the order of the additions differs).
void check_micro_batches(const RnnConfig& config, Device device) {
  const std::string what = std::string(to_string(config.cell)) + " L" +
                           std::to_string(config.num_layers) +
                           (config.bidirectional ? " bi" : " uni") + " on " + device.str();
  Rnn rnn(config, device, 41);
  const std::vector<MicroBatch> batches = micro_batches(config, device);
  const std::vector<std::size_t> order = {2, 0, 1};

  // One by one; each contribution alone, then the accumulated sum.
  std::vector<PassOutputs> pairs(batches.size());
  rnn.set_dropout_seed(5);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const MicroBatch& m = batches[i];
    rnn.zero_grad();
    const ForwardResult f = rnn.forward(m.x, options_of(m, false));
    BackwardOptions o;
    o.dh_n = m.dh_n;
    const BackwardResult g = rnn.backward(m.dy, o);
    pairs[i] = {host(f.y), host(g.dx), host(g.dh0), host(rnn.gradients())};
  }
  rnn.zero_grad();
  rnn.set_dropout_seed(5);
  for (const MicroBatch& m : batches) {
    rnn.forward(m.x, options_of(m, false));
    BackwardOptions o;
    o.dh_n = m.dh_n;
    rnn.backward(m.dy, o);
  }
  const std::vector<double> summed = host(rnn.gradients());

  // In flight: contributions alone.
  auto run_in_flight = [&](bool zero_each) {
    rnn.zero_grad();
    rnn.set_dropout_seed(5);
    std::vector<SavedForward> saved;
    std::vector<PassOutputs> got(batches.size());
    for (std::size_t i = 0; i < batches.size(); ++i) {
      ForwardResult f = rnn.forward(batches[i].x, options_of(batches[i], true));
      got[i].y = host(f.y);
      saved.push_back(std::move(f.saved));
    }
    EXPECT_EQ(rnn.dropout_step(), batches.size()) << what;
    for (std::size_t i : order) {
      if (zero_each) rnn.zero_grad();
      BackwardOptions o;
      o.dh_n = batches[i].dh_n;
      const BackwardResult g = rnn.backward(std::move(saved[i]), batches[i].dy, o);
      got[i].dx = host(g.dx);
      got[i].dh0 = host(g.dh0);
      got[i].grads = host(rnn.gradients());
    }
    return got;
  };
  const std::vector<PassOutputs> alone = run_in_flight(true);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(alone[i].y, pairs[i].y) << what << " batch " << i;
    EXPECT_EQ(alone[i].dx, pairs[i].dx) << what << " batch " << i;
    EXPECT_EQ(alone[i].dh0, pairs[i].dh0) << what << " batch " << i;
    EXPECT_EQ(alone[i].grads, pairs[i].grads) << what << " batch " << i;
  }
  run_in_flight(false);
  const double depth = 6 * 4 * 3 * kH * config.num_layers;
  const Tolerance tol = config.dtype == DType::Float32 ? tolerance_for_depth<float>(depth)
                                                       : tolerance_for_depth<double>(depth);
  EXPECT_TRUE(all_close(host(rnn.gradients()), summed, tol)) << what;
}

TEST(InFlight, MicroBatchesInAnyOrderMatchThePairsOneByOne) {
  RnnConfig bi = make(CellKind::Lstm, 2, true);
  bi.dropout = 0.3;
  check_micro_batches(bi, Device::cpu());
  RnnConfig gru = make(CellKind::GruLinearBeforeReset, 3, false);
  gru.batch_first = true;
  gru.connection = Connection::Residual;
  check_micro_batches(gru, Device::cpu());
  RnnConfig f32 = make(CellKind::Lstm, 1, true, DType::Float32);
  check_micro_batches(f32, Device::cpu());
}

// ---- (c) what the Rnn keeps ----

TEST(InFlight, AnInferenceForwardKeepsTheTrainingForward) {
  Rnn rnn(make(CellKind::Lstm, 2, true), Device::cpu(), 3);
  Random rng(4);
  const Tensor x = rng.tensor<double>({4, 3, kI}), dy = rng.tensor<double>({4, 3, 2 * kH});
  const Tensor other = rng.tensor<double>({7, 2, kI});
  const std::vector<std::int64_t> lengths = {4, 2, 3};
  auto step = [&](bool between) {
    rnn.zero_grad();
    rnn.forward(x, {}, {}, Mode::Training, lengths);
    if (between) {
      ForwardOptions inference;
      inference.mode = Mode::Inference;
      inference.lengths = {7, 3};
      rnn.forward(other, inference);
    }
    const BackwardResult g = rnn.backward(dy);
    std::vector<double> out = host(g.dx);
    for (double v : host(rnn.gradients())) out.push_back(v);
    return out;
  };
  const std::vector<double> plain = step(false);
  EXPECT_EQ(step(true), plain);
}

TEST(InFlight, AReturnedForwardLeavesWhatTheRnnKept) {
  Rnn rnn(make(CellKind::GruResetBeforeProduct, 1, false), Device::cpu(), 5);
  Random rng(6);
  const Tensor x1 = rng.tensor<double>({3, 2, kI}), dy1 = rng.tensor<double>({3, 2, kH});
  const Tensor x2 = rng.tensor<double>({5, 4, kI}), dy2 = rng.tensor<double>({5, 4, kH});
  rnn.forward(x1);
  rnn.zero_grad();
  const BackwardResult ref = rnn.backward(dy1);
  rnn.forward(x1);  // kept
  ForwardOptions returned;
  returned.return_saved = true;
  ForwardResult r = rnn.forward(x2, returned);
  // gradient_flow runs a pass of its own, too.
  EXPECT_GT(gradient_flow(rnn, x2, 1).norm(0, 0, 0), 0.0);
  rnn.zero_grad();
  EXPECT_EQ(host(rnn.backward(dy1).dx), host(ref.dx));  // the kept one: x1's
  EXPECT_EQ(r.saved.steps(), 5);
  EXPECT_NO_THROW(rnn.backward(std::move(r.saved), dy2));
  EXPECT_THROW(rnn.backward(dy1), Error);  // consumed
}

TEST(InFlight, ASavedForwardMovesAndResets) {
  Rnn rnn(make(CellKind::RnnTanh, 1, false), Device::cpu(), 7);
  Random rng(8);
  ForwardOptions o;
  o.return_saved = true;
  ForwardResult r = rnn.forward(rng.tensor<double>({3, 2, kI}), o);
  SavedForward moved = std::move(r.saved);
  EXPECT_FALSE(r.saved.defined());
  EXPECT_FALSE(r.saved.consumed());
  EXPECT_TRUE(moved.defined());
  SavedForward other;
  other = std::move(moved);
  EXPECT_TRUE(other.defined());
  EXPECT_EQ(workspaces(rnn).held, 1);
  other.reset();
  EXPECT_FALSE(other.defined());
  EXPECT_EQ(workspaces(rnn).held, 0);
  EXPECT_EQ(other.steps(), 0);
}

// ---- (d) errors ----

// backward(saved, dy) compiles for an rvalue SavedForward only.
template <class S, class = void>
struct TakesSaved : std::false_type {};
template <class S>
struct TakesSaved<S, std::void_t<decltype(std::declval<Rnn&>().backward(
                         std::declval<S>(), std::declval<const TensorView&>()))>> : std::true_type {
};
static_assert(TakesSaved<SavedForward&&>::value, "an rvalue SavedForward is consumed");
static_assert(!TakesSaved<SavedForward&>::value, "an lvalue needs std::move");
static_assert(!TakesSaved<const SavedForward&>::value, "a const one cannot be consumed");
static_assert(!std::is_copy_constructible_v<SavedForward>, "move-only");

TEST(InFlight, Errors) {
  Rnn rnn(make(CellKind::Lstm, 1, false), Device::cpu(), 9);
  Rnn stranger(make(CellKind::Lstm, 1, false), Device::cpu(), 9);
  Random rng(10);
  const Tensor x = rng.tensor<double>({5, 3, kI}), dy = rng.tensor<double>({5, 3, kH});
  ForwardOptions o;
  o.return_saved = true;
  ForwardResult r = rnn.forward(x, o);
  rnn.forward(rng.tensor<double>({2, 2, kI}));  // kept, of another shape
  ForwardResult theirs = stranger.forward(x, o);

  SavedForward empty;
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(std::move(empty), dy); }, "saved", "of this Rnn",
      "an empty one (default-constructed");
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(std::move(theirs.saved), dy); }, "saved", "of this Rnn",
      "one of another Rnn");
  EXPECT_TRUE(theirs.saved.defined());
  expect_error_keeps_model(
      rnn,
      [&] {
        rnn.backward(std::move(r.saved), rng.tensor<double>({2, 2, kH}));
      },
      "dy", "shape [5, 3, 4] [T, B, D*hidden_size] of the saved forward (T = 5, B = 3)",
      "[2, 2, 4]");
  BackwardOptions bad;
  bad.dh_n = rng.tensor<double>({1, 2, kH});
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(std::move(r.saved), dy, bad); }, "options.dh_n",
      "shape [1, 3, 4] [num_layers*D, B, hidden_size] of the saved forward (T = 5, B = 3)",
      "[1, 2, 4]");
  bad.dh_n = {};
  bad.dc_n = rng.tensor<float>({1, 3, kH});
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(std::move(r.saved), dy, bad); }, "options.dc_n", "dtype float64",
      "dtype float32");
  // Every failed call left it as it was.
  EXPECT_TRUE(r.saved.defined());
  EXPECT_FALSE(r.saved.consumed());
  const std::vector<double> before = host(rnn.gradients());
  EXPECT_NO_THROW(rnn.backward(std::move(r.saved), dy));
  EXPECT_NE(host(rnn.gradients()), before);
  EXPECT_TRUE(r.saved.consumed());
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(std::move(r.saved), dy); }, "saved", "of this Rnn",
      "already consumed");
  // The kept forward survived all of it.
  EXPECT_NO_THROW(rnn.backward(rng.tensor<double>({2, 2, kH})));
  expect_error_keeps_model(
      rnn, [&] { rnn.backward(dy); }, "this", "a preceding forward() in Mode::Training", "none");

  ForwardOptions inference;
  inference.mode = Mode::Inference;
  inference.return_saved = true;
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(x, inference); }, "options.return_saved", "false in Mode::Inference",
      "true");
  ForwardOptions h0;
  h0.h0 = rng.tensor<double>({1, 2, kH});
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(x, h0); }, "options.h0", "shape [1, 3, 4]", "[1, 2, 4]");
  ForwardOptions lengths;
  lengths.lengths = {5, 6, 1};
  expect_error_keeps_model(
      rnn, [&] { rnn.forward(x, lengths); }, "options.lengths", "every length in [1, T = 5]",
      "lengths[1] = 6");
  EXPECT_EQ(rnn.dropout_step(), 2u);  // the failed forwards drew no stream
  EXPECT_EQ(workspaces(rnn).held, 0);
}

// ---- (e) memory ----

TEST(InFlight, ReleasedWorkspacesAreReused) {
  Rnn rnn(make(CellKind::Lstm, 2, true), Device::cpu(), 11);
  Random rng(12);
  const Tensor x = rng.tensor<double>({4, 3, kI}), dy = rng.tensor<double>({4, 3, 2 * kH});
  // A loop of one shape allocates nothing after its first round, with an inference
  // forward between a forward and its backward.
  for (int round = 0; round < 3; ++round) {
    rnn.forward(x);
    rnn.forward(x, {}, {}, Mode::Inference);
    rnn.backward(dy);
  }
  const std::int64_t allocations = workspaces(rnn).allocations;
  EXPECT_EQ(allocations, 2);  // the training forward's and the inference forward's
  for (int round = 0; round < 3; ++round) {
    rnn.forward(x);
    rnn.forward(x, {}, {}, Mode::Inference);
    rnn.backward(dy);
  }
  EXPECT_EQ(workspaces(rnn).allocations, allocations);

  // A dropped SavedForward's workspace goes back to the pool and is reused.
  ForwardOptions o;
  o.return_saved = true;
  {
    ForwardResult r = rnn.forward(x, o);
    EXPECT_EQ(workspaces(rnn).held, 1);
  }
  EXPECT_EQ(workspaces(rnn).held, 0);
  EXPECT_EQ(workspaces(rnn).spare, 2);
  auto two_in_flight = [&] {
    ForwardResult a = rnn.forward(x, o);
    ForwardResult b = rnn.forward(x, o);
    rnn.backward(std::move(b.saved), dy);
  };                // a's dropped
  two_in_flight();  // the inference forward's workspace is too small for a second one
  const std::int64_t after_two = workspaces(rnn).allocations;
  EXPECT_EQ(after_two, allocations + 1);
  for (int round = 0; round < 3; ++round) two_in_flight();
  EXPECT_EQ(workspaces(rnn).allocations, after_two);
  EXPECT_EQ(workspaces(rnn).spare, 2);

  // Teacher forcing's T workspaces: allocated in the first round only.
  auto teacher_forcing = [&] {
    std::vector<SavedForward> saved;
    for (int t = 0; t < 6; ++t)
      saved.push_back(rnn.forward(rng.tensor<double>({1, 3, kI}), o).saved);
    for (int t = 5; t >= 0; --t)
      rnn.backward(std::move(saved[t]), rng.tensor<double>({1, 3, 2 * kH}));
  };
  teacher_forcing();
  const std::int64_t after_first = workspaces(rnn).allocations;
  teacher_forcing();
  teacher_forcing();
  EXPECT_EQ(workspaces(rnn).allocations, after_first);
  EXPECT_EQ(workspaces(rnn).held, 0);
  EXPECT_LE(workspaces(rnn).spare, 6);
}

TEST(InFlight, ASavedForwardMayOutliveItsRnn) {
  const std::int64_t before = detail::live_allocations().host;
  SavedForward saved;
  {
    Rnn rnn(make(CellKind::GruLinearBeforeReset, 2, false), Device::cpu(), 13);
    Random rng(14);
    ForwardOptions o;
    o.return_saved = true;
    saved = rnn.forward(rng.tensor<double>({3, 2, kI}), o).saved;
  }
  EXPECT_TRUE(saved.defined());
  EXPECT_GT(detail::live_allocations().host, before);  // its workspace
  saved.reset();
  EXPECT_EQ(detail::live_allocations().host, before);
}

// ---- (f) on a GPU ----

TEST(InFlightCuda, TeacherForcingAndMicroBatches) {
  RECUR_REQUIRE_GPU();
  const Device gpu = Device::cuda(0);
  check_teacher_forcing(make(CellKind::Lstm, 2, false), gpu);
  check_teacher_forcing(make(CellKind::GruResetBeforeProduct, 1, false), gpu);
  RnnConfig bi = make(CellKind::Lstm, 2, true);
  bi.dropout = 0.3;
  check_micro_batches(bi, gpu);
  RnnConfig gru = make(CellKind::GruLinearBeforeReset, 3, false, DType::Float32);
  gru.batch_first = true;
  check_micro_batches(gru, gpu);
}

TEST(InFlightCuda, ASavedForwardKeepsItsOwnRowIndices) {
  RECUR_REQUIRE_GPU();
  // Two packed forwards of different lengths in flight: the second stages other row
  // indices into the backend's buffer; the first's backward must read its own.
  const Device gpu = Device::cuda(0);
  Rnn cpu(make(CellKind::Lstm, 1, true), Device::cpu(), 15);
  Rnn dev(make(CellKind::Lstm, 1, true), gpu, 15);
  Random rng(16);
  const Tensor x1 = rng.tensor<double>({5, 3, kI}), dy1 = rng.tensor<double>({5, 3, 2 * kH});
  const Tensor x2 = rng.tensor<double>({6, 4, kI});
  ForwardOptions o1, o2;
  o1.lengths = {2, 5, 3};
  o1.return_saved = true;
  o2.lengths = {6, 1, 4, 2};
  o2.return_saved = true;
  ForwardResult a = dev.forward(x1.to(gpu), o1);
  ForwardResult b = dev.forward(x2.to(gpu), o2);
  const BackwardResult g = dev.backward(std::move(a.saved), dy1.to(gpu));
  cpu.forward(x1, {}, {}, Mode::Training, o1.lengths);
  const BackwardResult ref = cpu.backward(dy1);
  const Tolerance tol = tolerance_for_depth<double>(5 * 3 * 3 * kH * 2);
  EXPECT_TRUE(all_close(host(g.dx), host(ref.dx), tol));
  EXPECT_TRUE(all_close(host(dev.gradients()), host(cpu.gradients()), tol));
  b.saved.reset();
  EXPECT_EQ(detail::RnnAccess::engine(dev).workspaces().held, 0);
}

}  // namespace
}  // namespace recur::test
