// tests/test_tuning.cpp: the tuning choices as the environment sets them (src/tuning.h),
// and the pass plan's rules over them (src/pass/pass_plan.h), as pure functions.
#include <map>
#include <string>

#include "pass/pass_plan.h"
#include "test_util.h"
#include "tuning.h"

namespace recur::test {
namespace {

using detail::BackendCapabilities;
using detail::PassPlan;
using detail::StepWeights;
using detail::Tuning;

// A stand-in environment for tuning_from.
std::map<std::string, std::string>& environment() {
  static std::map<std::string, std::string> values;
  return values;
}
const char* lookup(const char* name) {
  const auto it = environment().find(name);
  return it == environment().end() ? nullptr : it->second.c_str();
}
Tuning tuning_with(std::map<std::string, std::string> values) {
  environment() = std::move(values);
  return detail::tuning_from(lookup);
}

TEST(Tuning, UnsetSwitchesLeaveTheDefaults) {
  const Tuning t = tuning_with({});
  const Tuning defaults;
  EXPECT_TRUE(t.wave_fusion && t.step_projection && t.cpu_pack_weights && t.cpu_row_parallel);
  EXPECT_TRUE(t.cpu_split_columns && t.cpu_split_rows && t.cpu_thread_governor);
  EXPECT_TRUE(t.cpu_bf16_tiles);
  EXPECT_EQ(t.cpu_native_bf16, detail::NativeBf16::ByRule);
  EXPECT_FALSE(t.cpu_wavefront || t.cpu_openblas_only);
  EXPECT_EQ(t.hp_beside_x_min_rows, 2048);
  EXPECT_EQ(t.cuda_graphs, detail::CudaGraphs::Repeated);
  EXPECT_EQ(t.cuda_batched_gemm, detail::CudaBatchedGemm::Auto);
  EXPECT_EQ(t.cuda_batched_from, defaults.cuda_batched_from);
  EXPECT_EQ(t.cuda_graph_branches, detail::GraphBranches::ByRule);
}

TEST(Tuning, EverySwitchIsReadFromTheEnvironment) {
  const Tuning t = tuning_with({{"RECUR_WAVE_FUSION", "0"},
                                {"RECUR_STEP_PROJECTION", "0"},
                                {"RECUR_X_HP_MIN_ROWS", "0"},
                                {"RECUR_CPU_WAVEFRONT", "1"},
                                {"RECUR_CPU_PACK_WEIGHTS", "0"},
                                {"RECUR_CPU_NATIVE_BF16", "0"},
                                {"RECUR_CPU_BF16_TILES", "0"},
                                {"RECUR_CPU_ROW_PARALLEL", "0"},
                                {"RECUR_CPU_SPLIT_COLUMNS", "0"},
                                {"RECUR_CPU_SPLIT_ROWS", "0"},
                                {"RECUR_CPU_THREAD_GOVERNOR", "0"},
                                {"RECUR_CPU_GEMM", "openblas"},
                                {"RECUR_CUDA_GRAPHS", "always"},
                                {"RECUR_CUDA_BATCHED_GEMM", "per-item"},
                                {"RECUR_CUDA_BATCHED_FROM", "3"},
                                {"RECUR_CUDA_GRAPH_BRANCHES", "1"}});
  EXPECT_FALSE(t.wave_fusion || t.step_projection || t.cpu_pack_weights || t.cpu_row_parallel);
  EXPECT_FALSE(t.cpu_split_columns || t.cpu_split_rows || t.cpu_thread_governor);
  EXPECT_FALSE(t.cpu_bf16_tiles);
  EXPECT_EQ(t.cpu_native_bf16, detail::NativeBf16::Off);
  EXPECT_EQ(tuning_with({{"RECUR_CPU_NATIVE_BF16", "1"}}).cpu_native_bf16,
            detail::NativeBf16::Always);
  EXPECT_TRUE(t.cpu_wavefront && t.cpu_openblas_only);
  EXPECT_EQ(t.hp_beside_x_min_rows, 0);
  EXPECT_EQ(t.cuda_graphs, detail::CudaGraphs::Always);
  EXPECT_EQ(t.cuda_batched_gemm, detail::CudaBatchedGemm::PerItem);
  EXPECT_EQ(t.cuda_batched_from, 3);
  EXPECT_EQ(t.cuda_graph_branches, detail::GraphBranches::Always);
  EXPECT_EQ(tuning_with({{"RECUR_CUDA_GRAPHS", "0"}}).cuda_graphs, detail::CudaGraphs::Off);
  EXPECT_EQ(tuning_with({{"RECUR_CUDA_GRAPH_BRANCHES", "0"}}).cuda_graph_branches,
            detail::GraphBranches::Off);
  EXPECT_EQ(tuning_with({{"RECUR_CUDA_BATCHED_GEMM", "batched"}}).cuda_batched_gemm,
            detail::CudaBatchedGemm::Batched);
}

// A switch that is on by default goes off only for "0", one that is off only on for "1",
// and a count that is not a whole number >= 0 leaves the default.
TEST(Tuning, OtherValuesLeaveTheDefaults) {
  const Tuning t = tuning_with({{"RECUR_WAVE_FUSION", "no"},
                                {"RECUR_CPU_WAVEFRONT", "yes"},
                                {"RECUR_X_HP_MIN_ROWS", "12abc"},
                                {"RECUR_CUDA_BATCHED_FROM", "-4"},
                                {"RECUR_CUDA_GRAPHS", "sometimes"},
                                {"RECUR_CPU_GEMM", "mkl"}});
  EXPECT_TRUE(t.wave_fusion);
  EXPECT_FALSE(t.cpu_wavefront || t.cpu_openblas_only);
  EXPECT_EQ(t.hp_beside_x_min_rows, 2048);
  EXPECT_EQ(t.cuda_batched_from, Tuning().cuda_batched_from);
  EXPECT_EQ(t.cuda_graphs, detail::CudaGraphs::Repeated);
}

RnnConfig stack(CellKind cell, std::int64_t layers, bool bidirectional) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = 8;
  c.hidden_size = 8;
  c.num_layers = layers;
  c.bidirectional = bidirectional;
  return c;
}

PassPlan plan_for(const RnnConfig& c, std::int64_t steps, std::int64_t batch, bool training,
                  const BackendCapabilities& backend, const Tuning& tuning = Tuning()) {
  const detail::Plan plan = detail::Plan::make(c);
  BackendCapabilities b = backend;
  b.row_runs_both.resize(plan.layers.size(), b.row_runs_w_hh);
  return detail::make_pass_plan(plan, detail::Timeline::full(steps, batch), training, b, tuning);
}

TEST(PassPlan, WavefrontsForUnidirectionalStacksWhereTheBackendRunsThem) {
  BackendCapabilities gpu;
  gpu.runs_wavefronts = gpu.replays_call_lists = true;
  EXPECT_TRUE(plan_for(stack(CellKind::Lstm, 2, false), 6, 16, true, gpu).wavefront);
  EXPECT_FALSE(plan_for(stack(CellKind::Lstm, 1, false), 6, 16, true, gpu).wavefront);
  EXPECT_FALSE(plan_for(stack(CellKind::Lstm, 2, true), 6, 16, true, gpu).wavefront);
  EXPECT_FALSE(
      plan_for(stack(CellKind::Lstm, 2, false), 6, 16, true, BackendCapabilities()).wavefront);
  // A plain wavefront's waves are one list each way; fusion fuses layer 1's input.
  const PassPlan waves = plan_for(stack(CellKind::Lstm, 3, false), 6, 16, true, gpu);
  EXPECT_TRUE(waves.forward_step_lists && waves.backward_step_lists);
  EXPECT_FALSE(waves.fuses_input[0]);
  EXPECT_TRUE(waves.fuses_input[1] && waves.fuses_input[2]);
  Tuning unfused;
  unfused.wave_fusion = false;
  const PassPlan apart = plan_for(stack(CellKind::Lstm, 3, false), 6, 16, true, gpu, unfused);
  EXPECT_FALSE(apart.fuses_input[1] || apart.forward_step_lists || apart.backward_step_lists);
  EXPECT_FALSE(
      plan_for(stack(CellKind::GruResetBeforeProduct, 2, false), 6, 16, true, gpu).fuses_input[1]);
  // Dropout launches between the waves in training only.
  RnnConfig dropped = stack(CellKind::Lstm, 2, false);
  dropped.dropout = 0.5;
  EXPECT_FALSE(plan_for(dropped, 6, 16, true, gpu).forward_step_lists);
  EXPECT_TRUE(plan_for(dropped, 6, 16, false, gpu).forward_step_lists);
}

TEST(PassPlan, StepWeightsByStepsRowsAndBackend) {
  BackendCapabilities gpu, cpu;
  gpu.runs_wavefronts = gpu.replays_call_lists = true;
  cpu.packs_weights = cpu.row_runs_w_hh = true;
  const RnnConfig lstm = stack(CellKind::Lstm, 1, false);
  EXPECT_EQ(plan_for(lstm, 4, 16, false, gpu).weights, StepWeights::Transposed);
  EXPECT_EQ(plan_for(lstm, 3, 16, false, gpu).weights, StepWeights::AsStored);
  EXPECT_EQ(plan_for(lstm, 4, 15, false, gpu).weights, StepWeights::AsStored);
  EXPECT_EQ(plan_for(lstm, 4, 16, false, cpu).weights, StepWeights::Packed);
  // The reset-before-product GRU packs only where its steps run row-parallel.
  const RnnConfig rbp = stack(CellKind::GruResetBeforeProduct, 1, false);
  EXPECT_EQ(plan_for(rbp, 4, 16, false, cpu).weights, StepWeights::Packed);
  cpu.row_runs_w_hh = false;
  EXPECT_EQ(plan_for(rbp, 4, 16, false, cpu).weights, StepWeights::Transposed);
  // Under reduced math a held copy is rounded once, which every GEMM on the weights as
  // stored would do again: held from two steps, at any batch; not by a backend that keeps
  // no copies, and not in FP32.
  for (Math math : {Math::Bf16, Math::Fp16, Math::Tf32}) {
    RnnConfig reduced = lstm;
    reduced.math = math;
    EXPECT_EQ(plan_for(reduced, 2, 1, false, cpu).weights, StepWeights::Packed);
    EXPECT_EQ(plan_for(reduced, 1, 1, true, cpu).weights, StepWeights::AsStored);
    EXPECT_EQ(plan_for(reduced, 4, 15, false, gpu).weights, StepWeights::AsStored);
  }
  EXPECT_EQ(plan_for(lstm, 4, 15, false, cpu).weights, StepWeights::AsStored);
}

TEST(PassPlan, HpBesideXForLstmTrainingFromTheTunedRows) {
  const RnnConfig lstm = stack(CellKind::Lstm, 1, false);
  EXPECT_TRUE(plan_for(lstm, 64, 32, true, BackendCapabilities()).hp_beside_x);  // 2048 rows
  EXPECT_FALSE(plan_for(lstm, 63, 32, true, BackendCapabilities()).hp_beside_x);
  EXPECT_FALSE(plan_for(lstm, 64, 32, false, BackendCapabilities()).hp_beside_x);
  EXPECT_FALSE(plan_for(stack(CellKind::RnnTanh, 1, false), 64, 32, true, BackendCapabilities())
                   .hp_beside_x);
  Tuning always;
  always.hp_beside_x_min_rows = 0;
  EXPECT_TRUE(plan_for(lstm, 2, 1, true, BackendCapabilities(), always).hp_beside_x);
}

// Graph branches pay for a wavefront's batches of little work in all (the 2-layer LSTM at
// H = 512, B = 64 and the 4-layer one at H = 256 won; 4 layers at H = 512 and 1024 and the
// bidirectional stacks lost: docs/benchmarks.md).
TEST(PassPlan, GraphBranchesOnlyForAWavefrontsSmallBatches) {
  PassPlan wave;
  wave.wavefront = true;
  EXPECT_TRUE(detail::branches_pay(wave, 3, 512, 64, 2048));
  EXPECT_TRUE(detail::branches_pay(wave, 7, 256, 64, 1024));
  EXPECT_FALSE(detail::branches_pay(wave, 7, 512, 64, 2048));
  EXPECT_FALSE(detail::branches_pay(wave, 7, 1024, 64, 4096));
  EXPECT_FALSE(detail::branches_pay(wave, 1, 16, 16, 16));
  EXPECT_FALSE(detail::branches_pay(PassPlan(), 2, 512, 64, 2048));
}

}  // namespace
}  // namespace recur::test
