// tests/test_diagnostics.cpp: the gradient-flow diagnostics (recur/diagnostics.h).
//
// ||dJ/dh_j|| recorded by the backward pass is checked against
//   - a float64 reference that multiplies the Jacobians diag(act') W_hh explicitly
//     (one-layer vanilla RNNs, float64 and float32 models);
//   - central differences of J with respect to an additive perturbation of h_j: the
//     sequence is cut after step j, and the second part starts from h0 = h_j (+- step),
//     for every cell, the top layer of uni stacks and both directions of a bi layer;
//   - a composition of one-layer models for the lower layers of a stack (layer 0 of the
//     stack sees dJ/dy_0, the dx of the upper model, through gradient_flow_full);
// the singular values against a Jacobi eigen-decomposition of W^T W in double; and the
// GPU against the CPU (SKIPPED without a GPU).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/cpu_ops.h"
#include "ops.h"
#include "test_util.h"

namespace recur::test {
namespace {

RnnConfig make_config(CellKind cell, std::int64_t I, std::int64_t H, std::int64_t layers = 1,
                      bool bidirectional = false, Connection connection = Connection::None,
                      DType dtype = DType::Float64) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = I;
  c.hidden_size = H;
  c.num_layers = layers;
  c.bidirectional = bidirectional;
  c.connection = connection;
  c.dtype = dtype;
  return c;
}

// Parameters from U(-0.8, 0.8): gates away from their midpoint, gradients neither dead
// nor exploding over a few steps.
void randomize(Rnn& rnn, std::uint64_t seed) {
  Random rng(seed);
  std::vector<double> p = rng.vector<double>(rnn.parameters().numel(), -0.8, 0.8);
  if (rnn.config().dtype == DType::Float64) {
    rnn.parameters().copy_from_host(p.data());
  } else {
    std::vector<float> f(p.begin(), p.end());
    rnn.parameters().copy_from_host(f.data());
  }
}

// Steps [t0, t1) of a time-major [T, B, F] host array, as a float64 tensor.
Tensor steps(const std::vector<double>& x, std::int64_t B, std::int64_t F, std::int64_t t0,
             std::int64_t t1) {
  return Tensor::from_vector(std::vector<double>(x.begin() + t0 * B * F, x.begin() + t1 * B * F),
                             {t1 - t0, B, F});
}

double norm_of(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s);
}

// ---- the explicit Jacobian products of a one-layer vanilla RNN, in double ----

double act(CellKind cell, double z) {
  if (cell == CellKind::RnnTanh) return std::tanh(z);
  if (cell == CellKind::RnnRelu) return z > 0 ? z : 0.0;
  return 1.0 / (1.0 + std::exp(-z));
}
double act_prime(CellKind cell, double z) {
  if (cell == CellKind::RnnTanh) return 1.0 - std::tanh(z) * std::tanh(z);
  if (cell == CellKind::RnnRelu) return z > 0 ? 1.0 : 0.0;
  const double s = 1.0 / (1.0 + std::exp(-z));
  return s * (1.0 - s);
}

// ||dJ/dh_j|| for J = <w, h_i>: g_i = w, g_j = W_hh^T (act'(z_{j+1}) * g_{j+1}).
std::vector<double> vanilla_reference(CellKind cell, const std::vector<double>& w_ih,
                                      const std::vector<double>& w_hh,
                                      const std::vector<double>& bias, const std::vector<double>& x,
                                      const std::vector<double>& w, std::int64_t T, std::int64_t B,
                                      std::int64_t I, std::int64_t H, std::int64_t i) {
  std::vector<double> z(static_cast<std::size_t>(T * B * H)), h(z.size());
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t r = 0; r < H; ++r) {
        double s = bias[r] + bias[H + r];  // b_ih + b_hh
        for (std::int64_t k = 0; k < I; ++k) s += w_ih[r * I + k] * x[(t * B + b) * I + k];
        if (t > 0) {
          for (std::int64_t k = 0; k < H; ++k) s += w_hh[r * H + k] * h[((t - 1) * B + b) * H + k];
        }
        z[(t * B + b) * H + r] = s;
        h[(t * B + b) * H + r] = act(cell, s);
      }
    }
  }
  std::vector<double> out(static_cast<std::size_t>(T), std::numeric_limits<double>::quiet_NaN());
  std::vector<double> g = w;  // [B, H]
  out[i] = norm_of(g);
  for (std::int64_t j = i - 1; j >= 0; --j) {
    std::vector<double> next(g.size(), 0.0);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t r = 0; r < H; ++r) {
        const double d = act_prime(cell, z[((j + 1) * B + b) * H + r]) * g[b * H + r];
        for (std::int64_t k = 0; k < H; ++k) next[b * H + k] += w_hh[r * H + k] * d;
      }
    }
    g = next;
    out[j] = norm_of(g);
  }
  return out;
}

class VanillaReference : public ::testing::TestWithParam<std::tuple<CellKind, DType>> {};

TEST_P(VanillaReference, MatchesExplicitJacobianProducts) {
  // Variables, not a structured binding: C++17 lambdas cannot capture one (clang refuses).
  const auto cell = std::get<0>(GetParam());
  const auto dtype = std::get<1>(GetParam());
  const std::int64_t T = 9, B = 3, I = 4, H = 5, i = 7;
  Rnn rnn(make_config(cell, I, H, 1, false, Connection::None, dtype));
  randomize(rnn, 11);
  Random rng(5);
  const std::vector<double> x = rng.vector<double>(T * B * I), w = rng.vector<double>(B * H);
  const std::vector<double> params = [&] {
    if (dtype == DType::Float64) return rnn.parameters().to_vector<double>();
    const std::vector<float> f = rnn.parameters().to_vector<float>();
    return std::vector<double>(f.begin(), f.end());
  }();
  const std::vector<double> w_ih(params.begin(), params.begin() + H * I);
  const std::vector<double> w_hh(params.begin() + H * I, params.begin() + H * I + H * H);
  const std::vector<double> bias(params.begin() + H * I + H * H, params.end());
  const std::vector<double> ref = vanilla_reference(cell, w_ih, w_hh, bias, x, w, T, B, I, H, i);

  GradientFlow flow;
  if (dtype == DType::Float64) {
    flow = gradient_flow(rnn, Tensor::from_vector(x, {T, B, I}), i, Tensor::from_vector(w, {B, H}));
  } else {
    const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end());
    flow =
        gradient_flow(rnn, Tensor::from_vector(xf, {T, B, I}), i, Tensor::from_vector(wf, {B, H}));
  }
  ASSERT_EQ(flow.steps, T);
  ASSERT_EQ(flow.step, i);
  ASSERT_EQ(flow.layers, 1);
  ASSERT_EQ(flow.directions, 1);
  ASSERT_EQ(flow.norms.size(), static_cast<std::size_t>(T));
  for (std::int64_t j = i + 1; j < T; ++j) EXPECT_TRUE(std::isnan(flow.norms[j])) << j;
  const std::vector<double> got(flow.norms.begin(), flow.norms.begin() + i + 1);
  const std::vector<double> want(ref.begin(), ref.begin() + i + 1);
  // The chain: T steps of K = I + H products, then i Jacobians of K = H.
  const double depth = static_cast<double>(T * (I + H));
  const Tolerance tol = dtype == DType::Float64 ? tolerance_for_depth<double>(depth)
                                                : tolerance_for_depth<float>(depth);
  EXPECT_TRUE(all_close(got, want, tol));
  EXPECT_GT(want[0], 0.0);  // something reaches the first step
}

INSTANTIATE_TEST_SUITE_P(Cells, VanillaReference,
                         ::testing::Combine(::testing::Values(CellKind::RnnTanh,
                                                              CellKind::RnnSigmoid,
                                                              CellKind::RnnRelu),
                                            ::testing::Values(DType::Float64, DType::Float32)));

TEST(GradientFlow, DefaultWeightIsNormalisedOnes) {
  const std::int64_t T = 5, B = 2, I = 3, H = 4, i = 4;
  Rnn rnn(make_config(CellKind::RnnTanh, I, H));
  randomize(rnn, 3);
  Random rng(9);
  Tensor x = rng.tensor<double>({T, B, I});
  const GradientFlow a = gradient_flow(rnn, x, i);
  const std::vector<double> ones(static_cast<std::size_t>(B * H), 1.0 / std::sqrt(double(B * H)));
  const GradientFlow b = gradient_flow(rnn, x, i, Tensor::from_vector(ones, {B, H}));
  EXPECT_NEAR(a.norms[i], 1.0, tolerance_for_depth<double>(1).of(1.0));
  for (std::int64_t j = 0; j <= i; ++j) EXPECT_EQ(a.norms[j], b.norms[j]) << j;
}

// ---- central differences of J with respect to h_j ----

// ||dJ/dh_j|| of the top layer's direction `dir`, J = <w_dir, y_dir at step i> (the other
// direction's part of w is zero), by central differences: run x[0..j] (forward) or
// x[j..T) (reverse) to get the states at j, then J as a function of those states as h0 of
// the run over x[j+1..i] (forward) or x[i..j) (reverse). Also returns the budget of the
// norm: sqrt(#elements) times the per-element central-difference bound.
struct Numeric {
  double norm = 0, budget = 0;
};

Numeric numeric_flow(Rnn& rnn, const std::vector<double>& x, const std::vector<double>& w,
                     std::int64_t T, std::int64_t B, std::int64_t i, std::int64_t j, int dir) {
  const RnnConfig& c = rnn.config();
  const std::int64_t I = c.input_size, H = c.hidden_size, D = c.bidirectional ? 2 : 1;
  const std::int64_t DH = D * H, LD = c.num_layers * D;
  const bool lstm = has_cell_state(c.cell);
  const ForwardResult first = dir == 0
                                  ? rnn.forward(steps(x, B, I, 0, j + 1), {}, {}, Mode::Inference)
                                  : rnn.forward(steps(x, B, I, j, T), {}, {}, Mode::Inference);
  Tensor h0 = Tensor::from_vector(first.h_n.to_vector<double>(), {LD, B, H});
  Tensor c0;
  if (lstm) c0 = Tensor::from_vector(first.c_n.to_vector<double>(), {LD, B, H});
  Tensor xs = dir == 0 ? steps(x, B, I, j + 1, i + 1) : steps(x, B, I, i, j);
  const std::int64_t local = dir == 0 ? i - j - 1 : 0;  // step i inside the second run
  double jabs = 0;
  auto J = [&](double* abs_sum) {
    const ForwardResult r = rnn.forward(xs, h0, c0, Mode::Inference);
    const std::vector<double> y = r.y.to_vector<double>();
    double s = 0;
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t k = 0; k < H; ++k) {
        const double term = w[b * DH + dir * H + k] * y[(local * B + b) * DH + dir * H + k];
        s += term;
        if (abs_sum) *abs_sum += std::fabs(term);
      }
    }
    return s;
  };
  J(&jabs);
  double* h = h0.data_as<double>() + ((c.num_layers - 1) * D + dir) * B * H;  // the top unit
  const double step = FiniteDifference::step();
  std::vector<double> grad(static_cast<std::size_t>(B * H));
  for (std::size_t e = 0; e < grad.size(); ++e) {
    const double keep = h[e];
    h[e] = keep + step;
    const double up = J(nullptr);
    h[e] = keep - step;
    const double down = J(nullptr);
    h[e] = keep;
    grad[e] = (up - down) / (2 * step);
  }
  const double depth = static_cast<double>(T * (I + 4 * H) * c.num_layers);
  return {norm_of(grad),
          std::sqrt(static_cast<double>(grad.size())) * FiniteDifference::tolerance(jabs, depth)};
}

struct FdCase {
  CellKind cell;
  std::int64_t layers;
  bool bidirectional;
  Connection connection;
};

class FiniteDifferences : public ::testing::TestWithParam<FdCase> {};

TEST_P(FiniteDifferences, TopLayerMatchesCentralDifferencesOfJ) {
  const FdCase p = GetParam();
  const std::int64_t T = 7, B = 2, I = 3, H = 3, i = p.bidirectional ? 3 : 5;
  Rnn rnn(make_config(p.cell, p.connection == Connection::None ? I : H, H, p.layers,
                      p.bidirectional, p.connection));
  const std::int64_t In = rnn.config().input_size, D = p.bidirectional ? 2 : 1, DH = D * H;
  randomize(rnn, 21);
  Random rng(4);
  const std::vector<double> x = rng.vector<double>(T * B * In), w = rng.vector<double>(B * DH);
  const GradientFlow flow =
      gradient_flow(rnn, Tensor::from_vector(x, {T, B, In}), i, Tensor::from_vector(w, {B, DH}));
  ASSERT_EQ(flow.norms.size(), static_cast<std::size_t>(p.layers * D * T));
  int checked = 0;
  for (int dir = 0; dir < D; ++dir) {
    const std::int64_t top = p.layers - 1;
    std::vector<double> w_dir(static_cast<std::size_t>(H * B));
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t k = 0; k < H; ++k) w_dir[b * H + k] = w[b * DH + dir * H + k];
    // At j = i nothing comes from the future: dJ/dh_i = w (identity on y for None and
    // Residual connections).
    EXPECT_NEAR(flow.norm(top, dir, i), norm_of(w_dir),
                tolerance_for_depth<double>(1).of(norm_of(w_dir)));
    for (std::int64_t j = 0; j < T; ++j) {
      if (j == i) continue;
      const bool reachable = dir == 0 ? j < i : j > i;
      if (!reachable) {
        EXPECT_TRUE(std::isnan(flow.norm(top, dir, j))) << "dir " << dir << " j " << j;
        continue;
      }
      const Numeric n = numeric_flow(rnn, x, w, T, B, i, j, dir);
      EXPECT_NEAR(flow.norm(top, dir, j), n.norm, n.budget) << "dir " << dir << " j " << j;
      EXPECT_GT(n.norm, 0.0);
      ++checked;
    }
  }
  EXPECT_GE(checked, 3);
}

INSTANTIATE_TEST_SUITE_P(
    Models, FiniteDifferences,
    ::testing::Values(FdCase{CellKind::RnnTanh, 1, false, Connection::None},
                      FdCase{CellKind::Lstm, 1, false, Connection::None},
                      FdCase{CellKind::GruLinearBeforeReset, 1, false, Connection::None},
                      FdCase{CellKind::GruResetBeforeProduct, 1, false, Connection::None},
                      FdCase{CellKind::Lstm, 3, false, Connection::None},
                      FdCase{CellKind::GruLinearBeforeReset, 2, false, Connection::Residual},
                      FdCase{CellKind::RnnSigmoid, 2, false, Connection::Residual},
                      FdCase{CellKind::Lstm, 1, true, Connection::None},
                      FdCase{CellKind::GruResetBeforeProduct, 1, true, Connection::None},
                      FdCase{CellKind::RnnTanh, 1, true, Connection::None}));

// ---- lower layers: a stack against two one-layer models with the same weights ----

class Composition : public ::testing::TestWithParam<std::tuple<CellKind, bool>> {};

TEST_P(Composition, LowerLayerSeesTheUpperModelsInputGradient) {
  const auto [cell, bidirectional] = GetParam();
  const std::int64_t T = 6, B = 2, I = 3, H = 4, i = 3, D = bidirectional ? 2 : 1, DH = D * H;
  Rnn stack(make_config(cell, I, H, 2, bidirectional));
  Rnn lower(make_config(cell, I, H, 1, bidirectional));
  Rnn upper(make_config(cell, DH, H, 1, bidirectional));
  randomize(stack, 8);
  for (const ParamInfo& info : stack.parameter_info()) {
    const std::size_t at = info.name.find("_l");
    const char layer = info.name[at + 2];
    const std::string name = info.name.substr(0, at + 2) + "0" + info.name.substr(at + 3);
    (layer == '0' ? lower : upper).parameter(name).copy_from(stack.parameter(info.name));
  }
  Random rng(6);
  Tensor x = rng.tensor<double>({T, B, I});
  const std::vector<double> w = rng.vector<double>(B * DH);
  Tensor wt = Tensor::from_vector(w, {B, DH});

  const GradientFlow s = gradient_flow(stack, x, i, wt);
  ForwardResult y0 = lower.forward(x, {}, {}, Mode::Inference);
  const GradientFlow top = gradient_flow(upper, y0.y, i, wt);
  // dJ/dy_0 of the stack = dx of the upper model for the same J.
  std::vector<double> dy(static_cast<std::size_t>(T * B * DH), 0.0);
  std::copy(w.begin(), w.end(), dy.begin() + i * B * DH);
  upper.forward(y0.y, {}, {}, Mode::Training);
  const BackwardResult g = upper.backward(Tensor::from_vector(dy, {T, B, DH}));
  const GradientFlow bottom = gradient_flow_full(lower, x, g.dx);
  EXPECT_EQ(bottom.step, -1);

  const Tolerance tol = tolerance_for_depth<double>(static_cast<double>(T * (I + DH) * 2));
  std::vector<double> got, want;
  for (int d = 0; d < D; ++d) {
    for (std::int64_t j = 0; j < T; ++j) {
      const double sv1 = s.norm(1, d, j), sv0 = s.norm(0, d, j);
      EXPECT_EQ(std::isnan(sv1), std::isnan(top.norm(0, d, j)));
      if (!std::isnan(sv1)) {
        got.push_back(sv1);
        want.push_back(top.norm(0, d, j));
      }
      // A unidirectional stack's lower layer after i: NaN in the stack, a zero gradient
      // for the lower model; a bidirectional stack's lower layer is never NaN.
      EXPECT_EQ(std::isnan(sv0), !bidirectional && j > i) << d << " " << j;
      if (std::isnan(sv0)) {
        EXPECT_EQ(bottom.norm(0, d, j), 0.0) << d << " " << j;
      } else {
        got.push_back(sv0);
        want.push_back(bottom.norm(0, d, j));
      }
    }
  }
  EXPECT_TRUE(all_close(got, want, tol));
}

INSTANTIATE_TEST_SUITE_P(Cells, Composition,
                         ::testing::Combine(::testing::Values(CellKind::Lstm,
                                                              CellKind::GruLinearBeforeReset,
                                                              CellKind::RnnTanh),
                                            ::testing::Bool()));

TEST(GradientFlow, ChangesNothingAndOrdinaryPassesAreUnchanged) {
  const std::int64_t T = 5, B = 3, I = 4, H = 4;
  Rnn rnn(make_config(CellKind::Lstm, I, H, 2, false, Connection::None, DType::Float32));
  Random rng(2);
  Tensor x = rng.tensor<float>({T, B, I}), dy = rng.tensor<float>({T, B, H});
  auto train_step = [&] {
    rnn.zero_grad();
    ForwardResult f = rnn.forward(x);
    BackwardResult g = rnn.backward(dy);
    std::vector<float> out = f.y.to_vector<float>();
    for (float v : g.dx.to_vector<float>()) out.push_back(v);
    for (float v : rnn.gradients().to_vector<float>()) out.push_back(v);
    return out;
  };
  const std::vector<float> before = train_step();
  const std::vector<float> params = rnn.parameters().to_vector<float>();
  const std::vector<float> grads = rnn.gradients().to_vector<float>();
  const std::uint64_t dropout_step = rnn.dropout_step();
  const GradientFlow flow = gradient_flow(rnn, x, 2);
  EXPECT_GT(flow.norm(0, 0, 0), 0.0);
  EXPECT_EQ(rnn.dropout_step(), dropout_step);
  EXPECT_EQ(std::memcmp(params.data(), rnn.parameters().to_vector<float>().data(),
                        params.size() * sizeof(float)),
            0);
  EXPECT_EQ(std::memcmp(grads.data(), rnn.gradients().to_vector<float>().data(),
                        grads.size() * sizeof(float)),
            0);
  // Nothing is kept for a backward() after it.
  EXPECT_THROW(rnn.backward(dy), Error);
  const std::vector<float> after = train_step();
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)), 0);
}

// ---- the reduction itself ----

TEST(FlowOp, CpuSumsSquaresOfStridedPairs) {
  Random rng(1);
  detail::CpuOps<float> ops;
  const std::int64_t rows = 7, width = 300, lda = 301, ldb = 600;
  const std::vector<float> a = rng.vector<float>(rows * lda), b = rng.vector<float>(rows * ldb);
  double out[2] = {-1, -1};
  kernels::FlowArgs<float> items[2];
  items[0] = {rows, width, a.data(), lda, b.data(), ldb, &out[0]};
  items[1] = {rows, width, a.data(), lda, nullptr, 0, &out[1]};
  ops.flow(items, 2);
  long double with_b = 0, only_a = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t k = 0; k < width; ++k) {
      const long double v = a[r * lda + k], u = b[r * ldb + k];
      with_b += (v + u) * (v + u);
      only_a += v * v;
    }
  }
  const Tolerance tol = tolerance_for_depth<double>(static_cast<double>(rows * width));
  EXPECT_NEAR(out[0], static_cast<double>(with_b), tol.of(static_cast<double>(with_b)));
  EXPECT_NEAR(out[1], static_cast<double>(only_a), tol.of(static_cast<double>(only_a)));
}

// ---- singular values ----

// Eigenvalues of a symmetric n x n matrix (row-major), cyclic Jacobi rotations.
std::vector<double> jacobi_eigenvalues(std::vector<double> a, std::int64_t n) {
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (std::int64_t p = 0; p < n; ++p)
      for (std::int64_t q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    if (off < 1e-30) break;
    for (std::int64_t p = 0; p < n; ++p) {
      for (std::int64_t q = p + 1; q < n; ++q) {
        if (a[p * n + q] == 0.0) continue;
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double cs = 1 / std::sqrt(t * t + 1), sn = t * cs;
        for (std::int64_t k = 0; k < n; ++k) {  // columns p, q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = cs * akp - sn * akq;
          a[k * n + q] = sn * akp + cs * akq;
        }
        for (std::int64_t k = 0; k < n; ++k) {  // rows p, q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = cs * apk - sn * aqk;
          a[q * n + k] = sn * apk + cs * aqk;
        }
      }
    }
  }
  std::vector<double> out;
  for (std::int64_t k = 0; k < n; ++k) out.push_back(a[k * n + k]);
  std::sort(out.begin(), out.end());
  return out;
}

// The two largest singular values of a row-major rows x n matrix.
std::pair<double, double> top_singular_values(const std::vector<double>& w, std::int64_t rows,
                                              std::int64_t n) {
  std::vector<double> wtw(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t p = 0; p < n; ++p)
    for (std::int64_t q = 0; q < n; ++q)
      for (std::int64_t r = 0; r < rows; ++r) wtw[p * n + q] += w[r * n + p] * w[r * n + q];
  const std::vector<double> e = jacobi_eigenvalues(wtw, n);
  return {std::sqrt(std::max(0.0, e[n - 1])), std::sqrt(std::max(0.0, e[n - 2]))};
}

std::vector<double> as_double(const TensorView& v) {
  if (v.dtype() == DType::Float64) return v.to_vector<double>();
  const std::vector<float> f = v.to_vector<float>();
  return std::vector<double>(f.begin(), f.end());
}

class SingularValues : public ::testing::TestWithParam<std::tuple<CellKind, bool, DType>> {};

TEST_P(SingularValues, MatchJacobiReference) {
  const auto [cell, bidirectional, dtype] = GetParam();
  const std::int64_t H = 6, G = gate_count(cell), D = bidirectional ? 2 : 1;
  Rnn rnn(make_config(cell, 3, H, 2, bidirectional, Connection::None, dtype));
  randomize(rnn, 17);
  const int iterations = 20000;
  const std::vector<double> got = largest_singular_values(rnn, iterations, 0.0);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * D));
  std::vector<double> want;
  for (std::int64_t l = 0; l < 2; ++l) {
    for (std::int64_t d = 0; d < D; ++d) {
      const std::string name = "weight_hh_l" + std::to_string(l) + (d ? "_reverse" : "");
      const auto [s1, s2] = top_singular_values(as_double(rnn.parameter(name)), G * H, H);
      // Power iteration's error falls like (s2/s1)^(4k): with this gap, 20000 iterations
      // leave nothing but rounding.
      ASSERT_LT(s2 / s1, 0.99) << name;
      want.push_back(s1);
    }
  }
  const double depth = static_cast<double>(G * H);
  EXPECT_TRUE(all_close(got, want,
                        dtype == DType::Float64 ? tolerance_for_depth<double>(depth)
                                                : tolerance_for_depth<float>(depth)));
}

INSTANTIATE_TEST_SUITE_P(Models, SingularValues,
                         ::testing::Combine(::testing::Values(CellKind::RnnTanh, CellKind::Lstm,
                                                              CellKind::GruLinearBeforeReset),
                                            ::testing::Bool(),
                                            ::testing::Values(DType::Float64, DType::Float32)));

TEST(SingularValues, ScalingSetsTheLargestAndNothingElse) {
  Rnn rnn(make_config(CellKind::RnnTanh, 3, 8, 2, true));
  randomize(rnn, 5);
  const std::vector<double> w_ih = rnn.parameter("weight_ih_l1").to_vector<double>();
  const std::vector<double> first = largest_singular_values(rnn, 20000, 0.0);
  const std::vector<double> before = set_largest_singular_values(rnn, 1.5, 20000, 0.0);
  EXPECT_EQ(before, first);
  const std::vector<double> after = largest_singular_values(rnn, 20000, 0.0);
  EXPECT_TRUE(
      all_close(after, std::vector<double>(after.size(), 1.5), tolerance_for_depth<double>(8)));
  EXPECT_EQ(rnn.parameter("weight_ih_l1").to_vector<double>(), w_ih);
}

// ---- errors ----

template <class Fn>
void expect_error(Fn&& fn, const std::string& argument) {
  try {
    fn();
    ADD_FAILURE() << "no recur::Error for " << argument;
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
  }
}

TEST(GradientFlow, BadArgumentsAreNamed) {
  Rnn rnn(make_config(CellKind::Lstm, 3, 4));
  Random rng(1);
  Tensor x = rng.tensor<double>({5, 2, 3});
  expect_error([&] { gradient_flow(rnn, x, -1); }, "step");
  expect_error([&] { gradient_flow(rnn, x, 5); }, "step");
  expect_error([&] { gradient_flow(rnn, rng.tensor<float>({5, 2, 3}), 1); }, "x");
  expect_error([&] { gradient_flow(rnn, rng.tensor<double>({5, 2, 4}), 1); }, "x");
  expect_error([&] { gradient_flow(rnn, x, 1, rng.tensor<double>({2, 5})); }, "dy_step");
  expect_error([&] { gradient_flow_full(rnn, x, {}); }, "dy");
  expect_error([&] { gradient_flow_full(rnn, x, rng.tensor<double>({5, 2, 3})); }, "dy");
  expect_error([&] { largest_singular_values(rnn, 0); }, "iterations");
  expect_error([&] { largest_singular_values(rnn, 10, -1.0); }, "tol");
  expect_error([&] { set_largest_singular_values(rnn, 0.0); }, "sigma");
  const std::vector<double> params = rnn.parameters().to_vector<double>();
  rnn.parameter("weight_hh_l0").copy_from(Tensor::zeros({16, 4}, DType::Float64));
  EXPECT_EQ(largest_singular_values(rnn)[0], 0.0);
  expect_error([&] { set_largest_singular_values(rnn, 1.0); }, "rnn");
}

// ---- the GPU against the CPU ----

TEST(DiagnosticsCuda, FlowOpMatchesTheCpu) {
  RECUR_REQUIRE_GPU();
  Random rng(3);
  const std::int64_t rows = 33, width = 257, lda = 257, ldb = 514;
  const std::vector<double> a = rng.vector<double>(rows * lda), b = rng.vector<double>(rows * ldb);
  Tensor da = Tensor::from_vector(a, {rows * lda}, Device::cuda(0));
  Tensor db = Tensor::from_vector(b, {rows * ldb}, Device::cuda(0));
  Tensor dout = Tensor::zeros({2}, DType::Float64, Device::cuda(0));
  auto gpu = detail::make_ops<double>(Device::cuda(0));
  kernels::FlowArgs<double> items[2] = {
      {rows, width, da.data_as<double>(), lda, db.data_as<double>(), ldb, dout.data_as<double>()},
      {rows, width, da.data_as<double>(), lda, nullptr, 0, dout.data_as<double>() + 1}};
  gpu->flow(items, 2);
  gpu->synchronize();
  double cpu_out[2];
  detail::CpuOps<double> cpu;
  kernels::FlowArgs<double> host[2] = {{rows, width, a.data(), lda, b.data(), ldb, &cpu_out[0]},
                                       {rows, width, a.data(), lda, nullptr, 0, &cpu_out[1]}};
  cpu.flow(host, 2);
  EXPECT_TRUE(all_close(dout.to_vector<double>(), std::vector<double>(cpu_out, cpu_out + 2),
                        tolerance_for_depth<double>(static_cast<double>(rows * width))));
}

class DiagnosticsCudaModels : public ::testing::TestWithParam<std::tuple<CellKind, bool, DType>> {};

TEST_P(DiagnosticsCudaModels, GradientFlowAndSingularValuesMatchTheCpu) {
  RECUR_REQUIRE_GPU();
  // Variables, not a structured binding: the lambdas below capture dtype (see above).
  const auto cell = std::get<0>(GetParam());
  const auto bidirectional = std::get<1>(GetParam());
  const auto dtype = std::get<2>(GetParam());
  const std::int64_t T = 12, B = 4, I = 5, H = 16, i = 8, D = bidirectional ? 2 : 1;
  const RnnConfig c = make_config(cell, I, H, 2, bidirectional, Connection::Residual, dtype);
  Rnn cpu(c), gpu(c, Device::cuda(0));
  randomize(cpu, 13);
  gpu.parameters().copy_from(cpu.parameters());
  Random rng(8);
  const std::vector<double> x = rng.vector<double>(T * B * I), w = rng.vector<double>(B * D * H);
  auto tensor = [&](const std::vector<double>& v, const Shape& s, Device dev) {
    if (dtype == DType::Float64) return Tensor::from_vector(v, s, dev);
    return Tensor::from_vector(std::vector<float>(v.begin(), v.end()), s, dev);
  };
  const GradientFlow a = gradient_flow(cpu, tensor(x, {T, B, I}, Device::cpu()), i,
                                       tensor(w, {B, D * H}, Device::cpu()));
  const GradientFlow b = gradient_flow(gpu, tensor(x, {T, B, I}, Device::cuda(0)), i,
                                       tensor(w, {B, D * H}, Device::cuda(0)));
  std::vector<double> va, vb;
  for (std::size_t k = 0; k < a.norms.size(); ++k) {
    EXPECT_EQ(std::isnan(a.norms[k]), std::isnan(b.norms[k])) << k;
    if (!std::isnan(a.norms[k])) {
      va.push_back(a.norms[k]);
      vb.push_back(b.norms[k]);
    }
  }
  const double depth = static_cast<double>(T * (I + D * H) * 2);
  const Tolerance tol = dtype == DType::Float64 ? tolerance_for_depth<double>(depth)
                                                : tolerance_for_depth<float>(depth);
  EXPECT_TRUE(all_close(vb, va, tol));
  EXPECT_TRUE(all_close(largest_singular_values(gpu, 20000, 0.0),
                        largest_singular_values(cpu, 20000, 0.0), tol));
}

INSTANTIATE_TEST_SUITE_P(Models, DiagnosticsCudaModels,
                         ::testing::Combine(::testing::Values(CellKind::RnnTanh, CellKind::Lstm,
                                                              CellKind::GruResetBeforeProduct),
                                            ::testing::Bool(),
                                            ::testing::Values(DType::Float32, DType::Float64)));

}  // namespace
}  // namespace recur::test
