// src/cuda/reduced_gemms.cpp: ReducedGemms and OperandScratch.
#include "reduced_gemms.h"

#include <algorithm>
#include <string>

#include "../../kernels/launch.h"
#include "../math_format.h"
#include "blas_args.h"
#include "check.h"
#include "recur/error.h"

namespace recur::detail {
namespace {

// Working copies kept: a model holds one per per-step matrix and layout, about 6 a layer
// (a bidirectional LSTM's W_hh both ways and W_ih backward; the reset-before-product GRU
// 10), and keeps them from pass to pass. Past this a new one drops those the pass does
// not hold (and the caller its graphs), so that weights of ever-new addresses cannot pile
// up; the held ones stay, since this pass's GEMMs read them.
constexpr std::size_t kMaxHeld = 256;
// Where B's copy starts after A's in the scratch: cuBLAS's alignment for tensor cores.
constexpr std::size_t kAlign = 256;

std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// An operand as stored: rows x cols, leading dimension ld.
struct Stored {
  const float* data;
  std::int64_t rows, cols, ld;
};

// op(X) is rows x cols of an X stored as given (trans N) or transposed.
Stored stored(const float* x, Trans trans, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  const bool n = trans == Trans::N;
  return {x, n ? rows : cols, n ? cols : rows, ld};
}

Stored stored_a(const Gemm<float>& g) { return stored(g.a, g.trans_a, g.m, g.k, g.lda); }
Stored stored_b(const Gemm<float>& g) { return stored(g.b, g.trans_b, g.k, g.n, g.ldb); }

std::size_t elements(const Stored& s) { return static_cast<std::size_t>(s.rows * s.cols); }

// Queues the packed rounded copy of `s` into `dst`.
void round_into(const Stored& s, kernels::Format format, void* dst, cudaStream_t stream) {
  if (format == kernels::Format::Tf32) {
    kernels::launch_round_operand(
        kernels::RoundOperandArgs<float>{s.data, s.rows, s.cols, s.ld, format,
                                         static_cast<float*>(dst)},
        stream);
  } else {
    kernels::launch_round_operand(
        kernels::RoundOperandArgs<std::uint16_t>{s.data, s.rows, s.cols, s.ld, format,
                                                 static_cast<std::uint16_t*>(dst)},
        stream);
  }
}

// Memory is made (and the stream waited for) only on a shape's first pass; where the
// stream is capturing a caller's own graph, that would end the capture with an error of
// CUDA's, so say what to do instead.
void expect_not_capturing(cudaStream_t stream, const char* what) {
  if (capturing(stream)) {
    throw Error(std::string("recur: reduced math needs ") + what +
                " while the model's stream is capturing a graph: run a pass of this shape "
                "before capturing, so that it is made then");
  }
}

}  // namespace

void* OperandScratch::reserve(std::size_t bytes, cudaStream_t stream) {
  if (bytes > bytes_) {
    expect_not_capturing(stream, "more scratch for rounded operands");
    if (memory_) RECUR_CUDA_CHECK(cudaStreamSynchronize(stream));
    memory_.reset();
    bytes_ = 0;
    memory_ = make_device_memory(bytes);
    bytes_ = bytes;
  }
  return memory_.get();
}

void ReducedGemms::set_math(Math math, cudaStream_t stream) {
  const kernels::Format format = format_of(math);
  if (format != format_ && !held_.empty()) {
    RECUR_CUDA_CHECK(cudaStreamSynchronize(stream));
    held_.clear();
  }
  format_ = format;
}

std::size_t ReducedGemms::element_bytes() const {
  return format_ == kernels::Format::Tf32 ? sizeof(float) : sizeof(std::uint16_t);
}

bool ReducedGemms::hold(const float* a, Trans trans, std::int64_t m, std::int64_t k,
                        std::int64_t lda, cudaStream_t stream) {
  auto same = [&](const Held& h) {
    return h.a == a && h.trans == trans && h.m == m && h.k == k && h.lda == lda;
  };
  auto it = std::find_if(held_.begin(), held_.end(), same);
  bool dropped = false;
  if (it == held_.end()) {
    expect_not_capturing(stream, "a working copy of a weight matrix");
    if (held_.size() >= kMaxHeld) {
      RECUR_CUDA_CHECK(cudaStreamSynchronize(stream));
      held_.erase(std::remove_if(held_.begin(), held_.end(), [](const Held& h) { return !h.held; }),
                  held_.end());
      dropped = true;
    }
    Held h{a, trans, m, k, lda, {}, false};
    const std::size_t bytes = elements(stored(a, trans, m, k, lda)) * element_bytes();
    h.copy = make_device_memory(std::max<std::size_t>(bytes, 1));
    held_.push_back(std::move(h));
    it = held_.end() - 1;
  }
  round_into(stored(a, trans, m, k, lda), format_, it->copy.get(), stream);
  it->held = true;
  return dropped;
}

void ReducedGemms::release() noexcept {
  for (Held& h : held_) h.held = false;
}

std::string ReducedGemms::held_signature() const {
  std::string key = "held";
  for (const Held& h : held_) {
    if (h.held) key += ":" + std::to_string(reinterpret_cast<std::uintptr_t>(h.copy.get()));
  }
  return key;
}

const ReducedGemms::Held* ReducedGemms::held_of(const Gemm<float>& g) const {
  for (const Held& h : held_) {
    if (h.held && h.a == g.a && h.trans == g.trans_a && h.m == g.m && h.k == g.k &&
        h.lda == g.lda) {
      return &h;
    }
  }
  return nullptr;
}

std::size_t ReducedGemms::scratch_bytes(const Gemm<float>& g) const {
  const std::size_t a =
      held_of(g) != nullptr ? 0 : aligned(elements(stored_a(g)) * element_bytes());
  return a + elements(stored_b(g)) * element_bytes();
}

void ReducedGemms::gemm(cublasHandle_t blas, OperandScratch& scratch, const Gemm<float>& g,
                        cudaStream_t stream) const {
  if (g.m == 0 || g.n == 0) return;
  const Stored sa = stored_a(g), sb = stored_b(g);
  const int m = to_int(g.m, "m"), n = to_int(g.n, "n"), k = to_int(g.k, "k");
  const int lda = to_int(std::max<std::int64_t>(sa.rows, 1), "lda");
  const int ldb = to_int(std::max<std::int64_t>(sb.rows, 1), "ldb");
  const int ldc = to_int(g.ldc, "ldc");
  auto* room = static_cast<char*>(scratch.reserve(scratch_bytes(g), stream));
  const Held* held = held_of(g);
  const void* a = held != nullptr ? held->copy.get() : room;
  if (held == nullptr) {
    round_into(sa, format_, room, stream);
    room += aligned(elements(sa) * element_bytes());
  }
  round_into(sb, format_, room, stream);
  // TF32: float copies whose values are TF32 already; BF16 and FP16: 16-bit copies. Both
  // accumulate in float32.
  cudaDataType_t type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  if (format_ != kernels::Format::Tf32) {
    type = format_ == kernels::Format::Bf16 ? CUDA_R_16BF : CUDA_R_16F;
    compute = CUBLAS_COMPUTE_32F;
  }
  RECUR_CUBLAS_CHECK(cublasGemmEx(blas, to_cublas(g.trans_a), to_cublas(g.trans_b), m, n, k,
                                  &g.alpha, a, type, lda, room, type, ldb, &g.beta, g.c, CUDA_R_32F,
                                  ldc, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace recur::detail
