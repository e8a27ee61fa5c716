// src/cuda/cuda_ops.cpp: CudaOps. Every call is asynchronous on the model's stream and
// checked. Nothing here waits for the device or allocates once a shape has run: the first
// pass of a shape grows the staged tables and, under reduced math, makes the working
// copies and grows the scratch (waiting for the stream where memory a queued kernel may
// read is replaced), and records graphs.
#include "cuda_ops.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "../../kernels/flow.h"
#include "../../kernels/launch.h"
#include "blas_args.h"
#include "check.h"
#include "device_memory.h"
#include "graph_cache.h"
#include "handles.h"
#include "reduced_gemms.h"

namespace recur::detail {
namespace {

// Auto runs a batch of backward's shape (k > m) as one batched GEMM from
// Tuning::cuda_batched_from items up, and for m up to this many rows; see gemm_batched.
constexpr std::int64_t kBatchedBackwardMaxRows = 512;

template <typename T>
class CudaOps final : public Ops<T> {
 public:
  explicit CudaOps(int index) : index_(index) {
    DeviceGuard guard(index_);
    // A blocking stream: legacy-default-stream copies order themselves after it.
    own_stream_ = make_stream(cudaStreamDefault);
    stream_ = own_stream_.get();
    blas_ = make_blas(stream_);
  }

  // Releases everything on the model's device, once its queued work is done; the owners
  // would release the same in any order, but not with the device current.
  ~CudaOps() override {
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) return;
    cudaSetDevice(index_);
    cudaStreamSynchronize(stream_);
    graphs_.clear();
    sides_.clear();
    fork_.reset();
    workspace_.reset();
    scratch_ = OperandScratch();
    reduced_ = ReducedGemms();
    table_.reset();
    rows_.reset();
    blas_.reset();
    own_stream_.reset();
    cudaSetDevice(previous);
  }

  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  Device device() const override { return Device::cuda(index_); }

  int make_current() override {
    int previous = 0;
    RECUR_CUDA_CHECK(cudaGetDevice(&previous));
    if (previous != index_) RECUR_CUDA_CHECK(cudaSetDevice(index_));
    return previous;
  }

  void restore(int previous) override {
    if (previous != index_) cudaSetDevice(previous);
  }

  void* stream() const override { return stream_; }

  void set_stream(void* stream) override {
    cudaStream_t s = stream != nullptr ? static_cast<cudaStream_t>(stream) : own_stream_.get();
    // The staged tables, the scratch, the working copies and the pooled workspaces are
    // reused by the next pass, on the new stream, which nothing orders after the old one.
    if (s != stream_ && stream_ != nullptr) RECUR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    RECUR_CUBLAS_CHECK(cublasSetStream(blas_.get(), s));
    // cublasSetStream puts cuBLAS back on its default workspace; keep the graphs' one.
    if (workspace_) {
      RECUR_CUBLAS_CHECK(cublasSetWorkspace(blas_.get(), workspace_.get(), kWorkspaceBytes));
    }
    stream_ = s;
    capture_refused_ = false;  // a stream of its own may record where the legacy one refused
  }

  void synchronize() override { RECUR_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  // A graph replays the batching and branching it was recorded with: another choice
  // starts the recordings again.
  void set_tuning(const Tuning& tuning) override {
    const Tuning& now = this->tuning();
    if (tuning.cuda_graphs != now.cuda_graphs ||
        tuning.cuda_batched_gemm != now.cuda_batched_gemm ||
        tuning.cuda_batched_from != now.cuda_batched_from ||
        tuning.cuda_graph_branches != now.cuda_graph_branches) {
      drop_graphs();
    }
    Ops<T>::set_tuning(tuning);
  }

  // Tf32, Bf16 and Fp16: every GEMM rounds its operands as the CPU does (ReducedGemms).
  // (The validation in plan.cpp keeps float64 models at Fp32.)
  void set_math(Math math) override {
    if (math != this->math()) drop_graphs();
    reduced_.set_math(math, stream_);
    Ops<T>::set_math(math);
  }

  // Column sums (bias gradients) stay float32 whatever the math, as on the CPU.
  void add_column_sums(const T* src, std::int64_t rows, std::int64_t cols, T* dst, T* dst2,
                       const T* ones) override {
    exact_sums_ = true;
    try {
      Ops<T>::add_column_sums(src, rows, cols, dst, dst2, ones);
    } catch (...) {
      exact_sums_ = false;
      throw;
    }
    exact_sums_ = false;
  }

  // While recording, the graph's own scratch (record()), which no launch outside it moves.
  void gemm(const Gemm<T>& g) override {
    gemm_on(blas_.get(), recording_ ? graph_scratch_[0] : scratch_, stream_, g);
  }

  // Under reduced math the per-step weights get a rounded working copy, made here once per
  // pass (ReducedGemms::hold); that is what "packed" means on the GPU.
  bool packs_weights() const override { return rounds_operands(); }

  bool hold_weights(const T* a, Trans trans_a, std::int64_t m, std::int64_t k, std::int64_t lda,
                    std::int64_t /*widest_n*/) override {
    if constexpr (std::is_same_v<T, float>) {
      if (!rounds_operands()) return false;
      if (reduced_.hold(a, trans_a, m, k, lda, stream_)) graphs_.clear();
      return true;
    } else {
      return false;
    }
  }

  void release_weights() override { reduced_.release(); }
  // The copies stay from pass to pass: backward's (as stored) beside the forward's
  // (transposed).
  std::int64_t held_weight_bytes(std::int64_t forward, std::int64_t backward) const override {
    if (!rounds_operands()) return 0;
    return (forward + backward) * static_cast<std::int64_t>(reduced_.element_bytes());
  }

  // For one item the pointer-array batched GEMM picks one large tile whatever the shape,
  // where the plain GEMM splits K and fills the GPU; with several items it runs them side
  // by side and wins at the forward step's shape (m = gates*H >= k = H), but at the
  // backward one (k > m) it does not split K, and wins only from several items and small m
  // (docs/benchmarks.md, "The measurements behind the code's choices",
  // "Batched GEMMs on the GPU"). So Auto runs one GEMM per item for one item, and for a
  // batch of backward's shape with fewer than Tuning::cuda_batched_from items or m >
  // kBatchedBackwardMaxRows.
  void gemm_batched(const GemmBatch<T>& g) override {
    if (g.m == 0 || g.n == 0 || g.count == 0) return;
    const Tuning& tuning = this->tuning();
    const CudaBatchedGemm choice = tuning.cuda_batched_gemm;
    // Rounded operands are per item: the pointer-array GEMM would read the float32 ones.
    const bool per_item =
        rounds_operands() || choice == CudaBatchedGemm::PerItem ||
        (choice == CudaBatchedGemm::Auto &&
         (g.count == 1 ||
          (g.k > g.m && (g.count < tuning.cuda_batched_from || g.m > kBatchedBackwardMaxRows))));
    if (g.host_a == nullptr && rounds_operands()) {
      // The pointer-array GEMM below would multiply the float32 operands unrounded.
      throw Error("CudaOps::gemm_batched", "g.host_a",
                  "the items' host pointer tables (reduced math rounds each item's operands)",
                  "none");
    }
    if (g.host_a != nullptr && per_item) {
      // While recording, the items may become parallel branches of the graph.
      if (recording_ && g.count > 1 && branches(g)) {
        gemm_items_side_by_side(g);
        ++this->statistics().branched_batches;
        return;
      }
      for (int i = 0; i < g.count; ++i) gemm(gemm_item(g, g.host_a[i], g.host_b[i], g.host_c[i]));
      return;
    }
    const int m = to_int(g.m, "m"), n = to_int(g.n, "n"), k = to_int(g.k, "k");
    const int lda = to_int(g.lda, "lda"), ldb = to_int(g.ldb, "ldb"), ldc = to_int(g.ldc, "ldc");
    if constexpr (std::is_same_v<T, float>) {
      RECUR_CUBLAS_CHECK(cublasSgemmBatched(blas_.get(), to_cublas(g.trans_a), to_cublas(g.trans_b),
                                            m, n, k, &g.alpha, g.a, lda, g.b, ldb, &g.beta, g.c,
                                            ldc, g.count));
    } else {
      RECUR_CUBLAS_CHECK(cublasDgemmBatched(blas_.get(), to_cublas(g.trans_a), to_cublas(g.trans_b),
                                            m, n, k, &g.alpha, g.a, lda, g.b, ldb, &g.beta, g.c,
                                            ldc, g.count));
    }
  }

  bool replays_call_lists() const override { return this->tuning().cuda_graphs != CudaGraphs::Off; }

  // With CUDA graphs on (the default): a pass's list of steps (a layer's, or a whole
  // wavefront's) runs as one graph, recorded the second time a list with its signature
  // comes (Always: the first) and replayed after that, so the host no longer launches two
  // to four kernels (and a cuBLAS call) per time step. The graph reads pointer tables and
  // buffers where the list says, at replay time. A list seen once runs launch by launch:
  // batches whose lengths differ call after call never pay for a recording they would not
  // replay. Not on a stream that refused a capture (the legacy default stream), nor inside
  // a capture of the caller's (which staging refuses first: refuse_callers_capture).
  bool run_step_list(const std::vector<StepCall<T>>& calls, std::int64_t /*rows*/) override {
    const CudaGraphs mode = this->tuning().cuda_graphs;
    if (mode == CudaGraphs::Off || calls.empty() || capture_refused_) return false;
    if (capturing(stream_)) return false;
    std::string key = graph_signature(calls);
    if (rounds_operands()) key += reduced_signature();
    cudaGraphExec_t exec = graphs_.find(key);
    if (exec != nullptr) {
      ++this->statistics().graph_replays;
    } else {
      if (mode == CudaGraphs::Repeated && !graphs_.seen_before(key)) return false;
      exec = record(calls, std::move(key));
      if (exec == nullptr) return false;
    }
    RECUR_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
    return true;
  }

  const void* const* stage_pointers(const void* const* host, std::size_t count) override {
    refuse_callers_capture();
    if (count == 0) return nullptr;
    if (count > table_capacity_) {
      // Growing happens once per new shape, never inside a time loop.
      table_.reset();
      table_capacity_ = 0;
      table_ = make_device_memory(count * sizeof(void*));
      table_capacity_ = count;
    }
    RECUR_CUDA_CHECK(cudaMemcpyAsync(table_.get(), host, count * sizeof(void*),
                                     cudaMemcpyHostToDevice, stream_));
    return static_cast<const void* const*>(table_.get());
  }

  const std::int64_t* stage_indices(const std::int64_t* host, std::size_t count) override {
    refuse_callers_capture();
    if (count == 0) return nullptr;
    if (count > rows_capacity_) {
      rows_.reset();
      rows_capacity_ = 0;
      rows_ = make_device_memory(count * sizeof(std::int64_t));
      rows_capacity_ = count;
    }
    RECUR_CUDA_CHECK(cudaMemcpyAsync(rows_.get(), host, count * sizeof(std::int64_t),
                                     cudaMemcpyHostToDevice, stream_));
    return static_cast<const std::int64_t*>(rows_.get());
  }

  void gather(const GatherArgs<T>& args) override { kernels::launch_gather(args, stream_); }

  void transpose(const TransposeArgs<T>& args) override {
    kernels::launch_transpose(args, stream_);
  }

  void step_forward(StepKind kind, const StepForward<T>* units, int count) override {
    kernels::launch_step_forward(kind, units, count, stream_);
  }

  void step_backward(StepKind kind, const StepBackward<T>* units, int count) override {
    kernels::launch_step_backward(kind, units, count, stream_);
  }

  void connection(ConnectionKind kind, const ConnectionArgs<T>& args) override {
    kernels::launch_connection(kind, args, stream_);
  }

  void flow(const FlowArgs<T>* units, int count) override {
    kernels::launch_flow(units, count, stream_);
  }

  void copy_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src, std::int64_t rows,
                 std::int64_t width) override {
    if (rows == 0 || width == 0) return;
    RECUR_CUDA_CHECK(cudaMemcpy2DAsync(
        dst, static_cast<std::size_t>(ld_dst) * sizeof(T), src,
        static_cast<std::size_t>(ld_src) * sizeof(T), static_cast<std::size_t>(width) * sizeof(T),
        static_cast<std::size_t>(rows), cudaMemcpyDeviceToDevice, stream_));
  }

  // cuBLAS's geam in place (C = A + B with C = A): dst is column-major width x rows.
  void add_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src, std::int64_t rows,
                std::int64_t width) override {
    if (rows == 0 || width == 0) return;
    const int m = to_int(width, "width"), n = to_int(rows, "rows");
    const int ldc = to_int(ld_dst, "ld_dst"), ldb = to_int(ld_src, "ld_src");
    const T one = T(1);
    if constexpr (std::is_same_v<T, float>) {
      RECUR_CUBLAS_CHECK(cublasSgeam(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, &one, dst, ldc,
                                     &one, src, ldb, dst, ldc));
    } else {
      RECUR_CUBLAS_CHECK(cublasDgeam(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, &one, dst, ldc,
                                     &one, src, ldb, dst, ldc));
    }
  }

  void fill(T* dst, std::int64_t n, T value) override {
    kernels::launch_fill(dst, n, value, stream_);
  }

  void copy(T* dst, const T* src, std::int64_t n) override {
    if (n == 0) return;
    RECUR_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(T),
                                     cudaMemcpyDeviceToDevice, stream_));
  }

 private:
  // Records `calls` into a graph (they run when it is launched), or returns null, having
  // run nothing, where the stream refuses to record.
  cudaGraphExec_t record(const std::vector<StepCall<T>>& calls, std::string key) {
    if (!workspace_) {
      // cuBLAS must not allocate while a stream records: give it its workspace first.
      DeviceMemory workspace = make_device_memory(kWorkspaceBytes);
      RECUR_CUBLAS_CHECK(cublasSetWorkspace(blas_.get(), workspace.get(), kWorkspaceBytes));
      workspace_ = std::move(workspace);
    }
    // Side streams, their cuBLAS handles and workspaces now, for the batches that will
    // branch: nothing may be made or allocated while the stream records.
    int widest = 1;
    for (const StepCall<T>& c : calls) {
      if (c.kind == StepCall<T>::Kind::Gemms && branches(c.gemms)) {
        widest = std::max(widest, c.gemms.count);
      }
    }
    if (widest > 1) add_side_streams(widest - 1);
    // The graph's rounded operands: a scratch for each stream it runs GEMMs on, its own
    // for as long as it is kept.
    std::vector<OperandScratch> scratch(static_cast<std::size_t>(widest));
    if (rounds_operands()) {
      const std::size_t bytes = scratch_bytes(calls);
      for (std::size_t i = 0; i < scratch.size(); ++i) {
        scratch[i].reserve(bytes, i == 0 ? stream_ : sides_[i - 1].stream.get());
      }
    }
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it, and launch as before from now on
      capture_refused_ = true;
      return nullptr;
    }
    recording_ = true;
    graph_scratch_ = scratch.data();
    try {
      this->run_calls(calls);
    } catch (...) {
      recording_ = false;
      graph_scratch_ = nullptr;
      cudaGraph_t partial = nullptr;
      cudaStreamEndCapture(stream_, &partial);
      const Graph discarded(partial);
      throw;
    }
    recording_ = false;
    graph_scratch_ = nullptr;
    cudaGraph_t recorded = nullptr;
    RECUR_CUDA_CHECK(cudaStreamEndCapture(stream_, &recorded));
    const Graph graph(recorded);
    cudaGraphExec_t instantiated = nullptr;
    RECUR_CUDA_CHECK(cudaGraphInstantiate(&instantiated, graph.get(), 0));
    ++this->statistics().graph_captures;
    std::vector<DeviceMemory> kept;
    for (OperandScratch& s : scratch) kept.push_back(s.take());
    // The oldest graph goes when the cache is full, its scratch with it: none may still run.
    if (graphs_.full()) synchronize();
    return graphs_.add(std::move(key), GraphExec(instantiated), std::move(kept));
  }

  // A stream beside the model's, with its own cuBLAS handle (and so its own workspace) and
  // an event marking the end of the work queued on it.
  struct SideStream {
    Stream stream;
    BlasHandle blas;
    Event done;
    DeviceMemory workspace;  // its cuBLAS's, once it records graph branches
  };

  // Every recorded graph goes, after the stream's work: their own scratch goes with them,
  // and none may still be running.
  void drop_graphs() {
    synchronize();
    graphs_.clear();
  }

  // A pass stages its tables and row indices from host memory that lives for the call
  // only: a caller's graph would record copies from freed memory. (recur records its own
  // graphs of a pass's step lists, Tuning::cuda_graphs.)
  void refuse_callers_capture() const {
    if (!recording_ && capturing(stream_)) {
      throw Error(
          "Rnn: the model's CUDA stream is capturing a graph of the caller's: a pass "
          "stages its tables from host memory that lives for the call only, so it "
          "cannot be captured (recur records and replays its own graphs of the step "
          "lists)");
    }
  }

  // Whether GEMMs round their operands (a float32 model under Tf32, Bf16 or Fp16), except
  // for the bias column sums.
  bool rounds_operands() const {
    return std::is_same_v<T, float> && this->math() != Math::Fp32 && !exact_sums_;
  }

  // What graphs recorded under reduced math read besides the calls' own pointers and
  // their own scratch: the working copies held.
  std::string reduced_signature() const { return reduced_.held_signature(); }

  // The scratch bytes of the widest GEMM of `calls` (reduced math), which a recording
  // reserves first: nothing may allocate while the stream records.
  std::size_t scratch_bytes(const std::vector<StepCall<T>>& calls) const {
    std::size_t widest = 0;
    if constexpr (std::is_same_v<T, float>) {
      for (const StepCall<T>& c : calls) {
        if (c.kind != StepCall<T>::Kind::Gemms) continue;
        const GemmBatch<T>& g = c.gemms;
        for (int i = 0; i < g.count; ++i) {
          widest = std::max(
              widest, reduced_.scratch_bytes(gemm_item(g, g.host_a[i], g.host_b[i], g.host_c[i])));
        }
      }
    }
    return widest;
  }

  // Whether a batch's items, run one GEMM each while recording, become parallel branches.
  bool branches(const GemmBatch<T>& g) const {
    switch (this->tuning().cuda_graph_branches) {
      case GraphBranches::Off: return false;
      case GraphBranches::ByRule: return g.branches;
      case GraphBranches::Always: return true;
    }
    return false;
  }

  void gemm_on(cublasHandle_t blas, OperandScratch& scratch, cudaStream_t stream,
               const Gemm<T>& g) {
    if (g.m == 0 || g.n == 0) return;
    if constexpr (std::is_same_v<T, float>) {
      if (rounds_operands()) {
        reduced_.gemm(blas, scratch, g, stream);
        return;
      }
    }
    const int m = to_int(g.m, "m"), n = to_int(g.n, "n"), k = to_int(g.k, "k");
    const int lda = to_int(g.lda, "lda"), ldb = to_int(g.ldb, "ldb"), ldc = to_int(g.ldc, "ldc");
    if constexpr (std::is_same_v<T, float>) {
      RECUR_CUBLAS_CHECK(cublasSgemm(blas, to_cublas(g.trans_a), to_cublas(g.trans_b), m, n, k,
                                     &g.alpha, g.a, lda, g.b, ldb, &g.beta, g.c, ldc));
    } else {
      RECUR_CUBLAS_CHECK(cublasDgemm(blas, to_cublas(g.trans_a), to_cublas(g.trans_b), m, n, k,
                                     &g.alpha, g.a, lda, g.b, ldb, &g.beta, g.c, ldc));
    }
  }

  // Item 0 on the model's stream, item i on side stream i-1. The side streams start after
  // everything queued before (fork_), and the model's stream goes on only once each has
  // finished (its `done` event), so to every other call this is one more step of one
  // ordered stream. The items write disjoint C matrices (a wave's units). Only while
  // recording, after add_side_streams.
  void gemm_items_side_by_side(const GemmBatch<T>& g) {
    add_side_streams(g.count - 1);
    RECUR_CUDA_CHECK(cudaEventRecord(fork_.get(), stream_));
    for (int i = 1; i < g.count; ++i) {
      SideStream& side = sides_[static_cast<std::size_t>(i - 1)];
      RECUR_CUDA_CHECK(cudaStreamWaitEvent(side.stream.get(), fork_.get(), 0));
      gemm_on(side.blas.get(), graph_scratch_[i], side.stream.get(),
              gemm_item(g, g.host_a[i], g.host_b[i], g.host_c[i]));
      RECUR_CUDA_CHECK(cudaEventRecord(side.done.get(), side.stream.get()));
    }
    gemm_on(blas_.get(), graph_scratch_[0], stream_,
            gemm_item(g, g.host_a[0], g.host_b[0], g.host_c[0]));
    for (int i = 1; i < g.count; ++i) {
      RECUR_CUDA_CHECK(
          cudaStreamWaitEvent(stream_, sides_[static_cast<std::size_t>(i - 1)].done.get(), 0));
    }
  }

  // At least `count` side streams, each with a cuBLAS workspace of its own: made before
  // the first recording that needs them (once per model), so that nothing allocates while
  // recording.
  void add_side_streams(int count) {
    if (!fork_) fork_ = make_event(cudaEventDisableTiming);
    while (static_cast<int>(sides_.size()) < count) {
      SideStream side;
      side.stream = make_stream(cudaStreamNonBlocking);
      side.done = make_event(cudaEventDisableTiming);
      side.blas = make_blas(side.stream.get());
      sides_.push_back(std::move(side));
    }
    for (int i = 0; i < count; ++i) {
      SideStream& side = sides_[static_cast<std::size_t>(i)];
      if (side.workspace) continue;
      DeviceMemory workspace = make_device_memory(kSideWorkspaceBytes);
      RECUR_CUBLAS_CHECK(cublasSetWorkspace(side.blas.get(), workspace.get(), kSideWorkspaceBytes));
      side.workspace = std::move(workspace);
    }
  }

  int index_ = 0;
  Stream own_stream_;
  cudaStream_t stream_ = nullptr;  // own_stream_'s, or the caller's (set_stream)
  BlasHandle blas_;
  DeviceMemory table_;  // staged pointer tables for batched GEMMs
  std::size_t table_capacity_ = 0;
  DeviceMemory rows_;  // staged row indices for gathers
  std::size_t rows_capacity_ = 0;
  std::vector<SideStream> sides_;  // graph branches
  GraphCache graphs_;
  bool capture_refused_ = false;  // the stream refused to record once: launch as before
  bool recording_ = false;        // inside record(): the stream is capturing
  bool exact_sums_ = false;       // inside add_column_sums: float32 products whatever the math
  ReducedGemms reduced_;          // reduced math: rounding points and working copies
  OperandScratch scratch_;        // the model stream's rounded operands, launch by launch
  OperandScratch* graph_scratch_ = nullptr;  // while recording: the graph's, one a stream
  // A side stream's GEMM is one item of a step's batch: split-K's partial sums of
  // [512, 64] x 8 splits take 1 MiB.
  static constexpr std::size_t kSideWorkspaceBytes = std::size_t{8} << 20;
  static constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;
  DeviceMemory workspace_;  // cuBLAS's, once graphs are recorded
  Event fork_;
};

}  // namespace

template <typename T>
std::unique_ptr<Ops<T>> make_cuda_ops(int index) {
  return std::make_unique<CudaOps<T>>(index);
}

template std::unique_ptr<Ops<float>> make_cuda_ops<float>(int);
template std::unique_ptr<Ops<double>> make_cuda_ops<double>(int);

}  // namespace recur::detail
