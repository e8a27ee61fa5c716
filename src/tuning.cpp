// src/tuning.cpp: the one place that reads the RECUR_* diagnostic switches.
#include "tuning.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace recur::detail {
namespace {

using Lookup = const char* (*)(const char*);

// A switch that is on by default is off only for "0"; one that is off by default is on
// only for "1".
bool flag(Lookup lookup, const char* name, bool default_on) {
  const char* value = lookup(name);
  if (value == nullptr) return default_on;
  return default_on ? std::strcmp(value, "0") != 0 : std::strcmp(value, "1") == 0;
}

// A positive count, or the default for anything else.
std::int64_t count(Lookup lookup, const char* name, std::int64_t fallback) {
  const char* value = lookup(name);
  if (value == nullptr) return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(value, &end, 10);
  return end != value && *end == '\0' && n >= 0 ? static_cast<std::int64_t>(n) : fallback;
}

std::string text(Lookup lookup, const char* name) {
  const char* value = lookup(name);
  return value != nullptr ? value : "";
}

const char* from_environment(const char* name) { return std::getenv(name); }

}  // namespace

Tuning tuning_from(Lookup lookup) {
  Tuning t;
  t.wave_fusion = flag(lookup, "RECUR_WAVE_FUSION", t.wave_fusion);
  t.step_projection = flag(lookup, "RECUR_STEP_PROJECTION", t.step_projection);
  t.hp_beside_x_min_rows = count(lookup, "RECUR_X_HP_MIN_ROWS", t.hp_beside_x_min_rows);

  t.cpu_wavefront = flag(lookup, "RECUR_CPU_WAVEFRONT", t.cpu_wavefront);
  t.cpu_pack_weights = flag(lookup, "RECUR_CPU_PACK_WEIGHTS", t.cpu_pack_weights);
  t.cpu_row_parallel = flag(lookup, "RECUR_CPU_ROW_PARALLEL", t.cpu_row_parallel);
  t.cpu_split_columns = flag(lookup, "RECUR_CPU_SPLIT_COLUMNS", t.cpu_split_columns);
  t.cpu_split_rows = flag(lookup, "RECUR_CPU_SPLIT_ROWS", t.cpu_split_rows);
  t.cpu_thread_governor = flag(lookup, "RECUR_CPU_THREAD_GOVERNOR", t.cpu_thread_governor);
  t.cpu_openblas_only = text(lookup, "RECUR_CPU_GEMM") == "openblas";

  const std::string graphs = text(lookup, "RECUR_CUDA_GRAPHS");
  if (graphs == "0") t.cuda_graphs = CudaGraphs::Off;
  if (graphs == "always") t.cuda_graphs = CudaGraphs::Always;
  const std::string batched = text(lookup, "RECUR_CUDA_BATCHED_GEMM");
  if (batched == "per-item") t.cuda_batched_gemm = CudaBatchedGemm::PerItem;
  if (batched == "batched") t.cuda_batched_gemm = CudaBatchedGemm::Batched;
  const std::int64_t from = count(lookup, "RECUR_CUDA_BATCHED_FROM", t.cuda_batched_from);
  if (from > 0 && from < 1 << 20) t.cuda_batched_from = static_cast<int>(from);
  const std::string bf16 = text(lookup, "RECUR_CPU_NATIVE_BF16");
  if (bf16 == "0") t.cpu_native_bf16 = NativeBf16::Off;
  if (bf16 == "1") t.cpu_native_bf16 = NativeBf16::Always;
  t.cpu_bf16_tiles = flag(lookup, "RECUR_CPU_BF16_TILES", t.cpu_bf16_tiles);
  const std::string branches = text(lookup, "RECUR_CUDA_GRAPH_BRANCHES");
  if (branches == "0") t.cuda_graph_branches = GraphBranches::Off;
  if (branches == "1") t.cuda_graph_branches = GraphBranches::Always;
  return t;
}

const Tuning& environment_tuning() {
  static const Tuning tuning = tuning_from(from_environment);
  return tuning;
}

}  // namespace recur::detail
