// src/ops.h: the backend interface the algorithm is written against.
//
// The algorithm (src/pass/) drives every backend through these calls and never
// knows which one it has. Both backends receive exactly the same arguments: GEMMs are
// column-major BLAS calls with the same transposes, leading dimensions and offsets, so a
// CPU test checks the GEMM bookkeeping that the GPU will execute. All pointers are
// memory of the backend's device. Calls are ordered: on the GPU they are queued on one
// stream and return before the work is done; on the CPU they run at once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../kernels/dispatch.h"
#include "../kernels/flow.cuh"
#include "../kernels/step_args.h"
#include "pass_statistics.h"
#include "recur/config.h"
#include "recur/device.h"
#include "tuning.h"

namespace recur::detail {

using kernels::ConnectionArgs;
using kernels::ConnectionKind;
using kernels::FlowArgs;
using kernels::GatherArgs;
using kernels::StepBackward;
using kernels::StepForward;
using kernels::StepKind;
using kernels::TransposeArgs;

enum class Trans { N, T };

// C = alpha * op(A) * op(B) + beta * C, column-major; op(A) is m x k, op(B) k x n.
template <typename T>
struct Gemm {
  Trans trans_a = Trans::N, trans_b = Trans::N;
  std::int64_t m = 0, n = 0, k = 0;
  T alpha = T(1);
  const T* a = nullptr;
  std::int64_t lda = 0;
  const T* b = nullptr;
  std::int64_t ldb = 0;
  T beta = T(0);
  T* c = nullptr;
  std::int64_t ldc = 0;

  // Built by parts, so that every argument is named where it is given:
  //   Gemm<T>::op(Trans::T, Trans::N).shape(m, n, k).from(w, lda, x, ldb).into(y, ldc)
  // is y = W^T x; .accumulate() adds into C instead (beta 1), .scale(alpha, beta) sets both.
  static Gemm op(Trans ta, Trans tb) {
    Gemm g;
    g.trans_a = ta;
    g.trans_b = tb;
    return g;
  }
  Gemm& shape(std::int64_t rows, std::int64_t cols, std::int64_t inner) {
    m = rows;
    n = cols;
    k = inner;
    return *this;
  }
  Gemm& from(const T* a_, std::int64_t lda_, const T* b_, std::int64_t ldb_) {
    a = a_;
    lda = lda_;
    b = b_;
    ldb = ldb_;
    return *this;
  }
  Gemm& into(T* c_, std::int64_t ldc_) {
    c = c_;
    ldc = ldc_;
    return *this;
  }
  Gemm& accumulate(bool add = true) {
    beta = add ? T(1) : T(0);
    return *this;
  }
  Gemm& scale(T alpha_, T beta_) {
    alpha = alpha_;
    beta = beta_;
    return *this;
  }
};

// `count` GEMMs of one shape with their own A, B, C: a[i], b[i], c[i]. The three arrays
// live in memory the backend reads (see Ops::stage_pointers).
template <typename T>
struct GemmBatch {
  Trans trans_a = Trans::N, trans_b = Trans::N;
  std::int64_t m = 0, n = 0, k = 0;
  T alpha = T(1);
  const T* const* a = nullptr;
  std::int64_t lda = 0;
  const T* const* b = nullptr;
  std::int64_t ldb = 0;
  T beta = T(0);
  T* const* c = nullptr;
  std::int64_t ldc = 0;
  int count = 0;
  // The same three arrays in host memory, or nullptr where the caller has none: a backend
  // may run the GEMMs one by one from these instead of reading the staged arrays.
  const T* const* host_a = nullptr;
  const T* const* host_b = nullptr;
  T* const* host_c = nullptr;
  // Whether the items may run as parallel branches of a recorded graph, where the backend
  // runs them one GEMM each (the pass plan's branches_pay()).
  bool branches = false;
};

// The GEMM of a batch's shape on one item's matrices.
template <typename T>
Gemm<T> gemm_item(const GemmBatch<T>& g, const T* a, const T* b, T* c) {
  Gemm<T> one;
  one.trans_a = g.trans_a;
  one.trans_b = g.trans_b;
  one.m = g.m;
  one.n = g.n;
  one.k = g.k;
  one.alpha = g.alpha;
  one.a = a;
  one.lda = g.lda;
  one.b = b;
  one.ldb = g.ldb;
  one.beta = g.beta;
  one.c = c;
  one.ldc = g.ldc;
  return one;
}

// One call of a run of steps (Ops::run_step_list): a batch of GEMMs whose columns are batch rows
// (host arrays set), or one step kernel over several units.
template <typename T>
struct StepCall {
  enum class Kind { Gemms, Forward, Backward };
  Kind kind = Kind::Gemms;
  GemmBatch<T> gemms;
  StepKind step = StepKind::Lstm;
  std::vector<StepForward<T>> forward;
  std::vector<StepBackward<T>> backward;
};

template <typename T>
class Ops {
 public:
  virtual ~Ops() = default;

  virtual Device device() const = 0;

  // The model's tuning choices (tuning.h); the backend reads its own from here.
  const Tuning& tuning() const { return tuning_; }
  virtual void set_tuning(const Tuning& tuning) { tuning_ = tuning; }
  // The arithmetic of the model's products (recur/config.h's Math): every gemm and
  // gemm_batched takes its operands rounded to the format; column sums stay float32.
  Math math() const { return math_; }
  virtual void set_math(Math math) { math_ = math; }
  // What the backend counted since the engine last cleared it (one pass), for tests.
  PassStatistics& statistics() { return statistics_; }

  // The queue the backend's work goes to (a cudaStream_t), or nullptr on the CPU.
  virtual void* stream() const { return nullptr; }
  virtual void set_stream(void* /*stream*/) {}
  // Waits until all queued work is done.
  virtual void synchronize() {}
  // Makes the backend's device current for the calling thread; returns what to hand to
  // restore() afterwards (see OpsScope).
  virtual int make_current() { return -1; }
  virtual void restore(int /*previous*/) {}

  virtual void gemm(const Gemm<T>& g) = 0;
  virtual void gemm_batched(const GemmBatch<T>& g) = 0;

  // Whether unidirectional stacks run as a wavefront (src/pass/pass_plan.h): its T+L-1 waves pay
  // where one step's GEMMs cannot fill the device (the GPU). The CPU's cores are already
  // busy with one step, so it runs them layer by layer (cpu_ops.h).
  virtual bool runs_wavefronts() const { return true; }

  // Whether hold_weights() keeps packed copies: the CPU's float GEMMs do when oneDNN's C
  // API is loaded (cpu/onednn_matmul.h); cuBLAS has no such form. A pass whose weights are
  // held needs no transposed copy of them (src/pass/pass_plan.h).
  virtual bool packs_weights() const { return false; }
  // Whether run_step_list would take a layer-by-layer pass's steps on held weights of
  // `weight_elements` elements a unit, over `rows` batch rows: lets a caller hold weights
  // whose GEMMs pay only when row-parallel (src/pass/pass_plan.h).
  virtual bool takes_row_runs(std::int64_t /*weight_elements*/, std::int64_t /*rows*/) const {
    return false;
  }
  // Weights a pass multiplies by again and again (W_hh at every step). Until
  // release_weights(), a GEMM with alpha 1 whose op(A) is exactly this one (a, trans_a, m,
  // k, lda; see Gemm) may read a copy the backend laid out for its GEMM, made here once
  // instead of at every call, and chosen for GEMMs of widest_n columns (the pass's rows per
  // step; wider ones may use it too). The caller keeps `a` unchanged meanwhile. Returns
  // whether a copy was made; without one, the GEMMs read `a` as usual.
  virtual bool hold_weights(const T* /*a*/, Trans /*trans_a*/, std::int64_t /*m*/,
                            std::int64_t /*k*/, std::int64_t /*lda*/, std::int64_t /*widest_n*/) {
    return false;
  }
  virtual void release_weights() {}
  // The most bytes hold_weights keeps at once over a forward pass that holds matrices of
  // `forward` elements in all and the backward after it, which holds `backward` (0 for
  // inference) (src/engine/memory_model.cpp).
  virtual std::int64_t held_weight_bytes(std::int64_t /*forward*/,
                                         std::int64_t /*backward*/) const {
    return 0;
  }

  // Runs `calls` in order, as gemm_batched, step_forward and step_backward would, where
  // every call reads and writes only batch rows (GEMM columns, kernel rows) and row b of a
  // call depends on row b of the calls before it and on nothing else: the time steps of a
  // layer-by-layer pass. The backend may then give each thread every call on its own rows,
  // with no barrier between steps; it returns true when it did so, or false having done
  // nothing, and the caller makes the calls one by one. `rows`: the widest call's rows.
  virtual bool run_step_list(const std::vector<StepCall<T>>& /*calls*/, std::int64_t /*rows*/) {
    return false;
  }
  // Whether run_step_list wants every layer-by-layer pass's steps as one list, whatever the
  // per-step weights (the GPU with CUDA graphs on, which replays a recorded list).
  virtual bool replays_call_lists() const { return false; }

  // Makes `calls` one by one, in order: what run_step_list does when it declines.
  void run_calls(const std::vector<StepCall<T>>& calls) {
    for (const StepCall<T>& c : calls) {
      switch (c.kind) {
        case StepCall<T>::Kind::Gemms: gemm_batched(c.gemms); break;
        case StepCall<T>::Kind::Forward:
          step_forward(c.step, c.forward.data(), static_cast<int>(c.forward.size()));
          break;
        case StepCall<T>::Kind::Backward:
          step_backward(c.step, c.backward.data(), static_cast<int>(c.backward.size()));
          break;
      }
    }
  }

  // Makes a host array of `count` pointers readable by gemm_batched and returns where
  // it lives (the host array itself on the CPU, a device copy on the GPU). The algorithm
  // stages all tables of a pass at once, before the time loop; the result stays valid
  // until the next call. On the GPU the copy is queued on the stream.
  virtual const void* const* stage_pointers(const void* const* host, std::size_t count) = 0;
  // The same for a table of row indices (gather).
  virtual const std::int64_t* stage_indices(const std::int64_t* host, std::size_t count) = 0;

  // One fused element-wise gate kernel over B*H elements, for `count` units (layer-
  // directions) at once (kernels/dispatch.h).
  virtual void step_forward(StepKind kind, const StepForward<T>* units, int count) = 0;
  virtual void step_backward(StepKind kind, const StepBackward<T>* units, int count) = 0;

  // The element-wise kernel of a connection, over rows*width elements.
  virtual void connection(ConnectionKind kind, const ConnectionArgs<T>& args) = 0;

  // dst row r = src row index[r], zeros where index[r] < 0 (kernels/gather.cuh); `index`
  // comes from stage_indices.
  virtual void gather(const GatherArgs<T>& args) = 0;

  // dst = src^T for a packed row-major [rows, cols] src (kernels/gather.cuh).
  virtual void transpose(const TransposeArgs<T>& args) = 0;

  // Gradient-flow diagnostics: for each of `count` blocks, *out = sum of (a + b)^2 in
  // double (kernels/flow.cuh: the same lanes and tree on both backends). Only a backward
  // pass asked to record the flow calls it.
  virtual void flow(const FlowArgs<T>* units, int count) = 0;

  // Bias gradients: dst[c] += the sum over r < rows of src[r * cols + c], for c < cols
  // (src packed [rows, cols]), and the same sum into dst2 unless it is null. `ones` holds
  // 2*rows ones: by default the sums are GEMMs against columns of them, one GEMM with two
  // columns where dst2 == dst + cols (b_hh follows b_ih).
  virtual void add_column_sums(const T* src, std::int64_t rows, std::int64_t cols, T* dst, T* dst2,
                               const T* ones) {
    if (dst2 != nullptr && dst2 == dst + cols) {
      gemm(Gemm<T>::op(Trans::N, Trans::N)
               .shape(cols, 2, rows)
               .from(src, cols, ones, rows)
               .into(dst, cols)
               .accumulate());
      return;
    }
    for (T* d : {dst, dst2}) {
      if (d != nullptr) {
        gemm(Gemm<T>::op(Trans::N, Trans::N)
                 .shape(cols, 1, rows)
                 .from(src, cols, ones, rows)
                 .into(d, cols)
                 .accumulate());
      }
    }
  }

  // dst[0..n) = value
  virtual void fill(T* dst, std::int64_t n, T value) = 0;
  // dst[0..n) = src[0..n), both on this device, not overlapping
  virtual void copy(T* dst, const T* src, std::int64_t n) = 0;
  // rows x width elements between strided layouts: dst[r*ld_dst + k] = src[r*ld_src + k]
  virtual void copy_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                         std::int64_t rows, std::int64_t width) = 0;
  // The same, adding: dst[r*ld_dst + k] += src[r*ld_src + k]
  virtual void add_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                        std::int64_t rows, std::int64_t width) = 0;

 private:
  Tuning tuning_;
  Math math_ = Math::Fp32;
  PassStatistics statistics_;
};

// Keeps the backend's device current for a scope, then restores the caller's.
template <typename T>
class OpsScope {
 public:
  explicit OpsScope(Ops<T>& ops) : ops_(ops), previous_(ops.make_current()) {}
  ~OpsScope() { ops_.restore(previous_); }
  OpsScope(const OpsScope&) = delete;
  OpsScope& operator=(const OpsScope&) = delete;

 private:
  Ops<T>& ops_;
  int previous_;
};

// The backend for `device`: CpuOps for the CPU, CudaOps for a GPU, tuned as the
// environment says (environment_tuning()).
template <typename T>
std::unique_ptr<Ops<T>> make_ops(Device device);

}  // namespace recur::detail
