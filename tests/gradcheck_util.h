// tests/gradcheck_util.h: float64 central-difference checks of a whole Rnn: every
// parameter, dx, dh0 and dc0 against the analytic backward pass.
#pragma once

#include "cpu/cpu_ops.h"
#include "plan.h"
#include "test_util.h"

namespace recur::test {

// The CPU runs `rnn`'s unidirectional stacks as a wavefront (on) or layer by layer (off,
// its default; src/cpu/cpu_ops.h): the GPU's schedule, checked without one.
inline void run_as_wavefront(Rnn& rnn, bool on) {
  tune(rnn, [on](detail::Tuning& t) { t.cpu_wavefront = on; });
}

// Wavefronts fuse their upper layers' input GEMMs into the waves' batches (on, the
// default; src/pass/pass_plan.h) or run them as GEMMs of their own (off).
inline void fuse_wave_inputs(Rnn& rnn, bool on) {
  tune(rnn, [on](detail::Tuning& t) { t.wave_fusion = on; });
}

// LSTM training keeps layer 0's h_{t-1} beside x from `rows` timeline rows up
// (src/pass/pass_plan.h, hp_beside_x; 0: always, as on large problems).
inline void keep_hp_beside_x_from(Rnn& rnn, std::int64_t rows) {
  tune(rnn, [rows](detail::Tuning& t) { t.hp_beside_x_min_rows = rows; });
}

// Everything that J = sum(wy*y) + sum(wh*h_n) + sum(wc*c_n) depends on.
struct Problem {
  Tensor x, h0, c0, wy, wh, wc;
  std::vector<std::int64_t> lengths;  // empty: full length
  bool training = false;              // evaluate J in Mode::Training (dropout)
  std::uint64_t dropout_seed = 0;     // reset before every evaluation: the same masks
};

inline Problem make_problem(const Rnn& rnn, std::int64_t steps, std::int64_t batch, Random& rng) {
  const RnnConfig& c = rnn.config();
  const std::int64_t ld = c.num_layers * (c.bidirectional ? 2 : 1);
  const std::int64_t state = detail::state_size_of(c);  // h's features
  const std::int64_t out = (c.bidirectional ? 2 : 1) * state;
  Problem p;
  p.x = c.batch_first ? rng.tensor<double>({batch, steps, c.input_size})
                      : rng.tensor<double>({steps, batch, c.input_size});
  p.h0 = rng.tensor<double>({ld, batch, state});
  p.wy = c.batch_first ? rng.tensor<double>({batch, steps, out})
                       : rng.tensor<double>({steps, batch, out});
  p.wh = rng.tensor<double>({ld, batch, state});
  if (has_cell_state(c.cell)) {
    p.c0 = rng.tensor<double>({ld, batch, c.hidden_size});
    p.wc = rng.tensor<double>({ld, batch, c.hidden_size});
  }
  return p;
}

inline double dot(const Tensor& a, const Tensor& b, double* abs_sum) {
  if (!a.defined()) return 0.0;
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  double s = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    s += va[i] * vb[i];
    *abs_sum += std::fabs(va[i] * vb[i]);
  }
  return s;
}

inline double loss(Rnn& rnn, const Problem& p, double* jabs) {
  if (p.training) rnn.set_dropout_seed(p.dropout_seed);
  ForwardResult r =
      rnn.forward(p.x, p.h0, p.c0, p.training ? Mode::Training : Mode::Inference, p.lengths);
  double a = 0;
  const double j = dot(r.y, p.wy, &a) + dot(r.h_n, p.wh, &a) + dot(r.c_n, p.wc, &a);
  if (jabs) *jabs = a;
  return j;
}

// dJ/d(view) by central differences, perturbing the memory `view` points to in place.
inline std::vector<double> numeric(Rnn& rnn, const Problem& p, const TensorView& view) {
  double* v = view.data_as<double>();
  std::vector<double> out(static_cast<std::size_t>(view.numel()));
  const double h = FiniteDifference::step();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double up = loss(rnn, p, nullptr);
    v[i] = keep - h;
    const double down = loss(rnn, p, nullptr);
    v[i] = keep;
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

// Runs forward + backward on `rnn` (float64, CPU) and checks every gradient against
// central differences. The accumulation depth is T * (widest K) * layers. With `lengths`,
// a variable-length batch; with `training`, J is evaluated in Mode::Training with the
// dropout masks fixed by resetting the seed before every forward.
inline void check_all_gradients(Rnn& rnn, std::int64_t steps, std::int64_t batch,
                                std::uint64_t seed, const std::vector<std::int64_t>& lengths = {},
                                bool training = false) {
  Random rng(seed);
  // Wider weights than the default init, so that gates are not all near their midpoint.
  rnn.parameters().copy_from(
      rng.tensor<double>({rnn.parameters().numel()}, Device::cpu(), -0.8, 0.8));
  rnn.zero_grad();
  Problem p = make_problem(rnn, steps, batch, rng);
  p.lengths = lengths;
  p.training = training;
  p.dropout_seed = seed;
  rnn.set_dropout_seed(p.dropout_seed);
  rnn.forward(p.x, p.h0, p.c0, Mode::Training, p.lengths);
  BackwardResult g = rnn.backward(p.wy, p.wh, p.wc);

  const RnnConfig& c = rnn.config();
  double jabs = 0;
  loss(rnn, p, &jabs);
  std::int64_t widest = c.input_size + c.hidden_size + (c.proj_size > 0 ? c.hidden_size : 0);
  for (const ParamInfo& info : rnn.parameter_info()) widest = std::max(widest, info.shape.back());
  const double depth = static_cast<double>(steps * widest * c.num_layers);
  const Tolerance tol{FiniteDifference::tolerance(jabs, depth), 1.0};
  for (const ParamInfo& info : rnn.parameter_info()) {
    EXPECT_TRUE(all_close(rnn.gradient(info.name).to_vector<double>(),
                          numeric(rnn, p, rnn.parameter(info.name)), tol))
        << info.name;
  }
  EXPECT_TRUE(all_close(g.dx.to_vector<double>(), numeric(rnn, p, p.x), tol)) << "dx";
  EXPECT_TRUE(all_close(g.dh0.to_vector<double>(), numeric(rnn, p, p.h0), tol)) << "dh0";
  if (has_cell_state(c.cell)) {
    EXPECT_TRUE(all_close(g.dc0.to_vector<double>(), numeric(rnn, p, p.c0), tol)) << "dc0";
  } else {
    EXPECT_FALSE(g.dc0.defined());
  }
}

// A random float64 configuration of every option at once (cell, sizes, layers, directions,
// connection, bias, batch-first, dropout, variable lengths), drawn in a fixed order so that
// a seed always gives the same configurations. The space: the cells to draw from, and the
// smallest hidden and input sizes with how many sizes above them; `projection` draws an
// LSTM's proj_size in [1, H) last (hidden_min >= 2), so the other draws stay as they were.
struct RandomSpace {
  std::vector<CellKind> cells;
  int hidden_min = 1, hidden_choices = 3;
  int input_min = 1, input_choices = 4;
  bool layer_norm = false;
  bool projection = false;
};
struct RandomCase {
  RnnConfig config;
  std::int64_t steps = 0, batch = 0;
  std::vector<std::int64_t> lengths;  // empty: every sequence runs all steps
};

inline RandomCase random_case(Random& rng, const RandomSpace& space) {
  auto pick = [&](int n) { return static_cast<int>(rng.uniform(0, n)); };
  RandomCase r;
  RnnConfig& c = r.config;
  c.cell = space.cells[static_cast<std::size_t>(pick(static_cast<int>(space.cells.size())))];
  c.layer_norm = space.layer_norm;
  c.hidden_size = space.hidden_min + pick(space.hidden_choices);
  c.num_layers = 1 + pick(3);
  c.bidirectional = pick(2) == 1;
  c.connection = static_cast<Connection>(pick(4));
  const std::int64_t dh = (c.bidirectional ? 2 : 1) * c.hidden_size;
  const bool input_as_wide_as_output = pick(2) == 1;
  c.input_size = input_as_wide_as_output ? dh : space.input_min + pick(space.input_choices);
  const bool needs_width =
      c.connection == Connection::Residual || c.connection == Connection::Highway;
  const bool must_match = needs_width && c.num_layers == 1;  // else a config error
  if (must_match) c.input_size = dh;
  c.bias = pick(4) != 0;
  c.dtype = DType::Float64;
  c.batch_first = pick(2) == 1;
  c.dropout = pick(3) == 0 ? 0.3 : 0.0;
  r.steps = 1 + pick(5);
  r.batch = 1 + pick(4);
  if (pick(2) == 1) {
    for (std::int64_t b = 0; b < r.batch; ++b) {
      r.lengths.push_back(1 + pick(static_cast<int>(r.steps)));
    }
  }
  if (space.projection && c.cell == CellKind::Lstm) {
    c.proj_size = 1 + pick(static_cast<int>(c.hidden_size) - 1);
    if (input_as_wide_as_output || must_match)
      c.input_size = (c.bidirectional ? 2 : 1) * c.proj_size;
  }
  return r;
}

// Checks every gradient of random case number `it` (seeded by `seed`): unidirectional
// stacks as a wavefront in every other case, and the LSTM's h_{t-1} beside x asked for in
// half of them (small sizes: from row 0).
inline void check_random_case(const RandomCase& r, int it, std::uint64_t seed) {
  const RnnConfig& c = r.config;
  SCOPED_TRACE(::testing::Message()
               << "config " << it << ": " << to_string(c.cell) << " I=" << c.input_size
               << " H=" << c.hidden_size << " P=" << c.proj_size << " L=" << c.num_layers
               << " bi=" << c.bidirectional << " " << to_string(c.connection) << " bias=" << c.bias
               << " batch_first=" << c.batch_first << " dropout=" << c.dropout << " T=" << r.steps
               << " B=" << r.batch << " lengths=" << r.lengths.size()
               << " cpu_wavefront=" << (it % 2) << " x_hp=" << (it % 4 < 2));
  Rnn rnn(c, Device::cpu(), static_cast<std::uint64_t>(it));
  run_as_wavefront(rnn, it % 2 == 1);
  keep_hp_beside_x_from(rnn, it % 4 < 2 ? 0 : 2048);
  check_all_gradients(rnn, r.steps, r.batch, seed, r.lengths, c.dropout > 0);
}

}  // namespace recur::test
