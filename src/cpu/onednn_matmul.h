// src/cpu/onednn_matmul.h: GEMMs against weights packed once.
//
// A recurrent pass multiplies by the same W_hh at every step. dnnl_sgemm takes plain
// matrices and packs A's panels again at every call; oneDNN's matmul primitive instead
// reads its weights in a layout of its own choosing, into which they are reordered once.
// The per-step products run faster so (docs/benchmarks.md, "The measurements behind the code's
// choices"). CpuOps<float> keeps one PackedGemms.
#pragma once

#include <cstdint>
#include <memory>

#include "../ops.h"

namespace recur::detail {

class PackedGemms {
 public:
  // Whether this build and machine can pack: oneDNN's C API is loaded (onednn_api.h).
  static bool available();

  PackedGemms();
  ~PackedGemms();
  PackedGemms(const PackedGemms&) = delete;
  PackedGemms& operator=(const PackedGemms&) = delete;

  // Packs op(A), the m x k operand of Gemm (A is `a` with leading dimension lda, column-
  // major, read transposed when trans_a is T), in the layout oneDNN's matmul picks for
  // GEMMs of widest_n columns (GEMMs of other widths use that layout too). The caller
  // keeps `a` unchanged until release(). Returns false, holding nothing, when oneDNN has
  // no matmul for the shape.
  bool hold(const float* a, Trans trans_a, std::int64_t m, std::int64_t k, std::int64_t lda,
            std::int64_t widest_n);
  // Forgets every held matrix; the packed buffers stay allocated for the next holds.
  void release();
  // Whether g's op(A) is a held matrix (same a, trans_a, m, k, lda).
  bool holds(const Gemm<float>& g) const;
  // When g's op(A) is a held matrix, alpha is 1, beta 0 or 1 and oneDNN has a matmul for
  // g's columns and strides: runs g on the packed copy and returns true. Otherwise returns
  // false and does nothing. Lane 0 is for ordinary calls, whose matmuls use all of
  // OpenMP's threads; lanes 1..count (prepare_lanes) let that many threads of one parallel
  // region call run() at once, one lane each, while nothing is held or released.
  bool run(const Gemm<float>& g, int lane = 0);
  void prepare_lanes(int count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur::detail
