// tests/test_joins.cpp: the joins of recur/joins.h on the CPU against naive loops, each
// backward checked as the adjoint of its forward (<f(x), w> = <x, f^T(w)>, exact up to
// float64 rounding), the error messages, and CUDA vs CPU (SKIPPED without a GPU).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../kernels/joins.cuh"
#include "io_test_util.h"
#include "recur/joins.h"

namespace recur::test {
namespace {

double dot(const TensorView& a, const TensorView& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double s = 0;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) s += x[i] * y[i];
  return s;
}

// <f(x), w> against <x, f^T(w)>: both sums of n products of values in [-1, 1].
void expect_adjoint(double forward, double backward, std::int64_t n) {
  const double budget = 4.0 * static_cast<double>(n) * epsilon<double>();
  EXPECT_LE(std::fabs(forward - backward), budget) << forward << " vs " << backward;
  EXPECT_NE(forward, 0.0);  // the check compared something
}

TEST(Joins, ConcatAndSplitAreInverseAlongEachDimension) {
  Random rng(1);
  for (std::int64_t dim = 0; dim < 3; ++dim) {
    Shape a = {2, 3, 4}, b = {2, 3, 4};
    b[static_cast<std::size_t>(dim)] = 5;
    Tensor x = rng.tensor<float>(a), y = rng.tensor<float>(b);
    Tensor joined = concat({x, y}, dim);
    Shape want = a;
    want[static_cast<std::size_t>(dim)] += 5;
    ASSERT_EQ(joined.shape(), want);
    // The naive loop: element (i, j, k) of the joined tensor.
    const std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>(),
                             jv = joined.to_vector<float>();
    for (std::int64_t i = 0; i < want[0]; ++i) {
      for (std::int64_t j = 0; j < want[1]; ++j) {
        for (std::int64_t k = 0; k < want[2]; ++k) {
          std::int64_t idx[3] = {i, j, k};
          const bool first = idx[dim] < a[static_cast<std::size_t>(dim)];
          if (!first) idx[dim] -= a[static_cast<std::size_t>(dim)];
          const Shape& s = first ? a : b;
          const float ref =
              (first ? xv : yv)[static_cast<std::size_t>((idx[0] * s[1] + idx[1]) * s[2] + idx[2])];
          ASSERT_EQ(jv[static_cast<std::size_t>((i * want[1] + j) * want[2] + k)], ref);
        }
      }
    }
    std::vector<Tensor> parts = split(joined, {a[static_cast<std::size_t>(dim)], 5}, dim);
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(bytes_of(parts[0]), bytes_of(x));
    EXPECT_EQ(bytes_of(parts[1]), bytes_of(y));
  }
}

TEST(Joins, EveryDtypeJoins) {
  Tensor i = Tensor::from_vector<std::int64_t>({1, 2, 3, 4}, {2, 2});
  Tensor j = Tensor::from_vector<std::int64_t>({5, 6}, {2, 1});
  EXPECT_EQ(concat({i, j}, 1).to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{1, 2, 5, 3, 4, 6}));
  Tensor h = Tensor::from_vector<float>({1, 2, 3}, {3}).to(DType::BFloat16);
  Tensor hh = concat({h, h}, 0);
  EXPECT_EQ(hh.dtype(), DType::BFloat16);
  EXPECT_EQ(hh.to(DType::Float32).to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
}

TEST(Joins, NarrowAndItsBackwardAreAdjoint) {
  Random rng(2);
  Tensor x = rng.tensor<double>({4, 5, 3});
  Tensor y = narrow(x, 1, 1, 3);
  ASSERT_EQ(y.shape(), (Shape{4, 3, 3}));
  const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (std::int64_t i = 0; i < 4; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      for (std::int64_t k = 0; k < 3; ++k) {
        ASSERT_EQ(yv[static_cast<std::size_t>((i * 3 + j) * 3 + k)],
                  xv[static_cast<std::size_t>((i * 5 + j + 1) * 3 + k)]);
      }
    }
  }
  Tensor w = rng.tensor<double>({4, 3, 3});
  Tensor dx = narrow_backward(w, x.shape(), 1, 1);
  ASSERT_EQ(dx.shape(), x.shape());
  expect_adjoint(dot(y, w), dot(x, dx), x.numel());
  // Outside the window the gradient is zero.
  const std::vector<double> d = dx.to_vector<double>();
  for (std::int64_t i = 0; i < 4; ++i) {
    for (std::int64_t j : {0, 4}) {
      for (std::int64_t k = 0; k < 3; ++k) {
        EXPECT_EQ(d[static_cast<std::size_t>((i * 5 + j) * 3 + k)], 0.0);
      }
    }
  }
}

TEST(Joins, ReshapeBorrowsTheMemory) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  TensorView v = reshape(x, {3, 1, 2});
  EXPECT_EQ(v.data(), x.data());
  EXPECT_EQ(v.shape(), (Shape{3, 1, 2}));
  EXPECT_TRUE(throws_error([&] { reshape(x, {4}); },
                           {"reshape", "'shape'", "6 elements (those of x [2, 3])", "got [4]"}));
}

TEST(Joins, ScaleMultipliesAndIsItsOwnBackward) {
  Random rng(3);
  Tensor x = rng.tensor<double>({7, 3});
  Tensor y = scale(x, -0.375);
  const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (std::size_t i = 0; i < xv.size(); ++i) ASSERT_EQ(yv[i], -0.375 * xv[i]);
  Tensor w = rng.tensor<double>({7, 3});
  expect_adjoint(dot(y, w), dot(x, scale(w, -0.375)), x.numel());
  EXPECT_EQ(scale(Tensor::from_vector<float>({2}, {1}), 0.1).to_vector<float>()[0],
            2.0f * static_cast<float>(0.1));
}

// The masked mean against a naive loop, in both layouts, with an empty sequence.
template <typename Index>
void masked_mean_case(bool batch_first) {
  Random rng(4);
  const std::int64_t T = 5, B = 4, F = 3;
  const Shape shape = batch_first ? Shape{B, T, F} : Shape{T, B, F};
  Tensor y = rng.tensor<double>(shape);
  const std::vector<Index> len = {5, 2, 0, 3};
  Tensor lengths = Tensor::from_vector(len, {B});
  Tensor pooled = masked_mean(y, lengths, batch_first);
  ASSERT_EQ(pooled.shape(), (Shape{B, F}));
  const std::vector<double> yv = y.to_vector<double>(), pv = pooled.to_vector<double>();
  auto at = [&](std::int64_t t, std::int64_t b, std::int64_t f) {
    return static_cast<std::size_t>((batch_first ? b * T + t : t * B + b) * F + f);
  };
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t f = 0; f < F; ++f) {
      double sum = 0;
      for (std::int64_t t = 0; t < len[static_cast<std::size_t>(b)]; ++t) sum += yv[at(t, b, f)];
      const double ref = len[static_cast<std::size_t>(b)] > 0
                             ? sum / static_cast<double>(len[static_cast<std::size_t>(b)])
                             : 0.0;
      ASSERT_EQ(pv[static_cast<std::size_t>(b * F + f)], ref);
    }
  }
  Tensor w = rng.tensor<double>({B, F});
  Tensor dy = masked_mean_backward(w, lengths, T, batch_first);
  ASSERT_EQ(dy.shape(), shape);
  expect_adjoint(dot(pooled, w), dot(y, dy), y.numel());
  const std::vector<double> d = dy.to_vector<double>();
  for (std::int64_t t = 2; t < T; ++t) EXPECT_EQ(d[at(t, 1, 0)], 0.0);  // padded steps
}

TEST(Joins, MaskedMeanTimeMajorInt32) { masked_mean_case<std::int32_t>(false); }
TEST(Joins, MaskedMeanBatchFirstInt64) { masked_mean_case<std::int64_t>(true); }

TEST(Joins, ArgmaxTakesTheFirstLargestAndNaN) {
  const float nan = std::nanf("");
  Tensor x =
      Tensor::from_vector<float>({1, 3, 3, 0, /**/ -1, -2, -3, -4, /**/ 0, nan, 5, nan}, {3, 4});
  EXPECT_EQ(argmax(x).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 0, 1}));
  EXPECT_EQ(argmax(x).dtype(), DType::Int64);
  EXPECT_EQ(argmax(Tensor::zeros({2, 3, 1}, DType::Float64)).shape(), (Shape{2, 3}));
}

// A GPU block cuts a row into row_lanes(V) interleaved lanes and merges their best in a
// tree; the order is total (NaN, then the value, then the smaller index), so that gives
// the CPU's one-lane answer. Rows with the winner's ties, NaNs, -0/+0 and infinities in
// different lanes, at every lane count.
TEST(Joins, ArgmaxByLanesIsTheOneLaneAnswer) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  Random rng(6);
  std::vector<std::vector<double>> rows;
  for (int r = 0; r < 40; ++r) {
    std::vector<double> x = rng.vector<double>(5000, -4, 4);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] = std::round(x[j]);  // many ties of 4
    if (r % 4 == 1) x[static_cast<std::size_t>(3 * r + 700)] = nan;
    if (r % 4 == 1) x[static_cast<std::size_t>(3 * r + 5)] = nan;
    if (r % 4 == 2) x[static_cast<std::size_t>(4000 - r)] = inf;
    if (r % 4 == 3) {
      for (double& v : x) v = v > 0 ? -v : v;  // the largest is 0: -0.0 and +0.0 tie
      x[static_cast<std::size_t>(900 + r)] = -0.0;
    }
    rows.push_back(x);
  }
  for (const std::vector<double>& x : rows) {
    const auto classes = static_cast<std::int64_t>(x.size());
    const std::int64_t one = kernels::lane_best(x.data(), classes, 0, 1).index;
    for (int lanes = 1; lanes <= kernels::kMaxRowLanes; lanes *= 2) {
      std::vector<kernels::ArgmaxBest<double>> part;
      for (int k = 0; k < lanes; ++k)
        part.push_back(kernels::lane_best(x.data(), classes, k, lanes));
      for (int stride = lanes / 2; stride > 0; stride /= 2) {
        for (int k = 0; k < stride; ++k) {
          if (kernels::beats(part[k + stride], part[k])) part[k] = part[k + stride];
        }
      }
      ASSERT_EQ(part[0].index, one) << lanes << " lanes";
    }
    // And the one-lane answer is the first largest (NaN the largest).
    std::int64_t first = 0;
    for (std::int64_t j = 1; j < classes; ++j) {
      if (std::isnan(x[first])) break;
      if (std::isnan(x[j]) || x[j] > x[first]) first = j;
    }
    ASSERT_EQ(one, first);
  }
  EXPECT_EQ(kernels::row_lanes(3), 32);
  EXPECT_EQ(kernels::row_lanes(5000), 256);
}

TEST(Joins, CountCorrectAccumulatesOnTheDevice) {
  Tensor logits =
      Tensor::from_vector<double>({0, 1, 0, /**/ 2, 1, 0, /**/ 0, 0, 9, /**/ 1, 0, 0}, {2, 2, 3});
  Tensor totals = Tensor::zeros({2}, DType::Int64);
  count_correct(logits, Tensor::from_vector<std::int32_t>({1, 1, 2, -100}, {2, 2}), totals);
  EXPECT_EQ(totals.to_vector<std::int64_t>(), (std::vector<std::int64_t>{2, 3}));
  count_correct(logits, Tensor::from_vector<std::int64_t>({0, 0, 7, 0}, {4}), totals, 7);
  EXPECT_EQ(totals.to_vector<std::int64_t>(), (std::vector<std::int64_t>{4, 6}));
}

TEST(JoinErrors, MessagesNameTheArgument) {
  Tensor a = Tensor::zeros({2, 3}, DType::Float32);
  Tensor b = Tensor::zeros({2, 4}, DType::Float32);
  EXPECT_TRUE(throws_error([&] { concat({}, 0); }, {"concat", "'parts'", "at least one"}));
  EXPECT_TRUE(throws_error(
      [&] {
        concat({a, b}, 0);
      },
      {"concat", "'parts[1]'", "[2, 3] but along dim 0", "got shape [2, 4]"}));
  EXPECT_TRUE(throws_error(
      [&] {
        concat({a, Tensor::zeros({2, 3}, DType::Float64)}, 1);
      },
      {"'parts[1]'", "dtype float32 on cpu (those of parts[0])"}));
  EXPECT_TRUE(throws_error([&] { concat({a, a}, 2); }, {"'dim'", "[0, 2)", "got 2"}));
  EXPECT_TRUE(throws_error([&] { concat({a, TensorView()}, 0); }, {"'parts[1]'", "undefined"}));
  EXPECT_TRUE(throws_error([&] { split(a, {1, 1}, 1); }, {"split", "'sizes'", "summing to 3"}));
  EXPECT_TRUE(throws_error([&] { split(a, {-1, 4}, 1); }, {"'sizes'", "sizes[0] = -1"}));
  EXPECT_TRUE(throws_error([&] { narrow(a, 1, 2, 2); }, {"narrow", "'length'", "[0, 1]", "got 2"}));
  EXPECT_TRUE(throws_error([&] { narrow(a, 1, 4, 0); }, {"'start'", "[0, 3]", "got 4"}));
  EXPECT_TRUE(throws_error(
      [&] {
        narrow_backward(a, {2, 2}, 1, 0);
      },
      {"narrow_backward", "'shape'", "but along dim 1", "got [2, 2]"}));
  EXPECT_TRUE(throws_error(
      [&] {
        narrow_backward(a, {2, 5}, 1, 3);
      },
      {"'start'", "[0, 2]", "got 3"}));
  EXPECT_TRUE(throws_error([&] { scale(Tensor::zeros({2}, DType::Int32), 2.0); },
                           {"scale", "'x'", "float32 or float64", "got dtype int32"}));
  Tensor y = Tensor::zeros({5, 2, 3}, DType::Float32);
  EXPECT_TRUE(throws_error(
      [&] {
        masked_mean(y, Tensor::from_vector<std::int32_t>({1, 6}, {2}));
      },
      {"masked_mean", "'lengths'", "lengths in [0, 5]", "lengths[1] = 6"}));
  EXPECT_TRUE(throws_error([&] { masked_mean(y, Tensor::zeros({3}, DType::Int32)); },
                           {"'lengths'", "shape [2]", "got shape [3]"}));
  EXPECT_TRUE(throws_error([&] { masked_mean(y, Tensor::zeros({2}, DType::Float32)); },
                           {"'lengths'", "int32 or int64", "got dtype float32"}));
  EXPECT_TRUE(throws_error(
      [&] {
        masked_mean(Tensor::zeros({5, 2}, DType::Float32), a);
      },
      {"'y'", "rank 3 [T, B, F]", "got shape [5, 2]"}));
  EXPECT_TRUE(throws_error([&] { masked_mean_backward(a, Tensor::zeros({2}, DType::Int64), -1); },
                           {"masked_mean_backward", "'steps'", "got -1"}));
  EXPECT_TRUE(throws_error(
      [&] {
        argmax(Tensor::zeros({2, 0}, DType::Float32));
      },
      {"argmax", "'x'", "V >= 1"}));
  Tensor totals = Tensor::zeros({2}, DType::Int64);
  EXPECT_TRUE(throws_error([&] { count_correct(a, Tensor::zeros({3}, DType::Int32), totals); },
                           {"count_correct", "'targets'", "2 targets", "got 3"}));
  EXPECT_TRUE(throws_error(
      [&] { count_correct(a, Tensor::zeros({2}, DType::Int32), Tensor::zeros({2}, DType::Int32)); },
      {"'totals'", "an Int64 tensor [2]", "got dtype int32"}));
  EXPECT_EQ(totals.to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 0}));
}

// ---- CUDA vs CPU ----

TEST(JoinsCuda, EveryJoinMatchesTheCpuBitwise) {
  RECUR_REQUIRE_GPU();
  const Device gpu = Device::cuda(0);
  Random rng(5);
  Tensor x = rng.tensor<float>({6, 4, 5}), z = rng.tensor<float>({6, 2, 5});
  Tensor xg = x.to(gpu), zg = z.to(gpu);
  EXPECT_EQ(bytes_of(concat({xg, zg}, 1)), bytes_of(concat({x, z}, 1)));
  EXPECT_EQ(bytes_of(split(xg, {1, 3}, 1)[1]), bytes_of(split(x, {1, 3}, 1)[1]));
  EXPECT_EQ(bytes_of(narrow(xg, 2, 1, 3)), bytes_of(narrow(x, 2, 1, 3)));
  EXPECT_EQ(bytes_of(narrow_backward(zg, {6, 7, 5}, 1, 4)),
            bytes_of(narrow_backward(z, {6, 7, 5}, 1, 4)));
  EXPECT_EQ(bytes_of(scale(xg, 0.3)), bytes_of(scale(x, 0.3)));
  Tensor lengths = Tensor::from_vector<std::int64_t>({6, 0, 3, 1}, {4});
  Tensor lg = lengths.to(gpu);
  // The same loop in the same order: the same bits.
  EXPECT_EQ(bytes_of(masked_mean(xg, lg)), bytes_of(masked_mean(x, lengths)));
  Tensor w = rng.tensor<float>({4, 5});
  EXPECT_EQ(bytes_of(masked_mean_backward(w.to(gpu), lg, 6)),
            bytes_of(masked_mean_backward(w, lengths, 6)));
  Tensor logits = rng.tensor<double>({300, 17});
  EXPECT_EQ(bytes_of(argmax(logits.to(gpu))), bytes_of(argmax(logits)));
  std::vector<std::int32_t> t(300);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>(i % 19) - 1;
  Tensor targets = Tensor::from_vector(t, {300});
  Tensor totals = Tensor::zeros({2}, DType::Int64),
         totals_gpu = Tensor::zeros({2}, DType::Int64, gpu);
  count_correct(logits, targets, totals, -1);
  count_correct(logits.to(gpu), targets.to(gpu), totals_gpu, -1);
  EXPECT_EQ(totals_gpu.to_vector<std::int64_t>(), totals.to_vector<std::int64_t>());
  EXPECT_GT(totals.to_vector<std::int64_t>()[1], 0);
  // A vocabulary of 10^5: 256 lanes a row, their best merged in the block.
  Tensor wide = rng.tensor<float>({70, 100003});
  EXPECT_EQ(bytes_of(argmax(wide.to(gpu))), bytes_of(argmax(wide)));
  std::vector<std::int64_t> wide_targets = argmax(wide).to_vector<std::int64_t>();
  for (std::size_t i = 0; i < wide_targets.size(); i += 3) wide_targets[i] = 0;
  Tensor wt = Tensor::from_vector(wide_targets, {70});
  Tensor wide_totals = Tensor::zeros({2}, DType::Int64),
         wide_totals_gpu = Tensor::zeros({2}, DType::Int64, gpu);
  count_correct(wide, wt, wide_totals);
  count_correct(wide.to(gpu), wt.to(gpu), wide_totals_gpu);
  EXPECT_EQ(wide_totals_gpu.to_vector<std::int64_t>(), wide_totals.to_vector<std::int64_t>());
  // A device tensor with host data is refused, as any device mismatch.
  EXPECT_TRUE(throws_error([&] { masked_mean(xg, lengths); },
                           {"'lengths'", "device cuda:0 (that of the data)", "got device cpu"}));
}

}  // namespace
}  // namespace recur::test
