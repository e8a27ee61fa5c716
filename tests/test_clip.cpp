// tests/test_clip.cpp: global_norm and clip_grad_norm: against a long-double reference,
// below and above the threshold, direction, NaN and Inf, empty and odd-sized spans,
// hundreds of spans, 10^8 elements, bad arguments; then the GPU against the CPU (SKIPPED
// without a GPU).
#include <cstring>
#include <memory>

#include "cpu/cpu_grad.h"
#include "test_util.h"
#if RECUR_HAS_CUDA
#include <cuda_runtime.h>
#endif

namespace recur::test {
namespace {

const Device kGpu = Device::cuda(0);

std::vector<TensorView> views(const std::vector<Tensor>& tensors) {
  return std::vector<TensorView>(tensors.begin(), tensors.end());
}

template <typename T>
std::vector<Tensor> random_spans(Random& rng, const std::vector<std::int64_t>& sizes,
                                 Device device = Device::cpu(), double scale = 1.0) {
  std::vector<Tensor> out;
  for (std::int64_t n : sizes) out.push_back(rng.tensor<T>({n}, device, -scale, scale));
  return out;
}

template <typename T>
std::vector<std::vector<T>> contents(const std::vector<Tensor>& tensors) {
  std::vector<std::vector<T>> out;
  for (const Tensor& t : tensors) out.push_back(t.to_vector<T>());
  return out;
}

template <typename T>
std::vector<T> flatten(const std::vector<std::vector<T>>& parts) {
  std::vector<T> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// sqrt(sum x^2) in long double: the squares of float and double inputs are exact or
// nearly so, and the sum has 64 bits of mantissa.
template <typename T>
double reference_norm(const std::vector<T>& values) {
  long double sum = 0.0L;
  for (T v : values) sum += static_cast<long double>(v) * static_cast<long double>(v);
  return static_cast<double>(std::sqrt(sum));
}

// The relative error bound of the norm. Both backends sum non-negative terms in double
// along chains of at most kCpuNormBlock / 4 additions on the CPU (at most about 1000 on
// the GPU: a thread's share of a block's chunk), then a tree (log2 n levels) or a
// compensated sum; the error of a sum of non-negative terms is at most eps times the
// longest chain of roundings that feeds it, plus one rounding per square. The square root
// halves the relative error.
double norm_tolerance(std::int64_t n) {
  const double chain =
      static_cast<double>(detail::kCpuNormBlock) / 4.0 + 2.0 * std::log2(2.0 + n) + 4.0;
  return epsilon<double>() * chain;
}

template <typename T>
class Clip : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Clip, Types, TypeIndexNames);

TYPED_TEST(Clip, NormMatchesReference) {
  using T = TypeParam;
  Random rng(1);
  const std::vector<Tensor> spans = random_spans<T>(rng, {1000, 37, 4096, 4097, 1});
  const std::vector<T> all = flatten(contents<T>(spans));
  const GradNorm g = global_norm(views(spans));
  EXPECT_TRUE(g.has_value());
  EXPECT_TRUE(g.finite());
  EXPECT_EQ(g.scale(), 1.0);
  EXPECT_TRUE(g.device() == Device::cpu());
  const double ref = reference_norm(all);
  EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(all.size()) * ref) << g.norm() << " " << ref;
  // global_norm never writes.
  EXPECT_EQ(flatten(contents<T>(spans)), all);
}

TYPED_TEST(Clip, BelowThresholdChangesNothing) {
  using T = TypeParam;
  Random rng(2);
  const std::vector<Tensor> spans = random_spans<T>(rng, {100, 200, 3});
  const std::vector<T> before = flatten(contents<T>(spans));
  const double ref = reference_norm(before);
  const GradNorm g = clip_grad_norm(views(spans), 2.0 * ref);
  EXPECT_EQ(g.scale(), 1.0);
  EXPECT_TRUE(g.finite());
  EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(before.size()) * ref);
  EXPECT_EQ(flatten(contents<T>(spans)), before);  // bit for bit
}

TYPED_TEST(Clip, AboveThresholdScalesAndKeepsDirection) {
  using T = TypeParam;
  Random rng(3);
  const std::vector<Tensor> spans = random_spans<T>(rng, {500, 1, 2049, 64}, Device::cpu(), 10.0);
  const std::vector<T> before = flatten(contents<T>(spans));
  const double ref = reference_norm(before);
  const double max_norm = 0.25 * ref;
  const GradNorm g = clip_grad_norm(views(spans), max_norm);
  ASSERT_TRUE(g.finite());
  EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(before.size()) * ref);
  EXPECT_EQ(g.scale(), max_norm / (g.norm() + 1e-6));  // the formula, exactly
  // The direction: every element is the old one times the same factor.
  const T s = static_cast<T>(g.scale());
  const std::vector<T> after = flatten(contents<T>(spans));
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) ASSERT_EQ(after[i], before[i] * s) << i;
  // The new norm is max_norm, up to the rounding of the factor to T and of each product
  // (one ulp each) and the norm's own bound.
  const double expected = max_norm * g.norm() / (g.norm() + 1e-6);
  const double bound = (2.0 * epsilon<T>() + norm_tolerance(after.size())) * expected;
  EXPECT_LE(std::fabs(reference_norm(after) - expected), bound);
}

TYPED_TEST(Clip, NanOrInfInOneElementIsReportedAndNotApplied) {
  using T = TypeParam;
  for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                      -std::numeric_limits<T>::infinity()}) {
    Random rng(4);
    const std::vector<Tensor> spans = random_spans<T>(rng, {300, 5000, 7}, Device::cpu(), 100.0);
    spans[1].data_as<T>()[4321] = bad;
    const std::vector<T> before = flatten(contents<T>(spans));
    const GradNorm g = clip_grad_norm(views(spans), 1.0);
    EXPECT_FALSE(g.finite()) << bad;
    EXPECT_EQ(std::isnan(g.norm()), std::isnan(bad)) << g.norm();
    if (std::isinf(bad)) {
      EXPECT_EQ(g.norm(), std::numeric_limits<double>::infinity());
    }
    EXPECT_EQ(g.scale(), 1.0);
    const std::vector<T> after = flatten(contents<T>(spans));
    EXPECT_EQ(std::memcmp(after.data(), before.data(), after.size() * sizeof(T)), 0);
  }
}

TYPED_TEST(Clip, EmptyAndOddSizedSpans) {
  using T = TypeParam;
  // No spans at all, and only empty spans: the norm of nothing is 0.
  for (const std::vector<std::int64_t>& sizes :
       {std::vector<std::int64_t>{}, std::vector<std::int64_t>{0, 0}}) {
    Random rng(5);
    const std::vector<Tensor> spans = random_spans<T>(rng, sizes);
    const GradNorm g = clip_grad_norm(views(spans), 1.0);
    EXPECT_TRUE(g.has_value());
    EXPECT_EQ(g.norm(), 0.0);
    EXPECT_TRUE(g.finite());
    EXPECT_EQ(g.scale(), 1.0);
  }
  Random rng(6);
  const std::vector<Tensor> spans =
      random_spans<T>(rng, {0, 1, 3, 0, 4095, 4097, 7, 0, 8193}, Device::cpu(), 3.0);
  const std::vector<T> before = flatten(contents<T>(spans));
  const double ref = reference_norm(before);
  const GradNorm g = clip_grad_norm(views(spans), 1.0);
  EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(before.size()) * ref);
  const T s = static_cast<T>(g.scale());
  EXPECT_LT(g.scale(), 1.0);
  const std::vector<T> after = flatten(contents<T>(spans));
  for (std::size_t i = 0; i < after.size(); ++i) ASSERT_EQ(after[i], before[i] * s) << i;
}

TYPED_TEST(Clip, HundredsOfSpansAndReuse) {
  using T = TypeParam;
  Random rng(7);
  std::vector<std::int64_t> sizes;
  for (int i = 0; i < 400; ++i) sizes.push_back(static_cast<std::int64_t>(rng.uniform(0, 3000)));
  const std::vector<Tensor> spans = random_spans<T>(rng, sizes);
  const std::vector<T> all = flatten(contents<T>(spans));
  GradNorm g;
  EXPECT_FALSE(g.has_value());
  EXPECT_EQ(g.norm(), 0.0);
  EXPECT_TRUE(g.finite());
  global_norm(views(spans), g);
  const double ref = reference_norm(all);
  EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(all.size()) * ref);
  // The same object, a shorter list: the result follows the last call.
  const std::vector<TensorView> some(spans.begin(), spans.begin() + 10);
  global_norm(some, g);
  std::vector<T> first;
  for (const TensorView& v : some) {
    const std::vector<T> p = v.to_vector<T>();
    first.insert(first.end(), p.begin(), p.end());
  }
  const double ref_some = reference_norm(first);
  EXPECT_LE(std::fabs(g.norm() - ref_some), norm_tolerance(first.size()) * ref_some);
}

TEST(ClipCpu, HundredMillionFloatsWithinOneInAMillion) {
  // 10^8 float32 elements in uneven spans, from a cheap generator; the reference is a
  // long-double sum built in the same loop.
  const std::int64_t n = 100'000'000;
  Tensor big = Tensor::empty({n}, DType::Float32);
  float* p = big.data_as<float>();
  long double ref_sum = 0.0L;
  std::uint32_t x = 12345u;
  for (std::int64_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    const float v = static_cast<float>(static_cast<std::int32_t>(x)) * 0x1p-31f;
    p[i] = v;
    ref_sum += static_cast<long double>(v) * v;
  }
  const std::vector<std::int64_t> cuts = {0, 1, 12'345'679, 50'000'000, 50'000'003, 99'999'999, n};
  std::vector<TensorView> spans;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    spans.emplace_back(p + cuts[i], Shape{cuts[i + 1] - cuts[i]}, DType::Float32, Device::cpu());
  }
  const double ref = static_cast<double>(std::sqrt(ref_sum));
  const GradNorm g = global_norm(spans);
  const double rel = std::fabs(g.norm() - ref) / ref;
  EXPECT_LE(rel, 1e-6);               // the bound
  EXPECT_LE(rel, norm_tolerance(n));  // and the derived one, far tighter
}

// ---- bad arguments: each names the argument, and changes nothing ----

TEST(ClipErrors, MixedDtypes) {
  Tensor a = Tensor::zeros({3}, DType::Float32), b = Tensor::zeros({3}, DType::Float64);
  GradNorm g;
  try {
    clip_grad_norm({a, a, b}, 1.0, g);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "spans[2]");
    EXPECT_EQ(std::string(e.what()),
              "recur: clip_grad_norm: argument 'spans[2]': expected device cpu, dtype float32 "
              "(those of spans[0]), got device cpu, dtype float64");
  }
  EXPECT_FALSE(g.has_value());
}

TEST(ClipErrors, ReducedDtypes) {
  Tensor a = Tensor::zeros({3}, DType::BFloat16), b = Tensor::zeros({3}, DType::Float32);
  GradNorm g;
  try {
    clip_grad_norm({a, b}, 1.0, g);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "recur: clip_grad_norm: argument 'spans[0]': expected dtype float32 or float64, "
              "got dtype bfloat16");
  }
  try {
    global_norm({b, Tensor::zeros({2}, DType::Float16)});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "spans[1]");
    EXPECT_NE(std::string(e.what()).find("got device cpu, dtype float16"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(g.has_value());
}

TEST(ClipErrors, MixedDevices) {
  // A view that claims to be on a GPU is rejected before anything reads it.
  float fake = 0.0f;
  Tensor a = Tensor::zeros({3}, DType::Float32);
  const TensorView gpu_view(&fake, {1}, DType::Float32, Device::cuda(0));
  try {
    global_norm({a, gpu_view});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "spans[1]");
    EXPECT_NE(std::string(e.what()).find("expected device cpu, dtype float32 (those of spans[0]), "
                                         "got device cuda:0, dtype float32"),
              std::string::npos)
        << e.what();
  }
}

TEST(ClipErrors, OverlappingSpans) {
  // The same span twice would count in the norm twice (sqrt(2) times too large) and be
  // scaled twice; two views that share memory likewise.
  Random rng(9);
  Tensor a = rng.tensor<float>({100}, Device::cpu(), -5, 5), b = rng.tensor<float>({10});
  const std::vector<float> before = a.to_vector<float>();
  const TensorView tail(a.data_as<float>() + 50, {50}, DType::Float32, Device::cpu());
  const TensorView empty(a.data_as<float>(), {0}, DType::Float32, Device::cpu());
  GradNorm g;
  for (const auto& spans : {std::vector<TensorView>{a, b, a}, std::vector<TensorView>{tail, a}}) {
    try {
      clip_grad_norm(spans, 1.0, g);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.expected(), "memory that no other span covers") << e.what();
      EXPECT_NE(e.got().find("overlaps spans["), std::string::npos) << e.what();
    }
    EXPECT_THROW(global_norm(spans), Error);
  }
  EXPECT_FALSE(g.has_value());
  EXPECT_EQ(a.to_vector<float>(), before);
  // Zero-element views occupy no memory: they overlap nothing.
  EXPECT_NO_THROW(global_norm({a, empty, b}, g));
}

TEST(ClipErrors, UndefinedSpan) {
  Tensor a = Tensor::zeros({3}, DType::Float64);
  try {
    global_norm({a, TensorView()});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "recur: global_norm: argument 'spans[1]': expected a defined tensor, got an "
              "undefined TensorView");
  }
}

TEST(ClipErrors, BadMaxNormChangesNothing) {
  Random rng(8);
  Tensor a = rng.tensor<float>({100}, Device::cpu(), -5, 5);
  const std::vector<float> before = a.to_vector<float>();
  GradNorm g;
  global_norm({a}, g);
  const double norm = g.norm();
  for (double bad : {-1.0, -1e-30, std::nan("")}) {
    try {
      clip_grad_norm({a}, bad, g);
      FAIL() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "max_norm");
      EXPECT_EQ(e.expected(), "a number >= 0 (or +inf)");
    }
  }
  EXPECT_EQ(
      std::string(Error("clip_grad_norm", "max_norm", "a number >= 0 (or +inf)", "-1").what()),
      "recur: clip_grad_norm: argument 'max_norm': expected a number >= 0 (or +inf), got -1");
  EXPECT_EQ(a.to_vector<float>(), before);
  EXPECT_EQ(g.norm(), norm);
  // +inf is allowed: the norm only.
  clip_grad_norm({a}, std::numeric_limits<double>::infinity(), g);
  EXPECT_EQ(g.scale(), 1.0);
  EXPECT_EQ(a.to_vector<float>(), before);
}

TEST(ClipErrors, MovedFromGradNormIsUsable) {
  Tensor a = Tensor::from_vector<double>({3.0, 4.0}, {2});
  GradNorm g = global_norm({a});
  GradNorm h = std::move(g);
  EXPECT_EQ(h.norm(), 5.0);
  global_norm({a}, g);  // NOLINT: reusing a moved-from object is allowed
  EXPECT_EQ(g.norm(), 5.0);
}

// ---- the GPU against the CPU ----

template <typename T>
class ClipCuda : public ::testing::Test {
 protected:
  void SetUp() override { RECUR_REQUIRE_GPU(); }

  // Clips the same spans on both devices, checks norms, flags, scales and values.
  void check(const std::vector<std::int64_t>& sizes, double scale, double max_norm_fraction,
             std::uint64_t seed) {
    Random rng(seed);
    const std::vector<Tensor> cpu = random_spans<T>(rng, sizes, Device::cpu(), scale);
    std::vector<Tensor> gpu;
    for (const Tensor& t : cpu) gpu.push_back(t.to(kGpu));
    const std::vector<T> before = flatten(contents<T>(cpu));
    const double ref = reference_norm(before);
    const double max_norm = max_norm_fraction * ref;
    const GradNorm c = clip_grad_norm(views(cpu), max_norm);
    const GradNorm g = clip_grad_norm(views(gpu), max_norm);
    // An empty list has no device: its result is a CPU one.
    EXPECT_TRUE(g.device() == (sizes.empty() ? Device::cpu() : kGpu));
    EXPECT_TRUE(g.finite());
    EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(before.size()) * ref + 1e-300);
    EXPECT_LE(std::fabs(g.norm() - c.norm()), 2.0 * norm_tolerance(before.size()) * ref + 1e-300);
    EXPECT_EQ(g.scale() < 1.0, c.scale() < 1.0);
    if (before.empty()) return;
    // One rounding of the factor to T and one of the product.
    EXPECT_TRUE(all_close(flatten(contents<T>(gpu)), flatten(contents<T>(cpu)),
                          Tolerance{epsilon<T>(), 2.0}));
  }
};
TYPED_TEST_SUITE(ClipCuda, Types, TypeIndexNames);

TYPED_TEST(ClipCuda, BelowAndAboveThreshold) {
  this->check({1000, 37, 4096, 4097, 1}, 1.0, 2.0, 11);
  this->check({1000, 37, 4096, 4097, 1}, 1.0, 0.5, 12);
  this->check({3'000'000, 17, 1'234'567}, 10.0, 0.1, 13);  // every block of the grid
}

TYPED_TEST(ClipCuda, EmptyOddAndHundredsOfSpans) {
  this->check({}, 1.0, 0.5, 14);
  this->check({0, 0, 0}, 1.0, 0.5, 15);
  this->check({0, 1, 3, 0, 255, 257, 1023, 1025, 7, 0, 8193}, 3.0, 0.5, 16);
  Random rng(17);
  std::vector<std::int64_t> sizes;
  for (int i = 0; i < 500; ++i) sizes.push_back(static_cast<std::int64_t>(rng.uniform(0, 5000)));
  this->check(sizes, 1.0, 0.3, 18);
}

TYPED_TEST(ClipCuda, DeterministicBits) {
  using T = TypeParam;
  Random rng(19);
  const std::vector<Tensor> gpu = random_spans<T>(rng, {5'000'001, 3, 777'777}, kGpu);
  GradNorm a, b;
  global_norm(views(gpu), a);
  const double first = a.norm();
  for (int run = 0; run < 5; ++run) {
    global_norm(views(gpu), b);
    const double again = b.norm();
    EXPECT_EQ(std::memcmp(&first, &again, sizeof(double)), 0) << first << " vs " << again;
  }
}

TYPED_TEST(ClipCuda, NanOrInfIsReportedOnTheDeviceAndNotApplied) {
  using T = TypeParam;
  for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    Random rng(20);
    const std::vector<Tensor> cpu = random_spans<T>(rng, {300, 70'000, 7}, Device::cpu(), 100.0);
    cpu[1].data_as<T>()[54'321] = bad;
    std::vector<Tensor> gpu;
    for (const Tensor& t : cpu) gpu.push_back(t.to(kGpu));
    const GradNorm g = clip_grad_norm(views(gpu), 1.0);
    EXPECT_FALSE(g.finite());
    EXPECT_EQ(std::isnan(g.norm()), std::isnan(bad));
    EXPECT_EQ(g.scale(), 1.0);
    const std::vector<T> after = flatten(contents<T>(gpu)), before = flatten(contents<T>(cpu));
    EXPECT_EQ(std::memcmp(after.data(), before.data(), after.size() * sizeof(T)), 0);
  }
}

TYPED_TEST(ClipCuda, ReuseAcrossChangingSpansAndStreams) {
#if RECUR_HAS_CUDA
  using T = TypeParam;
  Random rng(21);
  const std::vector<Tensor> gpu = random_spans<T>(rng, {10'000, 20'000, 30'000, 5}, kGpu);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  GradNorm g;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t k = 1; k <= gpu.size(); ++k) {
      const std::vector<TensorView> some(gpu.begin(), gpu.begin() + static_cast<std::ptrdiff_t>(k));
      std::vector<T> values;
      for (const TensorView& v : some) {
        const std::vector<T> p = v.to_vector<T>();
        values.insert(values.end(), p.begin(), p.end());
      }
      global_norm(some, g, round == 1 ? static_cast<void*>(stream) : nullptr);
      const double ref = reference_norm(values);
      EXPECT_LE(std::fabs(g.norm() - ref), norm_tolerance(values.size()) * ref) << round << k;
    }
  }
  cudaStreamDestroy(stream);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

TEST(ClipCudaBig, HundredMillionFloatsWithinOneInAMillion) {
  RECUR_REQUIRE_GPU();
  const std::int64_t n = 100'000'000;
  std::vector<float> host(static_cast<std::size_t>(n));
  long double ref_sum = 0.0L;
  std::uint32_t x = 777u;
  for (float& v : host) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<std::int32_t>(x)) * 0x1p-31f;
    ref_sum += static_cast<long double>(v) * v;
  }
  const Tensor big = Tensor::from_vector(host, {n}, kGpu);
  float* p = big.data_as<float>();
  const std::vector<std::int64_t> cuts = {0, 3, 33'333'333, 66'666'667, n};
  std::vector<TensorView> spans;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    spans.emplace_back(p + cuts[i], Shape{cuts[i + 1] - cuts[i]}, DType::Float32, kGpu);
  }
  const double ref = static_cast<double>(std::sqrt(ref_sum));
  const GradNorm g = global_norm(spans);
  const double rel = std::fabs(g.norm() - ref) / ref;
  EXPECT_LE(rel, 1e-6);
  EXPECT_LE(rel, norm_tolerance(n));
}

}  // namespace
}  // namespace recur::test
