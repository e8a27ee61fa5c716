// src/cpu/bf16_gemm.cpp: the AVX512_BF16 GEMM of bf16_gemm.h. The kernel and the packing of
// B are compiled for AVX512_BF16 by function attribute and run only where
// bf16_gemm_available(); the rest of the library stays x86-64.
#include "bf16_gemm.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>

#include "../../kernels/round_operand.cuh"

namespace recur::detail {
namespace {

constexpr std::int64_t kPanelRows = 32;  // MR: two zmm of 16 float32 lanes
constexpr std::int64_t kBlockCols = 12;  // NR: 2 x 12 accumulators, 3 registers to spare
constexpr std::int64_t kMinThreadMacs = std::int64_t{1} << 21;  // below, one thread

// The bits of x rounded to bfloat16: the rule both backends round with.
std::uint16_t bf16(float x) { return kernels::reduced_bits(kernels::Format::Bf16, x); }

// op(B) (k x n) rounded and packed in blocks of kBlockCols columns: word [block][pair][j]
// holds (B[2 pair][j], B[2 pair + 1][j]), the first in the low half (VDPBF16PS's order).
void pack_b(const Gemm<float>& g, std::vector<std::uint32_t>& out) {
  const std::int64_t pairs = (g.k + 1) / 2, blocks = (g.n + kBlockCols - 1) / kBlockCols;
  out.assign(static_cast<std::size_t>(blocks * pairs * kBlockCols), 0u);
  auto put = [&](std::int64_t kk, std::int64_t j, float x) {
    std::uint32_t& word = out[static_cast<std::size_t>(
        ((j / kBlockCols) * pairs + kk / 2) * kBlockCols + j % kBlockCols)];
    word |= static_cast<std::uint32_t>(bf16(x)) << (16 * (kk % 2));
  };
  // Read B in its own order (contiguous inner loops); the words are zero to begin with.
  if (g.trans_b == Trans::N) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      for (std::int64_t kk = 0; kk < g.k; ++kk) put(kk, j, g.b[j * g.ldb + kk]);
    }
  } else {
    for (std::int64_t kk = 0; kk < g.k; ++kk) {
      for (std::int64_t j = 0; j < g.n; ++j) put(kk, j, g.b[kk * g.ldb + j]);
    }
  }
}

// C tile (rows [r0, r0 + rows), columns [c0, c0 + cols)) = alpha A_panel B_block + beta C.
__attribute__((target("avx512f,avx512bf16"))) void tile(const std::uint16_t* panel,
                                                        const std::uint32_t* block,
                                                        std::int64_t pairs, const Gemm<float>& g,
                                                        std::int64_t r0, std::int64_t rows,
                                                        std::int64_t c0, std::int64_t cols) {
  __m512 acc0[kBlockCols], acc1[kBlockCols];
  for (std::int64_t j = 0; j < kBlockCols; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < pairs; ++p) {
    const __m512bh a0 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanelRows);
    const __m512bh a1 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanelRows + kPanelRows);
    const std::uint32_t* b = block + p * kBlockCols;
    for (std::int64_t j = 0; j < kBlockCols; ++j) {
      const __m512bh bj = (__m512bh)_mm512_set1_epi32(static_cast<int>(b[j]));
      acc0[j] = _mm512_dpbf16_ps(acc0[j], a0, bj);
      acc1[j] = _mm512_dpbf16_ps(acc1[j], a1, bj);
    }
  }
  const __m512 alpha = _mm512_set1_ps(g.alpha), beta = _mm512_set1_ps(g.beta);
  const std::int64_t low = std::min<std::int64_t>(rows, 16), high = rows - low;
  const __mmask16 m0 = static_cast<__mmask16>((1u << low) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>(high > 0 ? (1u << high) - 1u : 0u);
  for (std::int64_t j = 0; j < cols; ++j) {
    float* c = g.c + (c0 + j) * g.ldc + r0;
    __m512 v0 = _mm512_mul_ps(alpha, acc0[j]), v1 = _mm512_mul_ps(alpha, acc1[j]);
    if (g.beta != 0.0f) {  // beta 0 never reads C (it may hold NaN), as BLAS
      v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, c), v0);
      v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, c + 16), v1);
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    if (high > 0) _mm512_mask_storeu_ps(c + 16, m1, v1);
  }
}

// The probe of bf16_gemm_pays(): `chains` independent accumulators, so that throughput,
// not latency, bounds the loop, each fed `rounds` times. Returns seconds per multiply-add.
constexpr int kProbeChains = 24;
constexpr long kProbeRounds = 4000;

// Makes the accumulators' values observable, so that the loop is not optimised away.
__attribute__((target("avx512f"))) void keep(const __m512 (&acc)[kProbeChains]) {
  float lanes[16];
  volatile float sink = 0.0f;
  for (const __m512& a : acc) {
    _mm512_storeu_ps(lanes, a);
    sink = sink + lanes[0];
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

__attribute__((target("avx512f,avx512bf16"))) double bf16_pair_seconds() {
  __m512 acc[kProbeChains];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < kProbeRounds; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < kProbeChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], x, x);
  }
  const double s = seconds_since(start);
  keep(acc);
  return s / (static_cast<double>(kProbeRounds) * kProbeChains * 32);
}

__attribute__((target("avx512f"))) double fma_seconds() {
  __m512 acc[kProbeChains];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  const __m512 x = _mm512_set1_ps(1.0f);
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < kProbeRounds; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < kProbeChains; ++j) acc[j] = _mm512_fmadd_ps(x, x, acc[j]);
  }
  const double s = seconds_since(start);
  keep(acc);
  return s / (static_cast<double>(kProbeRounds) * kProbeChains * 16);
}

}  // namespace

bool bf16_gemm_pays() {
  static const bool pays = [] {
    if (!bf16_gemm_available()) return false;
    // The best of five, alternating, so that a neighbour's burst slows neither side alone.
    double bf16 = 1.0, fma = 1.0;
    for (int r = 0; r < 5; ++r) {
      bf16 = std::min(bf16, bf16_pair_seconds());
      fma = std::min(fma, fma_seconds());
    }
    return fma / bf16 >= kNativeBf16Margin;
  }();
  return pays;
}

bool bf16_gemm_available() {
  static const bool available = [] {
    if (!__builtin_cpu_supports("avx512f")) return false;  // also checks the OS saves zmm
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) == 0) return false;
    return (eax & (1u << 5)) != 0;  // CPUID.(EAX=7,ECX=1):EAX[5] = AVX512_BF16
  }();
  return available;
}

void Bf16PackedA::pack(const float* a, Trans trans, std::int64_t m, std::int64_t k,
                       std::int64_t lda) {
  m_ = m;
  k_ = k;
  const std::int64_t pairs = (k + 1) / 2, panels = (m + kPanelRows - 1) / kPanelRows;
  panels_.assign(static_cast<std::size_t>(panels * pairs * 2 * kPanelRows), 0u);
  // Register 0 of a pair holds rows 0-15 of the panel, register 1 rows 16-31, each lane a
  // pair (k0, k0 + 1).
  auto put = [&](std::int64_t r, std::int64_t c, float x) {
    const std::int64_t lane = r % kPanelRows;
    const std::int64_t offset = (lane / 16) * kPanelRows + 2 * (lane % 16);
    panels_[static_cast<std::size_t>(((r / kPanelRows) * pairs + c / 2) * 2 * kPanelRows + offset +
                                     c % 2)] = bf16(x);
  };
  // Read A in its own order (contiguous inner loops).
  if (trans == Trans::N) {
    for (std::int64_t c = 0; c < k; ++c) {
      for (std::int64_t r = 0; r < m; ++r) put(r, c, a[c * lda + r]);
    }
  } else {
    for (std::int64_t r = 0; r < m; ++r) {
      for (std::int64_t c = 0; c < k; ++c) put(r, c, a[r * lda + c]);
    }
  }
}

const std::uint16_t* Bf16PackedA::panel(std::int64_t index) const {
  return panels_.data() + index * ((k_ + 1) / 2) * 2 * kPanelRows;
}

void bf16_gemm(const Bf16PackedA& a, const Gemm<float>& g, std::vector<std::uint32_t>& b_scratch) {
  if (g.m == 0 || g.n == 0) return;
  pack_b(g, b_scratch);
  const std::int64_t pairs = (g.k + 1) / 2;
  const std::int64_t panels = (g.m + kPanelRows - 1) / kPanelRows;
  const std::int64_t blocks = (g.n + kBlockCols - 1) / kBlockCols;
  const std::int64_t tiles = panels * blocks;
  const int threads = g.m * g.n * g.k >= kMinThreadMacs ? omp_get_max_threads() : 1;
  const std::uint32_t* b = b_scratch.data();
  // Tile t: block t / panels, panel t % panels, so that a thread's run of tiles shares its
  // B block and walks A's panels in order.
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (std::int64_t t = 0; t < tiles; ++t) {
    const std::int64_t block = t / panels, panel = t % panels;
    const std::int64_t r0 = panel * kPanelRows, c0 = block * kBlockCols;
    tile(a.panel(panel), b + block * pairs * kBlockCols, pairs, g, r0,
         std::min(kPanelRows, g.m - r0), c0, std::min(kBlockCols, g.n - c0));
  }
}

}  // namespace recur::detail
