// src/cpu/cpu_ops.cpp: CpuOps. Each step kernel is the functor's body in a loop over
// (b, j), exactly the element the CUDA kernel gives to one thread.
#include "cpu_ops.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "../math_format.h"
#include "cpu_steps.h"
#include "onednn_api.h"
#include "recur/error.h"
#include "thread_governor.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace recur::detail {
namespace {

CBLAS_TRANSPOSE to_cblas(Trans t) { return t == Trans::N ? CblasNoTrans : CblasTrans; }

blasint to_blasint(std::int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw Error("recur: CpuOps::gemm: " + std::string(what) + " = " + std::to_string(v) +
                " does not fit the BLAS integer type");
  }
  return static_cast<blasint>(v);
}

// g on oneDNN's sgemm, with as many threads as OpenMP would give a parallel region here;
// false (nothing done) when oneDNN is not loaded.
bool onednn_gemm(const Gemm<float>& g) {
  const OnednnSgemm dnnl = onednn_sgemm();
  if (dnnl == nullptr) return false;
  // Column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T.
  const int status = dnnl(g.trans_b == Trans::N ? 'N' : 'T', g.trans_a == Trans::N ? 'N' : 'T', g.n,
                          g.m, g.k, g.alpha, g.b, g.ldb, g.a, g.lda, g.beta, g.c, g.ldc);
  if (status != 0) {
    throw Error("recur: CpuOps::gemm: dnnl_sgemm failed with status " + std::to_string(status));
  }
  return true;
}

// A thread of a split GEMM (split_of) takes at least this many columns or rows of C.
constexpr std::int64_t kSlabColumns = 128;
constexpr std::int64_t kSlabRows = 128;
// C with at most this many rows counts as narrow for the column split, and with
// [kFewestShortColumns, kShortColumns) columns as short for the row split (split_of).
constexpr std::int64_t kNarrowRows = 768;
constexpr std::int64_t kFewestShortColumns = 16;
constexpr std::int64_t kShortColumns = 1024;

// A thread of a row-parallel run takes at least this many rows: its share of each GEMM is
// then still a matrix product, not a matrix-vector one.
constexpr std::int64_t kRowsPerThread = 8;

// The most per-step weights (bytes, of one unit) a row-parallel run takes. Each thread reads
// all of W at every step, where the threads of one GEMM call split it, so it pays while
// reading W costs a lane less than the calls' forks and joins would:
//   - a lane of kWideLaneRows rows or more: up to four times the L2 of one core (sysconf;
//     1 MiB when it does not say), W counted as float32. On the AMD EPYC (1 MiB of L2)
//     training steps ran 5-6% faster row-parallel at 1 MiB, level at 3-4 MiB, slower at 16;
//   - a narrower lane: up to kNarrowLaneWeightBytes of W as the products read it (2 bytes an
//     element in native BF16, else 4). On the Xeon with AMX (2 MiB of L2, a slower far
//     memory), at 8 and 16 rows a lane, the LSTM and GRU at H = 512 (W_hh 4 and 3 MiB in
//     float32, 2 and 1.5 MiB in bf16) ran 1.1-2.8x slower row-parallel, in FP32 and BF16,
//     and W_ih beside W_hh at H = 256 (2 MiB) slower than W_hh alone (1 MiB).
// docs/benchmarks.md, "Row-parallel runs by the lane's rows".
constexpr std::int64_t kWideLaneRows = 32;
constexpr std::int64_t kNarrowLaneWeightBytes = std::int64_t{1} << 20;

std::int64_t wide_lane_weight_limit() {
  static const std::int64_t limit = [] {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return 4 * (l2 > 0 ? static_cast<std::int64_t>(l2) : std::int64_t{1} << 20);
  }();
  return limit;
}

// fn(lane, failed) for every lane < lanes, on up to `lanes` of OpenMP's threads, oneDNN
// limited to one thread inside each (so that each runs its own GEMMs alone). The team may
// be smaller than asked for (inside a caller's own parallel region, whose nested regions
// get one thread; OMP_DYNAMIC; a thread limit): then a thread runs several lanes, one
// after the other, and every lane still runs once. The first exception thrown is rethrown
// once all have finished; `failed` tells the others to stop early.
template <class Fn>
void on_threads_each_with_onednn_alone(int lanes, Fn&& fn) {
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(lanes)
  {
    int first = 0, team = 1;
#if defined(_OPENMP)
    omp_set_num_threads(1);  // oneDNN, called from here: one thread
    first = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    try {
      for (int lane = first; lane < lanes && !failed.load(std::memory_order_relaxed);
           lane += team) {
        fn(lane, static_cast<const std::atomic<bool>&>(failed));
      }
    } catch (...) {
#pragma omp critical(recur_cpu_threads_error)
      if (error == nullptr) error = std::current_exception();
      failed = true;
    }
  }
  if (error != nullptr) std::rethrow_exception(error);
}

// How a float GEMM is shared among OpenMP's threads where oneDNN's own threading of the
// whole GEMM measured slower (docs/benchmarks.md, "The measurements behind the code's choices"):
// each thread computes its own slab of C, by columns or by rows, on oneDNN's sgemm alone.
//   - By columns (Tuning::cpu_split_columns), where there are columns for two slabs and
//       - the inner dimension is the longest (k >= m and k >= n): the weight gradients, a
//         sum over all T*B rows of the timeline;
//       - or C is narrow (m <= kNarrowRows): an input projection of few gate rows over all
//         T*B columns.
//   - Else by rows (Tuning::cpu_split_rows), where C is short (16 <= n < 1024: an input
//     projection or input gradient over few timeline rows, at small batches or short
//     sequences) and has rows for two slabs; each thread then reads only its rows of
//     op(A). The per-step products of batches under 16 rows stay whole.
// A split turned off leaves its GEMMs whole (not to the other split), so each choice
// compares its split with the whole GEMM.
struct Split {
  bool rows = false;
  int threads = 0;  // fewer than 2: not split
};

Split split_of(const Gemm<float>& g, const Tuning& tuning) {
  const std::int64_t threads = cpu_step_threads();
  const bool long_k = g.k >= g.m && g.k >= g.n, narrow = g.m <= kNarrowRows;
  const int by_columns = static_cast<int>(std::min(threads, g.n / kSlabColumns));
  if ((long_k || narrow) && by_columns >= 2) {
    return tuning.cpu_split_columns ? Split{false, by_columns} : Split{};
  }
  const int by_rows = static_cast<int>(std::min(threads, g.m / kSlabRows));
  const bool is_short = g.n >= kFewestShortColumns && g.n < kShortColumns;
  if (is_short && by_rows >= 2) return tuning.cpu_split_rows ? Split{true, by_rows} : Split{};
  return {};
}

// Runs g split among the threads (split_of); false, having done nothing, where it is not
// split, oneDNN is not loaded, or the caller is already inside a parallel region. Slabs
// start on multiples of 16 columns or rows (one AVX-512 register of floats).
bool split_among_threads(const Gemm<float>& g, const Tuning& tuning, PassStatistics& statistics) {
  if (onednn_sgemm() == nullptr) return false;
  const Split split = split_of(g, tuning);
  if (split.threads < 2) return false;
#if defined(_OPENMP)
  if (omp_in_parallel()) return false;
#endif
  const std::int64_t extent = split.rows ? g.m : g.n;
  auto start = [&](int s) {
    return s == split.threads ? extent : extent * s / split.threads / 16 * 16;
  };
  on_threads_each_with_onednn_alone(split.threads, [&](int slab, const std::atomic<bool>&) {
    Gemm<float> mine = g;
    const std::int64_t first = start(slab), count = start(slab + 1) - first;
    if (split.rows) {
      mine.m = count;
      mine.a = g.a + (g.trans_a == Trans::N ? first : first * g.lda);
      mine.c = g.c + first;
    } else {
      mine.n = count;
      mine.b = g.b + (g.trans_b == Trans::N ? first * g.ldb : first);
      mine.c = g.c + first * g.ldc;
    }
    onednn_gemm(mine);
  });
  ++(split.rows ? statistics.row_split_gemms : statistics.column_split_gemms);
  return true;
}

// Throws unless every size and leading dimension of g fits the BLAS integer type.
template <typename T>
void check_blas_sizes(const Gemm<T>& g) {
  to_blasint(g.m, "m");
  to_blasint(g.n, "n");
  to_blasint(g.k, "k");
  to_blasint(g.lda, "lda");
  to_blasint(g.ldb, "ldb");
  to_blasint(g.ldc, "ldc");
}

// A float GEMM not on held weights, its sizes checked (check_blas_sizes): split among the
// threads, else on oneDNN's sgemm, else on OpenBLAS's.
void float_gemm(const Gemm<float>& g, const Tuning& tuning, PassStatistics& statistics) {
  if (split_among_threads(g, tuning, statistics)) return;
  if (onednn_gemm(g)) return;
  cblas_sgemm(CblasColMajor, to_cblas(g.trans_a), to_cblas(g.trans_b), static_cast<blasint>(g.m),
              static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, g.a,
              static_cast<blasint>(g.lda), g.b, static_cast<blasint>(g.ldb), g.beta, g.c,
              static_cast<blasint>(g.ldc));
}

// A product's operand as stored (rows x cols, column-major, leading dimension ld), rounded
// to `math`'s format into `out`, packed (leading dimension rows).
void round_operand(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                   Math math, std::vector<float>& out) {
  out.resize(static_cast<std::size_t>(rows * cols));
  const kernels::RoundOperandArgs<float> args{src, rows, cols, ld, format_of(math), out.data()};
  const kernels::RoundOperand<float> round;
  for (std::int64_t c = 0; c < cols; ++c) {
    for (std::int64_t r = 0; r < rows; ++r) round(r, c, args);
  }
}

template <typename Fn>
void for_each_element(std::int64_t n, Fn&& fn) {
  for (std::int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace

// Every float GEMM runs on oneDNN's sgemm when libdnnl is installed (onednn_api.h). It
// measures faster than OpenBLAS at an RNN's GEMM shapes (the forward recurrent product too,
// now that it reads a transposed or packed W_hh; see docs/benchmarks.md), and it runs on
// the OpenMP threads the step loops use: mixing in OpenBLAS's own threads made the two
// pools fight over the cores (docs/benchmarks.md, "Every float GEMM on one library").
// RECUR_CPU_GEMM=openblas (Tuning::cpu_openblas_only) leaves oneDNN unloaded. GEMMs on held weights
// run on oneDNN's matmul instead (onednn_matmul.h).
template <typename T>
void CpuOps<T>::gemm(const Gemm<T>& g) {
  if (g.m == 0 || g.n == 0) return;
  check_blas_sizes(g);
  if (g.k == 0) {  // C = beta C, as BLAS defines it (the libraries disagree on k = 0)
    for (std::int64_t j = 0; j < g.n; ++j) {
      T* c = g.c + j * g.ldc;
      for (std::int64_t i = 0; i < g.m; ++i) c[i] = g.beta == T(0) ? T(0) : g.beta * c[i];
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (this->math() != Math::Fp32) {
      gemm_rounded(g);
      return;
    }
    if (packed_ != nullptr && packed_->run(g)) {
      ++this->statistics().packed_gemms;
      return;
    }
    float_gemm(g, this->tuning(), this->statistics());
  } else {
    cblas_dgemm(CblasColMajor, to_cblas(g.trans_a), to_cblas(g.trans_b), static_cast<blasint>(g.m),
                static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, g.a,
                static_cast<blasint>(g.lda), g.b, static_cast<blasint>(g.ldb), g.beta, g.c,
                static_cast<blasint>(g.ldc));
  }
}

// Reduced math: both operands rounded to the format (a held matrix once per pass,
// hold_weights), then the product of the rounded values accumulated in float32. BF16 runs
// natively on AVX512_BF16 (bf16_gemm.h) where that pays; elsewhere, and for TF32 and FP16,
// it is emulated:
// an exact float32 product of the rounded values (the products of two such values are
// exact in float32; only the accumulation order differs from a tensor core's). oneDNN's
// bf16 matmul measured slower than either on this CPU (docs/benchmarks.md, "The
// measurements behind the code's choices").
template <typename T>
void CpuOps<T>::gemm_rounded(const Gemm<float>& g) {
  const Math math = this->math();
  const RoundedHold* held = rounded_hold_of(g);
  if (held != nullptr) ++this->statistics().packed_gemms;
  if (native_bf16()) {
    if (held == nullptr) bf16_a_.pack(g.a, g.trans_a, g.m, g.k, g.lda);
    bf16_gemm(held != nullptr ? held->packed : bf16_a_, g, bf16_kernel(), bf16_b_);
    ++this->statistics().native_bf16_gemms;
    this->statistics().bf16_tile_gemms += bf16_kernel() == Bf16Kernel::Tiles;
    return;
  }
  const bool a_n = g.trans_a == Trans::N, b_n = g.trans_b == Trans::N;
  const std::int64_t a_rows = a_n ? g.m : g.k, a_cols = a_n ? g.k : g.m;
  const std::int64_t b_rows = b_n ? g.k : g.n, b_cols = b_n ? g.n : g.k;
  if (held == nullptr) round_operand(g.a, a_rows, a_cols, g.lda, math, rounded_a_);
  round_operand(g.b, b_rows, b_cols, g.ldb, math, rounded_b_);
  Gemm<float> r = g;
  r.a = held != nullptr ? held->values.data() : rounded_a_.data();
  r.lda = std::max<std::int64_t>(a_rows, 1);
  r.b = rounded_b_.data();
  r.ldb = std::max<std::int64_t>(b_rows, 1);
  float_gemm(r, this->tuning(), this->statistics());
}

Bf16Kernel cpu_bf16_kernel(const Tuning& tuning) {
  const bool tiles = tuning.cpu_bf16_tiles && bf16_kernel_available(Bf16Kernel::Tiles);
  return tiles ? Bf16Kernel::Tiles : Bf16Kernel::Dot;
}

bool cpu_native_bf16(const Tuning& tuning) {
  if (!bf16_gemm_available()) return false;
  switch (tuning.cpu_native_bf16) {
    case NativeBf16::Off: return false;
    case NativeBf16::ByRule: return bf16_gemm_pays(cpu_bf16_kernel(tuning));
    case NativeBf16::Always: return true;
  }
  return false;
}

template <typename T>
bool CpuOps<T>::native_bf16() const {
  return this->math() == Math::Bf16 && cpu_native_bf16(this->tuning());
}

template <typename T>
Bf16Kernel CpuOps<T>::bf16_kernel() const {
  return cpu_bf16_kernel(this->tuning());
}

// The rounded copy of g's op(A) where it is a held matrix (same a, trans_a, m, k, lda).
template <typename T>
const typename CpuOps<T>::RoundedHold* CpuOps<T>::rounded_hold_of(const Gemm<float>& g) const {
  for (const RoundedHold& h : rounded_holds_) {
    if (h.a == g.a && h.trans == g.trans_a && h.m == g.m && h.k == g.k && h.lda == g.lda) {
      return &h;
    }
  }
  return nullptr;
}

template <typename T>
void CpuOps<T>::gemm_batched(const GemmBatch<T>& g) {
  for (int i = 0; i < g.count; ++i) gemm(gemm_item(g, g.a[i], g.b[i], g.c[i]));
}

template <typename T>
bool CpuOps<T>::runs_wavefronts() const {
  return this->tuning().cpu_wavefront;
}

template <typename T>
bool CpuOps<T>::packs_weights() const {
  // Under reduced math "packed" is "rounded once per pass" (hold_weights).
  return std::is_same_v<T, float> && this->tuning().cpu_pack_weights &&
         (this->math() != Math::Fp32 || PackedGemms::available());
}

namespace {

// The threads a row-parallel run over `rows` batch rows gets (run_step_list): fewer than 2 and
// it is declined.
int row_run_threads(std::int64_t rows) {
  return static_cast<int>(std::min<std::int64_t>(cpu_step_threads(), rows / kRowsPerThread));
}

// The most of one unit's per-step weights a row-parallel run over `rows` rows takes,
// read at `element_bytes` an element (kWideLaneRows above), as elements.
std::int64_t row_run_weight_elements(std::int64_t rows, std::int64_t element_bytes) {
  const int threads = row_run_threads(rows);
  if (threads < 2) return 0;
  if (rows / threads >= kWideLaneRows) return wide_lane_weight_limit() / 4;
  return kNarrowLaneWeightBytes / element_bytes;
}

}  // namespace

template <typename T>
std::int64_t CpuOps<T>::row_run_element_bytes() const {
  return native_bf16() ? 2 : 4;
}

template <typename T>
bool CpuOps<T>::takes_row_runs(std::int64_t weight_elements, std::int64_t rows) const {
  return packs_weights() && (this->math() == Math::Fp32 || native_bf16()) &&
         this->tuning().cpu_row_parallel &&
         weight_elements <= row_run_weight_elements(rows, row_run_element_bytes());
}

template <typename T>
bool CpuOps<T>::hold_weights(const T* a, Trans trans_a, std::int64_t m, std::int64_t k,
                             std::int64_t lda, std::int64_t widest_n) {
  if constexpr (std::is_same_v<T, float>) {
    if (!packs_weights()) return false;
    if (this->math() != Math::Fp32) {
      // Reduced math: the matrix rounded once for the pass, as stored.
      RoundedHold h{a, trans_a, m, k, lda, {}, {}};
      const bool n = trans_a == Trans::N;
      if (native_bf16()) {
        h.packed.pack(a, trans_a, m, k, lda);
      } else {
        round_operand(a, n ? m : k, n ? k : m, lda, this->math(), h.values);
      }
      rounded_holds_.push_back(std::move(h));
      return true;
    }
    if (packed_ == nullptr) packed_ = std::make_unique<PackedGemms>();
    return packed_->hold(a, trans_a, m, k, lda, widest_n);
  }
  return false;
}

// oneDNN keeps a packed copy per layout, backward's beside the forward's; a rounded copy
// lives until the pass ends (release_weights).
template <typename T>
std::int64_t CpuOps<T>::held_weight_bytes(std::int64_t forward, std::int64_t backward) const {
  if (!packs_weights()) return 0;
  if (this->math() == Math::Fp32) return (forward + backward) * 4;
  return std::max(forward, backward) * (native_bf16() ? 2 : 4);
}

template <typename T>
void CpuOps<T>::release_weights() {
  if (packed_ != nullptr) packed_->release();
  rounded_holds_.clear();
}

// Each of OpenMP's threads runs every call on its own slice of the rows; no barrier
// until the run ends. The GEMMs must all be on held weights: each thread runs its share on
// its own PackedGemms lane, with matmuls made inside the region, which oneDNN then runs on
// that thread alone (as dnnl_sgemm, the fallback for a width it has no matmul for). A
// GEMM not on held weights would have nothing single-threaded to run on, so such a run is
// declined before it starts.
template <typename T>
bool CpuOps<T>::run_step_list(const std::vector<StepCall<T>>& calls, std::int64_t rows) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    // Native BF16 runs each lane's products on the weights held rounded and packed, on
    // bf16_gemm alone (one thread inside a parallel region), each lane with its own B.
    const bool bf16 = native_bf16();
    if ((!bf16 && packed_ == nullptr) || !this->tuning().cpu_row_parallel) return false;
    const int threads = row_run_threads(rows);
    if (threads < 2) return false;
    // Every GEMM on held weights, and every unit's weights, each matrix counted once (the
    // lanes read them all at every step), within the limit.
    std::vector<const float*> matrices;
    std::int64_t elements = 0, units = 1;
    for (const StepCall<float>& c : calls) {
      if (c.kind != StepCall<float>::Kind::Gemms) continue;
      const GemmBatch<float>& g = c.gemms;
      if (g.host_a == nullptr) return false;
      units = std::max<std::int64_t>(units, g.count);
      for (int i = 0; i < g.count; ++i) {
        const Gemm<float> item = gemm_item(g, g.host_a[i], g.host_b[i], g.host_c[i]);
        if (bf16 ? rounded_hold_of(item) == nullptr : !packed_->holds(item)) return false;
        if (std::find(matrices.begin(), matrices.end(), g.host_a[i]) != matrices.end()) continue;
        matrices.push_back(g.host_a[i]);
        elements += g.m * g.k;
      }
    }
    if (elements > units * row_run_weight_elements(rows, row_run_element_bytes())) return false;
    if (bf16) {
      if (bf16_lane_b_.size() < static_cast<std::size_t>(threads)) bf16_lane_b_.resize(threads);
    } else {
      packed_->prepare_lanes(threads);
    }
    std::atomic<std::int64_t> packed_runs{0}, native_runs{0};
    on_threads_each_with_onednn_alone(threads, [&](int lane, const std::atomic<bool>& failed) {
      const std::int64_t b0 = rows * lane / threads, b1 = rows * (lane + 1) / threads;
      for (const StepCall<float>& c : calls) {
        if (failed.load(std::memory_order_relaxed)) break;
        switch (c.kind) {
          case StepCall<float>::Kind::Gemms: {
            const GemmBatch<float>& g = c.gemms;
            const std::int64_t end = std::min(b1, g.n);
            if (end <= b0) break;
            for (int i = 0; i < g.count; ++i) {
              // Rows are columns of B and C.
              Gemm<float> mine =
                  gemm_item(g, g.host_a[i], g.host_b[i] + b0 * g.ldb, g.host_c[i] + b0 * g.ldc);
              mine.n = end - b0;
              if (bf16) {
                bf16_gemm(rounded_hold_of(mine)->packed, mine, bf16_kernel(), bf16_lane_b_[lane]);
                ++native_runs;
                ++packed_runs;
              } else if (packed_->run(mine, lane + 1)) {
                ++packed_runs;
              } else if (!onednn_gemm(mine)) {
                throw Error("recur: CpuOps::run_step_list: no single-threaded GEMM for m = " +
                            std::to_string(mine.m) + ", n = " + std::to_string(mine.n));
              }
            }
            break;
          }
          case StepCall<float>::Kind::Forward:
            for (const StepForward<float>& a : c.forward) {
              const std::int64_t end = std::min(b1, a.active);
              if (end > b0) cpu_step_rows(c.step, a, b0, end);
            }
            break;
          case StepCall<float>::Kind::Backward:
            for (const StepBackward<float>& a : c.backward) {
              const std::int64_t end = std::min(b1, a.active);
              if (end > b0) cpu_step_rows(c.step, a, b0, end);
            }
            break;
        }
      }
    });
    ++this->statistics().row_parallel_runs;
    this->statistics().packed_gemms += packed_runs.load();
    this->statistics().native_bf16_gemms += native_runs.load();
    if (bf16_kernel() == Bf16Kernel::Tiles)
      this->statistics().bf16_tile_gemms += native_runs.load();
    return true;
  }
}

template <typename T>
const void* const* CpuOps<T>::stage_pointers(const void* const* host, std::size_t) {
  return host;
}

template <typename T>
const std::int64_t* CpuOps<T>::stage_indices(const std::int64_t* host, std::size_t) {
  return host;
}

template <typename T>
void CpuOps<T>::gather(const GatherArgs<T>& args) {
  const kernels::GatherRows<T> functor;
  for_each_element(args.rows * args.width, [&](std::int64_t i) { functor(i, args); });
}

template <typename T>
void CpuOps<T>::transpose(const TransposeArgs<T>& args) {
  cpu_transpose(args, threaded_steps());
}

// The step loops share OpenMP's threads only when the GEMMs run on them too (oneDNN):
// next to OpenBLAS's own threads they would compete for the same cores.
bool cpu_float_loops_threaded() { return onednn_sgemm() != nullptr; }

template <typename T>
int CpuOps<T>::make_current() {
#if defined(_OPENMP)
  // Inside a caller's parallel region recur's regions get one thread anyway.
  if (!threaded_steps() || omp_in_parallel()) return -1;
  const int most = omp_get_max_threads();
  const int use = this->tuning().cpu_thread_governor ? governed_thread_count(most) : most;
  if (use == most) return -1;
  omp_set_num_threads(use);  // oneDNN's sgemm and the step loops both read it
  return most;
#else
  return -1;
#endif
}

template <typename T>
void CpuOps<T>::restore(int previous) {
#if defined(_OPENMP)
  if (previous > 0) omp_set_num_threads(previous);
#else
  (void)previous;
#endif
}

template <typename T>
bool CpuOps<T>::threaded_steps() const {
  if constexpr (std::is_same_v<T, float>) return cpu_float_loops_threaded();
  return false;
}

template <typename T>
void CpuOps<T>::step_forward(StepKind kind, const StepForward<T>* units, int count) {
  cpu_step_forward(kind, units, count, threaded_steps());
}

template <typename T>
void CpuOps<T>::step_backward(StepKind kind, const StepBackward<T>* units, int count) {
  cpu_step_backward(kind, units, count, threaded_steps());
}

template <typename T>
void CpuOps<T>::connection(ConnectionKind kind, const ConnectionArgs<T>& args) {
  kernels::dispatch_connection<T>(kind, [&](auto functor) {
    for_each_element(args.rows * args.width, [&](std::int64_t i) { functor(i, args); });
  });
}

template <typename T>
void CpuOps<T>::flow(const FlowArgs<T>* units, int count) {
  for (int u = 0; u < count; ++u) {
    double lanes[kernels::kFlowLanes];
    for (int k = 0; k < kernels::kFlowLanes; ++k) lanes[k] = kernels::flow_lane_sum(units[u], k);
    for (int stride = kernels::kFlowLanes / 2; stride > 0; stride /= 2) {
      for (int k = 0; k < stride; ++k) kernels::flow_tree_step(lanes, k, stride);
    }
    *units[u].out = lanes[0];
  }
}

// The default's GEMM against columns of ones is a matrix-vector product, which oneDNN's
// sgemm reads at a fraction of the bandwidth that summing the rows directly reaches
// (docs/benchmarks.md, the column sums). The sums are kept in double.
template <typename T>
void CpuOps<T>::add_column_sums(const T* src, std::int64_t rows, std::int64_t cols, T* dst, T* dst2,
                                const T* /*ones*/) {
  cpu_add_column_sums(src, rows, cols, dst, dst2, threaded_steps());
}

template <typename T>
void CpuOps<T>::fill(T* dst, std::int64_t n, T value) {
  cpu_fill(dst, n, value, threaded_steps());
}

template <typename T>
void CpuOps<T>::copy(T* dst, const T* src, std::int64_t n) {
  if (n > 0) cpu_copy(dst, src, n, threaded_steps());
}

template <typename T>
void CpuOps<T>::copy_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                          std::int64_t rows, std::int64_t width) {
  cpu_copy_rows(dst, ld_dst, src, ld_src, rows, width, threaded_steps());
}

template <typename T>
void CpuOps<T>::add_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                         std::int64_t rows, std::int64_t width) {
  cpu_add_rows(dst, ld_dst, src, ld_src, rows, width, threaded_steps());
}

const char* cpu_sgemm_library() { return onednn_sgemm() != nullptr ? "oneDNN" : "OpenBLAS"; }

std::int64_t cpu_row_run_weight_elements(std::int64_t rows, std::int64_t element_bytes) {
  return row_run_weight_elements(rows, element_bytes);
}

template class CpuOps<float>;
template class CpuOps<double>;

}  // namespace recur::detail
