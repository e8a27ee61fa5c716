// tests/test_precision_formats.cpp: the rounding rules of kernels/precision.h, bit for bit:
// every BF16 and FP16 encoding through float32 and back; float32 -> FP16 against the CPU's
// F16C instructions and float32 -> BF16 against AVX512_BF16's, over about 125 million
// floats (all 2^32 with RECUR_TEST_EXHAUSTIVE=1); both against PyTorch's roundings
// (tests/golden/gen_precision.py); TF32 on hand-derived edge cases; float64 -> BF16 / FP16
// rounded once; and the public recur::bfloat16 / recur::float16 types.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/precision.h"
#include "test_util.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define RECUR_TEST_X86 1
#else
#define RECUR_TEST_X86 0
#endif

namespace recur::test {
namespace {

using namespace recur::kernels;  // NOLINT: the functions under test

bool bf16_nan(std::uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }
bool fp16_nan(std::uint16_t h) { return (h & 0x7fffu) > 0x7c00u; }

std::string hex(std::uint64_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

// ---- constexpr: usable in constant expressions, on the host and the device ----

static_assert(float_bits_to_bf16(0x3f808000u) == 0x3f80u, "a tie goes to the even 1.0");
static_assert(float_bits_to_bf16(0x3f818000u) == 0x3f82u, "a tie goes to the even 1 + 2^-6");
static_assert(float_bits_to_fp16(0x477ff000u) == 0x7c00u, "65520 rounds to infinity");
static_assert(fp16_to_float_bits(0x0001u) == 0x33800000u, "the smallest subnormal is 2^-24");
static_assert(float_bits_to_tf32(0x3f801000u) == 0x3f800000u, "a tie goes to the even 1.0");

// ---- every 16-bit encoding: to float32 and back ----

TEST(PrecisionFormats, EveryBf16EncodingRoundTripsThroughFloat32) {
  int nans = 0;
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const std::uint32_t f = bf16_to_float_bits(bits);
    ASSERT_EQ(f, b << 16) << hex(b);  // BF16 is the top half of a float32
    const std::uint16_t back = float_bits_to_bf16(f);
    if (bf16_nan(bits)) {
      ++nans;
      ASSERT_TRUE(bf16_nan(back)) << hex(b);
      ASSERT_EQ(back, bits | 0x0040u) << hex(b);  // made quiet, sign and payload kept
    } else {
      ASSERT_EQ(back, bits) << hex(b);
    }
  }
  EXPECT_EQ(nans, 2 * 127);  // both signs, mantissas 1..127
}

TEST(PrecisionFormats, EveryFp16EncodingRoundTripsThroughFloat32) {
  int nans = 0;
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float f = fp16_to_float(bits);
    const std::uint16_t back = float_to_fp16(f);
    if (fp16_nan(bits)) {
      ++nans;
      ASSERT_TRUE(std::isnan(f)) << hex(b);
      ASSERT_EQ(back, bits | 0x0200u) << hex(b);  // made quiet, sign and payload kept
    } else {
      ASSERT_EQ(back, bits) << hex(b);
      // The value, from the definition of binary16.
      const int e = (b >> 10) & 0x1f;
      const int m = b & 0x3ff;
      const double magnitude = e == 0x1f ? INFINITY
                               : e == 0  ? std::ldexp(m, -24)
                                         : std::ldexp(1024 + m, e - 25);
      ASSERT_EQ(static_cast<double>(f), (b & 0x8000u) ? -magnitude : magnitude) << hex(b);
    }
  }
  EXPECT_EQ(nans, 2 * 1023);
}

// ---- against the CPU's conversion instructions ----

#if RECUR_TEST_X86
__attribute__((target("f16c,avx"))) void fp16_by_f16c(const std::uint32_t* in, std::uint16_t* out) {
  __m256 v;
  std::memcpy(&v, in, sizeof(v));
  const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  std::memcpy(out, &h, sizeof(h));
}

__attribute__((target("f16c"))) std::uint32_t fp16_widened_by_f16c(std::uint16_t h) {
  return float_bits(_cvtsh_ss(h));
}

__attribute__((target("f16c"))) std::uint16_t fp16_by_f16c_scalar(std::uint32_t f) {
  // _mm_cvtps_ph, not the _cvtss_sh macro (a compound literal, which clang's -Wpedantic
  // refuses in C++).
  const __m128i h = _mm_cvtps_ph(_mm_set_ss(bits_float(f)), _MM_FROUND_TO_NEAREST_INT);
  return static_cast<std::uint16_t>(_mm_extract_epi16(h, 0));
}

__attribute__((target("avx512f,avx512bf16"))) void bf16_by_avx512(const std::uint32_t* in,
                                                                  std::uint16_t* out) {
  __m512 v;
  std::memcpy(&v, in, sizeof(v));
  const __m256bh b = _mm512_cvtneps_pbh(v);
  std::memcpy(out, &b, sizeof(b));
}

// CPUID leaf 1: F16C, AVX and OSXSAVE, and the OS saving the YMM state (XGETBV); clang's
// __builtin_cpu_supports knows no "f16c".
bool has_f16c() {
  unsigned int a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  const unsigned int f16c = 1u << 29, avx = 1u << 28, osxsave = 1u << 27;
  if ((c & (f16c | avx | osxsave)) != (f16c | avx | osxsave)) return false;
  unsigned int lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 6u) == 6u;
}
bool has_avx512_bf16() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}
#else
void fp16_by_f16c(const std::uint32_t*, std::uint16_t*) {}
std::uint32_t fp16_widened_by_f16c(std::uint16_t) { return 0; }
std::uint16_t fp16_by_f16c_scalar(std::uint32_t) { return 0; }
void bf16_by_avx512(const std::uint32_t*, std::uint16_t*) {}
bool has_f16c() { return false; }
bool has_avx512_bf16() { return false; }
#endif

// True for a float32 subnormal (not zero).
bool subnormal_bits(std::uint32_t f) { return (f & 0x7f800000u) == 0 && (f & 0x7fffffu) != 0; }

// The float32 inputs, in blocks of 16: the edge cases; every sign and exponent with the
// top 7 mantissa bits 0, 1 or all ones (so the BF16 last bit both ways and the carries
// into the exponent) and all 2^16 low bits (every tie and near-tie of both formats);
// 16 million random bit patterns; 8 million random magnitudes 2^-26 .. 2^-13 (FP16's
// subnormals). With RECUR_TEST_EXHAUSTIVE=1: every float32 instead.
template <class Check>
void for_float_inputs(Check&& check) {
  alignas(64) std::uint32_t block[16];
  const char* env = std::getenv("RECUR_TEST_EXHAUSTIVE");
  if (env != nullptr && std::string(env) == "1") {
    for (std::uint64_t base = 0; base < (std::uint64_t(1) << 32); base += 16) {
      for (int i = 0; i < 16; ++i) block[i] = static_cast<std::uint32_t>(base + i);
      check(block);
    }
    return;
  }
  const std::uint32_t edges[] = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
      0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff, 0x7f7fffff, 0xff7fffff,
      0x7f7f8000, 0x7f7f7fff, 0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001,
      0xc77ff000, 0x47800000, 0x38800000, 0x387fffff, 0x387fe000, 0x387fc000,
      0x33800000, 0x33000000, 0x33000001, 0x32ffffff, 0x33400000, 0x33c00000,
      0x00000001, 0x807fffff, 0x00800000, 0x3f808000, 0x3f801000, 0x3f803000};
  std::size_t n = 0;
  auto push = [&](std::uint32_t f) {
    block[n++] = f;
    if (n == 16) {
      check(block);
      n = 0;
    }
  };
  for (std::uint32_t f : edges) push(f);
  for (std::uint32_t top = 0; top < 512; ++top) {  // sign and exponent
    for (std::uint32_t mantissa_top : {0x00u, 0x01u, 0x7fu}) {
      const std::uint32_t high = (top << 23) | (mantissa_top << 16);
      for (std::uint32_t low = 0; low <= 0xffffu; ++low) push(high | low);
    }
  }
  std::uint64_t state = 22;
  auto next = [&state] {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (int i = 0; i < (1 << 24); ++i) push(static_cast<std::uint32_t>(next()));
  for (int i = 0; i < (1 << 23); ++i) {
    const std::uint64_t r = next();
    const auto exponent = static_cast<std::uint32_t>(101 + r % 13);  // 2^-26 .. 2^-14
    push((static_cast<std::uint32_t>(r >> 32) & 0x807fffffu) | (exponent << 23));
  }
  while (n != 0) push(0);
}

TEST(PrecisionFormats, Fp16RoundingMatchesF16c) {
  if (!has_f16c()) GTEST_SKIP() << "this CPU has no F16C";
  std::uint64_t checked = 0, mismatches = 0;
  for_float_inputs([&](const std::uint32_t* in) {
    std::uint16_t want[16];
    fp16_by_f16c(in, want);
    fp16_by_f16c(in + 8, want + 8);
    for (int i = 0; i < 16; ++i) {
      ++checked;
      const std::uint16_t got = float_bits_to_fp16(in[i]);
      if (got != want[i] && mismatches++ < 10) {
        ADD_FAILURE() << hex(in[i]) << ": recur " << hex(got) << ", F16C " << hex(want[i]);
      }
    }
  });
  EXPECT_EQ(mismatches, 0u) << "of " << checked;
  EXPECT_GT(checked, 100000000u);
  // The scalar form the brief names, on the edge cases: the same instruction.
  for (std::uint32_t f : {0x477ff000u, 0x33000001u, 0x387fe000u, 0xff812345u}) {
    EXPECT_EQ(float_bits_to_fp16(f), fp16_by_f16c_scalar(f)) << hex(f);
  }
}

TEST(PrecisionFormats, Fp16WideningMatchesF16cForEveryEncoding) {
  if (!has_f16c()) GTEST_SKIP() << "this CPU has no F16C";
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    ASSERT_EQ(fp16_to_float_bits(h), fp16_widened_by_f16c(h)) << hex(b);  // NaNs quiet too
  }
}

// VCVTNEPS2BF16 treats float32 subnormal inputs as zero (denormals-are-zero, whatever
// MXCSR says) and gives a zero of their sign; recur rounds them (BF16 has float32's
// subnormals, and PyTorch keeps them). So the instruction is
// the reference for every other input, and its zeros are checked for what they are.
// No normal input can round to a BF16 subnormal, so its flush-to-zero of results never
// shows. NaNs agree bit for bit (quiet, sign and top payload bits kept).
TEST(PrecisionFormats, Bf16RoundingMatchesAvx512Bf16ExceptOnSubnormalInputs) {
  if (!has_avx512_bf16()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  std::uint64_t checked = 0, subnormals = 0, mismatches = 0;
  for_float_inputs([&](const std::uint32_t* in) {
    std::uint16_t want[16];
    bf16_by_avx512(in, want);
    for (int i = 0; i < 16; ++i) {
      const std::uint16_t got = float_bits_to_bf16(in[i]);
      if (subnormal_bits(in[i])) {
        ++subnormals;
        const auto signed_zero = static_cast<std::uint16_t>((in[i] >> 16) & 0x8000u);
        if (want[i] != signed_zero && mismatches++ < 10) {
          ADD_FAILURE() << hex(in[i]) << ": the instruction gave " << hex(want[i])
                        << " for a subnormal, not a signed zero";
        }
        continue;
      }
      ++checked;
      if (got != want[i] && mismatches++ < 10) {
        ADD_FAILURE() << hex(in[i]) << ": recur " << hex(got) << ", AVX512_BF16 " << hex(want[i]);
      }
    }
  });
  EXPECT_EQ(mismatches, 0u) << "of " << checked << " (and " << subnormals << " subnormals)";
  EXPECT_GT(checked, 100000000u);
  EXPECT_GT(subnormals, 0u);
  // What recur does with subnormals instead: round them like any other value.
  EXPECT_EQ(float_bits_to_bf16(0x00008000u), 0x0000u);  // a tie, to the even zero
  EXPECT_EQ(float_bits_to_bf16(0x00018000u), 0x0002u);  // a tie, to the even 2
  EXPECT_EQ(float_bits_to_bf16(0x007fffffu), 0x0080u);  // up to the smallest normal
  EXPECT_EQ(float_bits_to_bf16(0x807fffffu), 0x8080u);
}

// ---- against PyTorch (tests/golden/gen_precision.py) ----

TEST(PrecisionFormats, MatchesPyTorchRoundings) {
  std::ifstream in(golden_dir() + "/precision_torch.txt");
  ASSERT_TRUE(in) << "missing " << golden_dir() << "/precision_torch.txt";
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::uint32_t f = 0, b = 0, h = 0;
    fields >> std::hex >> f >> b >> h;
    ASSERT_TRUE(fields) << line;
    ++rows;
    const std::uint16_t bf = float_bits_to_bf16(f), fp = float_bits_to_fp16(f);
    if (is_nan_bits(f)) {  // PyTorch writes one canonical NaN; recur keeps sign and payload
      EXPECT_TRUE(bf16_nan(static_cast<std::uint16_t>(b)) && bf16_nan(bf)) << line;
      EXPECT_TRUE(fp16_nan(static_cast<std::uint16_t>(h)) && fp16_nan(fp)) << line;
      continue;
    }
    EXPECT_EQ(bf, b) << line;
    EXPECT_EQ(fp, h) << line;
  }
  EXPECT_GT(rows, 8000);
}

// ---- TF32 ----

TEST(PrecisionFormats, Tf32KeepsTenMantissaBitsRoundingToNearestEven) {
  // Each expected value by hand: TF32 keeps bits 31..13; bit 13 is the last kept one.
  const std::uint32_t cases[][2] = {
      {0x3f800000, 0x3f800000},  // 1
      {0x3f800fff, 0x3f800000},  // below half a unit: down
      {0x3f801000, 0x3f800000},  // 1 + 2^-11, a tie: to the even 1
      {0x3f801001, 0x3f802000},  // above the tie: up
      {0x3f803000, 0x3f804000},  // 1 + 3 * 2^-11, a tie above an odd last bit: up
      {0x3f802fff, 0x3f802000},
      {0x3dcccccd, 0x3dccc000},  // 0.1f: the dropped 0x0ccd is below half
      {0x3fffffff, 0x40000000},  // the carry runs into the exponent: 2
      {0x3ffff000, 0x40000000},  // a tie above the odd 1.999...: up, to 2
      {0x3fffefff, 0x3fffe000},
      {0x7f7fe000, 0x7f7fe000},  // TF32's largest finite value, 0x1.ffcp+127
      {0x7f7fefff, 0x7f7fe000},  // still below half a unit above it
      {0x7f7ff000, 0x7f800000},  // the tie above it (odd): infinity
      {0x7f7fffff, 0x7f800000},  // float32's largest finite value: infinity
      {0xff7fffff, 0xff800000},  // and its negative: -infinity
      {0x7f800000, 0x7f800000},  // infinities stay
      {0xff800000, 0xff800000},
      {0x00000000, 0x00000000},  // +-0 stay
      {0x80000000, 0x80000000},
      {0x00001000, 0x00000000},  // a subnormal tie: to the even zero
      {0x00003000, 0x00004000},  // a subnormal tie above an odd last bit: up
      {0x00002001, 0x00002000},
      {0x007fffff, 0x00800000},  // the largest subnormal rounds up to the smallest normal
      {0x80001001, 0x80002000},  // negative subnormals round by magnitude
      {0xbf801000, 0xbf800000},  // negative ties likewise
      {0xbf803000, 0xbf804000},
      {0x7fc00000, 0x7fc00000},  // a quiet NaN stays
      {0x7f800001, 0x7fc00000},  // a signalling NaN whose payload is dropped: made quiet
      {0xffa03fff, 0xffe02000},  // sign and the payload's top bits kept, made quiet
  };
  for (const auto& c : cases) {
    EXPECT_EQ(float_bits_to_tf32(c[0]), c[1]) << hex(c[0]);
    const float r = round_to_tf32(bits_float(c[0]));
    EXPECT_EQ(float_bits(r), c[1]) << hex(c[0]);
  }
}

// ---- float64 -> BF16 / FP16: one rounding, not two ----

// The nearest float64 with `keep` mantissa bits (to even), for a normal float64 whose
// result stays in the target format's normal range: what BF16 (keep 7) and FP16 (keep 10)
// must give there.
double round_float64_mantissa(double x, int keep) {
  std::uint64_t d;
  std::memcpy(&d, &x, sizeof(d));
  const int drop = 52 - keep;
  const std::uint64_t half = (std::uint64_t(1) << (drop - 1)) - 1;
  d = (d + half + ((d >> drop) & 1)) & ~((std::uint64_t(1) << drop) - 1);
  std::memcpy(&x, &d, sizeof(x));
  return x;
}

TEST(PrecisionFormats, Float64RoundsOnceToBf16AndFp16) {
  // Each value rounds to float32 onto a tie of the reduced format, which would then round
  // to even, the wrong way: the float64 is just above (or below) the tie.
  const double up = 1.0 + 0x1p-8 + 0x1p-40;             // BF16: above the tie 1 + 2^-8 -> 1 + 2^-7
  const double down = 1.0 + 0x1p-7 + 0x1p-8 - 0x1p-40;  // BF16: below 1 + 3*2^-8 -> 1 + 2^-7
  const double up16 = 1.0 + 0x1p-11 + 0x1p-40;  // FP16: above the tie 1 + 2^-11 -> 1 + 2^-10
  ASSERT_EQ(float_to_bf16(static_cast<float>(up)), 0x3f80u);  // rounding twice goes wrong
  EXPECT_EQ(float64_to_bf16(up), 0x3f81u);
  ASSERT_EQ(float_to_bf16(static_cast<float>(down)), 0x3f82u);
  EXPECT_EQ(float64_to_bf16(down), 0x3f81u);
  ASSERT_EQ(float_to_fp16(static_cast<float>(up16)), 0x3c00u);
  EXPECT_EQ(float64_to_fp16(up16), 0x3c01u);
  EXPECT_EQ(float64_to_fp16(-up16), 0xbc01u);

  // Random float64s in each format's normal range, against rounding the float64's own
  // mantissa: a quarter exactly on a tie of the format, a quarter a float64 unit off one.
  Random rng(64);
  for (int i = 0; i < 200000; ++i) {
    const bool bf = i % 2 == 0;
    const double e = bf ? std::floor(rng.uniform(-126.0, 127.0)) : std::floor(rng.uniform(-14, 15));
    double x = std::ldexp(rng.uniform(1.0, 2.0), static_cast<int>(e));
    if (i % 4 < 2) x = round_float64_mantissa(x, bf ? 8 : 11);  // on the half-unit grid
    if (i % 4 == 1) x = std::nextafter(x, rng.uniform() < 0 ? 0.0 : 1e300);
    if (rng.uniform() < 0) x = -x;
    const double want = round_float64_mantissa(x, bf ? 7 : 10);
    const double got = bf ? bf16_to_float(float64_to_bf16(x)) : fp16_to_float(float64_to_fp16(x));
    ASSERT_EQ(got, want) << (bf ? "bf16 " : "fp16 ") << std::hexfloat << x;
  }

  // Subnormal results: FP16 counts units of 2^-24, BF16 units of 2^-133, rounded to an
  // integer (ties to even; 1024 and 128 are the smallest normals). A third are ties.
  for (int i = 0; i < 100000; ++i) {
    const double u16 = rng.uniform(0.0, 1024.0), u = rng.uniform(0.0, 128.0);
    const double units16 = i % 3 == 0 ? std::floor(u16) + 0.5 : u16;
    const double units = i % 3 == 0 ? std::floor(u) + 0.5 : u;
    const double x = std::ldexp(units16, -24), y = std::ldexp(units, -133);
    ASSERT_EQ(float64_to_fp16(x), static_cast<std::uint16_t>(std::nearbyint(units16)))
        << std::hexfloat << x;
    ASSERT_EQ(float64_to_bf16(y), static_cast<std::uint16_t>(std::nearbyint(units)))
        << std::hexfloat << y;
  }

  // The edges: overflow, tiny, infinities, NaN, signed zero.
  EXPECT_EQ(float64_to_fp16(65520.0), 0x7c00u);
  EXPECT_EQ(float64_to_fp16(std::nextafter(65520.0, 0.0)), 0x7bffu);
  EXPECT_EQ(float64_to_fp16(1e300), 0x7c00u);
  EXPECT_EQ(float64_to_bf16(1e300), 0x7f80u);
  EXPECT_EQ(float64_to_bf16(-1e300), 0xff80u);
  EXPECT_EQ(float64_to_bf16(3.4e38), 0x7f80u);  // below float32's max, above BF16's edge
  EXPECT_EQ(float64_to_bf16(1e-300), 0x0000u);
  EXPECT_EQ(float64_to_bf16(-1e-300), 0x8000u);
  EXPECT_EQ(float64_to_fp16(0x1p-25), 0x0000u);  // a tie, to the even zero
  EXPECT_EQ(float64_to_fp16(std::nextafter(0x1p-25, 1.0)), 0x0001u);
  EXPECT_EQ(float64_to_bf16(std::numeric_limits<double>::denorm_min()), 0x0000u);
  EXPECT_EQ(float64_to_bf16(INFINITY), 0x7f80u);
  EXPECT_EQ(float64_to_fp16(-INFINITY), 0xfc00u);
  EXPECT_TRUE(bf16_nan(float64_to_bf16(std::nan(""))));
  EXPECT_TRUE(fp16_nan(float64_to_fp16(-std::nan(""))));
  EXPECT_EQ(float64_to_fp16(-std::nan("")) & 0x8000u, 0x8000u);
  EXPECT_EQ(float64_to_bf16(-0.0), 0x8000u);
}

// ---- the public types ----

static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2, "16 bits each");
static_assert(std::is_trivially_copyable_v<bfloat16> && std::is_standard_layout_v<bfloat16>,
              "a vector of bfloat16 is the tensor's memory");
static_assert(std::is_trivially_copyable_v<float16> && std::is_standard_layout_v<float16>,
              "a vector of float16 is the tensor's memory");
static_assert(std::is_trivially_default_constructible_v<bfloat16>, "uninitialised like float");
static_assert(!std::is_convertible_v<float, bfloat16> && !std::is_convertible_v<float, float16>,
              "narrowing rounds, so it is explicit");
static_assert(std::is_convertible_v<bfloat16, float> && std::is_convertible_v<float16, float>,
              "widening is exact, so it is implicit");

TEST(PrecisionFormats, PublicTypesRoundWithTheSameRules) {
  EXPECT_EQ(bfloat16(0.1f).bits, 0x3dcdu);
  EXPECT_EQ(static_cast<float>(bfloat16(0.1f)), 0.10009765625f);
  EXPECT_EQ(float16(0.1f).bits, 0x2e66u);
  EXPECT_EQ(float16(65520.0f).bits, 0x7c00u);
  EXPECT_EQ(float16(-65519.0f).bits, 0xfbffu);
  EXPECT_EQ(bfloat16{}.bits, 0u);
  EXPECT_EQ(float16{}.bits, 0u);
  EXPECT_EQ(static_cast<float>(float16::from_bits(0x3c00)), 1.0f);
  EXPECT_EQ(static_cast<float>(bfloat16::from_bits(0xc040)), -3.0f);
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(NAN))));
  EXPECT_TRUE(std::isinf(static_cast<float>(float16(1e6f))));
  Random rng(5);
  for (int i = 0; i < 10000; ++i) {
    const float x = static_cast<float>(rng.uniform(-1e5, 1e5));
    EXPECT_EQ(bfloat16(x).bits, float_to_bf16(x));
    EXPECT_EQ(float16(x).bits, float_to_fp16(x));
    EXPECT_EQ(float_bits(round_to_bf16(x)), float_bits(bfloat16(x)));
    EXPECT_EQ(float_bits(round_to_fp16(x)), float_bits(float16(x)));
  }
}

}  // namespace
}  // namespace recur::test
