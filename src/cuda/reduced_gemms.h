// src/cuda/reduced_gemms.h: the GEMMs of a float32 model whose Math is reduced (Tf32, Bf16,
// Fp16) on the GPU, at the rounding points of the CPU reference (docs/design.md,
// "Reduced-precision math"): both operands are rounded to the format, round to nearest even,
// by kernels/round_operand.cuh (the functor the CPU calls), into packed copies of the
// format's storage (float for TF32, 16-bit for BF16 and FP16); cuBLAS multiplies the copies
// on tensor cores and accumulates in float32 into the float32 C. Since the copies hold
// values that are exact in the format, cuBLAS's own conversion (undocumented rounding) has
// nothing left to round.
//
// The per-step weights a pass holds (Ops::hold_weights) have a working copy each, refreshed
// from the float32 masters on the device when the pass holds them, so a step reads W_hh
// rounded once per pass, not once per step. The other operand of such a GEMM (h_{t-1},
// backward's dgh), and both operands of every other GEMM, are rounded into a stream's
// OperandScratch right before the product. CUDA plain C++ (cuBLAS types): only
// src/cuda/ includes it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "../../kernels/round_operand.cuh"
#include "../ops.h"
#include "handles.h"

namespace recur::detail {

// Device memory where one stream's GEMMs round their operands, reused call after call.
// Launch by launch the model's stream has one; each recorded graph has its own, made
// before it records and kept with it (CudaOps::record), so that launches between replays,
// which may grow theirs, never move what a graph reads.
class OperandScratch {
 public:
  // At least `bytes` of it, growing where needed (after the stream's queued work, which may
  // still read the old memory). Never while the stream records a graph.
  void* reserve(std::size_t bytes, cudaStream_t stream);
  // Gives its memory away (to the graph that reads it), leaving it empty.
  DeviceMemory take() {
    bytes_ = 0;
    return std::move(memory_);
  }

 private:
  DeviceMemory memory_;
  std::size_t bytes_ = 0;
};

class ReducedGemms {
 public:
  // The format of the model's Math (not Fp32). A new format drops the working copies
  // (their element size changes), after `stream`'s queued work, which may read them.
  void set_math(Math math, cudaStream_t stream);

  // Makes or refreshes, on `stream`, the working copy of op(A) as stored (a, trans, m, k,
  // lda as in Gemm); GEMMs read it instead of `a` until release(). Returns true when copies
  // that recorded graphs may read were dropped (those not held in this pass, once there are
  // kMaxHeld): the caller then drops its graphs.
  bool hold(const float* a, Trans trans, std::int64_t m, std::int64_t k, std::int64_t lda,
            cudaStream_t stream);
  // The pass is over: no GEMM reads a working copy until the next hold(). The copies stay
  // allocated, for the next pass (and its recorded graphs) to refresh and read.
  void release() noexcept;
  // Which working copies are held now, as part of a recorded graph's signature: a graph
  // recorded reading a copy must not replay where `a` itself would be read.
  std::string held_signature() const;

  // The bytes of one element of a working copy.
  std::size_t element_bytes() const;
  // The scratch bytes gemm(g) rounds into.
  std::size_t scratch_bytes(const Gemm<float>& g) const;
  // C = alpha op(A) op(B) + beta C, both operands rounded, on `blas`'s stream, which is
  // `stream`; rounds into `scratch`.
  void gemm(cublasHandle_t blas, OperandScratch& scratch, const Gemm<float>& g,
            cudaStream_t stream) const;

 private:
  // One held matrix: the key, and its packed rounded copy.
  struct Held {
    const float* a;
    Trans trans;
    std::int64_t m, k, lda;
    DeviceMemory copy;
    bool held = false;  // between hold() and release()
  };
  const Held* held_of(const Gemm<float>& g) const;

  kernels::Format format_ = kernels::Format::Bf16;
  std::vector<Held> held_;
};

}  // namespace recur::detail
