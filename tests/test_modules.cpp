// tests/test_modules.cpp: Embedding, Linear and SoftmaxCrossEntropy: float64 central
// differences of each and of their composition, the loss against a long-double
// reference, every error message (and that a failed call changes nothing), and CUDA vs
// CPU parity (SKIPPED without a GPU).
#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "../kernels/nn.cuh"
#include "io_test_util.h"
#include "recur/modules.h"

namespace recur::test {
namespace {

// dJ/d(view) by central differences, perturbing the host memory of a float64 view.
std::vector<double> numeric(const TensorView& view, const std::function<double()>& loss) {
  double* v = view.data_as<double>();
  std::vector<double> out(static_cast<std::size_t>(view.numel()));
  const double h = FiniteDifference::step();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double up = loss();
    v[i] = keep - h;
    const double down = loss();
    v[i] = keep;
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

// sum(w * t) and sum |w * t|.
double weighted(const Tensor& t, const Tensor& w, double* abs_sum = nullptr) {
  const std::vector<double> a = t.to_vector<double>(), b = w.to_vector<double>();
  double s = 0, as = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    s += a[i] * b[i];
    as += std::fabs(a[i] * b[i]);
  }
  if (abs_sum != nullptr) *abs_sum = as;
  return s;
}

const std::vector<std::int32_t> kIds = {3, 0, 6, 3, 3, 1, 6, 0, 2, 3, 5, 3};  // repeats

TEST(Embedding, ForwardGathersRowsAndBackwardMatchesCentralDifferences) {
  Embedding embed(7, 3, DType::Float64, Device::cpu(), 1);
  Random rng(2);
  const Shape shape = {4, 3};
  Tensor w = rng.tensor<double>({4, 3, 3});
  Tensor out = embed.forward(kIds, shape);
  ASSERT_EQ(out.shape(), (Shape{4, 3, 3}));
  const std::vector<double> weight = embed.weight().to_vector<double>(),
                            o = out.to_vector<double>();
  for (std::size_t r = 0; r < kIds.size(); ++r) {
    for (std::size_t k = 0; k < 3; ++k) ASSERT_EQ(o[r * 3 + k], weight[kIds[r] * 3 + k]);
  }
  embed.backward(kIds, shape, w);
  double jabs = 0;
  auto loss = [&] { return weighted(embed.forward(kIds, shape), w); };
  weighted(out, w, &jabs);
  const Tolerance tol{FiniteDifference::tolerance(jabs, 12), 1.0};
  EXPECT_TRUE(
      all_close(embed.weight_grad().to_vector<double>(), numeric(embed.weight(), loss), tol));
  // Backward accumulates.
  const std::vector<double> once = embed.weight_grad().to_vector<double>();
  embed.backward(kIds, shape, w);
  const std::vector<double> twice = embed.weight_grad().to_vector<double>();
  for (std::size_t i = 0; i < once.size(); ++i) EXPECT_EQ(twice[i], 2 * once[i]);
  // Row 4 never occurs: its gradient stays zero.
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(twice[4 * 3 + k], 0.0);
  embed.zero_grad();
  EXPECT_EQ(embed.weight_grad().to_vector<double>(), std::vector<double>(21, 0.0));
}

TEST(Embedding, InitialisedFromAStandardNormal) {
  Embedding embed(200, 50, DType::Float32, Device::cpu(), 3);
  const std::vector<float> w = embed.weight().to_vector<float>();
  double mean = 0, var = 0;
  for (float x : w) mean += x;
  mean /= static_cast<double>(w.size());
  for (float x : w) var += (x - mean) * (x - mean);
  var /= static_cast<double>(w.size());
  // 10^4 draws: the standard errors are 0.01 (mean) and 0.014 (variance); 5 sigma.
  EXPECT_NEAR(mean, 0.0, 0.05);
  EXPECT_NEAR(var, 1.0, 0.07);
  EXPECT_EQ(embed.parameter_info().size(), 1u);
  EXPECT_EQ(embed.parameter_info()[0].name, "weight");
  EXPECT_EQ(embed.parameter_info()[0].shape, (Shape{200, 50}));
}

void linear_gradcheck(bool bias) {
  Linear lin(5, 4, bias, DType::Float64, Device::cpu(), 4);
  Random rng(5);
  Tensor x = rng.tensor<double>({2, 3, 5});  // any leading shape
  Tensor w = rng.tensor<double>({2, 3, 4});
  Tensor y = lin.forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  // y against a naive loop.
  const std::vector<double> xv = x.to_vector<double>(), wv = lin.weight().to_vector<double>();
  const std::vector<double> bv =
      bias ? lin.bias().to_vector<double>() : std::vector<double>(4, 0.0);
  std::vector<double> ref(24);
  for (int r = 0; r < 6; ++r) {
    for (int j = 0; j < 4; ++j) {
      double s = bv[j];
      for (int k = 0; k < 5; ++k) s += xv[r * 5 + k] * wv[j * 5 + k];
      ref[r * 4 + j] = s;
    }
  }
  EXPECT_TRUE(all_close(y.to_vector<double>(), ref, tolerance_for_depth<double>(5)));

  Tensor dx = lin.backward(x, w);
  double jabs = 0;
  weighted(y, w, &jabs);
  auto loss = [&] { return weighted(lin.forward(x), w); };
  const Tolerance tol{FiniteDifference::tolerance(jabs, 6), 1.0};
  EXPECT_TRUE(all_close(lin.weight_grad().to_vector<double>(), numeric(lin.weight(), loss), tol));
  EXPECT_TRUE(all_close(dx.to_vector<double>(), numeric(x, loss), tol));
  if (bias) {
    EXPECT_TRUE(all_close(lin.bias_grad().to_vector<double>(), numeric(lin.bias(), loss), tol));
    EXPECT_EQ(lin.parameters().numel(), 24);
  } else {
    EXPECT_FALSE(lin.bias().defined());
    EXPECT_EQ(lin.parameters().numel(), 20);
  }
}

TEST(Linear, GradientsMatchCentralDifferences) { linear_gradcheck(true); }
TEST(Linear, WithoutBias) { linear_gradcheck(false); }

TEST(Linear, InitialisedLikePyTorch) {
  Linear lin(16, 300, true, DType::Float64, Device::cpu(), 6);
  const std::vector<double> p = lin.parameters().to_vector<double>();
  double lo = 1, hi = -1;
  for (double v : p) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -0.25);  // U(-1/sqrt(16), 1/sqrt(16))
  EXPECT_LE(hi, 0.25);
  EXPECT_LT(lo, -0.24);  // and it fills the range (4800 draws)
  EXPECT_GT(hi, 0.24);
}

// The loss and its gradient against a long-double reference.
// `masked`: every class j with j % masked == 0 but the targets is -inf (a vocabulary mask),
// so that lanes and merges see -inf beside -inf.
template <typename T>
void cross_entropy_reference(double offset, std::int64_t v = 5, std::int64_t masked = 0) {
  Random rng(7);
  const std::int64_t n = 6;
  std::vector<double> lv = rng.vector<double>(n * v, -3, 3);
  for (double& x : lv) x += offset;
  std::vector<T> lt(lv.begin(), lv.end());
  const std::int64_t target_classes[] = {0, 1, v / 2, v - 1};
  for (std::int64_t j = 0; masked > 0 && j < v; j += masked) {
    if (std::find(std::begin(target_classes), std::end(target_classes), j) !=
        std::end(target_classes)) {
      continue;
    }
    for (std::int64_t i = 0; i < n; ++i) lt[i * v + j] = -std::numeric_limits<T>::infinity();
  }
  Tensor logits = Tensor::from_vector(lt, {2, 3, v});
  const std::int32_t last = static_cast<std::int32_t>(v - 1),
                     mid = static_cast<std::int32_t>(v / 2);
  const std::vector<std::int32_t> targets = {last, 0, -100, mid, mid, 1};
  SoftmaxCrossEntropy xent;
  CrossEntropyResult r = xent.forward_backward(logits, targets);
  EXPECT_EQ(r.count.to_vector<std::int64_t>()[0], 5);
  ASSERT_EQ(r.dlogits.shape(), (Shape{2, 3, v}));
  long double total = 0;
  std::vector<double> dref(static_cast<std::size_t>(n * v), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    if (targets[i] == -100) continue;
    long double m = lt[i * v], s = 0;
    for (std::int64_t j = 0; j < v; ++j) m = std::max<long double>(m, lt[i * v + j]);
    for (std::int64_t j = 0; j < v; ++j) s += std::exp(static_cast<long double>(lt[i * v + j]) - m);
    const long double lse = m + std::log(s);
    total += lse - lt[i * v + targets[i]];
    for (std::int64_t j = 0; j < v; ++j) {
      dref[i * v + j] = static_cast<double>(
          (std::exp(static_cast<long double>(lt[i * v + j]) - lse) - (j == targets[i] ? 1 : 0)) /
          5);
    }
  }
  // Depth: V terms per row, then n rows. The loss is relative to |logits|: lse - x
  // cancels |x| ~ offset.
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(v + n));
  const double loss = static_cast<double>(r.loss.to_vector<T>()[0]);
  EXPECT_TRUE(all_close(std::vector<double>{loss},
                        std::vector<double>{static_cast<double>(total / 5)},
                        Tolerance{tol.eps, tol.factor * (1 + std::fabs(offset))}));
  EXPECT_TRUE(all_close(r.dlogits.to_vector<T>(), dref,
                        Tolerance{tol.eps, tol.factor * (1 + std::fabs(offset))}));
  // Ignored rows have no gradient.
  const std::vector<T> d = r.dlogits.to_vector<T>();
  for (std::int64_t j = 0; j < v; ++j) ASSERT_EQ(d[static_cast<std::size_t>(2 * v + j)], T(0));
  // forward() gives the same loss without the gradient.
  CrossEntropyResult f = xent.forward(logits, targets);
  EXPECT_FALSE(f.dlogits.defined());
  EXPECT_EQ(f.loss.to_vector<T>()[0], r.loss.to_vector<T>()[0]);
}

TEST(SoftmaxCrossEntropy, MatchesALongDoubleReferenceFloat32) { cross_entropy_reference<float>(0); }
TEST(SoftmaxCrossEntropy, MatchesALongDoubleReferenceFloat64) {
  cross_entropy_reference<double>(0);
}
// Logits near 1000 overflow exp() without the max subtraction.
TEST(SoftmaxCrossEntropy, StableForLargeLogitsFloat32) { cross_entropy_reference<float>(1000); }
// 100003 classes: 256 lanes of about 391 each, then the merge tree.
TEST(SoftmaxCrossEntropy, LargeVocabularyFloat32) { cross_entropy_reference<float>(0, 100003); }
TEST(SoftmaxCrossEntropy, LargeVocabularyFloat64) { cross_entropy_reference<double>(5, 100003); }
// Masked classes (-inf) count as zero probability and get no gradient: every other class
// of 64 (lane 0 of 32 sees -inf after -inf), and all but 4 of 100003 (whole lanes of -inf,
// merged with each other).
TEST(SoftmaxCrossEntropy, MaskedClassesFloat32) { cross_entropy_reference<float>(0, 64, 2); }
TEST(SoftmaxCrossEntropy, MaskedClassesFloat64) { cross_entropy_reference<double>(0, 64, 2); }
TEST(SoftmaxCrossEntropy, MostlyMaskedLargeVocabulary) {
  cross_entropy_reference<float>(0, 100003, 1);
}
TEST(SoftmaxCrossEntropy, LanesGrowWithTheVocabulary) {
  EXPECT_EQ(kernels::row_lanes(3), 32);
  EXPECT_EQ(kernels::row_lanes(512), 32);
  EXPECT_EQ(kernels::row_lanes(513), 64);
  EXPECT_EQ(kernels::row_lanes(100003), kernels::kMaxRowLanes);
}
TEST(SoftmaxCrossEntropy, StableForLargeLogitsFloat64) { cross_entropy_reference<double>(-1000); }

// The mean over 5003 rows: 40 chunks of 128 (the last of 11), each summed in order, then the
// chunks; some rows ignored. Against a long double mean of the rows.
TEST(SoftmaxCrossEntropy, MeanOverChunksOfRows) {
  EXPECT_EQ(kernels::cross_entropy_chunk(1), 32);
  EXPECT_EQ(kernels::cross_entropy_chunk(1024), 32);
  EXPECT_EQ(kernels::cross_entropy_chunk(1025), 64);
  EXPECT_EQ(kernels::cross_entropy_chunks(5003), 40);
  const std::int64_t n = 5003, v = 5;
  Random rng(21);
  const std::vector<float> lt = rng.vector<float>(n * v, -3, 3);
  std::vector<std::int32_t> targets(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    targets[static_cast<std::size_t>(i)] = i % 7 == 3 ? -100 : static_cast<std::int32_t>(i % v);
  }
  SoftmaxCrossEntropy xent;
  CrossEntropyResult r = xent.forward(Tensor::from_vector(lt, {n, v}), targets);
  long double total = 0;
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t t = targets[static_cast<std::size_t>(i)];
    if (t == -100) continue;
    long double m = lt[i * v], sum = 0;
    for (std::int64_t j = 0; j < v; ++j) m = std::max<long double>(m, lt[i * v + j]);
    for (std::int64_t j = 0; j < v; ++j)
      sum += std::exp(static_cast<long double>(lt[i * v + j]) - m);
    total += m + std::log(sum) - lt[i * v + t];
    ++counted;
  }
  EXPECT_EQ(r.count.to_vector<std::int64_t>()[0], counted);
  const Tolerance tol = tolerance_for_depth<float>(static_cast<double>(v + n));
  EXPECT_TRUE(all_close(std::vector<double>{static_cast<double>(r.loss.to_vector<float>()[0])},
                        std::vector<double>{static_cast<double>(total / counted)}, tol));
}

TEST(SoftmaxCrossEntropy, GradientMatchesCentralDifferences) {
  Random rng(8);
  Tensor logits = rng.tensor<double>({7, 6}, Device::cpu(), -2, 2);
  const std::vector<std::int32_t> targets = {5, 0, 3, 3, -1, 1, 2};
  SoftmaxCrossEntropy xent({/*ignore_index*/ -1});
  CrossEntropyResult r = xent.forward_backward(logits, targets);
  auto loss = [&] { return xent.forward(logits, targets).loss.to_vector<double>()[0]; };
  const double j = loss();
  const Tolerance tol{FiniteDifference::tolerance(std::fabs(j) + 2.0, 6 + 7), 1.0};
  EXPECT_TRUE(all_close(r.dlogits.to_vector<double>(), numeric(logits, loss), tol));
}

TEST(SoftmaxCrossEntropy, NothingCountedGivesZero) {
  Tensor logits = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  CrossEntropyResult r = SoftmaxCrossEntropy().forward_backward(logits, {-100, -100});
  EXPECT_EQ(r.count.to_vector<std::int64_t>()[0], 0);
  EXPECT_EQ(r.loss.to_vector<float>()[0], 0.0f);
  EXPECT_EQ(r.dlogits.to_vector<float>(), std::vector<float>(4, 0.0f));
}

// Embedding -> Linear -> SoftmaxCrossEntropy, all gradients by central differences.
TEST(Modules, CompositionGradientsMatchCentralDifferences) {
  Embedding embed(6, 4, DType::Float64, Device::cpu(), 9);
  Linear head(4, 6, true, DType::Float64, Device::cpu(), 10);
  SoftmaxCrossEntropy xent;
  const std::vector<std::int32_t> ids = {1, 5, 1, 0, 2, 5}, targets = {5, 1, 0, 0, 3, 2};
  const Shape shape = {3, 2};
  auto loss = [&] {
    Tensor x = embed.forward(ids, shape);
    return xent.forward(head.forward(x), targets).loss.to_vector<double>()[0];
  };
  Tensor x = embed.forward(ids, shape);
  CrossEntropyResult r = xent.forward_backward(head.forward(x), targets);
  Tensor dx = head.backward(x, r.dlogits);
  embed.backward(ids, shape, dx);
  const double j = loss();
  const Tolerance tol{FiniteDifference::tolerance(std::fabs(j) + 4.0, 4 + 6 + 6), 1.0};
  EXPECT_TRUE(
      all_close(head.gradients().to_vector<double>(), numeric(head.parameters(), loss), tol));
  EXPECT_TRUE(
      all_close(embed.gradients().to_vector<double>(), numeric(embed.parameters(), loss), tol));
}

// ---- integer tensors and padding ----

TEST(Embedding, IdTensorsOfBothDtypesMatchTheHostIds) {
  Embedding embed(7, 3, DType::Float64, Device::cpu(), 4),
      twin(7, 3, DType::Float64, Device::cpu(), 4);
  Random rng(5);
  Tensor dy = rng.tensor<double>({4, 3, 3});
  const std::vector<std::int64_t> wide(kIds.begin(), kIds.end());
  for (const Tensor& ids : {Tensor::from_vector(kIds, {4, 3}), Tensor::from_vector(wide, {4, 3})}) {
    EXPECT_EQ(bytes_of(embed.forward(ids)), bytes_of(twin.forward(kIds, {4, 3})));
    embed.zero_grad();
    twin.zero_grad();
    embed.backward(ids, dy);
    twin.backward(kIds, {4, 3}, dy);
    EXPECT_EQ(bytes_of(embed.gradients()), bytes_of(twin.gradients()));
  }
  // Row 3 appears at positions 0, 3, 4, 9, 11: their sum, in that order.
  const std::vector<double> g = embed.gradients().to_vector<double>(), d = dy.to_vector<double>();
  const double want = (((d[0] + d[9]) + d[12]) + d[27]) + d[33];
  EXPECT_EQ(g[3 * 3], want);
}

TEST(Embedding, PaddingRowStartsAtZeroAndGetsNoGradient) {
  EmbeddingOptions o;
  o.dtype = DType::Float64;
  o.seed = 3;
  o.padding_idx = -4;  // row 3 of 7, as PyTorch counts from the end
  Embedding embed(7, 3, o);
  EXPECT_EQ(embed.padding_idx(), 3);
  const std::vector<double> w = embed.weight().to_vector<double>();
  for (int k = 0; k < 3; ++k) EXPECT_EQ(w[9 + k], 0.0);
  EXPECT_NE(w[0], 0.0);
  Tensor ids = Tensor::from_vector(kIds, {12});
  embed.backward(ids, Tensor::from_vector(std::vector<double>(36, 1.0), {12, 3}));
  const std::vector<double> g = embed.gradients().to_vector<double>();
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(g[9 + k], 0.0);      // row 3, five times in kIds: nothing
    EXPECT_EQ(g[6 * 3 + k], 2.0);  // row 6, twice
  }
  EXPECT_EQ(Embedding(7, 3).padding_idx(), EmbeddingOptions::kNoPadding);
  o.padding_idx = 7;
  EXPECT_TRUE(throws_error([&] { Embedding(7, 3, o); },
                           {"Embedding", "'options.padding_idx'", "[-7, 7)", "got 7"}));
}

TEST(SoftmaxCrossEntropy, TargetTensorsOfBothDtypesMatchTheHostTargets) {
  Random rng(8);
  Tensor logits = rng.tensor<double>({3, 2, 5});
  const std::vector<std::int32_t> narrow = {4, 0, 9, 2, 9, 1};
  const std::vector<std::int64_t> wide(narrow.begin(), narrow.end());
  CrossEntropyOptions o;
  o.ignore_index = 9;
  SoftmaxCrossEntropy xent(o);
  CrossEntropyResult host = xent.forward_backward(logits, narrow);
  EXPECT_EQ(host.count.to_vector<std::int64_t>()[0], 4);
  EXPECT_EQ(host.count.dtype(), DType::Int64);
  for (const Tensor& t : {Tensor::from_vector(narrow, {3, 2}), Tensor::from_vector(wide, {6})}) {
    CrossEntropyResult r = xent.forward_backward(logits, t);
    EXPECT_EQ(bytes_of(r.loss), bytes_of(host.loss));
    EXPECT_EQ(bytes_of(r.dlogits), bytes_of(host.dlogits));
    EXPECT_EQ(r.count.to_vector<std::int64_t>()[0], 4);
  }
  EXPECT_TRUE(throws_error(
      [&] {
        xent.forward(logits, Tensor::from_vector<std::int64_t>({0, 1, 2, 3, 5, 9}, {6}));
      },
      {"SoftmaxCrossEntropy::forward", "'targets'", "[0, 5) or ignore_index 9", "targets[4] = 5"}));
  EXPECT_TRUE(throws_error([&] { xent.forward(logits, Tensor::zeros({6}, DType::Float32)); },
                           {"'targets'", "int32 or int64", "got dtype float32"}));
  EXPECT_TRUE(throws_error([&] { xent.forward(logits, Tensor::zeros({5}, DType::Int32)); },
                           {"'targets'", "6 targets", "got 5 targets"}));
}

TEST(ModuleErrors, EmbeddingIdTensors) {
  Embedding embed(7, 3, DType::Float32);
  const std::vector<unsigned char> params = bytes_of(embed.parameters());
  EXPECT_TRUE(throws_error(
      [&] {
        embed.forward(Tensor::from_vector<std::int64_t>({1, 7}, {2}));
      },
      {"Embedding::forward", "'ids'", "ids in [0, 7)", "ids[1] = 7"}));
  EXPECT_TRUE(throws_error([&] { embed.forward(Tensor::zeros({2}, DType::Float32)); },
                           {"'ids'", "dtype int32 or int64", "got dtype float32"}));
  EXPECT_TRUE(throws_error([&] { embed.forward(Tensor::zeros({}, DType::Int32)); },
                           {"'ids'", "rank >= 1"}));
  EXPECT_TRUE(throws_error(
      [&] {
        embed.backward(Tensor::from_vector<std::int32_t>({1, -2}, {2}),
                       Tensor::zeros({2, 3}, DType::Float32));
      },
      {"Embedding::backward", "ids[1] = -2"}));
  EXPECT_TRUE(throws_error(
      [&] {
        embed.backward(Tensor::zeros({2}, DType::Int32), Tensor::zeros({3, 3}, DType::Float32));
      },
      {"'dy'", "shape [2, 3] (ids' shape + [embedding_dim])", "got shape [3, 3]"}));
  EXPECT_EQ(bytes_of(embed.parameters()), params);
  EXPECT_EQ(embed.gradients().to_vector<float>(), std::vector<float>(21, 0.0f));
}

// ---- errors ----

TEST(ModuleErrors, EmbeddingArguments) {
  Embedding embed(7, 3, DType::Float32);
  const std::vector<unsigned char> params = bytes_of(embed.parameters());
  embed.backward(kIds, {4, 3}, Tensor::from_vector(std::vector<float>(36, 1.0f), {4, 3, 3}));
  const std::vector<unsigned char> grads = bytes_of(embed.gradients());

  EXPECT_TRUE(throws_error(
      [&] {
        embed.forward({1, 7}, {2});
      },
      {"Embedding::forward", "'ids'", "ids in [0, 7)", "ids[1] = 7"}));
  EXPECT_TRUE(throws_error([&] { embed.forward({-1}, {1}); }, {"ids[0] = -1"}));
  EXPECT_TRUE(throws_error(
      [&] {
        embed.forward({1, 2, 3}, {2, 2});
      },
      {"'ids'", "4 ids (shape [2, 2])", "got 3 ids"}));
  EXPECT_TRUE(throws_error([&] { embed.forward({1}, {}); }, {"'shape'", "rank >= 1"}));
  EXPECT_TRUE(throws_error(
      [&] {
        embed.backward(kIds, {4, 3}, Tensor::zeros({4, 3, 2}, DType::Float32));
      },
      {"Embedding::backward", "'dy'", "shape [4, 3, 3]", "got shape [4, 3, 2]"}));
  EXPECT_TRUE(throws_error(
      [&] {
        embed.backward(kIds, {4, 3}, Tensor::zeros({4, 3, 3}, DType::Float64));
      },
      {"'dy'", "dtype float32 (the module's)", "got dtype float64"}));
  EXPECT_TRUE(throws_error(
      [&] {
        embed.backward({9, 0}, {2}, Tensor::zeros({2, 3}, DType::Float32));
      },
      {"ids[0] = 9"}));
  EXPECT_TRUE(
      throws_error([&] { embed.parameter("bias"); }, {"'name'", "one of: weight", "\"bias\""}));
  EXPECT_TRUE(throws_error([&] { embed.set_cuda_stream(nullptr); }, {"a module on a CUDA device"}));
  EXPECT_TRUE(throws_error([&] { Embedding(0, 3); }, {"'num_embeddings'", ">= 1"}));
  EXPECT_EQ(bytes_of(embed.parameters()), params);
  EXPECT_EQ(bytes_of(embed.gradients()), grads);
}

TEST(ModuleErrors, ReducedDtypes) {
  EXPECT_TRUE(
      throws_error([] { Embedding(7, 3, DType::BFloat16); },
                   {"Embedding", "argument 'dtype'", "Float32 or Float64", "got bfloat16"}));
  EXPECT_TRUE(throws_error([] { Linear(5, 4, true, DType::Float16); },
                           {"Linear", "argument 'dtype'", "got float16"}));
  Linear lin(5, 4);
  EXPECT_TRUE(throws_error(
      [&] {
        lin.forward(Tensor::zeros({3, 5}, DType::BFloat16));
      },
      {"'x'", "dtype float32 (the module's)", "got dtype bfloat16"}));
  SoftmaxCrossEntropy loss;
  EXPECT_TRUE(throws_error(
      [&] {
        loss.forward(Tensor::zeros({2, 3}, DType::BFloat16), {0, 1});
      },
      {"SoftmaxCrossEntropy::forward", "'logits'", "dtype float32 or float64",
       "got dtype bfloat16"}));
}

TEST(ModuleErrors, LinearArguments) {
  Linear lin(5, 4);
  Tensor x = Tensor::zeros({3, 5}, DType::Float32);
  lin.backward(x, Tensor::from_vector(std::vector<float>(12, 1.0f), {3, 4}));
  const std::vector<unsigned char> params = bytes_of(lin.parameters()),
                                   grads = bytes_of(lin.gradients());
  EXPECT_TRUE(throws_error(
      [&] {
        lin.forward(Tensor::zeros({3, 4}, DType::Float32));
      },
      {"Linear::forward", "'x'", "shape [..., 5]", "got shape [3, 4]"}));
  EXPECT_TRUE(throws_error(
      [&] {
        lin.forward(Tensor::zeros({3, 5}, DType::Float64));
      },
      {"'x'", "dtype float32"}));
  EXPECT_TRUE(throws_error([&] { lin.forward(TensorView()); }, {"'x'", "undefined"}));
  EXPECT_TRUE(throws_error(
      [&] {
        lin.backward(x, Tensor::zeros({3, 5}, DType::Float32));
      },
      {"Linear::backward", "'dy'", "shape [3, 4]", "got shape [3, 5]"}));
  EXPECT_TRUE(throws_error([&] { Linear(5, 0); }, {"'out_features'"}));
  EXPECT_EQ(bytes_of(lin.parameters()), params);
  EXPECT_EQ(bytes_of(lin.gradients()), grads);
}

TEST(ModuleErrors, CrossEntropyArguments) {
  SoftmaxCrossEntropy xent;
  Tensor logits = Tensor::zeros({2, 3, 4}, DType::Float32);
  EXPECT_TRUE(throws_error(
      [&] {
        xent.forward_backward(logits, {0, 1, 2, 3, 4, 0});
      },
      {"SoftmaxCrossEntropy::forward_backward", "'targets'",
       "classes in [0, 4) or ignore_index -100", "targets[4] = 4"}));
  EXPECT_TRUE(throws_error(
      [&] {
        xent.forward(logits, {0, 1});
      },
      {"'targets'", "6 targets (one per row of logits [2, 3, 4])", "got 2"}));
  EXPECT_TRUE(throws_error([&] { xent.forward(TensorView(), std::vector<std::int32_t>{}); },
                           {"'logits'", "undefined"}));
  EXPECT_TRUE(throws_error(
      [&] {
        xent.forward(Tensor::zeros({2, 0}, DType::Float32), {0, 0});
      },
      {"'logits'", "V >= 1"}));
}

// ---- CUDA vs CPU ----

template <typename T>
class ModulesCuda : public ::testing::Test {
 protected:
  void SetUp() override { RECUR_REQUIRE_GPU(); }
};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ModulesCuda, Types, TypeIndexNames);

const Device kGpu = Device::cuda(0);

TYPED_TEST(ModulesCuda, EmbeddingParityAndDeterminism) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  Random rng(11);
  const std::int64_t v = 1000, e = 33, n = 4000;
  std::vector<std::int32_t> ids(n);
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.uniform(0, 1) * 50);  // many repeats
  Embedding cpu(v, e, dt, Device::cpu(), 12), gpu(v, e, dt, kGpu, 12);
  Tensor dy = rng.tensor<T>({40, 100, e});
  EXPECT_EQ(bytes_of(gpu.forward(ids, {40, 100})), bytes_of(cpu.forward(ids, {40, 100})));
  cpu.backward(ids, {40, 100}, dy);
  gpu.backward(ids, {40, 100}, dy.to(kGpu));
  // Same order of additions on both sides: the same bits.
  EXPECT_EQ(bytes_of(gpu.gradients()), bytes_of(cpu.gradients()));
  gpu.zero_grad();
  gpu.backward(ids, {40, 100}, dy.to(kGpu));
  EXPECT_EQ(bytes_of(gpu.gradients()), bytes_of(cpu.gradients()));
}

TYPED_TEST(ModulesCuda, LinearParity) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  Random rng(13);
  const std::int64_t in = 67, out = 301;
  Linear cpu(in, out, true, dt, Device::cpu(), 14), gpu(in, out, true, dt, kGpu, 14);
  Tensor x = rng.tensor<T>({9, 7, in}), dy = rng.tensor<T>({9, 7, out});
  EXPECT_TRUE(all_close(gpu.forward(x.to(kGpu)).to_vector<T>(), cpu.forward(x).to_vector<T>(),
                        tolerance_for_depth<T>(in)));
  Tensor dx_cpu = cpu.backward(x, dy);
  Tensor dx_gpu = gpu.backward(x.to(kGpu), dy.to(kGpu));
  EXPECT_TRUE(all_close(dx_gpu.to_vector<T>(), dx_cpu.to_vector<T>(), tolerance_for_depth<T>(out)));
  EXPECT_TRUE(all_close(gpu.gradients().to_vector<T>(), cpu.gradients().to_vector<T>(),
                        tolerance_for_depth<T>(63)));
}

TYPED_TEST(ModulesCuda, CrossEntropyParity) {
  using T = TypeParam;
  Random rng(15);
  const std::int64_t n = 500, v = 1001;
  Tensor logits = rng.tensor<T>({n, v}, Device::cpu(), -20, 20);
  std::vector<std::int32_t> targets(n);
  for (auto& t : targets) t = static_cast<std::int32_t>(rng.uniform(0, 1) * v);
  targets[7] = -100;
  SoftmaxCrossEntropy xent;
  CrossEntropyResult c = xent.forward_backward(logits, targets);
  CrossEntropyResult g = xent.forward_backward(logits.to(kGpu), targets);
  EXPECT_EQ(g.loss.device(), kGpu);
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(v + n));
  const Tolerance wide{tol.eps, tol.factor * 21};  // lse - x cancels |x| <= 20
  EXPECT_TRUE(all_close(g.loss.to_vector<T>(), c.loss.to_vector<T>(), wide));
  EXPECT_TRUE(all_close(g.dlogits.to_vector<T>(), c.dlogits.to_vector<T>(), wide));
}

TYPED_TEST(ModulesCuda, DeviceIdsAndTargetsMatchTheCpuAndBadOnesGiveNaN) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  Random rng(16);
  const std::int64_t v = 300, e = 8, n = 2000;
  std::vector<std::int64_t> ids(n);
  for (auto& id : ids) id = static_cast<std::int64_t>(rng.uniform(0, 1) * 40);
  EmbeddingOptions o;
  o.dtype = dt;
  o.seed = 17;
  o.padding_idx = 5;
  Embedding cpu(v, e, o);
  o.device = kGpu;
  Embedding gpu(v, e, o);
  Tensor host_ids = Tensor::from_vector(ids, {50, 40});
  Tensor dev_ids = host_ids.to(kGpu);
  Tensor dy = rng.tensor<T>({50, 40, e});
  EXPECT_EQ(bytes_of(gpu.forward(dev_ids)), bytes_of(cpu.forward(host_ids)));
  cpu.backward(host_ids, dy);
  gpu.backward(dev_ids, dy.to(kGpu));
  EXPECT_EQ(bytes_of(gpu.gradients()), bytes_of(cpu.gradients()));  // the same sums, in order

  Tensor logits = rng.tensor<T>({n, 11});
  std::vector<std::int32_t> targets(n);
  for (auto& t : targets) t = static_cast<std::int32_t>(rng.uniform(0, 1) * 11);
  targets[3] = -100;
  Tensor host_t = Tensor::from_vector(targets, {n});
  SoftmaxCrossEntropy xent;
  CrossEntropyResult c = xent.forward_backward(logits, host_t);
  CrossEntropyResult g = xent.forward_backward(logits.to(kGpu), host_t.to(kGpu));
  EXPECT_EQ(g.count.to_vector<std::int64_t>(), c.count.to_vector<std::int64_t>());
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(11 + n));
  EXPECT_TRUE(all_close(g.loss.to_vector<T>(), c.loss.to_vector<T>(), {tol.eps, tol.factor * 3}));

  // Nothing reads device ids back: a bad one gives NaN, which the loss carries.
  Tensor bad = Tensor::from_vector<std::int64_t>({1, v, -1}, {3}).to(kGpu);
  const std::vector<T> rows = gpu.forward(bad).template to_vector<T>();
  EXPECT_FALSE(std::isnan(rows[0]));
  EXPECT_TRUE(std::isnan(rows[e]) && std::isnan(rows[2 * e]));
  const std::vector<unsigned char> before = bytes_of(gpu.gradients());
  gpu.backward(Tensor::from_vector<std::int64_t>({v + 3, -7}, {2}).to(kGpu),
               Tensor::zeros({2, e}, dt, kGpu));
  EXPECT_EQ(bytes_of(gpu.gradients()), before);  // bad ids add nothing
  Tensor bad_targets = Tensor::from_vector<std::int32_t>({0, 11}, {2}).to(kGpu);
  CrossEntropyResult nan = xent.forward(Tensor::zeros({2, 11}, dt, kGpu), bad_targets);
  EXPECT_TRUE(std::isnan(static_cast<double>(nan.loss.to_vector<T>()[0])));
  EXPECT_TRUE(throws_error([&] { gpu.forward(host_ids); },
                           {"'ids'", "device cuda:0 (the module's)", "got device cpu"}));
  EXPECT_TRUE(throws_error([&] { xent.forward(logits.to(kGpu), host_t); },
                           {"'targets'", "device cuda:0 (the logits')", "got device cpu"}));
}

TYPED_TEST(ModulesCuda, LargeVocabularyCrossEntropyParity) {
  using T = TypeParam;
  Random rng(18);
  const std::int64_t n = 70, v = 131089;  // more lanes' worth than one pass of a block
  Tensor logits = rng.tensor<T>({n, v}, Device::cpu(), -8, 8);
  std::vector<std::int32_t> targets(n);
  for (auto& t : targets) t = static_cast<std::int32_t>(rng.uniform(0, 1) * v);
  SoftmaxCrossEntropy xent;
  CrossEntropyResult c = xent.forward_backward(logits, targets);
  CrossEntropyResult g = xent.forward_backward(logits.to(kGpu), targets);
  // The same tree on both sides; only exp and log round differently.
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(v / 256 + 8 + n));
  const Tolerance wide{tol.eps, tol.factor * 9};
  EXPECT_TRUE(all_close(g.loss.to_vector<T>(), c.loss.to_vector<T>(), wide));
  EXPECT_TRUE(all_close(g.dlogits.to_vector<T>(), c.dlogits.to_vector<T>(), wide));
}

// Masked classes (-inf, two of every three but the targets) on both sides: the same finite
// loss, and no gradient at a masked class.
TYPED_TEST(ModulesCuda, MaskedCrossEntropyParity) {
  using T = TypeParam;
  Random rng(19);
  const std::int64_t n = 9, v = 131089;
  std::vector<T> lv = rng.vector<T>(n * v, -8, 8);
  std::vector<std::int32_t> targets(n);
  for (std::int64_t i = 0; i < n; ++i)
    targets[i] = static_cast<std::int32_t>(3 * (i * 977 % (v / 3)));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < v; ++j) {
      if (j % 3 != 0) lv[i * v + j] = -std::numeric_limits<T>::infinity();
    }
  }
  Tensor logits = Tensor::from_vector(lv, {n, v});
  SoftmaxCrossEntropy xent;
  CrossEntropyResult c = xent.forward_backward(logits, targets);
  CrossEntropyResult g = xent.forward_backward(logits.to(kGpu), targets);
  ASSERT_TRUE(std::isfinite(static_cast<double>(c.loss.to_vector<T>()[0])));
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(v / 256 + 8 + n));
  const Tolerance wide{tol.eps, tol.factor * 9};
  EXPECT_TRUE(all_close(g.loss.to_vector<T>(), c.loss.to_vector<T>(), wide));
  const std::vector<T> dg = g.dlogits.to_vector<T>();
  EXPECT_TRUE(all_close(dg, c.dlogits.to_vector<T>(), wide));
  for (std::int64_t j = 1; j < v; j += 3) ASSERT_EQ(dg[j], T(0)) << j;
}

TYPED_TEST(ModulesCuda, ErrorsAndStreams) {
  using T = TypeParam;
  Linear lin(3, 2, true, dtype_of<T>(), kGpu);
  EXPECT_TRUE(throws_error(
      [&] {
        lin.forward(Tensor::zeros({4, 3}, dtype_of<T>()));
      },
      {"'x'", "device cuda:0 (the module's)", "got device cpu"}));
  EXPECT_EQ(lin.cuda_stream(), nullptr);  // the legacy default stream
  lin.synchronize();
}

}  // namespace
}  // namespace recur::test
