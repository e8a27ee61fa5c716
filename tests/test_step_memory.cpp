// tests/test_step_memory.cpp: Rnn::step_memory, the memory a step needs, told before the
// step: it matches the peak the step's allocations reach (memory_stats) within 5% over
// cells, stacks, directions, connections, lengths, dropout, dtypes, maths and tunings; a
// forward that could never fit is an Error naming its largest part before anything is
// allocated; and bad arguments are Errors naming them. On the CPU, and on a GPU where
// there is one.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "memory.h"
#include "plan.h"
#include "test_util.h"

namespace recur::test {
namespace {

struct Case {
  const char* name;
  RnnConfig config;
  std::vector<std::int64_t> lengths;  // empty: every sequence runs T steps
  Mode mode = Mode::Training;
  ActivationMemory activations = ActivationMemory::Store;
  std::int64_t segment_steps = 0;

  ForwardOptions options() const {
    ForwardOptions fo;
    fo.mode = mode;
    fo.lengths = lengths;
    fo.activations = activations;
    fo.segment_steps = segment_steps;
    return fo;
  }
};

RnnConfig make(CellKind cell, std::int64_t I, std::int64_t H, std::int64_t L) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = I;
  c.hidden_size = H;
  c.num_layers = L;
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"lstm", make(CellKind::Lstm, 48, 96, 2), {}});
  out.push_back({"lstm inference", make(CellKind::Lstm, 48, 96, 2), {}, Mode::Inference});
  Case bi{
      "bidirectional gru, highway, lengths", make(CellKind::GruLinearBeforeReset, 32, 64, 3), {}};
  bi.config.bidirectional = true;
  bi.config.connection = Connection::Highway;
  bi.lengths = {30, 7, 19, 30, 1, 12, 25, 30, 3, 30, 8, 16, 29, 2, 30, 11};
  out.push_back(bi);
  Case dense{"dense tanh rnn, dropout, batch-first", make(CellKind::RnnTanh, 16, 64, 3), {}};
  dense.config.connection = Connection::Dense;
  dense.config.dropout = 0.25;
  dense.config.batch_first = true;
  out.push_back(dense);
  Case rbp{
      "reset-before-product gru, residual", make(CellKind::GruResetBeforeProduct, 64, 64, 2), {}};
  rbp.config.connection = Connection::Residual;
  out.push_back(rbp);
  Case f64{"float64 lstm", make(CellKind::Lstm, 24, 40, 2), {}};
  f64.config.dtype = DType::Float64;
  out.push_back(f64);
  Case bf16{"bf16 lstm", make(CellKind::Lstm, 48, 96, 2), {}};
  bf16.config.math = Math::Bf16;
  out.push_back(bf16);
  Case ln{"layer-norm lstm, bidirectional", make(CellKind::Lstm, 32, 48, 2), {}};
  ln.config.layer_norm = true;
  ln.config.bidirectional = true;
  out.push_back(ln);
  Case recomputed{"lstm, recomputed", make(CellKind::Lstm, 48, 96, 2), {}};
  recomputed.activations = ActivationMemory::Recompute;
  out.push_back(recomputed);
  Case recomputed_gru{"gru, highway, lengths, recomputed in 4 steps",
                      make(CellKind::GruLinearBeforeReset, 32, 32, 3),
                      {}};
  recomputed_gru.config.connection = Connection::Highway;
  recomputed_gru.lengths = {30, 7, 19, 30, 1, 12, 25, 30, 3, 30, 8, 16, 29, 2, 30, 11};
  recomputed_gru.activations = ActivationMemory::Recompute;
  recomputed_gru.segment_steps = 4;
  out.push_back(recomputed_gru);
  Case projected{"projected lstm, bidirectional", make(CellKind::Lstm, 48, 96, 2), {}};
  projected.config.proj_size = 32;
  projected.config.bidirectional = true;
  out.push_back(projected);
  Case projected_inference{
      "projected lstm inference", make(CellKind::Lstm, 48, 96, 2), {}, Mode::Inference};
  projected_inference.config.proj_size = 32;
  out.push_back(projected_inference);
  Case projected_recomputed{"projected lstm, recomputed", make(CellKind::Lstm, 48, 96, 2), {}};
  projected_recomputed.config.proj_size = 32;
  projected_recomputed.activations = ActivationMemory::Recompute;
  out.push_back(projected_recomputed);
  Case bi_recomputed{"bidirectional gru, highway, lengths, recomputed by layers",
                     make(CellKind::GruLinearBeforeReset, 32, 64, 3),
                     {}};
  bi_recomputed.config.bidirectional = true;
  bi_recomputed.config.connection = Connection::Highway;
  bi_recomputed.lengths = bi.lengths;
  bi_recomputed.activations = ActivationMemory::Recompute;
  out.push_back(bi_recomputed);
  Case bi_projected{"projected lstm, bidirectional, dropout, recomputed by layers",
                    make(CellKind::Lstm, 48, 96, 3),
                    {}};
  bi_projected.config.proj_size = 32;
  bi_projected.config.bidirectional = true;
  bi_projected.config.dropout = 0.2;
  bi_projected.activations = ActivationMemory::Recompute;
  out.push_back(bi_projected);
  return out;
}

// One step of `c` at T x B: forward, backward and an Adam step, with x and dy made before
// the peak starts. Returns the peak of the step's allocations over the model's own
// memory (parameters and gradients, live before it).
std::int64_t measured_step(Rnn& rnn, const Case& c, std::int64_t T, std::int64_t B) {
  const Device d = rnn.device();
  const RnnConfig& cfg = rnn.config();
  const std::int64_t D = cfg.bidirectional ? 2 : 1;
  Random rng(11);
  const Shape x_shape = cfg.batch_first ? Shape{B, T, cfg.input_size} : Shape{T, B, cfg.input_size};
  const std::int64_t width = D * detail::state_size_of(cfg);
  const Shape y_shape = cfg.batch_first ? Shape{B, T, width} : Shape{T, B, width};
  const Tensor x =
      cfg.dtype == DType::Float32 ? rng.tensor<float>(x_shape, d) : rng.tensor<double>(x_shape, d);
  const Tensor dy =
      cfg.dtype == DType::Float32 ? rng.tensor<float>(y_shape, d) : rng.tensor<double>(y_shape, d);
  const std::int64_t outside = static_cast<std::int64_t>(x.nbytes() + dy.nbytes());
  reset_peak_memory();
  const std::int64_t before = memory_stats(d).bytes;
  {
    ForwardResult r = rnn.forward(x, c.options());
    if (c.mode == Mode::Training) {
      Adam adam(rnn.parameters());
      BackwardResult g = rnn.backward(dy);
      adam.step(rnn.gradients());
    }
    rnn.synchronize();
  }
  const std::int64_t peak = memory_stats(d).peak_bytes;
  EXPECT_GE(before, 2 * static_cast<std::int64_t>(rnn.parameters().nbytes()) + outside);
  return peak - outside;
}

void step_memory_matches_the_peak(Device d) {
  const std::int64_t T = 30, B = 16;  // 16 rows: the CPU packs its weights
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Rnn rnn(c.config, d, 3);
    const StepMemory m = rnn.step_memory(T, B, c.options());
    const std::int64_t measured = measured_step(rnn, c, T, B);
    const std::int64_t told = m.total() - m.weight_copies;  // the copies are the library's
    EXPECT_GT(m.activations, 0);
    EXPECT_EQ(m.parameters, static_cast<std::int64_t>(rnn.parameters().nbytes()));
    EXPECT_EQ(m.optimizer_state, c.mode == Mode::Training ? 2 * m.parameters : 0);
    const double ratio = static_cast<double>(told) / static_cast<double>(measured);
    EXPECT_NEAR(ratio, 1.0, 0.05) << "told " << told << " bytes, measured " << measured;
    // A second step of the same shape needs no more (its workspaces are reused).
    EXPECT_LE(measured_step(rnn, c, T, B), measured);
    std::printf("%-40s told %9lld measured %9lld (%+.2f%%), weight copies %lld\n", c.name,
                static_cast<long long>(told), static_cast<long long>(measured),
                100.0 * (ratio - 1.0), static_cast<long long>(m.weight_copies));
  }
}

TEST(StepMemory, MatchesThePeakOfAStep) { step_memory_matches_the_peak(Device::cpu()); }

TEST(StepMemory, GrowsWithStepsAndShrinksWithLengths) {
  Rnn rnn(make(CellKind::Lstm, 8, 32, 2), Device::cpu(), 1);
  const StepMemory short_run = rnn.step_memory(100, 4);
  const StepMemory long_run = rnn.step_memory(1000, 4);
  EXPECT_GT(long_run.activations, 9 * short_run.activations);
  EXPECT_LT(long_run.activations, 11 * short_run.activations);
  ForwardOptions packed_options;
  packed_options.lengths = {1000, 10, 10, 10};
  const StepMemory packed = rnn.step_memory(1000, 4, packed_options);
  EXPECT_LT(packed.activations, long_run.activations / 3);
  ForwardOptions inference_options;
  inference_options.mode = Mode::Inference;
  const StepMemory inference = rnn.step_memory(1000, 4, inference_options);
  EXPECT_LT(inference.activations, long_run.activations);
  ForwardOptions recompute;
  recompute.activations = ActivationMemory::Recompute;
  const StepMemory recomputed = rnn.step_memory(1000, 4, recompute);
  EXPECT_LT(recomputed.activations + recomputed.workspace,
            (long_run.activations + long_run.workspace) / 8);
  EXPECT_EQ(rnn.step_memory(100, 4, {}, 0).optimizer_state, 0);
}

// LSTM-2048 training over 10^5 x 64 rows would keep ~170 GB of gates: an Error before the
// forward allocates anything, naming that part, and the model is as it was.
void refuses_what_cannot_fit(Device d) {
  Rnn rnn(make(CellKind::Lstm, 1, 2048, 1), d, 1);
  const std::int64_t T = 100000, B = 64;
  const StepMemory m = rnn.step_memory(T, B);
  EXPECT_GT(m.activations, m.workspace);
  Random rng(2);
  const Tensor x = rng.tensor<float>({T, B, 1}, d);
  const std::int64_t before = memory_stats(d).bytes;
  const std::uint64_t step = rnn.dropout_step();
  const std::string what = error_of([&] { rnn.forward(x); });
  EXPECT_NE(what.find("Rnn::forward"), std::string::npos) << what;
  EXPECT_NE(what.find("argument 'x'"), std::string::npos) << what;
  EXPECT_NE(what.find("the activations saved for backward"), std::string::npos) << what;
  EXPECT_NE(what.find("T = 100000, B = 64"), std::string::npos) << what;
  EXPECT_EQ(memory_stats(d).bytes, before);
  EXPECT_EQ(rnn.dropout_step(), step);
  // The same shape in inference keeps no gates and runs.
  ForwardOptions inference;
  inference.mode = Mode::Inference;
  EXPECT_EQ(rnn.forward(rng.tensor<float>({100, B, 1}, d), inference).y.size(0), 100);
}

TEST(StepMemory, AForwardThatCannotFitIsAnErrorBeforeItAllocates) {
  if (detail::host_memory_bytes() > (std::uint64_t{400} << 30))
    GTEST_SKIP() << "the host could hold it";
  refuses_what_cannot_fit(Device::cpu());
}

TEST(StepMemory, BadArgumentsAreErrorsNamingThem) {
  Rnn rnn(make(CellKind::GruLinearBeforeReset, 4, 8, 1), Device::cpu(), 1);
  auto error = [&](auto&& call) { return error_of(call); };
  EXPECT_NE(error([&] { rnn.step_memory(0, 4); }).find("argument 'steps'"), std::string::npos);
  EXPECT_NE(error([&] { rnn.step_memory(4, -1); }).find("argument 'batch'"), std::string::npos);
  ForwardOptions bad_mode;
  bad_mode.mode = static_cast<Mode>(7);
  EXPECT_NE(error([&] { rnn.step_memory(4, 4, bad_mode); }).find("argument 'options.mode'"),
            std::string::npos);
  EXPECT_NE(error([&] { rnn.step_memory(4, 4, {}, 9); }).find("optimizer_slots"),
            std::string::npos);
  ForwardOptions bad_segment;
  bad_segment.activations = ActivationMemory::Recompute;
  bad_segment.segment_steps = -1;
  EXPECT_NE(error([&] { rnn.step_memory(4, 4, bad_segment); }).find("'options.segment_steps'"),
            std::string::npos);
  ForwardOptions one_length;
  one_length.lengths = {4};
  EXPECT_NE(error([&] { rnn.step_memory(4, 2, one_length); }).find("argument 'options.lengths'"),
            std::string::npos);
  ForwardOptions too_long;
  too_long.lengths = {4, 5};
  EXPECT_NE(error([&] { rnn.step_memory(4, 2, too_long); }).find("lengths[1] = 5"),
            std::string::npos);
  // Host tables of 2^40 x 2^30 rows could never exist: refused, not allocated.
  EXPECT_NE(error([&] {
              rnn.step_memory(std::int64_t{1} << 40, std::int64_t{1} << 30);
            }).find("argument 'steps'"),
            std::string::npos);
}

TEST(StepMemoryCuda, MatchesThePeakAndRefusesWhatCannotFit) {
  RECUR_REQUIRE_GPU();
  step_memory_matches_the_peak(Device::cuda(0));
  refuses_what_cannot_fit(Device::cuda(0));
}

}  // namespace
}  // namespace recur::test
