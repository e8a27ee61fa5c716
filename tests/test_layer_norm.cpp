// tests/test_layer_norm.cpp: the layer-normalised LSTM and GRU (RnnConfig::layer_norm).
//
// - A float64 reference written here, step by step, from the equations of docs/design.md
//   ("Layer normalisation"), on a scalar type that also carries one directional
//   derivative (Dual): its values check the library's forward, its derivatives along
//   random directions check the library's backward (parameter by parameter, dx, dh0,
//   dc0), exactly rather than by differences.
// - Central differences (tests/gradcheck_util.h) for 1 and 2 layers, both directions,
//   every connection, variable lengths, with and without bias.
// - Names, shapes, initial values; the row functors on the CPU step loops; run-to-run
//   bits; the config's errors; checkpoints.
// - The GPU against the CPU (SKIPPED without a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"
#include "gradcheck_util.h"
#include "ops.h"
#include "recur/checkpoint.h"
#include "recur/model_checkpoint.h"

namespace recur::test {
namespace {

// ---- the reference ----

// A value and its derivative along one direction (forward-mode differentiation).
struct Dual {
  double v = 0, d = 0;
  Dual() = default;
  Dual(double value, double derivative = 0) : v(value), d(derivative) {}
};
Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }
Dual& operator+=(Dual& a, Dual b) { return a = a + b; }
Dual sigmoid(Dual a) {
  const double s = 1 / (1 + std::exp(-a.v));
  return {s, a.d * s * (1 - s)};
}
Dual tanh(Dual a) {
  const double t = std::tanh(a.v);
  return {t, a.d * (1 - t * t)};
}
Dual sqrt(Dual a) {
  const double r = std::sqrt(a.v);
  return {r, a.d / (2 * r)};
}

// Everything the reference reads: the parameters by name, the inputs, and for each one a
// direction (all zero but the one being checked).
struct RefInputs {
  std::vector<Dual> params, x, h0, c0;
};

struct RefOutputs {
  std::vector<Dual> y, h_n, c_n;  // [T, B, D*H], [L*D, B, H], [L*D, B, H]
};

// y = LN(v; gamma) over the whole of v (no shift), as docs/design.md writes it.
std::vector<Dual> layer_norm(const std::vector<Dual>& v, const Dual* gamma, const Dual* beta) {
  const double n = static_cast<double>(v.size());
  Dual mean = 0;
  for (const Dual& e : v) mean += e;
  mean = mean / n;
  Dual var = 0;
  for (const Dual& e : v) var += (e - mean) * (e - mean);
  var = var / n;
  const Dual inv = Dual(1) / sqrt(var + 1e-5);
  std::vector<Dual> out(v.size());
  for (std::size_t k = 0; k < v.size(); ++k) {
    out[k] = gamma[k] * (v[k] - mean) * inv;
    if (beta != nullptr) out[k] += beta[k];
  }
  return out;
}

// A layer-normalised LSTM or GRU (either form) stack (Connection::None), time-major,
// sequence b running for lengths[b] steps (the reverse direction from lengths[b] - 1).
RefOutputs reference(const Rnn& rnn, const RefInputs& in, std::int64_t T, std::int64_t B,
                     const std::vector<std::int64_t>& lengths) {
  const RnnConfig& c = rnn.config();
  const bool lstm = c.cell == CellKind::Lstm;
  const std::int64_t H = c.hidden_size, G = lstm ? 4 : 3, GH = G * H;
  const std::int64_t D = c.bidirectional ? 2 : 1, L = c.num_layers;
  auto param = [&](const std::string& name) -> const Dual* {
    for (const ParamInfo& p : rnn.parameter_info()) {
      if (p.name == name) return in.params.data() + p.offset;
    }
    return nullptr;
  };
  std::vector<Dual> u = in.x;  // [T, B, width]
  std::int64_t width = c.input_size;
  RefOutputs out;
  out.h_n.assign(static_cast<std::size_t>(L * D * B * H), Dual());
  out.c_n = out.h_n;
  for (std::int64_t l = 0; l < L; ++l) {
    std::vector<Dual> y(static_cast<std::size_t>(T * B * D * H), Dual());
    for (std::int64_t d = 0; d < D; ++d) {
      const std::string s = std::to_string(l) + (d == 1 ? "_reverse" : "");
      const Dual* w_ih = param("weight_ih_l" + s);
      const Dual* w_hh = param("weight_hh_l" + s);
      const Dual* b_ih = param("bias_ih_l" + s);
      const Dual* b_hh = param("bias_hh_l" + s);
      const Dual* g_ih = param("layer_norm_ih_weight_l" + s);
      const Dual* g_hh = param("layer_norm_hh_weight_l" + s);
      const Dual* g_c = param("layer_norm_cell_weight_l" + s);
      const Dual* b_c = param("layer_norm_cell_bias_l" + s);
      const std::int64_t unit = l * D + d;
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t len = lengths.empty() ? T : lengths[static_cast<std::size_t>(b)];
        std::vector<Dual> h(in.h0.begin() + (unit * B + b) * H,
                            in.h0.begin() + (unit * B + b + 1) * H);
        std::vector<Dual> cell(static_cast<std::size_t>(H));
        if (lstm) {
          cell.assign(in.c0.begin() + (unit * B + b) * H, in.c0.begin() + (unit * B + b + 1) * H);
        }
        for (std::int64_t s_ = 0; s_ < len; ++s_) {
          const std::int64_t t = d == 0 ? s_ : len - 1 - s_;
          const Dual* ut = u.data() + (t * B + b) * width;
          std::vector<Dual> wx(static_cast<std::size_t>(GH)), wh(static_cast<std::size_t>(GH));
          for (std::int64_t k = 0; k < GH; ++k) {
            for (std::int64_t i = 0; i < width; ++i) wx[k] += w_ih[k * width + i] * ut[i];
            for (std::int64_t i = 0; i < H; ++i) wh[k] += w_hh[k * H + i] * h[i];
          }
          std::vector<Dual> ax = layer_norm(wx, g_ih, b_ih), ah = layer_norm(wh, g_hh, b_hh);
          std::vector<Dual> next(static_cast<std::size_t>(H));
          if (lstm) {
            std::vector<Dual> cn(static_cast<std::size_t>(H)), o(static_cast<std::size_t>(H));
            for (std::int64_t j = 0; j < H; ++j) {
              const Dual ig = sigmoid(ax[j] + ah[j]), fg = sigmoid(ax[H + j] + ah[H + j]);
              const Dual gg = tanh(ax[2 * H + j] + ah[2 * H + j]);
              o[j] = sigmoid(ax[3 * H + j] + ah[3 * H + j]);
              cn[j] = fg * cell[j] + ig * gg;
            }
            const std::vector<Dual> nc = layer_norm(cn, g_c, b_c);
            for (std::int64_t j = 0; j < H; ++j) next[j] = o[j] * tanh(nc[j]);
            cell = cn;
          } else if (c.cell == CellKind::GruLinearBeforeReset) {
            for (std::int64_t j = 0; j < H; ++j) {
              const Dual r = sigmoid(ax[j] + ah[j]), z = sigmoid(ax[H + j] + ah[H + j]);
              const Dual n = tanh(ax[2 * H + j] + r * ah[2 * H + j]);
              next[j] = (Dual(1) - z) * n + z * h[j];
            }
          } else {
            // Reset before product: W_h[r,z] h and W_hn (r*h) normalised each on its own.
            const std::vector<Dual> whrz(wh.begin(), wh.begin() + 2 * H);
            const std::vector<Dual> arz = layer_norm(whrz, g_hh, b_hh);
            std::vector<Dual> r(static_cast<std::size_t>(H)), z(r), rh(r);
            for (std::int64_t j = 0; j < H; ++j) {
              r[j] = sigmoid(ax[j] + arz[j]);
              z[j] = sigmoid(ax[H + j] + arz[H + j]);
              rh[j] = r[j] * h[j];
            }
            std::vector<Dual> whn(static_cast<std::size_t>(H));
            for (std::int64_t k = 0; k < H; ++k) {
              for (std::int64_t i = 0; i < H; ++i) whn[k] += w_hh[(2 * H + k) * H + i] * rh[i];
            }
            const std::vector<Dual> an =
                layer_norm(whn, g_hh + 2 * H, b_hh != nullptr ? b_hh + 2 * H : nullptr);
            for (std::int64_t j = 0; j < H; ++j) {
              const Dual n = tanh(ax[2 * H + j] + an[j]);
              next[j] = (Dual(1) - z[j]) * n + z[j] * h[j];
            }
          }
          h = next;
          for (std::int64_t j = 0; j < H; ++j) y[((t * B + b) * D + d) * H + j] = h[j];
        }
        for (std::int64_t j = 0; j < H; ++j) {
          out.h_n[(unit * B + b) * H + j] = h[j];
          out.c_n[(unit * B + b) * H + j] = cell[j];
        }
      }
    }
    u = y;
    width = D * H;
  }
  out.y = u;
  return out;
}

std::vector<Dual> duals(const std::vector<double>& v) { return {v.begin(), v.end()}; }

double directional(const RefOutputs& r, const std::vector<double>& wy,
                   const std::vector<double>& wh, const std::vector<double>& wc, bool lstm) {
  double s = 0;
  for (std::size_t i = 0; i < wy.size(); ++i) s += r.y[i].d * wy[i];
  for (std::size_t i = 0; i < wh.size(); ++i) s += r.h_n[i].d * wh[i];
  if (lstm) {
    for (std::size_t i = 0; i < wc.size(); ++i) s += r.c_n[i].d * wc[i];
  }
  return s;
}

RnnConfig ln_config(CellKind cell, std::int64_t layers, bool bi, bool bias = true) {
  RnnConfig c;
  c.cell = cell;
  c.input_size = 3;
  c.hidden_size = 5;
  c.num_layers = layers;
  c.bidirectional = bi;
  c.bias = bias;
  c.dtype = DType::Float64;
  c.layer_norm = true;
  return c;
}

struct RefCase {
  CellKind cell;
  std::int64_t layers;
  bool bidirectional;
  bool bias;
  bool lengths;
};

std::string ref_name(const ::testing::TestParamInfo<RefCase>& p) {
  return std::string(to_string(p.param.cell)) + "_L" + std::to_string(p.param.layers) +
         (p.param.bidirectional ? "_bi" : "_uni") + (p.param.bias ? "_bias" : "_nobias") +
         (p.param.lengths ? "_lengths" : "_full");
}

class LayerNormReference : public ::testing::TestWithParam<RefCase> {};

// The library (float64, CPU; unidirectional stacks also as a wavefront) against the
// reference: y, h_n, c_n element by element; then dJ along a random direction in each
// parameter, in x, h0 and c0, against the library's gradients dotted with it.
TEST_P(LayerNormReference, ForwardAndBackwardMatchTheEquations) {
  const RefCase rc = GetParam();
  const RnnConfig c = ln_config(rc.cell, rc.layers, rc.bidirectional, rc.bias);
  const bool lstm = rc.cell == CellKind::Lstm;
  const std::int64_t T = 4, B = 3, H = c.hidden_size, D = rc.bidirectional ? 2 : 1;
  const std::int64_t LD = rc.layers * D;
  const std::vector<std::int64_t> lengths =
      rc.lengths ? std::vector<std::int64_t>{2, 4, 1} : std::vector<std::int64_t>{};
  for (bool wavefront : {false, true}) {
    if (wavefront && rc.bidirectional) continue;
    SCOPED_TRACE(wavefront ? "wavefront" : "layer by layer");
    Rnn rnn(c, Device::cpu(), 5);
    run_as_wavefront(rnn, wavefront);
    Random rng(40 + static_cast<std::uint64_t>(rc.cell) + 7 * rc.layers);
    // Gains around 1 and everything else spread, so no normalisation is trivial.
    std::vector<double> params = rng.vector<double>(rnn.parameters().numel(), -0.8, 0.8);
    for (const ParamInfo& p : rnn.parameter_info()) {
      if (p.name.find("layer_norm") == 0 && p.name.find("bias") == std::string::npos) {
        for (std::int64_t k = 0; k < p.shape[0]; ++k) params[p.offset + k] += 1.0;
      }
    }
    rnn.parameters().copy_from_host(params.data());
    const std::vector<double> x = rng.vector<double>(T * B * c.input_size);
    const std::vector<double> h0 = rng.vector<double>(LD * B * H);
    const std::vector<double> c0 = rng.vector<double>(LD * B * H);
    const std::vector<double> wy = rng.vector<double>(T * B * D * H);
    const std::vector<double> wh = rng.vector<double>(LD * B * H);
    const std::vector<double> wc = rng.vector<double>(LD * B * H);
    const Tensor xt = Tensor::from_vector(x, {T, B, c.input_size});
    const Tensor h0t = Tensor::from_vector(h0, {LD, B, H});
    const Tensor c0t = lstm ? Tensor::from_vector(c0, {LD, B, H}) : Tensor();
    rnn.zero_grad();
    ForwardResult f = rnn.forward(xt, h0t, c0t, Mode::Training, lengths);
    BackwardResult g =
        rnn.backward(Tensor::from_vector(wy, {T, B, D * H}), Tensor::from_vector(wh, {LD, B, H}),
                     lstm ? Tensor::from_vector(wc, {LD, B, H}) : Tensor());

    RefInputs in{duals(params), duals(x), duals(h0), duals(c0)};
    const RefOutputs plain = reference(rnn, in, T, B, lengths);
    // Each output is a chain of T steps of GEMMs of K <= D*H + H and normalisations over
    // G*H (the longest sums).
    const double depth = static_cast<double>(T * rc.layers * (D * H + H + 4 * H));
    const Tolerance tol = tolerance_for_depth<double>(depth);
    auto values = [](const std::vector<Dual>& v) {
      std::vector<double> out;
      for (const Dual& e : v) out.push_back(e.v);
      return out;
    };
    EXPECT_TRUE(all_close(f.y.to_vector<double>(), values(plain.y), tol)) << "y";
    EXPECT_TRUE(all_close(f.h_n.to_vector<double>(), values(plain.h_n), tol)) << "h_n";
    if (lstm) {
      EXPECT_TRUE(all_close(f.c_n.to_vector<double>(), values(plain.c_n), tol)) << "c_n";
    }

    // dJ along direction v restricted to [offset, offset + n) of one of the inputs.
    auto check = [&](const std::string& what, std::vector<Dual> RefInputs::*field,
                     std::int64_t offset, std::int64_t n, const std::vector<double>& grad) {
      RefInputs dir = in;
      std::vector<double> v = rng.vector<double>(n);
      double lib = 0, scale = 0;
      for (std::int64_t k = 0; k < n; ++k) {
        (dir.*field)[offset + k].d = v[k];
        lib += grad[k] * v[k];
        scale += std::fabs(grad[k] * v[k]);
      }
      const double ref = directional(reference(rnn, dir, T, B, lengths), wy, wh, wc, lstm);
      EXPECT_TRUE(std::isfinite(lib) && std::isfinite(ref)) << what;
      EXPECT_LE(std::fabs(lib - ref), tol.eps * tol.factor * 2 * (1 + scale))
          << what << ": library " << lib << ", reference " << ref;
    };
    for (const ParamInfo& p : rnn.parameter_info()) {
      std::int64_t n = 1;
      for (std::int64_t s : p.shape) n *= s;
      check(p.name, &RefInputs::params, p.offset, n, rnn.gradient(p.name).to_vector<double>());
    }
    check("dx", &RefInputs::x, 0, static_cast<std::int64_t>(x.size()), g.dx.to_vector<double>());
    check("dh0", &RefInputs::h0, 0, static_cast<std::int64_t>(h0.size()),
          g.dh0.to_vector<double>());
    if (lstm) {
      check("dc0", &RefInputs::c0, 0, static_cast<std::int64_t>(c0.size()),
            g.dc0.to_vector<double>());
    }
  }
}

std::vector<RefCase> ref_cases() {
  std::vector<RefCase> out;
  for (CellKind cell :
       {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    out.push_back({cell, 1, false, true, false});
    out.push_back({cell, 1, false, false, false});
    out.push_back({cell, 2, false, true, true});
    out.push_back({cell, 2, true, true, false});
    out.push_back({cell, 2, true, true, true});
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Cells, LayerNormReference, ::testing::ValuesIn(ref_cases()), ref_name);

// ---- central differences ----

struct GradCase {
  CellKind cell;
  std::int64_t layers;
  bool bidirectional;
  Connection connection;
  bool lengths;
};

std::string grad_name(const ::testing::TestParamInfo<GradCase>& p) {
  return std::string(to_string(p.param.cell)) + "_L" + std::to_string(p.param.layers) +
         (p.param.bidirectional ? "_bi_" : "_uni_") + to_string(p.param.connection) +
         (p.param.lengths ? "_lengths" : "_full");
}

class LayerNormGradCheck : public ::testing::TestWithParam<GradCase> {};

TEST_P(LayerNormGradCheck, EveryGradientMatchesFiniteDifferences) {
  const GradCase gc = GetParam();
  RnnConfig c = ln_config(gc.cell, gc.layers, gc.bidirectional);
  c.hidden_size = 3;
  c.connection = gc.connection;
  // Residual and highway apply at layer 0 too where x is as wide as y.
  if (gc.connection == Connection::Residual || gc.connection == Connection::Highway) {
    c.input_size = (gc.bidirectional ? 2 : 1) * c.hidden_size;
  }
  Rnn rnn(c, Device::cpu(), 3);
  run_as_wavefront(rnn, !gc.bidirectional && gc.layers > 1);
  const std::vector<std::int64_t> lengths =
      gc.lengths ? std::vector<std::int64_t>{3, 1, 2} : std::vector<std::int64_t>{};
  check_all_gradients(rnn, 3, 3, 60 + static_cast<std::uint64_t>(gc.cell), lengths);
}

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> out;
  for (CellKind cell :
       {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    out.push_back({cell, 1, false, Connection::None, false});
    out.push_back({cell, 1, true, Connection::None, true});
    out.push_back({cell, 2, false, Connection::None, true});
    out.push_back({cell, 2, true, Connection::None, true});
    for (Connection conn : {Connection::Residual, Connection::Highway, Connection::Dense}) {
      out.push_back({cell, 2, false, conn, false});
      out.push_back({cell, 2, true, conn, true});
    }
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Cells, LayerNormGradCheck, ::testing::ValuesIn(grad_cases()), grad_name);

// Random combinations of every other option with layer_norm (as test_random_configs):
// sizes, layers, directions, connection, bias, batch-first, dropout, lengths, both CPU
// schedules, and the LSTM's h_{t-1}-beside-x layout asked for (which these cells decline).
TEST(LayerNormRandomConfigs, EveryGradientMatchesFiniteDifferences) {
  Random rng(2026);
  RandomSpace space;
  space.cells = {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct};
  space.layer_norm = true;
  // At least 2 inputs and 4 units. A normalisation's curvature grows as its row's
  // variance shrinks (to 1/sqrt(eps)), and central differences with h = cbrt(eps) assume
  // it bounded: W_ih x of one input is x times one column, whose variance vanishes with
  // x, and a row of c_t of two units has its variance vanish where the two meet.
  space.hidden_min = 4;
  space.hidden_choices = 2;
  space.input_min = 2;
  space.input_choices = 3;
  for (int it = 0; it < 60; ++it) {
    check_random_case(random_case(rng, space), it, 3000 + static_cast<std::uint64_t>(it));
    if (::testing::Test::HasFailure()) return;
  }
}

// ---- parameters ----

TEST(LayerNormParameters, NamesShapesLayoutAndInitialValues) {
  RnnConfig c = ln_config(CellKind::Lstm, 2, true);
  c.dtype = DType::Float32;
  c.connection = Connection::Highway;
  Rnn rnn(c);
  const std::int64_t H = 5, GH = 20;
  std::vector<std::string> names;
  for (const ParamInfo& p : rnn.parameter_info()) names.push_back(p.name);
  // PyTorch's parameters, then highway's, then the layer norms unit by unit.
  const std::vector<std::string> tail = {"highway_weight_l1",
                                         "highway_bias_l1",
                                         "layer_norm_ih_weight_l0",
                                         "layer_norm_hh_weight_l0",
                                         "layer_norm_cell_weight_l0",
                                         "layer_norm_cell_bias_l0",
                                         "layer_norm_ih_weight_l0_reverse",
                                         "layer_norm_hh_weight_l0_reverse",
                                         "layer_norm_cell_weight_l0_reverse",
                                         "layer_norm_cell_bias_l0_reverse",
                                         "layer_norm_ih_weight_l1",
                                         "layer_norm_hh_weight_l1",
                                         "layer_norm_cell_weight_l1",
                                         "layer_norm_cell_bias_l1",
                                         "layer_norm_ih_weight_l1_reverse",
                                         "layer_norm_hh_weight_l1_reverse",
                                         "layer_norm_cell_weight_l1_reverse",
                                         "layer_norm_cell_bias_l1_reverse"};
  ASSERT_GE(names.size(), tail.size());
  EXPECT_EQ(
      std::vector<std::string>(names.end() - static_cast<std::ptrdiff_t>(tail.size()), names.end()),
      tail);
  EXPECT_EQ(rnn.parameter("layer_norm_ih_weight_l1").shape(), (Shape{GH}));
  EXPECT_EQ(rnn.parameter("layer_norm_cell_bias_l0_reverse").shape(), (Shape{H}));
  for (const ParamInfo& p : rnn.parameter_info()) {
    if (p.name.rfind("layer_norm_", 0) != 0) continue;
    const float want = p.name.find("cell_bias") != std::string::npos ? 0.0f : 1.0f;
    for (float v : rnn.parameter(p.name).to_vector<float>()) EXPECT_EQ(v, want) << p.name;
  }
  // initialize() keeps them so.
  initialize(rnn, InitOptions{}, 9);
  for (const ParamInfo& p : rnn.parameter_info()) {
    if (p.name.rfind("layer_norm_", 0) != 0) continue;
    const float want = p.name.find("cell_bias") != std::string::npos ? 0.0f : 1.0f;
    for (float v : rnn.parameter(p.name).to_vector<float>()) EXPECT_EQ(v, want) << p.name;
  }
  // The GRU has no cell normalisation.
  Rnn gru(ln_config(CellKind::GruLinearBeforeReset, 1, false));
  names.clear();
  for (const ParamInfo& p : gru.parameter_info()) names.push_back(p.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                      "layer_norm_ih_weight_l0", "layer_norm_hh_weight_l0"}));
  EXPECT_EQ(gru.parameter("layer_norm_hh_weight_l0").shape(), (Shape{15}));
}

// ---- the row functors in the CPU loops, several units, threads; and bits ----

TEST(LayerNormCpu, FloatMatchesDoubleAndRunsAreBitIdentical) {
  for (CellKind cell :
       {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    SCOPED_TRACE(to_string(cell));
    RnnConfig c = ln_config(cell, 2, true);
    c.input_size = 24;
    c.hidden_size = 70;  // threaded step calls: over 2 x 4096 elements a step
    Rnn r64(c, Device::cpu(), 4);
    c.dtype = DType::Float32;
    Rnn r32(c, Device::cpu(), 4);
    Random rng(17);
    const std::vector<double> p = rng.vector<double>(r64.parameters().numel(), -0.3, 0.3);
    r64.parameters().copy_from_host(p.data());
    const std::vector<float> pf(p.begin(), p.end());
    r32.parameters().copy_from_host(pf.data());
    const std::int64_t T = 6, B = 64;
    const std::vector<double> x = rng.vector<double>(T * B * c.input_size);
    const std::vector<double> dy = rng.vector<double>(T * B * 2 * c.hidden_size);
    const std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
    const std::vector<std::int64_t> lengths = [&] {
      std::vector<std::int64_t> l;
      for (std::int64_t b = 0; b < B; ++b) l.push_back(1 + (b * 5) % T);
      return l;
    }();
    auto run32 = [&](std::vector<float>* grads) {
      r32.zero_grad();
      ForwardResult f = r32.forward(Tensor::from_vector(xf, {T, B, c.input_size}), {}, {},
                                    Mode::Training, lengths);
      r32.backward(Tensor::from_vector(dyf, {T, B, 2 * c.hidden_size}));
      *grads = r32.gradients().to_vector<float>();
      return f.y.to_vector<float>();
    };
    std::vector<float> g1, g2;
    const std::vector<float> y1 = run32(&g1), y2 = run32(&g2);
    EXPECT_EQ(y1, y2);
    EXPECT_EQ(g1, g2);
    r64.zero_grad();
    ForwardResult f64 =
        r64.forward(Tensor::from_vector(x, {T, B, c.input_size}), {}, {}, Mode::Training, lengths);
    r64.backward(Tensor::from_vector(dy, {T, B, 2 * c.hidden_size}));
    const double depth = static_cast<double>(T * 2 * (2 * c.hidden_size + c.hidden_size + 4 * 70));
    EXPECT_TRUE(all_close(y1, f64.y.to_vector<double>(), tolerance_for_depth<float>(depth)));
    EXPECT_TRUE(
        all_close(g1, r64.gradients().to_vector<double>(), tolerance_for_depth<float>(2 * depth)));
  }
}

// Reduced math rounds the GEMMs' operands only; the normalisations stay float32.
TEST(LayerNormCpu, ReducedMathStaysNearFp32) {
  RnnConfig c = ln_config(CellKind::Lstm, 1, false);
  c.dtype = DType::Float32;
  c.input_size = 16;
  c.hidden_size = 16;
  Rnn exact(c, Device::cpu(), 2);
  c.math = Math::Bf16;
  Rnn bf16(c, Device::cpu(), 2);
  Random rng(3);
  const Tensor x = rng.tensor<float>({5, 4, 16});
  const std::vector<float> a = exact.forward(x).y.to_vector<float>();
  const std::vector<float> b = bf16.forward(x).y.to_vector<float>();
  // bfloat16 operands: unit roundoff 2^-8, K = 16 and 5 steps deep.
  EXPECT_TRUE(all_close(b, a, Tolerance{0x1.0p-8, 2 * std::log2(2.0 + 5 * 32)}));
}

// ---- errors and checkpoints ----

TEST(LayerNormErrors, VanillaCellsAreRefused) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::RnnSigmoid}) {
    RnnConfig c = ln_config(cell, 1, false);
    try {
      Rnn rnn(c);
      ADD_FAILURE() << "no error for " << to_string(cell);
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "config.layer_norm") << e.what();
      EXPECT_NE(e.expected().find("a gated cell"), std::string::npos) << e.what();
      EXPECT_NE(e.got().find(to_string(cell)), std::string::npos) << e.what();
    }
  }
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "recur_layer_norm_" + name + ".safetensors";
}

TEST(LayerNormCheckpoint, RoundTripsAndRefusesADifferentLayerNorm) {
  RnnConfig c = ln_config(CellKind::Lstm, 2, true);
  Rnn saved(c, Device::cpu(), 1);
  Random rng(4);
  saved.parameters().copy_from(rng.tensor<double>({saved.parameters().numel()}));
  const std::string path = temp_path("ckpt");
  save_checkpoint(path, saved, nullptr, 0);
  Rnn loaded(c, Device::cpu(), 2);
  load_checkpoint(path, loaded, nullptr);
  EXPECT_EQ(loaded.parameters().to_vector<double>(), saved.parameters().to_vector<double>());

  // A model without layer norm: the config's field is named, nothing changes.
  RnnConfig plain = c;
  plain.layer_norm = false;
  Rnn other(plain, Device::cpu(), 3);
  const std::vector<double> before = other.parameters().to_vector<double>();
  const std::string message = error_of([&] { load_checkpoint(path, other, nullptr); });
  EXPECT_NE(message.find("layer_norm"), std::string::npos) << message;
  EXPECT_EQ(other.parameters().to_vector<double>(), before);
  // And the other way round.
  save_checkpoint(path, other, nullptr, 0);
  const std::string back = error_of([&] { load_checkpoint(path, loaded, nullptr); });
  EXPECT_NE(back.find("layer_norm"), std::string::npos) << back;
}

TEST(LayerNormCheckpoint, AModelCheckpointRebuildsTheModel) {
  RnnConfig c = ln_config(CellKind::GruLinearBeforeReset, 2, false);
  c.dtype = DType::Float32;
  Rnn rnn(c, Device::cpu(), 1);
  Random rng(5);
  rnn.parameters().copy_from(rng.tensor<float>({rnn.parameters().numel()}));
  const std::string path = temp_path("model");
  ModelParts model;
  model.rnns.push_back({"rnn", &rnn});
  TrainingParts training;
  save_model_checkpoint(path, model, training);
  const ModelCheckpointInfo info = read_model_checkpoint(path);
  ASSERT_EQ(info.rnns.size(), 1u);
  EXPECT_TRUE(info.rnns[0].second.layer_norm);
  Rnn rebuilt(info.rnns[0].second, Device::cpu(), 2);
  ModelParts into;
  into.rnns.push_back({"rnn", &rebuilt});
  load_model_checkpoint(path, into, training);
  EXPECT_EQ(rebuilt.parameters().to_vector<float>(), rnn.parameters().to_vector<float>());

  RnnConfig plain = c;
  plain.layer_norm = false;
  Rnn other(plain, Device::cpu(), 3);
  ModelParts wrong;
  wrong.rnns.push_back({"rnn", &other});
  const std::string message = error_of([&] { load_model_checkpoint(path, wrong, training); });
  EXPECT_NE(message.find("layer_norm"), std::string::npos) << message;
}

// ---- the GPU against the CPU ----

struct ParityCase {
  CellKind cell;
  DType dtype;
  std::int64_t layers;
  bool bidirectional;
  Connection connection;
};

template <typename T>
void check_parity(const ParityCase& pc, std::int64_t steps, std::int64_t batch, bool lengths,
                  std::int64_t H = 33) {
  const Device gpu_device = Device::cuda(0);
  const std::int64_t D = pc.bidirectional ? 2 : 1, LD = pc.layers * D;
  const bool lstm = pc.cell == CellKind::Lstm;
  RnnConfig c = ln_config(pc.cell, pc.layers, pc.bidirectional);
  c.dtype = dtype_of<T>();
  c.hidden_size = H;
  c.connection = pc.connection;
  c.input_size =
      pc.connection == Connection::Residual || pc.connection == Connection::Highway ? D * H : 19;
  const std::int64_t I = c.input_size;
  Rnn cpu(c, Device::cpu(), 3);
  Rnn gpu(c, gpu_device, 3);
  // Fresh random parameters (gains around 1), the same on both.
  Random rng(200 + static_cast<std::uint64_t>(pc.cell) + 10 * pc.layers);
  std::vector<T> p = rng.vector<T>(cpu.parameters().numel(), -0.4, 0.4);
  for (const ParamInfo& info : cpu.parameter_info()) {
    if (info.name.rfind("layer_norm_", 0) == 0 && info.name.find("bias") == std::string::npos) {
      for (std::int64_t k = 0; k < info.shape[0]; ++k) p[info.offset + k] += T(1);
    }
  }
  cpu.parameters().copy_from_host(p.data());
  gpu.parameters().copy_from_host(p.data());
  std::vector<std::int64_t> lens;
  if (lengths) {
    for (std::int64_t b = 0; b < batch; ++b) lens.push_back(1 + (b * 3) % steps);
  }
  Tensor x = rng.tensor<T>({steps, batch, I}), h0 = rng.tensor<T>({LD, batch, H});
  Tensor c0 = lstm ? rng.tensor<T>({LD, batch, H}) : Tensor();
  Tensor dy = rng.tensor<T>({steps, batch, D * H}), dh = rng.tensor<T>({LD, batch, H});
  Tensor dc = lstm ? rng.tensor<T>({LD, batch, H}) : Tensor();
  // The chains: T steps of GEMMs with K <= max(I, D*H) + H and row sums over G*H.
  const std::int64_t G = lstm ? 4 : 3;
  const double depth = static_cast<double>(steps * (std::max(I, D * H) + H + G * H) * pc.layers);
  const Tolerance fwd = tolerance_for_depth<T>(depth), bwd = tolerance_for_depth<T>(2 * depth);

  ForwardResult fc = cpu.forward(x, h0, c0, Mode::Training, lens);
  ForwardResult fg =
      gpu.forward(x.to(gpu_device), h0.to(gpu_device), c0.to(gpu_device), Mode::Training, lens);
  EXPECT_TRUE(all_close(fg.y.to_vector<T>(), fc.y.to_vector<T>(), fwd)) << "y";
  EXPECT_TRUE(all_close(fg.h_n.to_vector<T>(), fc.h_n.to_vector<T>(), fwd)) << "h_n";
  if (lstm) {
    EXPECT_TRUE(all_close(fg.c_n.to_vector<T>(), fc.c_n.to_vector<T>(), fwd)) << "c_n";
  }
  BackwardResult bc = cpu.backward(dy, dh, dc);
  BackwardResult bg = gpu.backward(dy.to(gpu_device), dh.to(gpu_device), dc.to(gpu_device));
  EXPECT_TRUE(all_close(bg.dx.to_vector<T>(), bc.dx.to_vector<T>(), bwd)) << "dx";
  EXPECT_TRUE(all_close(bg.dh0.to_vector<T>(), bc.dh0.to_vector<T>(), bwd)) << "dh0";
  if (lstm) {
    EXPECT_TRUE(all_close(bg.dc0.to_vector<T>(), bc.dc0.to_vector<T>(), bwd)) << "dc0";
  }
  for (const ParamInfo& info : cpu.parameter_info()) {
    EXPECT_TRUE(all_close(gpu.gradient(info.name).to_vector<T>(),
                          cpu.gradient(info.name).to_vector<T>(), bwd))
        << info.name;
  }
  // Inference gives the training forward's outputs.
  ForwardResult ig =
      gpu.forward(x.to(gpu_device), h0.to(gpu_device), c0.to(gpu_device), Mode::Inference, lens);
  EXPECT_EQ(ig.y.to_vector<T>(), fg.y.to_vector<T>());

  // The same bits run to run: a second training step on the GPU.
  const std::vector<T> grads = gpu.gradients().to_vector<T>();
  gpu.zero_grad();
  ForwardResult again =
      gpu.forward(x.to(gpu_device), h0.to(gpu_device), c0.to(gpu_device), Mode::Training, lens);
  gpu.backward(dy.to(gpu_device), dh.to(gpu_device), dc.to(gpu_device));
  EXPECT_EQ(again.y.to_vector<T>(), fg.y.to_vector<T>());
  EXPECT_EQ(gpu.gradients().to_vector<T>(), grads);
}

class LayerNormCuda : public ::testing::TestWithParam<ParityCase> {};

TEST_P(LayerNormCuda, ForwardAndBackwardMatchTheCpu) {
  RECUR_REQUIRE_GPU();
  // B = 5 and B = 16 (W_hh as stored and transposed); full and variable lengths.
  for (auto [steps, batch] : {std::pair<std::int64_t, std::int64_t>{7, 5}, {5, 16}}) {
    for (bool lengths : {false, true}) {
      SCOPED_TRACE("T=" + std::to_string(steps) + " B=" + std::to_string(batch) +
                   (lengths ? " lengths" : ""));
      if (GetParam().dtype == DType::Float32) {
        check_parity<float>(GetParam(), steps, batch, lengths);
      } else {
        check_parity<double>(GetParam(), steps, batch, lengths);
      }
    }
  }
}

std::vector<ParityCase> parity_cases() {
  std::vector<ParityCase> out;
  for (CellKind cell :
       {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (std::int64_t layers : {1, 2, 3}) {
        for (bool bi : {false, true}) {
          for (Connection conn :
               {Connection::None, Connection::Residual, Connection::Highway, Connection::Dense}) {
            out.push_back({cell, dtype, layers, bi, conn});
          }
        }
      }
    }
  }
  return out;
}

std::string parity_name(const ::testing::TestParamInfo<ParityCase>& p) {
  return std::string(to_string(p.param.cell)) + "_" + to_string(p.param.dtype) + "_L" +
         std::to_string(p.param.layers) + (p.param.bidirectional ? "_bi_" : "_uni_") +
         to_string(p.param.connection);
}
INSTANTIATE_TEST_SUITE_P(Cells, LayerNormCuda, ::testing::ValuesIn(parity_cases()), parity_name);

// ---- the functors with identity activations ----

// One row's inputs and outputs for LnLstm / LnGruLbr with Identity activations (so that
// no saturated gate hides an index): forward against the formula written out here,
// backward against central differences of J = <wh, h_t> + <wc, c_t> through the forward
// functor.
struct IdentityRow {
  static constexpr std::int64_t H = 3;
  bool lstm;
  std::int64_t G, S, W;
  std::vector<double> gx, gh, b_ih, b_hh, ln, h_prev, c_prev, wh, wc;
  explicit IdentityRow(bool is_lstm) : lstm(is_lstm) {
    G = lstm ? 4 : 3, S = lstm ? 12 : 10, W = 2 * G * H + (lstm ? 2 * H : 0);
    Random rng(lstm ? 5 : 6);
    gx = rng.vector<double>(G * H, -2, 2), gh = rng.vector<double>(G * H, -2, 2);
    b_ih = rng.vector<double>(G * H), b_hh = rng.vector<double>(G * H);
    ln = rng.vector<double>(W, 0.5, 1.5);
    h_prev = rng.vector<double>(H), c_prev = rng.vector<double>(H);
    wh = rng.vector<double>(H), wc = rng.vector<double>(H);
  }
  // Runs the forward functor: h, c (LSTM) and saved.
  void forward(std::vector<double>* h, std::vector<double>* c, std::vector<double>* saved) const {
    h->assign(H, 0), c->assign(H, 0), saved->assign(S * H, 0);
    std::vector<double> hp(H);
    kernels::StepForward<double> a;
    a.batch = a.active = a.carried = 1, a.hidden = a.ldh = a.ldhp = H;
    a.gx = gx.data(), a.gh = gh.data(), a.b_ih = b_ih.data(), a.b_hh = b_hh.data();
    a.h_prev = h_prev.data(), a.c_prev = c_prev.data(), a.ln = ln.data();
    a.h = h->data(), a.c = c->data(), a.hp = hp.data(), a.saved = saved->data();
    kernels::SerialLanes lanes;
    if (lstm) {
      kernels::LnLstmForward<double, kernels::Identity, kernels::Identity>{}.row(0, a, lanes);
    } else {
      kernels::LnGruLbrForward<double, kernels::Identity, kernels::Identity>{}.row(0, a, lanes);
    }
  }
  double loss() const {
    std::vector<double> h, c, saved;
    forward(&h, &c, &saved);
    double j = 0;
    for (std::int64_t k = 0; k < H; ++k) j += wh[k] * h[k] + (lstm ? wc[k] * c[k] : 0.0);
    return j;
  }
};

// LN(v; g) + b over the whole vector, written out.
std::vector<double> naive_ln(const double* v, std::int64_t n, const double* g, const double* b) {
  double mean = 0, var = 0;
  for (std::int64_t k = 0; k < n; ++k) mean += v[k] / static_cast<double>(n);
  for (std::int64_t k = 0; k < n; ++k)
    var += (v[k] - mean) * (v[k] - mean) / static_cast<double>(n);
  std::vector<double> out(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) {
    out[k] = g[k] * (v[k] - mean) / std::sqrt(var + 1e-5) + (b != nullptr ? b[k] : 0.0);
  }
  return out;
}

TEST(LayerNormFunctors, IdentityActivationsMatchTheFormulaAndDifferences) {
  for (bool lstm : {true, false}) {
    SCOPED_TRACE(lstm ? "LnLstm" : "LnGruLbr");
    IdentityRow row(lstm);
    const std::int64_t H = IdentityRow::H, GH = row.G * H;
    std::vector<double> h, c, saved;
    row.forward(&h, &c, &saved);
    const std::vector<double> ax = naive_ln(row.gx.data(), GH, row.ln.data(), row.b_ih.data());
    const std::vector<double> ah = naive_ln(row.gh.data(), GH, row.ln.data() + GH, row.b_hh.data());
    std::vector<double> want_h(H), want_c(H);
    if (lstm) {
      for (std::int64_t j = 0; j < H; ++j) {
        want_c[j] = (ax[H + j] + ah[H + j]) * row.c_prev[j] +
                    (ax[j] + ah[j]) * (ax[2 * H + j] + ah[2 * H + j]);
      }
      const std::vector<double> nc =
          naive_ln(want_c.data(), H, row.ln.data() + 2 * GH, row.ln.data() + 2 * GH + H);
      for (std::int64_t j = 0; j < H; ++j) want_h[j] = (ax[3 * H + j] + ah[3 * H + j]) * nc[j];
      EXPECT_TRUE(all_close(c, want_c, tolerance_for_depth<double>(GH))) << "c";
    } else {
      for (std::int64_t j = 0; j < H; ++j) {
        const double r = ax[j] + ah[j], z = ax[H + j] + ah[H + j];
        const double n = ax[2 * H + j] + r * ah[2 * H + j];
        want_h[j] = (1 - z) * n + z * row.h_prev[j];
      }
    }
    EXPECT_TRUE(all_close(h, want_h, tolerance_for_depth<double>(GH))) << "h";

    // Backward from dJ/dh_t = wh, dJ/dc_t = wc.
    std::vector<double> dh = row.wh, dc = row.wc, dgx(GH), dgh(GH), dpx(GH), dph(GH);
    std::vector<double> dln(row.W);
    kernels::StepBackward<double> a;
    a.batch = a.active = a.carried = 1, a.hidden = a.ldh = H;
    a.h = h.data(), a.h_prev = row.h_prev.data(), a.c = c.data(), a.c_prev = row.c_prev.data();
    a.saved = saved.data(), a.dh = dh.data(), a.dc = dc.data(), a.dgx = dgx.data();
    a.dgh = dgh.data(), a.ln = row.ln.data(), a.dpx = dpx.data(), a.dph = dph.data();
    a.dln = dln.data();
    kernels::SerialLanes lanes;
    if (lstm) {
      kernels::LnLstmBackward<double, kernels::Identity, kernels::Identity>{}.row(0, a, lanes);
    } else {
      kernels::LnGruLbrBackward<double, kernels::Identity, kernels::Identity>{}.row(0, a, lanes);
    }
    auto differences = [&](std::vector<double>& v) {
      std::vector<double> out(v.size());
      const double step = FiniteDifference::step();
      for (std::size_t k = 0; k < v.size(); ++k) {
        const double keep = v[k];
        v[k] = keep + step;
        const double up = row.loss();
        v[k] = keep - step;
        const double down = row.loss();
        v[k] = keep;
        out[k] = (up - down) / (2 * step);
      }
      return out;
    };
    const Tolerance tol{FiniteDifference::tolerance(10.0, static_cast<double>(4 * GH)), 1.0};
    EXPECT_TRUE(all_close(dgx, differences(row.gx), tol)) << "dgx";
    EXPECT_TRUE(all_close(dgh, differences(row.gh), tol)) << "dgh";
    EXPECT_TRUE(all_close(dpx, differences(row.b_ih), tol)) << "dpx (db_ih)";
    const std::vector<double> db_hh = differences(row.b_hh);
    EXPECT_TRUE(all_close(lstm ? dpx : dph, db_hh, tol)) << "db_hh";
    EXPECT_TRUE(all_close(dln, differences(row.ln), tol)) << "dln";
    if (lstm) {
      EXPECT_TRUE(all_close(dc, differences(row.c_prev), tol)) << "dc_{t-1}";
    } else {
      EXPECT_TRUE(all_close(dh, differences(row.h_prev), tol)) << "dh_{t-1}";
    }
  }
}

// ---- the GPU's lane discipline, emulated on the CPU ----

// Lanes as threads that take turns: between two sums exactly one lane runs at a time, in
// a fixed order (ascending or descending lane numbers), and a sum ends a lane's turn. So
// a lane that read, before a sum, what another lane writes in the same stretch would read
// it stale in one of the two orders, deterministically: the check that the functors'
// loops meet only where kernels/layer_norm.cuh says they do. The totals are the GPU's
// tree (BlockLanes, kernels/step_kernels.cu) over the lanes' partials.
class Baton {
 public:
  Baton(int lanes, bool descending)
      : lanes_(lanes), descending_(descending), scratch_(static_cast<std::size_t>(4 * lanes)) {}
  int lanes() const { return lanes_; }
  int position(int lane) const { return descending_ ? lanes_ - 1 - lane : lane; }
  // Blocks until `turn` (phase * lanes + position) comes.
  void wait(long turn) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return turn_ == turn; });
  }
  void pass() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++turn_;
    }
    cv_.notify_all();
  }
  double* scratch() { return scratch_.data(); }
  double totals[4] = {0, 0, 0, 0};

 private:
  int lanes_;
  bool descending_;
  std::vector<double> scratch_;
  std::mutex mutex_;
  std::condition_variable cv_;
  long turn_ = 0;
};

struct TurnLanes {
  Baton* baton;
  int me;
  long phase = 0;
  std::int64_t lane() const { return me; }
  std::int64_t lanes() const { return baton->lanes(); }
  template <int N>
  void sum(double (&v)[N]) {
    const int n = baton->lanes();
    double* scratch = baton->scratch();
    for (int q = 0; q < N; ++q) scratch[q * n + me] = v[q];
    if (baton->position(me) == n - 1) {  // the last of this stretch: the tree
      for (int half = n / 2; half > 0; half /= 2) {
        for (int t = 0; t < half; ++t) {
          for (int q = 0; q < N; ++q) scratch[q * n + t] += scratch[q * n + t + half];
        }
      }
      for (int q = 0; q < N; ++q) baton->totals[q] = scratch[q * n];
    }
    baton->pass();
    ++phase;
    baton->wait(phase * n + baton->position(me));
    for (int q = 0; q < N; ++q) v[q] = baton->totals[q];
  }
};

// Runs `kind`'s functor over rows [0, active) of `a` with `lanes` turn-taking lanes.
template <typename T, class Args, class Dispatch>
void run_with_turns(kernels::StepKind kind, const Args& a, int lanes, bool descending,
                    Dispatch dispatch) {
  dispatch(kind, [&](auto functor) {
    if constexpr (kernels::is_per_row<decltype(functor)>) {
      Baton baton(lanes, descending);
      std::vector<std::thread> threads;
      for (int me = 0; me < lanes; ++me) {
        threads.emplace_back([&, me] {
          TurnLanes l{&baton, me};
          baton.wait(baton.position(me));
          for (std::int64_t b = 0; b < a.active; ++b) functor.row(b, a, l);
          baton.pass();
        });
      }
      for (std::thread& t : threads) t.join();
    }
  });
}

template <typename T>
void check_turns(kernels::StepKind kind, std::int64_t H, int lanes, bool descending) {
  using kernels::StepKind;
  const bool lstm = kind == StepKind::LnLstm;
  const std::int64_t G = lstm ? 4 : 3, B = 4, active = 3, carried = 2;
  const std::int64_t S = lstm ? 12 : kind == StepKind::LnGruLinearBeforeReset ? 10 : 9;
  const std::int64_t W = 2 * G * H + (lstm ? 2 * H : 0);
  auto make = [&] {
    Random rng(90 + static_cast<std::uint64_t>(kind) + static_cast<std::uint64_t>(H));
    std::map<std::string, std::vector<T>> v;
    for (const char* name : {"gx", "gh", "g0", "dgx", "dgh", "dpx", "dph"}) {
      v[name] = rng.vector<T>(B * G * H, -2, 2);
    }
    for (const char* name : {"b_ih", "b_hh"}) v[name] = rng.vector<T>(G * H);
    v["ln"] = rng.vector<T>(W, 0.5, 1.5);
    for (const char* name :
         {"h_prev", "h0", "h", "dy", "c_prev", "c0", "c", "hp", "rh", "drh", "dh", "dc"}) {
      v[name] = rng.vector<T>(B * H);
    }
    v["saved"] = rng.vector<T>(B * S * H, 0.05, 0.95);
    v["dln"] = rng.vector<T>(B * W);
    return v;
  };
  auto forward = [&](std::map<std::string, std::vector<T>>& v) {
    kernels::StepForward<T> a;
    a.batch = B, a.hidden = H, a.ldh = H, a.active = active, a.carried = carried;
    a.gx = v["gx"].data(), a.gh = v["gh"].data(), a.g0 = v["g0"].data();
    a.b_ih = v["b_ih"].data(), a.b_hh = v["b_hh"].data(), a.h_prev = v["h_prev"].data();
    a.c_prev = v["c_prev"].data(), a.h0 = v["h0"].data(), a.c0 = v["c0"].data();
    a.h = v["h"].data(), a.c = v["c"].data(), a.hp = v["hp"].data(), a.ldhp = H;
    a.saved = v["saved"].data(), a.rh = v["rh"].data(), a.ln = v["ln"].data();
    return a;
  };
  auto backward = [&](std::map<std::string, std::vector<T>>& v) {
    kernels::StepBackward<T> a;
    a.batch = B, a.hidden = H, a.ldh = H, a.active = active, a.carried = carried;
    a.dy = v["dy"].data(), a.h = v["h"].data(), a.h_prev = v["h_prev"].data();
    a.c = v["c"].data(), a.c_prev = v["c_prev"].data(), a.c0 = v["c0"].data();
    a.saved = v["saved"].data(), a.drh = v["drh"].data(), a.dh = v["dh"].data();
    a.dc = v["dc"].data(), a.dgx = v["dgx"].data(), a.dgh = v["dgh"].data();
    a.ln = v["ln"].data(), a.dpx = v["dpx"].data(), a.dph = v["dph"].data();
    a.dln = v["dln"].data();
    return a;
  };
  auto fwd_dispatch = [](kernels::StepKind k, auto fn) { kernels::dispatch_forward<T>(k, fn); };
  auto bwd_dispatch = [](kernels::StepKind k, auto fn) { kernels::dispatch_backward<T>(k, fn); };
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(4 * G * H));
  auto expect_same = [&](std::map<std::string, std::vector<T>>& got,
                         std::map<std::string, std::vector<T>>& want, const char* what) {
    for (auto& [name, values] : want) {
      EXPECT_TRUE(all_close(got.at(name), values, tol)) << what << ", buffer " << name;
    }
  };
  {
    auto serial = make(), turns = make();
    const kernels::StepForward<T> as = forward(serial), at = forward(turns);
    detail::cpu_step_forward(kind, &as, 1, false);
    run_with_turns<T>(kind, at, lanes, descending, fwd_dispatch);
    expect_same(turns, serial, "forward");
  }
  {
    auto serial = make(), turns = make();
    const kernels::StepBackward<T> as = backward(serial), at = backward(turns);
    detail::cpu_step_backward(kind, &as, 1, false);
    run_with_turns<T>(kind, at, lanes, descending, bwd_dispatch);
    expect_same(turns, serial, "backward");
  }
}

// Every row functor with 4 and 8 lanes taking turns both ways, rows of fewer elements
// than lanes (H = 1: G*H = 3 or 4) and of several per lane.
TEST(LayerNormLanes, RowFunctorsMeetOnlyInTheirSums) {
  for (kernels::StepKind kind : kernels::kRowStepKinds) {
    for (std::int64_t H : {1, 5, 19}) {
      for (int lanes : {4, 8}) {
        for (bool descending : {false, true}) {
          SCOPED_TRACE("kind " + std::to_string(static_cast<int>(kind)) +
                       " H=" + std::to_string(H) + " lanes=" + std::to_string(lanes) +
                       (descending ? " descending" : " ascending"));
          check_turns<double>(kind, H, lanes, descending);
          check_turns<float>(kind, H, lanes, descending);
        }
      }
    }
  }
}

// ---- the row kernels alone: GPU against CPU ----

// Every buffer a row kernel reads or writes, the same random values on both sides.
template <typename T>
struct RowBuffers {
  std::map<std::string, Tensor> cpu, gpu;
  RowBuffers(Random& rng, std::int64_t B, std::int64_t H, std::int64_t G, std::int64_t S,
             std::int64_t W) {
    auto add = [&](const char* name, std::int64_t n, double lo = -1, double hi = 1) {
      cpu[name] = rng.tensor<T>({n}, Device::cpu(), lo, hi);
      gpu[name] = cpu[name].to(Device::cuda(0));
    };
    for (const char* name : {"gx", "gh", "g0", "dgx", "dgh", "dpx", "dph"})
      add(name, B * G * H, -2, 2);
    for (const char* name : {"b_ih", "b_hh"}) add(name, G * H);
    add("ln", W, 0.5, 1.5);
    for (const char* name :
         {"h_prev", "h0", "h", "dy", "c_prev", "c0", "c", "hp", "rh", "drh", "dh", "dc"}) {
      add(name, B * H);
    }
    add("saved", B * S * H, 0.05, 0.95);
    add("dln", B * W);
  }
  T* p(bool on_gpu, const char* name) {
    return (on_gpu ? gpu : cpu).at(name).template data_as<T>();
  }
  kernels::StepForward<T> forward(bool g, std::int64_t B, std::int64_t H, std::int64_t active,
                                  std::int64_t carried) {
    kernels::StepForward<T> a;
    a.batch = B, a.hidden = H, a.ldh = H, a.active = active, a.carried = carried;
    a.gx = p(g, "gx"), a.gh = p(g, "gh"), a.g0 = p(g, "g0"), a.b_ih = p(g, "b_ih");
    a.b_hh = p(g, "b_hh"), a.h_prev = p(g, "h_prev"), a.c_prev = p(g, "c_prev");
    a.h0 = p(g, "h0"), a.c0 = p(g, "c0"), a.h = p(g, "h"), a.c = p(g, "c");
    a.hp = p(g, "hp"), a.ldhp = H, a.saved = p(g, "saved"), a.rh = p(g, "rh"), a.ln = p(g, "ln");
    return a;
  }
  kernels::StepBackward<T> backward(bool g, std::int64_t B, std::int64_t H, std::int64_t active,
                                    std::int64_t carried) {
    kernels::StepBackward<T> a;
    a.batch = B, a.hidden = H, a.ldh = H, a.active = active, a.carried = carried;
    a.dy = p(g, "dy"), a.h = p(g, "h"), a.h_prev = p(g, "h_prev"), a.c = p(g, "c");
    a.c_prev = p(g, "c_prev"), a.c0 = p(g, "c0"), a.saved = p(g, "saved"), a.drh = p(g, "drh");
    a.dh = p(g, "dh"), a.dc = p(g, "dc"), a.dgx = p(g, "dgx"), a.dgh = p(g, "dgh");
    a.ln = p(g, "ln"), a.dpx = p(g, "dpx"), a.dph = p(g, "dph"), a.dln = p(g, "dln");
    return a;
  }
  void expect_equal(const Tolerance& tol, const std::string& what) {
    for (auto& [name, t] : cpu) {
      EXPECT_TRUE(all_close(gpu.at(name).template to_vector<T>(), t.template to_vector<T>(), tol))
          << what << ", buffer " << name;
    }
  }
};

template <typename T>
void check_row_kernels(kernels::StepKind kind, std::int64_t H) {
  using kernels::StepKind;
  const bool lstm = kind == StepKind::LnLstm;
  const std::int64_t G = lstm ? 4 : 3, B = 6;
  const std::int64_t S = lstm ? 12 : kind == StepKind::LnGruLinearBeforeReset ? 10 : 9;
  const std::int64_t W = 2 * G * H + (lstm ? 2 * H : 0);
  Random rng(70 + static_cast<std::uint64_t>(kind) + static_cast<std::uint64_t>(H));
  detail::CpuOps<T> cpu;
  std::unique_ptr<detail::Ops<T>> gpu = detail::make_ops<T>(Device::cuda(0));
  // Three units in one call: all rows carried; rows that start here; idle rows.
  const std::int64_t active[3] = {6, 4, 5}, carried[3] = {6, 2, 0};
  std::vector<RowBuffers<T>> bufs;
  for (int u = 0; u < 3; ++u) bufs.emplace_back(rng, B, H, G, S, W);
  const Tolerance tol = tolerance_for_depth<T>(static_cast<double>(4 * G * H));
  std::vector<kernels::StepForward<T>> fc, fg;
  for (int u = 0; u < 3; ++u) {
    fc.push_back(bufs[u].forward(false, B, H, active[u], carried[u]));
    fg.push_back(bufs[u].forward(true, B, H, active[u], carried[u]));
  }
  cpu.step_forward(kind, fc.data(), 3);
  gpu->step_forward(kind, fg.data(), 3);
  gpu->synchronize();
  for (int u = 0; u < 3; ++u) bufs[u].expect_equal(tol, "forward unit " + std::to_string(u));
  std::vector<kernels::StepBackward<T>> bc, bg;
  for (int u = 0; u < 3; ++u) {
    bc.push_back(bufs[u].backward(false, B, H, active[u], carried[u]));
    bg.push_back(bufs[u].backward(true, B, H, active[u], carried[u]));
  }
  cpu.step_backward(kind, bc.data(), 3);
  gpu->step_backward(kind, bg.data(), 3);
  gpu->synchronize();
  for (int u = 0; u < 3; ++u) bufs[u].expect_equal(tol, "backward unit " + std::to_string(u));
}

// Each row kernel with several units per launch, idle and starting rows, and rows of fewer
// elements than a block's lanes and of many more (H = 5 and 300).
TEST(LayerNormCudaOps, EveryRowKernelForwardAndBackward) {
  RECUR_REQUIRE_GPU();
  for (kernels::StepKind kind : kernels::kRowStepKinds) {
    for (std::int64_t H : {5, 300}) {
      SCOPED_TRACE("kind " + std::to_string(static_cast<int>(kind)) + " H=" + std::to_string(H));
      check_row_kernels<float>(kind, H);
      check_row_kernels<double>(kind, H);
    }
  }
}

// A hidden size beyond one block of lanes (H > 128, G*H > 128 per lane several times)
// and a single unit: the block's tree and strided loops.
TEST(LayerNormCudaWide, RowsWiderThanABlock) {
  RECUR_REQUIRE_GPU();
  for (CellKind cell :
       {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    SCOPED_TRACE(to_string(cell));
    check_parity<float>({cell, DType::Float32, 1, false, Connection::None}, 4, 3, true, 300);
  }
}

}  // namespace
}  // namespace recur::test
