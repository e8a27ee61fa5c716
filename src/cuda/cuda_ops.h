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

// The tuning choices CudaOps reads (tuning.h):
//   - cuda_batched_gemm: how a batch of GEMMs that comes with host pointer arrays (the
//     recurrent steps') runs: Auto picks per batch, as CudaOps::gemm_batched explains;
//     PerItem one GEMM per item; Batched cuBLAS's pointer-array batched GEMM. Tests compare
//     every way. cuda_batched_from: where Auto starts batching backward's shape.
//   - cuda_graphs: a pass's time steps (each layer's in a layer-by-layer pass, all waves of
//     a wavefront whose waves launch nothing else) run as one CUDA graph, recorded once per
//     distinct call list (shapes, pointers, arguments) and replayed after that, in place of
//     the per-step launches (CudaOps::run_step_list). Repeated (the default) records a list
//     the second time it comes, so that lists that never come again (batches of ever-new
//     lengths) run launch by launch at no recording cost; Always records it the first time
//     (tests); Off launches every step. Flow recording and streams that are already
//     capturing launch as before.
//   - cuda_graph_branches: while a list is recorded, a batch that runs one GEMM per item
//     records its items on side streams, so that the graph runs them as parallel branches
//     instead of one after the other: where the pass plan marks the batch (ByRule:
//     GemmBatch::branches), always, or never.
// Ops::statistics() counts the graphs recorded and replayed and the batches branched.

}  // namespace recur::detail
