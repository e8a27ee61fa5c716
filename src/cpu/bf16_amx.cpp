// src/cpu/bf16_amx.cpp: the AMX kernel of bf16_amx.h. Compiled for AMX by function
// attribute and run only where amx::available(); the rest of the library stays x86-64.
#include "bf16_amx.h"

#include <cpuid.h>
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "bf16_words.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace recur::detail::amx {
namespace {

constexpr std::int64_t kTileRows = 16;  // rows of a tile; each 64 bytes
constexpr std::int64_t kTileWords = kTileRows * kGroupPairs;

// The tile configuration LDTILECFG reads (palette 1).
struct TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

// Every tile 16 rows by 64 bytes. (A constant in memory: gcc does not see LDTILECFG read
// its operand, and drops the stores of a local one.)
constexpr TileConfig every_tile_whole() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.bytes_per_row[t] = 64;
    config.rows[t] = static_cast<std::uint8_t>(kTileRows);
  }
  return config;
}
alignas(64) constexpr TileConfig kEveryTileWhole = every_tile_whole();

// gcc's tile loads are asm statements that take only their address: they do not tell the
// compiler that they read memory, which could then keep a store to the scratch (or to
// the probe's data) in a register until after the load. A compiler barrier first.
inline void memory_written() { __asm__ volatile("" ::: "memory"); }

}  // namespace

bool available() {
  static const bool usable = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    const bool tiles = (edx & (1u << 24)) != 0, bf16 = (edx & (1u << 22)) != 0;
    if (!tiles || !bf16) return false;
#if defined(__linux__)
    // The tile data (XFEATURE_XTILEDATA, 18) is given to the whole process on request.
    constexpr long kRequestPermission = 0x1023, kGetPermission = 0x1022, kTileData = 18;
    if (syscall(SYS_arch_prctl, kRequestPermission, kTileData) != 0) return false;
    unsigned long granted = 0;
    if (syscall(SYS_arch_prctl, kGetPermission, &granted) != 0) return false;
    return (granted & (1ul << kTileData)) != 0;
#else
    return false;
#endif
  }();
  return usable;
}

__attribute__((target("amx-tile"))) void begin() { _tile_loadconfig(&kEveryTileWhole); }

__attribute__((target("amx-tile"))) void end() { _tile_release(); }

__attribute__((target("amx-tile,amx-bf16"))) double multiply_add_seconds() {
  constexpr long kRounds = 1000;
  alignas(64) std::uint16_t ones[kTileRows * 32];
  for (std::uint16_t& v : ones) v = 0x3f80;  // 1.0
  alignas(64) float out[kTileRows * 16];
  begin();
  memory_written();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < kRounds; ++i) {
    _tile_dpbf16ps(0, 4, 5);
    _tile_dpbf16ps(1, 4, 5);
    _tile_dpbf16ps(2, 4, 5);
    _tile_dpbf16ps(3, 4, 5);
  }
  _tile_stored(0, out, 64);  // (the products made observable)
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  end();
  volatile float sink = out[0];
  (void)sink;
  return s / (static_cast<double>(kRounds) * 4 * kTileRows * 16 * 32);
}

namespace {

// C's part under an accumulator tile: `rows` x `cols` (either may be 0 or less: nothing)
// at c, column stride ldc. Where the accumulator starts: zero (nullptr) where C is not added
// in the tiles (alpha != 1, or beta 0 on the first slice, which never reads C, as BLAS),
// else C scaled by beta on the first slice, in `scratch`; or C itself, for a whole tile of
// C unscaled.
__attribute__((target("avx512f"))) const float* start_of(const Gemm<float>& g, const float* c,
                                                         std::int64_t rows, std::int64_t cols,
                                                         bool first, float* scratch) {
  if (g.alpha != 1.0f || (first && g.beta == 0.0f) || rows <= 0 || cols <= 0) return nullptr;
  const float scale = first ? g.beta : 1.0f;
  if (rows == kTileRows && cols == 16 && scale == 1.0f) return c;
  const __mmask16 mask = first_lanes(rows);
  const __m512 s = _mm512_set1_ps(scale);
  for (std::int64_t j = 0; j < 16; ++j) {
    const __m512 v = j < cols ? _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mask, c + j * g.ldc))
                              : _mm512_setzero_ps();
    _mm512_store_ps(scratch + 16 * j, v);
  }
  return scratch;
}

// Where the accumulator tile is stored: straight into C where C was added in the tiles and
// the tile is whole, else into `scratch`, for finish_from().
float* target_of(const Gemm<float>& g, float* c, std::int64_t rows, std::int64_t cols,
                 float* scratch) {
  return g.alpha == 1.0f && rows == kTileRows && cols == 16 ? c : scratch;
}

// C's part from the accumulator stored in `scratch`: as it is where C was added in the
// tiles, else alpha times it plus (beta) C.
__attribute__((target("avx512f"))) void finish_from(const Gemm<float>& g, float* c,
                                                    std::int64_t rows, std::int64_t cols,
                                                    bool first, const float* scratch) {
  const bool added = g.alpha == 1.0f;
  const __mmask16 mask = first_lanes(rows);
  const __m512 alpha = _mm512_set1_ps(g.alpha), beta = _mm512_set1_ps(first ? g.beta : 1.0f);
  const bool reads_c = !added && (!first || g.beta != 0.0f);
  for (std::int64_t j = 0; j < cols; ++j) {
    __m512 v = _mm512_load_ps(scratch + 16 * j);
    if (!added) v = _mm512_mul_ps(alpha, v);
    if (reads_c) v = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask, c + j * g.ldc), v);
    _mm512_mask_storeu_ps(c + j * g.ldc, mask, v);
  }
}

// (gcc's tile intrinsics name their tile register by its literal number, so the four
// accumulators are spelled out through these.)
#define RECUR_START_TILE(t, c, rows, cols)                               \
  do {                                                                   \
    const float* from = start_of(g, c, rows, cols, first, scratch);      \
    if (from == nullptr) {                                               \
      _tile_zero(t);                                                     \
    } else {                                                             \
      memory_written();                                                  \
      _tile_loadd(t, from, from == scratch ? kScratchStride : c_stride); \
    }                                                                    \
  } while (false)
#define RECUR_FINISH_TILE(t, c, rows, cols)                             \
  do {                                                                  \
    if ((rows) > 0 && (cols) > 0) {                                     \
      float* to = target_of(g, c, rows, cols, scratch);                 \
      _tile_stored(t, to, to == scratch ? kScratchStride : c_stride);   \
      if (to == scratch) finish_from(g, c, rows, cols, first, scratch); \
    }                                                                   \
  } while (false)

// Accumulators: tile 2 * half + h holds C's columns of block half `half` by rows
// 16h..16h+15 of the panel. B tiles 4 and 5 (the halves), A tiles 6 and 7 (the row halves).
template <int kHalves>
__attribute__((target("amx-tile,amx-bf16,avx512f"))) void tile_of(
    const std::uint16_t* panel, const std::uint32_t* block, std::int64_t pairs,
    const Gemm<float>& g, std::int64_t r0, std::int64_t rows, std::int64_t c0, std::int64_t cols,
    bool first) {
  alignas(64) float scratch[kTileRows * 16];
  constexpr std::int64_t kScratchStride = 16 * sizeof(float);
  const std::int64_t c_stride = g.ldc * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t low = std::min<std::int64_t>(rows, kTileRows), high = rows - low;
  const std::int64_t left = std::min<std::int64_t>(cols, 16), right = cols - left;
  float* c = g.c + c0 * g.ldc + r0;
  float* c_right = right > 0 ? c + 16 * g.ldc : c;  // (never formed past C)
  RECUR_START_TILE(0, c, low, left);
  RECUR_START_TILE(1, c + kTileRows, high, left);
  if (kHalves == 2) {
    RECUR_START_TILE(2, c_right, low, right);
    RECUR_START_TILE(3, c_right + kTileRows, high, right);
  }
  constexpr std::int64_t kPanelStride = 2 * kPanelRows * sizeof(std::uint16_t);  // a pair's
  constexpr std::int64_t kBlockStride = kGroupPairs * sizeof(std::uint32_t);     // a column's
  for (std::int64_t p = 0; p < pairs; p += kGroupPairs) {
    const std::uint16_t* a = panel + p * 2 * kPanelRows;
    const std::uint32_t* b = block + p / kGroupPairs * kHalves * kTileWords;
    // The panel streams from L2 (the block stays in L1 while its unit's panels pass over
    // it), faster than the hardware fetches it for tile loads: the next group's 2 KB
    // asked for one group ahead.
    const char* next = reinterpret_cast<const char*>(a + kGroupPairs * 2 * kPanelRows);
    for (int line = 0; line < 32; ++line) _mm_prefetch(next + 64 * line, _MM_HINT_T0);
    _tile_loadd(6, a, kPanelStride);
    _tile_loadd(7, a + kTileRows * 2, kPanelStride);
    _tile_loadd(4, b, kBlockStride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (kHalves == 2) {
      _tile_loadd(5, b + kTileWords, kBlockStride);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  RECUR_FINISH_TILE(0, c, low, left);
  RECUR_FINISH_TILE(1, c + kTileRows, high, left);
  if (kHalves == 2) {
    RECUR_FINISH_TILE(2, c_right, low, right);
    RECUR_FINISH_TILE(3, c_right + kTileRows, high, right);
  }
}

#undef RECUR_START_TILE
#undef RECUR_FINISH_TILE

// rows[i] := column i of the 16 x 16 matrix of 32-bit words whose row i it was.
// (The zero-masked forms: the plain ones start from an undefined vector, which gcc 12
// flags as maybe-uninitialized.)
__attribute__((target("avx512f"))) void transpose_16(__m512i (&rows)[16]) {
  __m512i a[16], b[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows, interleaved by words
    a[i] = _mm512_maskz_unpacklo_epi32(0xFFFF, rows[i], rows[i + 1]);
    a[i + 1] = _mm512_maskz_unpackhi_epi32(0xFFFF, rows[i], rows[i + 1]);
  }
  // b[4q + c]: in 128-bit lane L, column 4L + c of rows 4q..4q+3.
  for (int i = 0; i < 16; i += 4) {
    b[i] = _mm512_maskz_unpacklo_epi64(0xFF, a[i], a[i + 2]);
    b[i + 1] = _mm512_maskz_unpackhi_epi64(0xFF, a[i], a[i + 2]);
    b[i + 2] = _mm512_maskz_unpacklo_epi64(0xFF, a[i + 1], a[i + 3]);
    b[i + 3] = _mm512_maskz_unpackhi_epi64(0xFF, a[i + 1], a[i + 3]);
  }
  // Column 4L + c: lane L of b[c], b[4 + c], b[8 + c], b[12 + c].
  for (int c = 0; c < 4; ++c) {
    const __m512i d0 = _mm512_maskz_shuffle_i32x4(0xFFFF, b[c], b[4 + c], 0x44);
    const __m512i d1 = _mm512_maskz_shuffle_i32x4(0xFFFF, b[c], b[4 + c], 0xEE);
    const __m512i d2 = _mm512_maskz_shuffle_i32x4(0xFFFF, b[8 + c], b[12 + c], 0x44);
    const __m512i d3 = _mm512_maskz_shuffle_i32x4(0xFFFF, b[8 + c], b[12 + c], 0xEE);
    rows[c] = _mm512_maskz_shuffle_i32x4(0xFFFF, d0, d2, 0x88);
    rows[4 + c] = _mm512_maskz_shuffle_i32x4(0xFFFF, d0, d2, 0xDD);
    rows[8 + c] = _mm512_maskz_shuffle_i32x4(0xFFFF, d1, d3, 0x88);
    rows[12 + c] = _mm512_maskz_shuffle_i32x4(0xFFFF, d1, d3, 0xDD);
  }
}

}  // namespace

void tile(int halves, const std::uint16_t* panel, const std::uint32_t* block, std::int64_t pairs,
          const Gemm<float>& g, std::int64_t r0, std::int64_t rows, std::int64_t c0,
          std::int64_t cols, bool first) {
  if (halves == 2) {
    tile_of<2>(panel, block, pairs, g, r0, rows, c0, cols, first);
  } else {
    tile_of<1>(panel, block, pairs, g, r0, rows, c0, cols, first);
  }
}

// Each 16 columns of a group: its 16 pairs' words across the columns (two rows of B each),
// transposed to the columns' words across the pairs.
__attribute__((target("avx512f,avx512bf16"))) void pack_b_rows(
    std::int64_t block_cols, const Gemm<float>& g, std::int64_t group, std::int64_t blocks,
    std::int64_t block_size, std::uint32_t* out) {
  for (std::int64_t block = 0; block < blocks; ++block) {
    for (std::int64_t half = 0; half < block_cols / 16; ++half) {
      const std::int64_t j0 = block * block_cols + half * 16;
      const __mmask16 mask = first_lanes(g.n - j0);
      __m512i words[16];
      for (std::int64_t i = 0; i < kGroupPairs; ++i) {
        const std::int64_t kk = 2 * (group * kGroupPairs + i);
        const float* row = g.b + kk * g.ldb + j0;
        const __m512 lo = kk < g.k ? _mm512_maskz_loadu_ps(mask, row) : _mm512_setzero_ps();
        const __m512 hi =
            kk + 1 < g.k ? _mm512_maskz_loadu_ps(mask, row + g.ldb) : _mm512_setzero_ps();
        words[i] = pair_words(lo, hi);
      }
      transpose_16(words);
      std::uint32_t* to =
          out + block * block_size + group * block_cols * kGroupPairs + half * kTileWords;
      for (std::int64_t j = 0; j < 16; ++j) _mm512_storeu_si512(to + j * kGroupPairs, words[j]);
    }
  }
}

}  // namespace recur::detail::amx
