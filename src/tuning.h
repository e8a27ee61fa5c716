// src/tuning.h: every tuning choice in one structure. Where several ways compute the same
// results, a Tuning says which one a model takes. The defaults are the ways measured
// fastest (docs/benchmarks.md, "The measurements behind the code's choices"), and rules in
// the pass plan (src/pass/pass_plan.h) and the backends pick among them by shape. The
// environment may change a default when a process starts: a diagnostic for side-by-side
// measurements (README, "Diagnostic switches"), read in tuning.cpp and nowhere else. Tests
// set a Tuning per model (RnnAccess::set_tuning) or per CpuOps (Ops::set_tuning).
#pragma once

#include <cstdint>

namespace recur::detail {

// How the CUDA backend runs a pass's step lists (Ops::run_step_list): Repeated records a
// list as a CUDA graph the second time it comes and replays it after that; Always records
// it the first time; Off launches every step.
enum class CudaGraphs { Off, Repeated, Always };

// How the CUDA backend runs a batch of per-step GEMMs: Auto picks per batch
// (CudaOps::gemm_batched), PerItem runs one GEMM per item, Batched cuBLAS's pointer-array
// batched GEMM.
enum class CudaBatchedGemm { Auto, PerItem, Batched };

// Whether a recorded batch that runs one GEMM per item records its items as parallel
// branches of the graph: ByRule where the pass plan says they pay (branches_pay()).
enum class GraphBranches { Off, ByRule, Always };

// Whether the CPU runs Math::Bf16 products on AVX512_BF16 (cpu/bf16_gemm.h) or emulates
// them: ByRule where its bf16 dot products outrun its float32 FMAs.
enum class NativeBf16 { Off, ByRule, Always };

struct Tuning {
  // The pass, on every backend (src/pass/pass_plan.h).
  bool wave_fusion = true;                   // RECUR_WAVE_FUSION=0: fuses_input()
  bool step_projection = true;               // RECUR_STEP_PROJECTION=0: projects_in_steps()
  std::int64_t hp_beside_x_min_rows = 2048;  // RECUR_X_HP_MIN_ROWS=n: hp_beside_x()

  // The CPU backend (src/cpu/cpu_ops.h).
  bool cpu_wavefront = false;    // RECUR_CPU_WAVEFRONT=1: the GPU's schedule on the CPU
  bool cpu_pack_weights = true;  // RECUR_CPU_PACK_WEIGHTS=0
  // RECUR_CPU_NATIVE_BF16=0|1: BF16 products emulated, or on AVX512_BF16 wherever the
  // CPU has it; by default where bf16_gemm_pays() (cpu/bf16_gemm.h).
  NativeBf16 cpu_native_bf16 = NativeBf16::ByRule;
  // RECUR_CPU_BF16_TILES=0: native BF16 on VDPBF16PS where AMX tiles are usable too.
  bool cpu_bf16_tiles = true;
  bool cpu_row_parallel = true;     // RECUR_CPU_ROW_PARALLEL=0
  bool cpu_split_columns = true;    // RECUR_CPU_SPLIT_COLUMNS=0
  bool cpu_split_rows = true;       // RECUR_CPU_SPLIT_ROWS=0
  bool cpu_thread_governor = true;  // RECUR_CPU_THREAD_GOVERNOR=0
  // RECUR_CPU_GEMM=openblas: libdnnl is not loaded at all. A choice for the whole process
  // (whether the step loops share OpenMP's threads follows from it), so only the
  // environment's value counts.
  bool cpu_openblas_only = false;

  // The CUDA backend (src/cuda/cuda_ops.h).
  CudaGraphs cuda_graphs = CudaGraphs::Repeated;              // RECUR_CUDA_GRAPHS=0|always
  CudaBatchedGemm cuda_batched_gemm = CudaBatchedGemm::Auto;  // RECUR_CUDA_BATCHED_GEMM
  int cuda_batched_from = 5;                                  // RECUR_CUDA_BATCHED_FROM=n
  GraphBranches cuda_graph_branches = GraphBranches::ByRule;  // RECUR_CUDA_GRAPH_BRANCHES
};

// The defaults as the environment leaves them, read once per process.
const Tuning& environment_tuning();

// The same from any lookup (getenv's signature), for tests of the reading itself.
Tuning tuning_from(const char* (*lookup)(const char* name));

}  // namespace recur::detail
