// src/cpu/bf16_gemm.cpp: the AVX512_BF16 GEMM of bf16_gemm.h. The kernel and the packing of
// B are compiled for AVX512_BF16 by function attribute and run only where
// bf16_gemm_available(); the rest of the library stays x86-64.
#include "bf16_gemm.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "bf16_amx.h"
#include "bf16_words.h"

namespace recur::detail {
namespace {

constexpr std::int64_t kBlockCols = 12;      // NR: 2 x 12 accumulators, 3 registers to spare
constexpr std::int64_t kNarrowColumns = 64;  // up to here, blocks of 8 where they pad less
// Below both, one thread: the multiply-adds, and the bytes of A's panels, which a product
// of few columns streams from beyond L2 at every call (two threads stream it twice as fast:
// docs/benchmarks.md, "BF16 at small batches").
constexpr std::int64_t kMinThreadMacs = std::int64_t{1} << 21;
constexpr std::int64_t kMinThreadABytes = std::int64_t{1} << 20;
// Cache blocking. A tile runs over at most kDepthPairs pairs of k at a time, so that its
// A panel slice (32 KB) and B block slice (12 KB) stay in L1 and L2; a thread's unit of
// work is at most kUnitPanels panels by kUnitBlocks blocks of C, whose A slice (256 KB)
// stays in L2 while each B block slice is used by all its panels; smaller where that would
// leave fewer than kUnitsPerThread units a thread (a step's product of H rows would
// otherwise be one unit, and the other threads would wait for it).
constexpr std::int64_t kDepthPairs = 256;
// AMX tiles run deeper slices: each slice's end waits for the tile products to drain and
// moves C through the tiles, which costs more than a block slice in L1 (128 KB, in L2,
// measured 20-25% faster than 256 pairs: docs/benchmarks.md, "AMX tiles").
constexpr std::int64_t kTileDepthPairs = 1024;
constexpr std::int64_t kUnitPanels = 8;
constexpr std::int64_t kUnitBlocks = 16;
constexpr std::int64_t kUnitsPerThread = 4;
constexpr std::int64_t kMinParallelPack = std::int64_t{1} << 16;  // elements; below, one thread

template <std::int64_t kCols>
constexpr std::int64_t kGroupWords = kGroupPairs* kCols;

// A packed panel's pairs: k's, rounded up to whole groups (zeros past k), so that the tile
// kernel reads whole groups.
constexpr std::int64_t padded_pairs(std::int64_t k) {
  return ((k + 1) / 2 + kGroupPairs - 1) / kGroupPairs * kGroupPairs;
}

// The words (bf16 values) of one packed panel of depth k.
constexpr std::int64_t panel_words(std::int64_t k) { return padded_pairs(k) * 2 * kPanelRows; }

// Where pair i of a group holds column j's word: pair-major (trans_b T) or column-major (N).
template <bool kColumns, std::int64_t kCols>
constexpr std::int64_t word_at(std::int64_t i, std::int64_t j) {
  return kColumns ? j * kGroupPairs + i : i * kCols + j;
}

// op(B) (k x n) rounded and packed in groups (bf16_gemm.h), each in op(B)'s own order.
// Every word is written, the padding (columns past n, the second half of an odd k's last
// pair, the last group's pairs past k) as zero.
// trans_b T: B[kk][j] = b[kk * ldb + j]. Group `group` of every block, read pair by pair
// along its two rows (contiguous), kCols columns' words a block.
template <std::int64_t kCols>
__attribute__((target("avx512f,avx512bf16"))) void pack_b_rows(const Gemm<float>& g,
                                                               std::int64_t group,
                                                               std::int64_t blocks,
                                                               std::int64_t block_size,
                                                               std::uint32_t* out) {
  for (std::int64_t p = group * kGroupPairs; p < (group + 1) * kGroupPairs; ++p) {
    const float* row = g.b + 2 * p * g.ldb;
    for (std::int64_t block = 0; block < blocks; ++block) {
      const std::int64_t j0 = block * kCols;
      const __mmask16 mask = first_lanes(std::min(kCols, g.n - j0));
      const __m512 lo = 2 * p < g.k ? _mm512_maskz_loadu_ps(mask, row + j0) : _mm512_setzero_ps();
      const __m512 hi =
          2 * p + 1 < g.k ? _mm512_maskz_loadu_ps(mask, row + g.ldb + j0) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(out + block * block_size + p * kCols, first_lanes(kCols),
                               pair_words(lo, hi));
    }
  }
}

// trans_b N: B[kk][j] = b[j * ldb + kk]. Block `block`: 32 consecutive values of a column,
// rounded in order, are its 16 words of a group.
template <std::int64_t kCols>
__attribute__((target("avx512f,avx512bf16"))) void pack_b_columns(const Gemm<float>& g,
                                                                  std::int64_t block,
                                                                  std::int64_t groups,
                                                                  std::uint32_t* out) {
  const std::int64_t j0 = block * kCols, cols = std::min(kCols, g.n - j0);
  for (std::int64_t group = 0; group < groups; ++group) {
    const std::int64_t k0 = group * 2 * kGroupPairs;
    for (std::int64_t j = 0; j < kCols; ++j) {
      std::uint32_t* words = out + group * kGroupWords<kCols> + j * kGroupPairs;
      if (j >= cols) {
        _mm512_storeu_si512(words, _mm512_setzero_si512());
        continue;
      }
      const float* col = g.b + (j0 + j) * g.ldb + k0;
      const __m512 x0 = _mm512_maskz_loadu_ps(first_lanes(g.k - k0), col);
      const __m512 x1 = _mm512_maskz_loadu_ps(first_lanes(g.k - k0 - 16), col + 16);
      _mm512_storeu_si512(words, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
    }
  }
}

// One pair of k into a tile's accumulators: a = the panel's pair, group = its group's words,
// i = the pair's index in the group.
template <bool kColumns, std::int64_t kCols>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void add_pair(
    __m512 (&acc0)[kCols], __m512 (&acc1)[kCols], const std::uint16_t* a,
    const std::uint32_t* group, std::int64_t i) {
  const __m512bh a0 = (__m512bh)_mm512_loadu_si512(a);
  const __m512bh a1 = (__m512bh)_mm512_loadu_si512(a + kPanelRows);
  for (std::int64_t j = 0; j < kCols; ++j) {
    const __m512bh bj =
        (__m512bh)_mm512_set1_epi32(static_cast<int>(group[word_at<kColumns, kCols>(i, j)]));
    acc0[j] = _mm512_dpbf16_ps(acc0[j], a0, bj);
    acc1[j] = _mm512_dpbf16_ps(acc1[j], a1, bj);
  }
}

// C tile (rows [r0, r0 + rows), columns [c0, c0 + cols)) = alpha A_panel B_block + beta C
// over `pairs` pairs of k (from a group's start), or, where `first` is false (a later
// slice of k), += alpha A B.
template <bool kColumns, std::int64_t kCols>
__attribute__((target("avx512f,avx512bf16"))) void tile(const std::uint16_t* panel,
                                                        const std::uint32_t* block,
                                                        std::int64_t pairs, const Gemm<float>& g,
                                                        std::int64_t r0, std::int64_t rows,
                                                        std::int64_t c0, std::int64_t cols,
                                                        bool first) {
  __m512 acc0[kCols], acc1[kCols];
  for (std::int64_t j = 0; j < kCols; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
  const std::int64_t whole = pairs / kGroupPairs;
  for (std::int64_t group = 0; group < whole; ++group) {
    const std::uint16_t* a = panel + group * kGroupPairs * 2 * kPanelRows;
    const std::uint32_t* b = block + group * kGroupWords<kCols>;
#pragma GCC unroll 16
    for (std::int64_t i = 0; i < kGroupPairs; ++i) {
      add_pair<kColumns, kCols>(acc0, acc1, a + i * 2 * kPanelRows, b, i);
    }
  }
  for (std::int64_t i = 0; i < pairs - whole * kGroupPairs; ++i) {
    add_pair<kColumns, kCols>(acc0, acc1, panel + (whole * kGroupPairs + i) * 2 * kPanelRows,
                              block + whole * kGroupWords<kCols>, i);
  }
  const float beta_value = first ? g.beta : 1.0f;
  const __m512 alpha = _mm512_set1_ps(g.alpha), beta = _mm512_set1_ps(beta_value);
  const std::int64_t low = std::min<std::int64_t>(rows, 16), high = rows - low;
  const __mmask16 m0 = first_lanes(low), m1 = first_lanes(high);
  for (std::int64_t j = 0; j < cols; ++j) {
    float* c = g.c + (c0 + j) * g.ldc + r0;
    __m512 v0 = _mm512_mul_ps(alpha, acc0[j]), v1 = _mm512_mul_ps(alpha, acc1[j]);
    if (beta_value != 0.0f) {  // beta 0 never reads C (it may hold NaN), as BLAS
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

bool bf16_gemm_pays(Bf16Kernel kernel) {
  // Multiply-adds per second, the best of five, alternating, so that a neighbour's burst
  // slows no side alone; 0 where the kernel is not available.
  static const std::array<double, 3> rates = [] {
    double dot = 1.0, tiles = 1.0, fma = 1.0;
    const bool has_tiles = bf16_kernel_available(Bf16Kernel::Tiles);
    for (int r = 0; r < 5 && bf16_gemm_available(); ++r) {
      dot = std::min(dot, bf16_pair_seconds());
      if (has_tiles) tiles = std::min(tiles, amx::multiply_add_seconds());
      fma = std::min(fma, fma_seconds());
    }
    return std::array<double, 3>{bf16_gemm_available() ? 1.0 / dot : 0.0,
                                 has_tiles ? 1.0 / tiles : 0.0, 1.0 / fma};
  }();
  const double rate = kernel == Bf16Kernel::Tiles ? rates[1] : rates[0];
  return rate >= kNativeBf16Margin * rates[2];
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

bool bf16_kernel_available(Bf16Kernel kernel) {
  return bf16_gemm_available() && (kernel == Bf16Kernel::Dot || amx::available());
}

namespace {

// Panel `index` of op(A) (m x k) rounded and packed (Bf16PackedA's layout); every element
// is written, the padding as zero.
__attribute__((target("avx512f,avx512bf16"))) void pack_a_panel(const float* a, Trans trans,
                                                                std::int64_t m, std::int64_t k,
                                                                std::int64_t lda,
                                                                std::int64_t index,
                                                                std::uint16_t* out) {
  const std::int64_t pairs = (k + 1) / 2, r0 = index * kPanelRows;
  if (trans == Trans::N) {  // A[r][c] = a[c * lda + r]: each column's 16-row halves
    for (std::int64_t p = 0; p < pairs; ++p) {
      for (std::int64_t half = 0; half < 2; ++half) {
        const std::int64_t r = r0 + 16 * half;
        const __mmask16 mask = first_lanes(m - r);
        const float* col = a + 2 * p * lda + r;
        const __m512 lo = _mm512_maskz_loadu_ps(mask, col);
        const __m512 hi =
            2 * p + 1 < k ? _mm512_maskz_loadu_ps(mask, col + lda) : _mm512_setzero_ps();
        _mm512_storeu_si512(out + p * 2 * kPanelRows + half * kPanelRows, pair_words(lo, hi));
      }
    }
    return;
  }
  // A[r][c] = a[r * lda + c]: a row's pairs are adjacent floats. 16 rows' words of 16
  // pairs at a time are rounded row by row into `words`, then gathered pair by pair.
  alignas(64) std::uint32_t words[16 * 16];
  const __m512i row_starts =
      _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16, 0);
  for (std::int64_t half = 0; half < 2; ++half) {
    const std::int64_t first_row = r0 + 16 * half;
    const std::int64_t rows = std::clamp<std::int64_t>(m - first_row, 0, 16);
    for (std::int64_t p0 = 0; p0 < pairs; p0 += 16) {
      const std::int64_t c0 = 2 * p0;
      for (std::int64_t lane = 0; lane < 16; ++lane) {
        __m512i row_words = _mm512_setzero_si512();
        if (lane < rows) {
          const float* row = a + (first_row + lane) * lda + c0;
          const __m512 x0 = _mm512_maskz_loadu_ps(first_lanes(k - c0), row);
          const __m512 x1 = _mm512_maskz_loadu_ps(first_lanes(k - c0 - 16), row + 16);
          row_words = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
        }
        _mm512_store_si512(words + 16 * lane, row_words);
      }
      for (std::int64_t i = 0; i < std::min<std::int64_t>(16, pairs - p0); ++i) {
        // (The masked form: the plain one starts from an undefined vector, as above.)
        const __m512i at = _mm512_add_epi32(row_starts, _mm512_set1_epi32(static_cast<int>(i)));
        _mm512_storeu_si512(
            out + (p0 + i) * 2 * kPanelRows + half * kPanelRows,
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xFFFF, at, words, 4));
      }
    }
  }
}

}  // namespace

void Bf16PackedA::pack(const float* a, Trans trans, std::int64_t m, std::int64_t k,
                       std::int64_t lda) {
  m_ = m;
  k_ = k;
  const std::int64_t pairs = (k + 1) / 2, panels = (m + kPanelRows - 1) / kPanelRows;
  const std::int64_t panel_size = panel_words(k);
  // Grown, never shrunk: a resize within the capacity would clear what it adds, a pass
  // over memory that packing overwrites anyway.
  const auto size = static_cast<std::size_t>(panels * panel_size);
  if (panels_.size() < size) panels_.resize(size);
  std::uint16_t* out = panels_.data();
  const int threads = m * k >= kMinParallelPack && !omp_in_parallel() ? omp_get_max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (std::int64_t p = 0; p < panels; ++p) {
    std::uint16_t* panel = out + p * panel_size;
    pack_a_panel(a, trans, m, k, lda, p, panel);
    std::fill(panel + pairs * 2 * kPanelRows, panel + panel_size, std::uint16_t{0});
  }
}

const std::uint16_t* Bf16PackedA::panel(std::int64_t index) const {
  return panels_.data() + index * panel_words(k_);
}

namespace {

// bf16_gemm in blocks of kCols columns, on VDPBF16PS or (kTiles) AMX tiles.
template <std::int64_t kCols, bool kTiles>
void gemm_in_blocks(const Bf16PackedA& a, const Gemm<float>& g,
                    std::vector<std::uint32_t>& b_scratch) {
  const std::int64_t pairs = (g.k + 1) / 2;
  const std::int64_t panels = (g.m + kPanelRows - 1) / kPanelRows;
  const std::int64_t blocks = (g.n + kCols - 1) / kCols;
  const std::int64_t groups = (pairs + kGroupPairs - 1) / kGroupPairs;
  const std::int64_t block_size = groups * kGroupWords<kCols>;
  const auto size = static_cast<std::size_t>(blocks * block_size);
  if (b_scratch.size() < size) b_scratch.resize(size);  // grown only, as A's panels
  std::uint32_t* b = b_scratch.data();
  // Units of panels x blocks of C; a unit runs k in slices of `depth` pairs (at least one,
  // so that k = 0 still writes beta C), each slice block by block over its panels.
  constexpr std::int64_t depth = kTiles ? kTileDepthPairs : kDepthPairs;
  const std::int64_t slices = std::max<std::int64_t>(1, (pairs + depth - 1) / depth);
  // Inside a parallel region (a row-parallel lane's product) one thread: its own region
  // would get no more.
  const std::int64_t a_bytes = panels * panel_words(g.k) * 2;
  const bool large = g.m * g.n * g.k >= kMinThreadMacs || a_bytes >= kMinThreadABytes;
  const int threads = large && !omp_in_parallel() ? omp_get_max_threads() : 1;
  // (How C is cut into units changes only who computes a tile, not its arithmetic.)
  std::int64_t unit_panels = kUnitPanels, unit_blocks = kUnitBlocks;
  auto units_of = [&](std::int64_t per_unit_panels, std::int64_t per_unit_blocks) {
    return ((panels + per_unit_panels - 1) / per_unit_panels) *
           ((blocks + per_unit_blocks - 1) / per_unit_blocks);
  };
  while (units_of(unit_panels, unit_blocks) < kUnitsPerThread * threads &&
         (unit_panels > 1 || unit_blocks > 1)) {
    if (unit_panels > 1 && (unit_panels >= unit_blocks / 2 || unit_blocks == 1)) {
      unit_panels /= 2;
    } else {
      unit_blocks /= 2;
    }
  }
  // Then as many units for every thread: the column units' count rounded up until the
  // units divide among the threads, and the blocks spread evenly over them (17 units of
  // 16 blocks on two threads would leave one thread a unit more).
  const std::int64_t row_units = (panels + unit_panels - 1) / unit_panels;
  if (threads > 1) {
    std::int64_t column_units = (blocks + unit_blocks - 1) / unit_blocks;
    while (row_units * column_units % threads != 0 && column_units < blocks) ++column_units;
    unit_blocks = (blocks + column_units - 1) / column_units;
  }
  const std::int64_t units = units_of(unit_panels, unit_blocks);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    if constexpr (kTiles) amx::begin();
    if (g.trans_b == Trans::T) {
#pragma omp for schedule(static)
      for (std::int64_t group = 0; group < groups; ++group) {
        if constexpr (kTiles) {
          amx::pack_b_rows(kCols, g, group, blocks, block_size, b);
        } else {
          pack_b_rows<kCols>(g, group, blocks, block_size, b);
        }
      }
    } else {
#pragma omp for schedule(static)
      for (std::int64_t block = 0; block < blocks; ++block) {
        pack_b_columns<kCols>(g, block, groups, b + block * block_size);
      }
    }
    // (the implied barrier: every block is packed before any tile reads one)
    // Unit u: blocks of column unit u / row_units, panels of row unit u % row_units, so that
    // a thread's run of units shares its B blocks.
#pragma omp for schedule(static)
    for (std::int64_t u = 0; u < units; ++u) {
      const std::int64_t first_panel = (u % row_units) * unit_panels;
      const std::int64_t first_block = (u / row_units) * unit_blocks;
      const std::int64_t last_panel = std::min(panels, first_panel + unit_panels);
      const std::int64_t last_block = std::min(blocks, first_block + unit_blocks);
      for (std::int64_t slice = 0; slice < slices; ++slice) {
        const std::int64_t p0 = slice * depth, n_pairs = std::min(depth, pairs - p0);
        for (std::int64_t block = first_block; block < last_block; ++block) {
          const std::int64_t c0 = block * kCols;
          for (std::int64_t panel = first_panel; panel < last_panel; ++panel) {
            const std::int64_t r0 = panel * kPanelRows, rows = std::min(kPanelRows, g.m - r0);
            const std::uint16_t* a_slice = a.panel(panel) + p0 * 2 * kPanelRows;
            const std::uint32_t* b_slice =
                b + block * block_size + p0 / kGroupPairs * kGroupWords<kCols>;
            const std::int64_t cols = std::min(kCols, g.n - c0);
            if constexpr (kTiles) {  // whole groups: the packing's zeros past k
              const std::int64_t whole = (n_pairs + kGroupPairs - 1) / kGroupPairs * kGroupPairs;
              amx::tile(kCols / 16, a_slice, b_slice, whole, g, r0, rows, c0, cols, slice == 0);
            } else {
              const auto run = g.trans_b == Trans::N ? tile<true, kCols> : tile<false, kCols>;
              run(a_slice, b_slice, n_pairs, g, r0, rows, c0, cols, slice == 0);
            }
          }
        }
      }
    }
    if constexpr (kTiles) amx::end();
  }
}

}  // namespace

void bf16_gemm(const Bf16PackedA& a, const Gemm<float>& g, Bf16Kernel kernel,
               std::vector<std::uint32_t>& b_scratch) {
  if (g.m == 0 || g.n == 0) return;
  // Narrow products (a step's few columns, a row-parallel lane's) in narrower blocks where
  // those pad less (16 columns fill 16 of 8-blocks, 24 of 12-blocks; 64 fill 64 and 72);
  // the rest in the wider blocks, whose tile reuses each A load across more columns.
  auto narrow = [&g](std::int64_t narrow_cols, std::int64_t wide_cols) {
    const std::int64_t padded_narrow = (g.n + narrow_cols - 1) / narrow_cols * narrow_cols;
    return g.n <= kNarrowColumns && padded_narrow < (g.n + wide_cols - 1) / wide_cols * wide_cols;
  };
  if (kernel == Bf16Kernel::Tiles) {
    if (narrow(16, 32)) {
      gemm_in_blocks<16, true>(a, g, b_scratch);
    } else {
      gemm_in_blocks<32, true>(a, g, b_scratch);
    }
  } else if (narrow(8, kBlockCols)) {
    gemm_in_blocks<8, false>(a, g, b_scratch);
  } else {
    gemm_in_blocks<kBlockCols, false>(a, g, b_scratch);
  }
}

}  // namespace recur::detail
