// src/cuda/cuda_ops.h: the CUDA backend: cuBLAS for GEMMs, the fused step kernels of
// kernels/step_kernels.cu for the gate math, all queued on one stream per model.
// Plain C++: no CUDA header is needed to include it.
#pragma once

#include <memory>

#include "../ops.h"

namespace recur::detail {

// A CudaOps on device `index`, with a stream of its own until set_stream() replaces it.
template <typename T>
std::unique_ptr<Ops<T>> make_cuda_ops(int index);

// How CudaOps runs a batch of GEMMs that comes with host pointer arrays (the recurrent
// steps'): Auto (the default) picks per batch, as CudaOps::gemm_batched explains; PerItem
// always runs one GEMM per item, Batched always cuBLAS's pointer-array batched GEMM, and
// Streams one GEMM per item with the items of a batch on streams of their own, side by side
// (for a wavefront's layers; measured slower than Auto, so only for comparisons).
// RECUR_CUDA_BATCHED_GEMM=auto|per-item|batched|streams sets it at start; tests compare
// every way.
enum class CudaBatchedGemm { Auto, PerItem, Batched, Streams };
CudaBatchedGemm cuda_batched_gemm();
void set_cuda_batched_gemm(CudaBatchedGemm choice);

// CUDA graphs: a pass's time steps (each layer's in a layer-by-layer pass, all waves of a
// wavefront whose waves launch nothing else) run as one graph, recorded once per distinct
// call list (shapes, pointers, arguments) and replayed after that, in place of the per-step
// launches (CudaOps::run_step_list). Repeated (the default) records a list the second time it
// comes, so that lists that never come again (batches of ever-new lengths) run launch by
// launch at no recording cost; Always records it the first time (tests); Off launches
// every step. RECUR_CUDA_GRAPHS=0 (off) or =always sets it at start. Flow recording, the
// Streams way and streams that are already capturing launch as before. The counters say
// how many graphs were recorded and replayed, for tests.
enum class CudaGraphMode { Off, Repeated, Always };
CudaGraphMode cuda_graph_mode();
void set_cuda_graph_mode(CudaGraphMode mode);
// Graph branches (opt-in: RECUR_CUDA_GRAPH_BRANCHES=1 at start): while a list is
// recorded, a batch that runs one GEMM per item (a wave's or a bidirectional step's
// backward GEMMs) records its items on side streams, so the graph runs them as parallel
// branches instead of one after the other.
bool cuda_graph_branches();
void set_cuda_graph_branches(bool enabled);
std::int64_t cuda_graph_captures();
std::int64_t cuda_graph_replays();

}  // namespace recur::detail
