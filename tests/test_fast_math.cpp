// tests/test_fast_math.cpp: kernels/fast_math.h, the CPU's float exp, sigmoid and tanh, against
// double-precision libm over the float range, and their special values.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/fast_math.h"

namespace recur::test {
namespace {

namespace fast = kernels::fast;

// |got - want| in units of the float spacing at want; subnormal results are measured in
// the subnormal spacing 2^-149.
double ulps(float got, double want) {
  const double spacing =
      std::fabs(want) < FLT_MIN
          ? std::ldexp(1.0, -149)
          : std::ldexp(1.0, std::ilogb(static_cast<float>(std::fabs(want))) - 23);
  return std::fabs(static_cast<double>(got) - want) / spacing;
}

// Every 251st float bit pattern (17 million values, all binades, both signs), plus every
// float within 2^14 steps of the points where the code changes regime.
std::vector<float> sample_points() {
  std::vector<float> xs;
  for (std::uint64_t u = 0; u < (1ull << 32); u += 251) {
    xs.push_back(fast::float_of(static_cast<std::uint32_t>(u)));
  }
  for (float edge : {0.0f, 0.625f, 9.0f, 20.0f, 88.0f, 88.7228f, 89.0f, -87.33f, -103.97f, -104.0f,
                     0.3466f, 1e-20f}) {
    for (float x : {edge, -edge}) {
      float lo = x, hi = x;
      for (int k = 0; k < (1 << 14); ++k) {
        xs.push_back(lo = std::nextafter(lo, -INFINITY));
        xs.push_back(hi = std::nextafter(hi, INFINITY));
      }
    }
  }
  return xs;
}

TEST(FastMath, ExpIsWithinTwoUlpsOfLibmEverywhere) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x : sample_points()) {
    if (std::isnan(x)) continue;
    const double want = std::exp(static_cast<double>(x));
    const float got = fast::exp(x);
    if (want > FLT_MAX) {
      // Includes (FLT_MAX, FLT_MAX + half a step), which rounds down to FLT_MAX: a
      // 1-ulp-accurate e^r may tip that over to inf.
      ASSERT_TRUE(std::isinf(got) || got == FLT_MAX) << "exp(" << x << ") = " << got;
      continue;
    }
    const double err = ulps(got, want);
    if (!(err <= worst)) worst = err, worst_x = x;  // NaN becomes the worst
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
  RecordProperty("exp_max_ulps", std::to_string(worst));
}

TEST(FastMath, TanhIsWithinThreeUlpsOfLibmEverywhereAndOdd) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x : sample_points()) {
    if (std::isnan(x)) continue;
    const float got = fast::tanh(x);
    const double err = ulps(got, std::tanh(static_cast<double>(x)));
    if (!(err <= worst)) worst = err, worst_x = x;
    ASSERT_EQ(fast::tanh(-x), -got) << "x = " << x;
  }
  EXPECT_LE(worst, 3.0) << "at x = " << worst_x;
  RecordProperty("tanh_max_ulps", std::to_string(worst));
}

// Within 3.5 ulp where 1 / (1 + e^-x) is a normal float; where it is a subnormal (x below
// -87.3) within 2^-127 absolutely, since from x = -88.38 on it is flushed to 0.
TEST(FastMath, SigmoidIsWithinThreeAndAHalfUlpsOfLibmWhereNormal) {
  double worst = 0.0, worst_subnormal = 0.0;
  float worst_x = 0.0f;
  for (float x : sample_points()) {
    if (std::isnan(x)) continue;
    const double want = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    const float got = fast::sigmoid(x);
    if (want < FLT_MIN) {
      const double err = std::fabs(static_cast<double>(got) - want);
      if (!(err <= worst_subnormal)) worst_subnormal = err;
      continue;
    }
    const double err = ulps(got, want);
    if (!(err <= worst)) worst = err, worst_x = x;
  }
  EXPECT_LE(worst, 3.5) << "at x = " << worst_x;
  EXPECT_LE(worst_subnormal, std::ldexp(1.0, -127));
  RecordProperty("sigmoid_max_ulps", std::to_string(worst));
}

// exp_normal is exp with one scale instead of two: the same bits up to 88.37, inf from
// 88.38 to 89 (the end of its domain, where exp overflows at 88.72).
TEST(FastMath, ExpNormalIsExpOnItsDomain) {
  for (float x : sample_points()) {
    if (x >= -87.33f && x <= 88.37f) {
      ASSERT_EQ(fast::exp_normal(x), fast::exp(x)) << "x = " << x;
    }
  }
  for (float x = 88.38f; x <= 89.0f; x = std::nextafter(x, INFINITY)) {
    ASSERT_TRUE(std::isinf(fast::exp_normal(x))) << "x = " << x;
  }
}

TEST(FastMath, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  for (std::uint32_t nan_bits : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fffffffu}) {
    const float nan = fast::float_of(nan_bits);
    EXPECT_TRUE(std::isnan(fast::exp(nan))) << std::hex << nan_bits;
    EXPECT_TRUE(std::isnan(fast::tanh(nan))) << std::hex << nan_bits;
    EXPECT_TRUE(std::isnan(fast::sigmoid(nan))) << std::hex << nan_bits;
  }
  EXPECT_EQ(fast::exp(inf), inf);
  EXPECT_EQ(fast::exp(-inf), 0.0f);
  EXPECT_EQ(fast::exp(0.0f), 1.0f);
  EXPECT_EQ(fast::exp(-0.0f), 1.0f);
  EXPECT_EQ(fast::exp(1000.0f), inf);
  EXPECT_EQ(fast::exp(-1000.0f), 0.0f);
  EXPECT_GT(fast::exp(-100.0f), 0.0f);  // subnormal, not flushed
  EXPECT_EQ(fast::tanh(inf), 1.0f);
  EXPECT_EQ(fast::tanh(-inf), -1.0f);
  EXPECT_EQ(fast::tanh(30.0f), 1.0f);
  EXPECT_EQ(fast::tanh(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(fast::tanh(-0.0f)));
  EXPECT_EQ(fast::tanh(1e-30f), 1e-30f);  // tanh x = x to float precision near 0
  EXPECT_EQ(fast::sigmoid(inf), 1.0f);
  EXPECT_EQ(fast::sigmoid(-inf), 0.0f);
  EXPECT_EQ(fast::sigmoid(0.0f), 0.5f);
  EXPECT_EQ(fast::sigmoid(20.0f), 1.0f);
  EXPECT_GT(fast::sigmoid(-88.0f), 0.0f);  // subnormal, not flushed
  EXPECT_EQ(fast::sigmoid(-1000.0f), 0.0f);
}

}  // namespace
}  // namespace recur::test
