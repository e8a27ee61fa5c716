// tests/test_cells.cpp: every gate functor of kernels/*.cuh, alone.
//
// Forward functors against naive formulas written out here, with the real activations
// and with Identity activations (saturated tanh/sigmoid hide indexing bugs). Backward
// functors against central differences of their own forward functor.
#include <cmath>
#include <functional>

#include "../kernels/dispatch.h"
#include "test_util.h"

namespace recur::test {
namespace {

using kernels::Identity;
using kernels::StepBackward;
using kernels::StepForward;

constexpr std::int64_t kB = 3, kH = 5;

// Inputs of one step: pre-activation parts, biases and previous states.
struct StepData {
  int gates = 1, saved = 0;
  std::vector<double> gx, gh, b_ih, b_hh, h_prev, c_prev;

  StepData(int g, int s, Random& rng) : gates(g), saved(s) {
    gx = rng.vector<double>(kB * g * kH, -1.5, 1.5);
    gh = rng.vector<double>(kB * g * kH, -1.5, 1.5);
    b_ih = rng.vector<double>(g * kH, -0.5, 0.5);
    b_hh = rng.vector<double>(g * kH, -0.5, 0.5);
    h_prev = rng.vector<double>(kB * kH);
    c_prev = rng.vector<double>(kB * kH);
  }
};

struct StepOut {
  std::vector<double> h, c, saved, rh;
};

template <class F>
StepOut run_forward(const F& f, const StepData& d, bool keep_saved = true) {
  StepOut o;
  o.h.assign(kB * kH, 0.0);
  o.c.assign(kB * kH, 0.0);
  o.rh.assign(kB * kH, 0.0);
  o.saved.assign(kB * std::max(d.saved, 1) * kH, 0.0);
  StepForward<double> a;
  a.batch = kB;
  a.hidden = kH;
  a.ldh = kH;
  a.active = kB;
  a.carried = kB;
  a.gx = d.gx.data();
  a.gh = d.gh.data();
  a.b_ih = d.b_ih.data();
  a.b_hh = d.b_hh.data();
  a.h_prev = d.h_prev.data();
  a.c_prev = d.c_prev.data();
  a.h = o.h.data();
  a.c = o.c.data();
  a.rh = o.rh.data();
  a.saved = keep_saved ? o.saved.data() : nullptr;
  for (std::int64_t i = 0; i < kB * kH; ++i) f(i, a);
  return o;
}

// Pre-activation of gate k of unit (b, j) split as in the cells: input and recurrent part.
double px(const StepData& d, std::int64_t b, int k, std::int64_t j) {
  return d.gx[b * d.gates * kH + k * kH + j] + d.b_ih[k * kH + j];
}
double ph(const StepData& d, std::int64_t b, int k, std::int64_t j) {
  return d.gh[b * d.gates * kH + k * kH + j] + d.b_hh[k * kH + j];
}

using Fn = std::function<double(double)>;
const Fn kSig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
const Fn kTanh = [](double x) { return std::tanh(x); };
const Fn kRelu = [](double x) { return x > 0 ? x : 0.0; };
const Fn kId = [](double x) { return x; };

void expect_near_all(const std::vector<double>& got, const std::vector<double>& ref) {
  EXPECT_TRUE(all_close(got, ref, tolerance_for_depth<double>(4)));
}

// ---- forward functors against the naive formulas ----

void check_rnn(Fn act, const StepOut& o, const StepData& d) {
  std::vector<double> ref(kB * kH);
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t j = 0; j < kH; ++j) ref[b * kH + j] = act(px(d, b, 0, j) + ph(d, b, 0, j));
  expect_near_all(o.h, ref);
}

TEST(CellForward, RnnMatchesFormula) {
  Random rng(1);
  StepData d(1, 0, rng);
  check_rnn(kTanh, run_forward(kernels::RnnForward<double, kernels::Tanh>{}, d), d);
  check_rnn(kRelu, run_forward(kernels::RnnForward<double, kernels::Relu>{}, d), d);
  check_rnn(kSig, run_forward(kernels::RnnForward<double, kernels::Sigmoid>{}, d), d);
  check_rnn(kId, run_forward(kernels::RnnForward<double, Identity>{}, d), d);
}

void check_lstm(Fn sig, Fn th, const StepOut& o, const StepData& d) {
  std::vector<double> h(kB * kH), c(kB * kH), saved(kB * 4 * kH);
  for (std::int64_t b = 0; b < kB; ++b) {
    for (std::int64_t j = 0; j < kH; ++j) {
      const double i = sig(px(d, b, 0, j) + ph(d, b, 0, j));
      const double f = sig(px(d, b, 1, j) + ph(d, b, 1, j));
      const double g = th(px(d, b, 2, j) + ph(d, b, 2, j));
      const double og = sig(px(d, b, 3, j) + ph(d, b, 3, j));
      c[b * kH + j] = f * d.c_prev[b * kH + j] + i * g;
      h[b * kH + j] = og * th(c[b * kH + j]);
      const double gates[4] = {i, f, g, og};
      for (int k = 0; k < 4; ++k) saved[b * 4 * kH + k * kH + j] = gates[k];
    }
  }
  expect_near_all(o.h, h);
  expect_near_all(o.c, c);
  expect_near_all(o.saved, saved);
}

TEST(CellForward, LstmMatchesFormula) {
  Random rng(2);
  StepData d(4, 4, rng);
  check_lstm(kSig, kTanh, run_forward(kernels::LstmForward<double>{}, d), d);
  check_lstm(kId, kId, run_forward(kernels::LstmForward<double, Identity, Identity>{}, d), d);
}

void check_gru_lbr(Fn sig, Fn th, const StepOut& o, const StepData& d) {
  std::vector<double> h(kB * kH), saved(kB * 4 * kH);
  for (std::int64_t b = 0; b < kB; ++b) {
    for (std::int64_t j = 0; j < kH; ++j) {
      const double r = sig(px(d, b, 0, j) + ph(d, b, 0, j));
      const double z = sig(px(d, b, 1, j) + ph(d, b, 1, j));
      const double hn = ph(d, b, 2, j);
      const double n = th(px(d, b, 2, j) + r * hn);
      h[b * kH + j] = (1 - z) * n + z * d.h_prev[b * kH + j];
      const double s[4] = {r, z, n, hn};
      for (int k = 0; k < 4; ++k) saved[b * 4 * kH + k * kH + j] = s[k];
    }
  }
  expect_near_all(o.h, h);
  expect_near_all(o.saved, saved);
}

TEST(CellForward, GruLinearBeforeResetMatchesFormula) {
  Random rng(3);
  StepData d(3, 4, rng);
  check_gru_lbr(kSig, kTanh, run_forward(kernels::GruLbrForward<double>{}, d), d);
  check_gru_lbr(kId, kId, run_forward(kernels::GruLbrForward<double, Identity, Identity>{}, d), d);
}

// Reset-before-product: phase 1, then gh[n] = W_hn rh with a naive W_hn, then phase 2.
template <class Gates, class Output>
void check_gru_rbp(Fn sig, Fn th, Random& rng) {
  StepData d(3, 3, rng);
  const std::vector<double> w_hn = rng.vector<double>(kH * kH);  // [H, H] row-major
  StepOut o = run_forward(Gates{}, d);
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t j = 0; j < kH; ++j) {
      double acc = 0;
      for (std::int64_t q = 0; q < kH; ++q) acc += w_hn[j * kH + q] * o.rh[b * kH + q];
      d.gh[b * 3 * kH + 2 * kH + j] = acc;
    }
  StepForward<double> a;
  a.batch = kB;
  a.hidden = kH;
  a.ldh = kH;
  a.active = kB;
  a.carried = kB;
  a.gx = d.gx.data();
  a.gh = d.gh.data();
  a.b_ih = d.b_ih.data();
  a.b_hh = d.b_hh.data();
  a.h_prev = d.h_prev.data();
  a.h = o.h.data();
  a.saved = o.saved.data();
  for (std::int64_t i = 0; i < kB * kH; ++i) Output{}(i, a);

  std::vector<double> h(kB * kH);
  for (std::int64_t b = 0; b < kB; ++b) {
    std::vector<double> r(kH), rh(kH);
    for (std::int64_t j = 0; j < kH; ++j) {
      r[j] = sig(px(d, b, 0, j) + ph(d, b, 0, j));
      rh[j] = r[j] * d.h_prev[b * kH + j];
    }
    for (std::int64_t j = 0; j < kH; ++j) {
      const double z = sig(px(d, b, 1, j) + ph(d, b, 1, j));
      double wrh = 0;
      for (std::int64_t q = 0; q < kH; ++q) wrh += w_hn[j * kH + q] * rh[q];
      const double n = th(px(d, b, 2, j) + wrh + d.b_hh[2 * kH + j]);
      h[b * kH + j] = (1 - z) * n + z * d.h_prev[b * kH + j];
    }
  }
  expect_near_all(o.h, h);
}

TEST(CellForward, GruResetBeforeProductMatchesFormula) {
  Random rng(4);
  check_gru_rbp<kernels::GruRbpGatesForward<double>, kernels::GruRbpOutputForward<double>>(
      kSig, kTanh, rng);
  check_gru_rbp<kernels::GruRbpGatesForward<double, Identity>,
                kernels::GruRbpOutputForward<double, Identity>>(kId, kId, rng);
}

// Rows that start mid-pass (a packed reverse direction) read h0, c0 and g0 instead of
// h_prev, c_prev and gh; rows at or past `active` are not touched.
TEST(CellForward, StartingRowsReadInitialStatesAndInactiveRowsAreUntouched) {
  Random rng(6);
  StepData d(4, 4, rng);
  const StepOut carried = run_forward(kernels::LstmForward<double>{}, d);
  StepOut fresh;
  fresh.h.assign(kB * kH, 7.0);
  fresh.c.assign(kB * kH, 7.0);
  fresh.saved.assign(kB * 4 * kH, 0.0);
  std::vector<double> garbage(kB * 4 * kH, 1e6);
  StepForward<double> a;
  a.batch = kB;
  a.hidden = kH;
  a.ldh = kH;
  a.active = kB - 1;  // the last row is past its sequence's end
  a.carried = 1;      // rows 1.. start here
  a.gx = d.gx.data();
  a.gh = garbage.data();
  a.g0 = d.gh.data();
  a.b_ih = d.b_ih.data();
  a.b_hh = d.b_hh.data();
  a.h_prev = garbage.data();
  a.c_prev = garbage.data();
  a.h0 = d.h_prev.data();
  a.c0 = d.c_prev.data();
  a.h = fresh.h.data();
  a.c = fresh.c.data();
  a.saved = fresh.saved.data();
  for (std::int64_t i = 0; i < kB * kH; ++i) kernels::LstmForward<double>{}(i, a);
  for (std::int64_t b = 1; b < kB - 1; ++b) {
    for (std::int64_t j = 0; j < kH; ++j) {
      EXPECT_EQ(fresh.h[b * kH + j], carried.h[b * kH + j]) << b;
      EXPECT_EQ(fresh.c[b * kH + j], carried.c[b * kH + j]) << b;
    }
  }
  for (std::int64_t j = 0; j < kH; ++j) {
    EXPECT_NE(fresh.h[j], carried.h[j]);         // row 0 carried the garbage over
    EXPECT_EQ(fresh.h[(kB - 1) * kH + j], 7.0);  // inactive: untouched
  }
}

TEST(CellForward, InferenceWritesNothingSaved) {
  Random rng(5);
  StepData d(4, 4, rng);
  const StepOut with = run_forward(kernels::LstmForward<double>{}, d, true);
  const StepOut without = run_forward(kernels::LstmForward<double>{}, d, false);
  EXPECT_EQ(with.h, without.h);
  EXPECT_EQ(with.c, without.c);
  for (double v : without.saved) EXPECT_EQ(v, 0.0);
}

// ---- backward functors against central differences of the forward functor ----

// J = sum(wh * h_t) + sum(wc * c_t).
template <class F>
double loss(const F& f, const StepData& d, const std::vector<double>& wh,
            const std::vector<double>& wc, double* jabs = nullptr) {
  const StepOut o = run_forward(f, d);
  double j = 0, a = 0;
  for (std::size_t i = 0; i < wh.size(); ++i) {
    j += wh[i] * o.h[i] + wc[i] * o.c[i];
    a += std::fabs(wh[i] * o.h[i]) + std::fabs(wc[i] * o.c[i]);
  }
  if (jabs) *jabs = a;
  return j;
}

// Central difference of J with respect to every element of d.*member.
template <class F>
std::vector<double> numeric(const F& f, StepData d, std::vector<double> StepData::*member,
                            const std::vector<double>& wh, const std::vector<double>& wc) {
  std::vector<double>& v = d.*member;
  std::vector<double> out(v.size());
  const double h = FiniteDifference::step();
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double up = loss(f, d, wh, wc);
    v[i] = keep - h;
    const double down = loss(f, d, wh, wc);
    v[i] = keep;
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

::testing::AssertionResult fd_close(const std::vector<double>& got, const std::vector<double>& ref,
                                    double jabs) {
  const double tol = FiniteDifference::tolerance(jabs, 8);
  return all_close(got, ref, Tolerance{tol, 1.0});
}

// own_dgh: the cell writes dJ/d(W_hh h) apart from dJ/d(W_ih x) (the linear-before-reset
// GRU); for the others the two are one value, and the engine passes one buffer for both.
template <class Fwd, class Bwd>
void check_backward(int gates, int saved, bool has_c, bool own_dgh, std::uint64_t seed) {
  Random rng(seed);
  StepData d(gates, saved, rng);
  const std::vector<double> wh = rng.vector<double>(kB * kH);
  const std::vector<double> wc =
      has_c ? rng.vector<double>(kB * kH) : std::vector<double>(kB * kH, 0.0);
  const Fwd fwd{};
  const StepOut o = run_forward(fwd, d);

  // Split dJ/dh_t between dy and dh to check that the functor adds them.
  std::vector<double> dy(kB * kH), dh(kB * kH), dc = wc;
  for (std::size_t i = 0; i < wh.size(); ++i) {
    dy[i] = 0.25 * wh[i];
    dh[i] = 0.75 * wh[i];
  }
  std::vector<double> dgx(kB * gates * kH), dgh(kB * gates * kH);
  StepBackward<double> a;
  a.batch = kB;
  a.hidden = kH;
  a.ldh = kH;
  a.active = kB;
  a.carried = kB;
  a.dy = dy.data();
  a.h = o.h.data();
  a.h_prev = d.h_prev.data();
  a.c = o.c.data();
  a.c_prev = d.c_prev.data();
  a.saved = o.saved.data();
  a.dh = dh.data();
  a.dc = dc.data();
  a.dgx = dgx.data();
  a.dgh = own_dgh ? dgh.data() : dgx.data();
  for (std::int64_t i = 0; i < kB * kH; ++i) Bwd{}(i, a);
  if (!own_dgh) dgh = dgx;

  double jabs = 0;
  loss(fwd, d, wh, wc, &jabs);
  EXPECT_TRUE(fd_close(dgx, numeric(fwd, d, &StepData::gx, wh, wc), jabs)) << "dgx";
  EXPECT_TRUE(fd_close(dgh, numeric(fwd, d, &StepData::gh, wh, wc), jabs)) << "dgh";
  EXPECT_TRUE(fd_close(dh, numeric(fwd, d, &StepData::h_prev, wh, wc), jabs)) << "dh_prev";
  if (has_c) {
    EXPECT_TRUE(fd_close(dc, numeric(fwd, d, &StepData::c_prev, wh, wc), jabs)) << "dc";
  }
}

TEST(CellBackward, RnnMatchesFiniteDifferences) {
  using namespace kernels;
  check_backward<RnnForward<double, Tanh>, RnnBackward<double, Tanh>>(1, 0, false, false, 10);
  check_backward<RnnForward<double, Relu>, RnnBackward<double, Relu>>(1, 0, false, false, 11);
  check_backward<RnnForward<double, Sigmoid>, RnnBackward<double, Sigmoid>>(1, 0, false, false, 12);
  check_backward<RnnForward<double, Identity>, RnnBackward<double, Identity>>(1, 0, false, false,
                                                                              13);
}

TEST(CellBackward, LstmMatchesFiniteDifferences) {
  using namespace kernels;
  check_backward<LstmForward<double>, LstmBackward<double>>(4, 4, true, false, 20);
  check_backward<LstmForward<double, Identity, Identity>, LstmBackward<double, Identity, Identity>>(
      4, 4, true, false, 21);
}

TEST(CellBackward, GruLinearBeforeResetMatchesFiniteDifferences) {
  using namespace kernels;
  check_backward<GruLbrForward<double>, GruLbrBackward<double>>(3, 4, false, true, 30);
  check_backward<GruLbrForward<double, Identity, Identity>,
                 GruLbrBackward<double, Identity, Identity>>(3, 4, false, true, 31);
}

// Reset-before-product, phase by phase. Phase A (output): with gh[n] held fixed, J depends
// on gx[z], gx[n] and h_prev's direct path; phase B (gates): with drh given, J' = drh·rh.
template <class Sig, class Th>
void check_gru_rbp_backward(std::uint64_t seed) {
  using namespace kernels;
  Random rng(seed);
  StepData d(3, 3, rng);
  const std::vector<double> wh = rng.vector<double>(kB * kH), wc(kB * kH, 0.0);
  // Phase 1 for all elements, then (at the last element) phase 2 for all: the two phases
  // as one "forward" for the finite-difference harness, gh[n] held fixed.
  struct Composite {
    RECUR_HD void operator()(std::int64_t i, const StepForward<double>& a) const {
      GruRbpGatesForward<double, Sig>{}(i, a);
      if (i == a.batch * a.hidden - 1) {
        for (std::int64_t k = 0; k < a.batch * a.hidden; ++k)
          GruRbpOutputForward<double, Th>{}(k, a);
      }
    }
  };
  const StepOut o = run_forward(Composite{}, d);
  std::vector<double> dh = wh, dgx(kB * 3 * kH, 0.0);
  StepBackward<double> a;
  a.batch = kB;
  a.hidden = kH;
  a.ldh = kH;
  a.active = kB;
  a.carried = kB;
  a.h_prev = d.h_prev.data();
  a.saved = o.saved.data();
  a.dh = dh.data();
  a.dgx = dgx.data();
  a.dgh = dgx.data();
  for (std::int64_t i = 0; i < kB * kH; ++i) GruRbpOutputBackward<double, Sig, Th>{}(i, a);

  double jabs = 0;
  loss(Composite{}, d, wh, wc, &jabs);
  const std::vector<double> num_gx = numeric(Composite{}, d, &StepData::gx, wh, wc);
  std::vector<double> got_zn, ref_zn;
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t k = 3 * b * kH + kH; k < 3 * (b + 1) * kH; ++k) {
      got_zn.push_back(dgx[k]);
      ref_zn.push_back(num_gx[k]);
    }
  EXPECT_TRUE(fd_close(got_zn, ref_zn, jabs)) << "dgx[z, n]";
  EXPECT_TRUE(fd_close(dh, numeric(Composite{}, d, &StepData::h_prev, wh, wc), jabs))
      << "dh (direct)";

  // Phase B: J' = sum(drh * rh) through phase 1 alone.
  const std::vector<double> drh = rng.vector<double>(kB * kH);
  std::vector<double> dh_b(kB * kH, 0.0);
  a.drh = drh.data();
  a.dh = dh_b.data();
  for (std::int64_t i = 0; i < kB * kH; ++i) GruRbpGatesBackward<double, Sig>{}(i, a);
  double jabs_b = 0;
  auto jprime = [&](const StepData& dd) {
    const StepOut oo = run_forward(GruRbpGatesForward<double, Sig>{}, dd);
    double j = 0;
    jabs_b = 0;
    for (std::size_t i = 0; i < drh.size(); ++i) {
      j += drh[i] * oo.rh[i];
      jabs_b += std::fabs(drh[i] * oo.rh[i]);
    }
    return j;
  };
  jprime(d);
  const double h = FiniteDifference::step();
  StepData dd = d;
  std::vector<double> got_r, ref_r, ref_dh(kB * kH);
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t j = 0; j < kH; ++j) {
      const std::size_t k = static_cast<std::size_t>(b * 3 * kH + j);
      const double keep = dd.gx[k];
      dd.gx[k] = keep + h;
      const double up = jprime(dd);
      dd.gx[k] = keep - h;
      const double down = jprime(dd);
      dd.gx[k] = keep;
      got_r.push_back(dgx[k]);
      ref_r.push_back((up - down) / (2 * h));
    }
  for (std::size_t i = 0; i < dd.h_prev.size(); ++i) {
    const double keep = dd.h_prev[i];
    dd.h_prev[i] = keep + h;
    const double up = jprime(dd);
    dd.h_prev[i] = keep - h;
    const double down = jprime(dd);
    dd.h_prev[i] = keep;
    ref_dh[i] = (up - down) / (2 * h);
  }
  jprime(d);
  EXPECT_TRUE(fd_close(got_r, ref_r, jabs_b)) << "dgx[r]";
  EXPECT_TRUE(fd_close(dh_b, ref_dh, jabs_b)) << "dh through rh";
}

TEST(CellBackward, GruResetBeforeProductMatchesFiniteDifferences) {
  check_gru_rbp_backward<kernels::Sigmoid, kernels::Tanh>(40);
  check_gru_rbp_backward<Identity, Identity>(41);
}

}  // namespace
}  // namespace recur::test
