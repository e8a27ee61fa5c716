// src/cpu/cpu_ops.h: the CPU backend: oneDNN's or OpenBLAS's sgemm for GEMMs, loops over
// the shared gate functors of kernels/*.cuh for everything else (the step loops vectorised
// and threaded: cpu_steps.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../ops.h"
#include "bf16_gemm.h"
#include "onednn_matmul.h"

namespace recur::detail {

template <typename T>
class CpuOps final : public Ops<T> {
 public:
  Device device() const override { return Device::cpu(); }
  // For the pass that follows: as many of OpenMP's threads as the machine's load allows
  // (thread_governor.h), the calling thread's own count restored afterwards.
  int make_current() override;
  void restore(int previous) override;
  void gemm(const Gemm<T>& g) override;
  void gemm_batched(const GemmBatch<T>& g) override;
  bool runs_wavefronts() const override;
  bool packs_weights() const override;
  bool takes_row_runs(std::int64_t weight_elements, std::int64_t rows) const override;
  bool hold_weights(const T* a, Trans trans_a, std::int64_t m, std::int64_t k, std::int64_t lda,
                    std::int64_t widest_n) override;
  void release_weights() override;
  std::int64_t held_weight_bytes(std::int64_t forward, std::int64_t backward) const override;
  bool run_step_list(const std::vector<StepCall<T>>& calls, std::int64_t rows) override;
  const void* const* stage_pointers(const void* const* host, std::size_t count) override;
  const std::int64_t* stage_indices(const std::int64_t* host, std::size_t count) override;
  void gather(const GatherArgs<T>& args) override;
  void transpose(const TransposeArgs<T>& args) override;
  void step_forward(StepKind kind, const StepForward<T>* units, int count) override;
  void step_backward(StepKind kind, const StepBackward<T>* units, int count) override;
  void connection(ConnectionKind kind, const ConnectionArgs<T>& args) override;
  void flow(const FlowArgs<T>* units, int count) override;
  void add_column_sums(const T* src, std::int64_t rows, std::int64_t cols, T* dst, T* dst2,
                       const T* ones) override;
  void fill(T* dst, std::int64_t n, T value) override;
  void copy(T* dst, const T* src, std::int64_t n) override;
  void copy_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src, std::int64_t rows,
                 std::int64_t width) override;
  void add_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src, std::int64_t rows,
                std::int64_t width) override;

 private:
  bool threaded_steps() const;
  void gemm_rounded(const Gemm<float>& g);
  // Whether Bf16 products run on AVX512_BF16 (bf16_gemm.h) rather than emulated, and on
  // which kernel.
  bool native_bf16() const;
  Bf16Kernel bf16_kernel() const;
  // The bytes a row-parallel lane reads per weight element: 2 in native BF16, else 4.
  std::int64_t row_run_element_bytes() const;
  // Reduced math: a held matrix rounded once for the pass.
  struct RoundedHold {
    const float* a;
    Trans trans;
    std::int64_t m, k, lda;
    std::vector<float> values;  // op(A) as stored, rounded, leading dimension its rows
    Bf16PackedA packed;         // instead, where native_bf16()
  };
  const RoundedHold* rounded_hold_of(const Gemm<float>& g) const;

  std::unique_ptr<PackedGemms> packed_;       // float only, made at the first hold_weights()
  std::vector<float> rounded_a_, rounded_b_;  // gemm_rounded's operands
  Bf16PackedA bf16_a_;                        // ... and native_bf16()'s
  std::vector<std::uint32_t> bf16_b_;
  std::vector<std::vector<std::uint32_t>> bf16_lane_b_;  // each row-parallel lane's B
  std::vector<RoundedHold> rounded_holds_;               // until release_weights()
};

// Which library CpuOps<float> uses for most GEMMs: "oneDNN" when libdnnl.so.2 can be
// loaded (and RECUR_CPU_GEMM is not "openblas"), else "OpenBLAS". float64 is OpenBLAS.
const char* cpu_sgemm_library();

// Under `tuning`, whether CpuOps runs Math::Bf16 products natively (bf16_gemm.h) rather
// than emulated, and on which kernel.
bool cpu_native_bf16(const Tuning& tuning);
Bf16Kernel cpu_bf16_kernel(const Tuning& tuning);

// Whether CpuOps<float>'s step loops and transpose share OpenMP's threads: exactly when its
// GEMMs run on them (oneDNN). float64 loops never do (its GEMMs are OpenBLAS's).
bool cpu_float_loops_threaded();

// The tuning choices CpuOps reads (tuning.h):
//   - cpu_pack_weights: CpuOps<float> packs held weights where PackedGemms::available();
//   - cpu_native_bf16: Math::Bf16 products run on AVX512_BF16 where the CPU has it
//     (bf16_gemm.h), else they are emulated on float32 copies as the other formats are;
//   - cpu_bf16_tiles: native BF16 runs on AMX tiles where the CPU has them too;
//   - cpu_wavefront: unidirectional stacks run as a wavefront (Ops::runs_wavefronts). Off by
//     default: two cores are busy with one step's GEMM already, and layer by layer the upper
//     layers project their inputs in one GEMM and may run row-parallel, which measured
//     faster (docs/benchmarks.md, "The measurements behind the code's choices"). Tests turn
//     it on, so that the GPU's schedule is checked without a GPU too;
//   - cpu_row_parallel: a layer-by-layer pass's steps run row-parallel (run_step_list), in
//     float32 and in native BF16;
//   - cpu_split_columns: CpuOps<float> threads a GEMM with the longest inner dimension
//     (k >= m, n: the weight gradients) or a narrow C (at most 768 rows: small input
//     projections) itself, each thread a slab of C's columns on oneDNN's sgemm alone;
//   - cpu_split_rows: it threads a GEMM with a short C (16 to 1023 columns: input
//     projections and input gradients over few timeline rows) by slabs of C's rows, where
//     the column split does not apply;
//   - cpu_thread_governor: each pass takes as many threads as the machine's load allows.
// What they did is counted in Ops::statistics().

// The most elements of one unit's per-step weights a row-parallel run over `rows` batch rows
// takes (takes_row_runs), read at `element_bytes` an element (2 in native BF16, else 4):
// lanes of 32 rows or more up to four times one core's L2 (counted as float32), narrower
// ones up to 1 MiB; 0 where the rows are too few for two lanes.
std::int64_t cpu_row_run_weight_elements(std::int64_t rows, std::int64_t element_bytes);

extern template class CpuOps<float>;
extern template class CpuOps<double>;

}  // namespace recur::detail
