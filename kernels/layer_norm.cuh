// kernels/layer_norm.cuh: the layer-normalised LSTM and GRU (Ba et al. 2016; the
// formulation of haste's LayerNormLSTM / LayerNormGRU), gate order as in lstm.cuh and
// gru.cuh.
//
//   LN(v; γ)[k] = γ[k] (v[k] − mean(v)) / sqrt(var(v) + ε),  ε = 1e-5, over one row of v
//   (var divides by the row's length; no β: the gate biases come after it)
//   ax = LN(W_ih x_t; γ_ih) + b_ih,  ah = LN(W_hh h_{t-1}; γ_hh) + b_hh   (rows of G*H)
// LSTM:  i, f, g, o = σ, σ, tanh, σ of ax + ah;  c_t = f∘c_{t-1} + i∘g;
//        h_t = o∘tanh(LN(c_t; γ_c) + β_c)                                    (rows of H)
// GRU (linear before reset): r, z = σ(ax + ah) in their slots, n = tanh(ax_n + r∘ah_n),
//        h_t = (1−z)∘n + z∘h_{t-1}.
// GRU (reset before product): see LnGruRbpGatesForward below.
//
// A normalisation needs the sums of a whole row, so these functors work row by row
// (PerRow) instead of element by element: `row(b, args, lanes)` computes row b with
// `lanes.lanes()` workers, of which this call is `lanes.lane()`. Each loop over a row's
// elements takes every lanes()-th element from lane(); `lanes.sum(v)` replaces each lane's
// partial sums v[0..N) by their totals over all lanes and is where the lanes meet (every
// lane calls it, the same number of times). On the CPU a row is one lane (SerialLanes,
// below); on the GPU a block of threads (kernels/step_kernels.cu), summed in shared memory
// in a fixed tree. Sums are double on both sides and their order depends on the lane
// count alone: the same inputs give the same bits run to run.
//
// A value one loop writes and a later loop reads is either the lane's own element (the
// same element goes to the same lane in every loop over the same length) or read after a
// sum (which orders all lanes' writes before it on the GPU).
//
// Saved for backward, per row (slots of H): LSTM (S = 12) i, f, g, o, then the centred
// W_ih x − mean (4 slots) and W_hh h − mean (4 slots); GRU (S = 10) r, z, n, ah_n, then
// the centred inputs (3 + 3 slots). The cell's normalisation is recomputed from c_t. The
// variances are recomputed from the centred values, in the forward's order, so backward
// sees the forward's bits.
//
// Backward writes, besides dgx (d/d W_ih x) and dgh (d/d W_hh h), which always differ:
//   dpx [B, G*H]  d/d ax, the rows whose column sums are db_ih (and, LSTM, db_hh: there
//                 d/d ah equals d/d ax)
//   dph [B, G*H]  d/d ah (GRU only: its n slot is r∘ d/d ax_n), summed into db_hh
//   dln [B, W]    the rows whose column sums are the gradients of the layer-norm
//                 parameters, in their layout: γ_ih, γ_hh (G*H each), then for the LSTM
//                 γ_c, β_c (H each)
#pragma once

#include <type_traits>

#include "activations.h"
#include "step_args.h"

namespace recur::kernels {

constexpr double kLayerNormEps = 1e-5;

// The base of row-by-row step functors; see is_per_row.
struct PerRow {};

template <class F>
constexpr bool is_per_row = std::is_base_of_v<PerRow, F>;

// One lane per row: the CPU's loops.
struct SerialLanes {
  RECUR_HD std::int64_t lane() const { return 0; }
  RECUR_HD std::int64_t lanes() const { return 1; }
  template <int N>
  RECUR_HD void sum(double (&)[N]) const {}
};

// 1/sqrt(variance + ε) from a row's sum of squared deviations.
RECUR_HD double ln_rstd(double sum_sq, std::int64_t n) {
  return 1.0 / sqrt(sum_sq / static_cast<double>(n) + kLayerNormEps);
}

// A centred value, normalised.
template <typename T>
RECUR_HD T ln_normalised(T centred, double rstd) {
  return static_cast<T>(static_cast<double>(centred) * rstd);
}

// The input gradient of a normalisation without β for one element: with
// g = dJ/d(normalised) (before γ: dJ/dy ∘ γ), rstd (g − mean(g) − x̂ mean(g∘x̂)).
template <typename T>
RECUR_HD T ln_input_gradient(T g, T normalised, double rstd, double mean_g, double mean_gx) {
  return static_cast<T>(
      rstd * (static_cast<double>(g) - mean_g - static_cast<double>(normalised) * mean_gx));
}

// The normalisation statistics of a row's two gate inputs (W_ih x, nx elements, and
// W_hh h, nh elements; nh = 0 for one input alone): means, then the centred values (kept
// in saved_x / saved_h unless null) and their 1/std. Every lane calls it.
template <typename T, class Lanes>
struct GateNorms {
  double mean_x = 0, mean_h = 0, rstd_x = 0, rstd_h = 0;

  RECUR_HD GateNorms(const T* gx, std::int64_t nx, const T* gh, std::int64_t nh, T* saved_x,
                     T* saved_h, Lanes& lanes) {
    const std::int64_t n = nx > nh ? nx : nh;
    double m[2] = {0, 0};
    for (std::int64_t k = lanes.lane(); k < n; k += lanes.lanes()) {
      if (k < nx) m[0] += static_cast<double>(gx[k]);
      if (k < nh) m[1] += static_cast<double>(gh[k]);
    }
    lanes.sum(m);
    mean_x = m[0] / static_cast<double>(nx);
    if (nh > 0) mean_h = m[1] / static_cast<double>(nh);
    double q[2] = {0, 0};
    for (std::int64_t k = lanes.lane(); k < n; k += lanes.lanes()) {
      if (k < nx) {
        const T cx = centred_x(gx[k]);
        if (saved_x != nullptr) saved_x[k] = cx;
        q[0] += static_cast<double>(cx) * cx;
      }
      if (k < nh) {
        const T ch = centred_h(gh[k]);
        if (saved_h != nullptr) saved_h[k] = ch;
        q[1] += static_cast<double>(ch) * ch;
      }
    }
    lanes.sum(q);
    rstd_x = ln_rstd(q[0], nx);
    if (nh > 0) rstd_h = ln_rstd(q[1], nh);
  }
  RECUR_HD T centred_x(T v) const { return static_cast<T>(static_cast<double>(v) - mean_x); }
  RECUR_HD T centred_h(T v) const { return static_cast<T>(static_cast<double>(v) - mean_h); }
};

// The 1/std of saved centred inputs (nx and nh elements), recomputed in the forward's
// order (backward).
template <typename T, class Lanes>
RECUR_HD void saved_rstd(const T* cx, std::int64_t nx, const T* ch, std::int64_t nh, double* rstd_x,
                         double* rstd_h, Lanes& lanes) {
  const std::int64_t n = nx > nh ? nx : nh;
  double q[2] = {0, 0};
  for (std::int64_t k = lanes.lane(); k < n; k += lanes.lanes()) {
    if (k < nx) q[0] += static_cast<double>(cx[k]) * cx[k];
    if (k < nh) q[1] += static_cast<double>(ch[k]) * ch[k];
  }
  lanes.sum(q);
  *rstd_x = ln_rstd(q[0], nx);
  if (nh > 0) *rstd_h = ln_rstd(q[1], nh);
}

// The last phase of a backward row: d/d(W_ih x) and d/d(W_hh h) from d/d ax and d/d ah,
// and the rows of the γ gradients. `means` holds mean(g), mean(g∘x̂) for x, then for h.
template <typename T, class Lanes>
RECUR_HD void gate_norms_backward(const T* dax, const T* dah, const T* cx, const T* ch,
                                  const T* gamma_x, const T* gamma_h, std::int64_t n, double rstd_x,
                                  double rstd_h, const double (&means)[4], T* dgx, T* dgh, T* dln,
                                  Lanes& lanes) {
  for (std::int64_t k = lanes.lane(); k < n; k += lanes.lanes()) {
    const T xhat = ln_normalised(cx[k], rstd_x), hhat = ln_normalised(ch[k], rstd_h);
    dgx[k] = ln_input_gradient(dax[k] * gamma_x[k], xhat, rstd_x, means[0], means[1]);
    dgh[k] = ln_input_gradient(dah[k] * gamma_h[k], hhat, rstd_h, means[2], means[3]);
    dln[k] = dax[k] * xhat;
    dln[n + k] = dah[k] * hhat;
  }
}

// Adds gate k's share to the four row sums gate_norms_backward needs.
template <typename T>
RECUR_HD void add_gate_sums(double (&sums)[4], T dax, T dah, T gamma_x, T gamma_h, T xhat, T hhat) {
  const T gx = dax * gamma_x, gh = dah * gamma_h;
  sums[0] += static_cast<double>(gx);
  sums[1] += static_cast<double>(gx) * xhat;
  sums[2] += static_cast<double>(gh);
  sums[3] += static_cast<double>(gh) * hhat;
}

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LnLstmForward : PerRow {
  static constexpr int kGates = 4;
  static constexpr int kSaved = 12;

  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepForward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 4 * H;
    const T* gx = a.gx + b * GH;
    const T* gh = recurrent(a, b) + b * GH;
    const T* gamma_x = a.ln;
    const T* gamma_h = a.ln + GH;
    const T* gamma_c = a.ln + 2 * GH;
    const T* beta_c = gamma_c + H;
    T* s = a.saved != nullptr ? a.saved + b * kSaved * H : nullptr;
    const GateNorms<T, Lanes> norm(gx, GH, gh, GH, s != nullptr ? s + 4 * H : nullptr,
                                   s != nullptr ? s + 8 * H : nullptr, lanes);
    double sum_c[1] = {0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      T pre[4];
      for (int g = 0; g < 4; ++g) {
        const std::int64_t k = g * H + j;
        T px = gamma_x[k] * ln_normalised(norm.centred_x(gx[k]), norm.rstd_x);
        T ph = gamma_h[k] * ln_normalised(norm.centred_h(gh[k]), norm.rstd_h);
        if (a.b_ih != nullptr) {
          px += a.b_ih[k];
          ph += a.b_hh[k];
        }
        pre[g] = px + ph;
      }
      const T i = Sig::f(pre[0]), f = Sig::f(pre[1]), g = Th::f(pre[2]), o = Sig::f(pre[3]);
      if (a.hp != nullptr) a.hp[b * a.ldhp + j] = prev_h(a, b, j);
      const T c = f * prev_c(a, b, j) + i * g;
      a.c[b * H + j] = c;
      a.h[b * a.ldh + j] = o;  // until the cell's normalisation is known
      if (s != nullptr) {
        s[0 * H + j] = i;
        s[1 * H + j] = f;
        s[2 * H + j] = g;
        s[3 * H + j] = o;
      }
      sum_c[0] += static_cast<double>(c);
    }
    lanes.sum(sum_c);
    const double mean_c = sum_c[0] / static_cast<double>(H);
    double sq_c[1] = {0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const double d = static_cast<double>(a.c[b * H + j]) - mean_c;
      sq_c[0] += d * d;
    }
    lanes.sum(sq_c);
    const double rstd_c = ln_rstd(sq_c[0], H);
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const T chat = cell_normalised(a.c[b * H + j], mean_c, rstd_c);
      T* h = a.h + b * a.ldh + j;
      *h = *h * Th::f(gamma_c[j] * chat + beta_c[j]);
    }
  }

  RECUR_HD static T cell_normalised(T c, double mean, double rstd) {
    return static_cast<T>((static_cast<double>(c) - mean) * rstd);
  }
};

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LnLstmBackward : PerRow {
  // The cell normalisation's part of element j: ĉ, dJ/d(its output), dJ/dĉ, dJ/do.
  struct Cell {
    T chat, dn, dchat, d_o;
  };
  RECUR_HD static Cell cell(std::int64_t b, std::int64_t j, const StepBackward<T>& a, double mean_c,
                            double rstd_c) {
    const std::int64_t H = a.hidden, idx = b * H + j;
    const T* gamma_c = a.ln + 8 * H;
    const T* beta_c = gamma_c + H;
    const T o = a.saved[b * 12 * H + 3 * H + j];
    Cell out;
    out.chat = LnLstmForward<T, Sig, Th>::cell_normalised(a.c[idx], mean_c, rstd_c);
    const T tn = Th::f(gamma_c[j] * out.chat + beta_c[j]);
    const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
    out.d_o = dh * tn * Sig::df(o);
    out.dn = dh * o * Th::df(tn);
    out.dchat = out.dn * gamma_c[j];
    return out;
  }

  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepBackward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 4 * H;
    const T* s = a.saved + b * 12 * H;
    const T* cx = s + 4 * H;
    const T* ch = s + 8 * H;
    const T* c = a.c + b * H;
    const T* gamma_x = a.ln;
    const T* gamma_h = a.ln + GH;
    T* dpx = a.dpx + b * GH;
    T* dln = a.dln + b * (2 * GH + 2 * H);
    // The statistics forward had: c's mean, the inputs' 1/std, then c's 1/std.
    double first[3] = {0, 0, 0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      first[0] += static_cast<double>(c[j]);
    }
    for (std::int64_t k = lanes.lane(); k < GH; k += lanes.lanes()) {
      first[1] += static_cast<double>(cx[k]) * cx[k];
      first[2] += static_cast<double>(ch[k]) * ch[k];
    }
    lanes.sum(first);
    const double mean_c = first[0] / static_cast<double>(H);
    const double rstd_x = ln_rstd(first[1], GH), rstd_h = ln_rstd(first[2], GH);
    double sq_c[1] = {0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const double d = static_cast<double>(c[j]) - mean_c;
      sq_c[0] += d * d;
    }
    lanes.sum(sq_c);
    const double rstd_c = ln_rstd(sq_c[0], H);
    // The cell normalisation's input gradient needs mean(dĉ) and mean(dĉ∘ĉ).
    double cs[2] = {0, 0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const Cell e = cell(b, j, a, mean_c, rstd_c);
      cs[0] += static_cast<double>(e.dchat);
      cs[1] += static_cast<double>(e.dchat) * e.chat;
    }
    lanes.sum(cs);
    const double mean_d = cs[0] / static_cast<double>(H), mean_dc = cs[1] / static_cast<double>(H);
    double gs[4] = {0, 0, 0, 0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const std::int64_t idx = b * H + j;
      const Cell e = cell(b, j, a, mean_c, rstd_c);
      const T dc = a.dc[idx] + ln_input_gradient(e.dchat, e.chat, rstd_c, mean_d, mean_dc);
      const T i = s[0 * H + j], f = s[1 * H + j], g = s[2 * H + j];
      const T dp[4] = {dc * g * Sig::df(i), dc * prev_c(a, b, j) * Sig::df(f), dc * i * Th::df(g),
                       e.d_o};
      for (int q = 0; q < 4; ++q) {
        const std::int64_t k = q * H + j;
        dpx[k] = dp[q];
        add_gate_sums(gs, dp[q], dp[q], gamma_x[k], gamma_h[k], ln_normalised(cx[k], rstd_x),
                      ln_normalised(ch[k], rstd_h));
      }
      dln[2 * GH + j] = e.dn * e.chat;
      dln[2 * GH + H + j] = e.dn;
      a.dc[idx] = dc * f;
      a.dh[idx] = T(0);  // h_{t-1} reaches J only through W_hh
    }
    lanes.sum(gs);
    const double means[4] = {gs[0] / static_cast<double>(GH), gs[1] / static_cast<double>(GH),
                             gs[2] / static_cast<double>(GH), gs[3] / static_cast<double>(GH)};
    gate_norms_backward(dpx, dpx, cx, ch, gamma_x, gamma_h, GH, rstd_x, rstd_h, means,
                        a.dgx + b * GH, a.dgh + b * GH, dln, lanes);
  }
};

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LnGruLbrForward : PerRow {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 10;

  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepForward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 3 * H;
    const T* gx = a.gx + b * GH;
    const T* gh = recurrent(a, b) + b * GH;
    const T* gamma_x = a.ln;
    const T* gamma_h = a.ln + GH;
    T* s = a.saved != nullptr ? a.saved + b * kSaved * H : nullptr;
    const GateNorms<T, Lanes> norm(gx, GH, gh, GH, s != nullptr ? s + 4 * H : nullptr,
                                   s != nullptr ? s + 7 * H : nullptr, lanes);
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      T ax[3], ah[3];
      for (int g = 0; g < 3; ++g) {
        const std::int64_t k = g * H + j;
        ax[g] = gamma_x[k] * ln_normalised(norm.centred_x(gx[k]), norm.rstd_x);
        ah[g] = gamma_h[k] * ln_normalised(norm.centred_h(gh[k]), norm.rstd_h);
        if (a.b_ih != nullptr) {
          ax[g] += a.b_ih[k];
          ah[g] += a.b_hh[k];
        }
      }
      const T r = Sig::f(ax[0] + ah[0]), z = Sig::f(ax[1] + ah[1]);
      const T n = Th::f(ax[2] + r * ah[2]);
      const T h_prev = prev_h(a, b, j);
      if (a.hp != nullptr) a.hp[b * a.ldhp + j] = h_prev;
      a.h[b * a.ldh + j] = (T(1) - z) * n + z * h_prev;
      if (s != nullptr) {
        s[0 * H + j] = r;
        s[1 * H + j] = z;
        s[2 * H + j] = n;
        s[3 * H + j] = ah[2];
      }
    }
  }
};

template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LnGruLbrBackward : PerRow {
  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepBackward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 3 * H;
    const T* s = a.saved + b * 10 * H;
    const T* cx = s + 4 * H;
    const T* ch = s + 7 * H;
    const T* gamma_x = a.ln;
    const T* gamma_h = a.ln + GH;
    T* dpx = a.dpx + b * GH;
    T* dph = a.dph + b * GH;
    double rstd_x = 0, rstd_h = 0;
    saved_rstd(cx, GH, ch, GH, &rstd_x, &rstd_h, lanes);
    double gs[4] = {0, 0, 0, 0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const std::int64_t idx = b * H + j;
      const T r = s[0 * H + j], z = s[1 * H + j], n = s[2 * H + j], ahn = s[3 * H + j];
      const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
      const T dn = dh * (T(1) - z) * Th::df(n);
      const T dz = dh * (a.h_prev[idx] - n) * Sig::df(z);
      const T dr = dn * ahn * Sig::df(r);
      const T dax[3] = {dr, dz, dn}, dah[3] = {dr, dz, dn * r};
      for (int q = 0; q < 3; ++q) {
        const std::int64_t k = q * H + j;
        dpx[k] = dax[q];
        dph[k] = dah[q];
        add_gate_sums(gs, dax[q], dah[q], gamma_x[k], gamma_h[k], ln_normalised(cx[k], rstd_x),
                      ln_normalised(ch[k], rstd_h));
      }
      a.dh[idx] = dh * z;
    }
    lanes.sum(gs);
    const double means[4] = {gs[0] / static_cast<double>(GH), gs[1] / static_cast<double>(GH),
                             gs[2] / static_cast<double>(GH), gs[3] / static_cast<double>(GH)};
    gate_norms_backward(dpx, dph, cx, ch, gamma_x, gamma_h, GH, rstd_x, rstd_h, means,
                        a.dgx + b * GH, a.dgh + b * GH, a.dln + b * 2 * GH, lanes);
  }
};

// The reset-before-product GRU, two phases as in gru.cuh around the second GEMM
// W_hn (r∘h_{t-1}). Its recurrent products are two, so each is normalised on its own:
//   ah_rz = LN(W_h[r,z] h_{t-1}; γ_hh[r,z]) + b_hh[r,z]     (2H)
//   ah_n  = LN(W_hn (r∘h_{t-1}); γ_hh[n]) + b_hn            (H)
//   r, z = σ(ax + ah_rz) in their slots, n = tanh(ax_n + ah_n), h_t = (1−z)∘n + z∘h_{t-1}
// Saved (S = 9, also the inference scratch: z and ax_n travel between the phases): r, z,
// n (ax_n until phase 2), the centred W_ih x (3 slots), W_h[r,z] h (2) and W_hn (r∘h) (1).
// d/d ah equals d/d ax in every slot, so backward writes dpx alone (no dph).
template <typename T, class Sig = Sigmoid>
struct LnGruRbpGatesForward : PerRow {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 9;

  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepForward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 3 * H;
    const T* gx = a.gx + b * GH;
    const T* gh = recurrent(a, b) + b * GH;  // its r and z slots
    const T* gamma_x = a.ln;
    const T* gamma_h = a.ln + GH;
    T* s = a.saved + b * kSaved * H;
    const GateNorms<T, Lanes> norm(gx, GH, gh, 2 * H, s + 3 * H, s + 6 * H, lanes);
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      T pre[2];
      for (int g = 0; g < 2; ++g) {
        const std::int64_t k = g * H + j;
        T px = gamma_x[k] * ln_normalised(norm.centred_x(gx[k]), norm.rstd_x);
        T ph = gamma_h[k] * ln_normalised(norm.centred_h(gh[k]), norm.rstd_h);
        if (a.b_ih != nullptr) {
          px += a.b_ih[k];
          ph += a.b_hh[k];
        }
        pre[g] = px + ph;
      }
      T ax_n = gamma_x[2 * H + j] * ln_normalised(norm.centred_x(gx[2 * H + j]), norm.rstd_x);
      if (a.b_ih != nullptr) ax_n += a.b_ih[2 * H + j];
      const T r = Sig::f(pre[0]), z = Sig::f(pre[1]);
      const T h_prev = prev_h(a, b, j);
      if (a.hp != nullptr) a.hp[b * a.ldhp + j] = h_prev;
      a.rh[b * H + j] = r * h_prev;
      s[0 * H + j] = r;
      s[1 * H + j] = z;
      s[2 * H + j] = ax_n;
    }
  }
};

// Phase 2: gh's n slot holds W_hn (r∘h_{t-1}).
template <typename T, class Th = Tanh>
struct LnGruRbpOutputForward : PerRow {
  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepForward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden;
    const T* ghn = a.gh + b * 3 * H + 2 * H;  // always gh, as in GruRbpOutputForward
    const T* gamma_n = a.ln + 5 * H;
    T* s = a.saved + b * 9 * H;
    const GateNorms<T, Lanes> norm(ghn, H, nullptr, 0, s + 8 * H, nullptr, lanes);
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      T ah_n = gamma_n[j] * ln_normalised(norm.centred_x(ghn[j]), norm.rstd_x);
      if (a.b_hh != nullptr) ah_n += a.b_hh[2 * H + j];
      const T z = s[1 * H + j];
      const T n = Th::f(s[2 * H + j] + ah_n);
      s[2 * H + j] = n;
      a.h[b * a.ldh + j] = (T(1) - z) * n + z * prev_h(a, b, j);
    }
  }
};

// Backward phase A: dz and dn; back through the n product's normalisation into dgh[n]
// (then drh = W_hn^T dgh[n]); dh becomes the direct part z∘dh.
template <typename T, class Sig = Sigmoid, class Th = Tanh>
struct LnGruRbpOutputBackward : PerRow {
  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepBackward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 3 * H;
    const T* s = a.saved + b * 9 * H;
    const T* ch = s + 8 * H;
    const T* gamma_n = a.ln + GH + 2 * H;
    T* dpx = a.dpx + b * GH;
    double rstd = 0, unused = 0;
    saved_rstd(ch, H, static_cast<const T*>(nullptr), 0, &rstd, &unused, lanes);
    double gs[2] = {0, 0};
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const std::int64_t idx = b * H + j;
      const T z = s[1 * H + j], n = s[2 * H + j];
      const T dh = a.dh[idx] + (a.dy != nullptr ? a.dy[b * a.ldh + j] : T(0));
      const T dn = dh * (T(1) - z) * Th::df(n);
      dpx[1 * H + j] = dh * (a.h_prev[idx] - n) * Sig::df(z);
      dpx[2 * H + j] = dn;
      a.dh[idx] = dh * z;
      const T g = dn * gamma_n[j];
      gs[0] += static_cast<double>(g);
      gs[1] += static_cast<double>(g) * ln_normalised(ch[j], rstd);
    }
    lanes.sum(gs);
    const double mean_g = gs[0] / static_cast<double>(H), mean_gh = gs[1] / static_cast<double>(H);
    T* dgh = a.dgh + b * GH + 2 * H;
    T* dln = a.dln + b * 2 * GH + GH + 2 * H;
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const T hhat = ln_normalised(ch[j], rstd);
      dgh[j] = ln_input_gradient(dpx[2 * H + j] * gamma_n[j], hhat, rstd, mean_g, mean_gh);
      dln[j] = dpx[2 * H + j] * hhat;
    }
  }
};

// Backward phase B: drh = W_hn^T dgh[n] is known; dr, rh's share of dh, then back through
// the normalisations of W_ih x (all three slots) and W_h[r,z] h.
template <typename T, class Sig = Sigmoid>
struct LnGruRbpGatesBackward : PerRow {
  template <class Lanes>
  RECUR_HD void row(std::int64_t b, const StepBackward<T>& a, Lanes& lanes) const {
    const std::int64_t H = a.hidden, GH = 3 * H;
    const T* s = a.saved + b * 9 * H;
    const T* cx = s + 3 * H;
    const T* ch = s + 6 * H;
    const T* gamma_x = a.ln;
    const T* gamma_h = a.ln + GH;
    T* dpx = a.dpx + b * GH;
    double rstd_x = 0, rstd_h = 0;
    saved_rstd(cx, GH, ch, 2 * H, &rstd_x, &rstd_h, lanes);
    for (std::int64_t j = lanes.lane(); j < H; j += lanes.lanes()) {
      const std::int64_t idx = b * H + j;
      const T r = s[j];
      const T drh = a.drh[idx];
      dpx[j] = drh * a.h_prev[idx] * Sig::df(r);
      a.dh[idx] += drh * r;
    }
    // dpx[k] for k < H is this lane's own (the loop above gave element k to lane k mod
    // lanes as this one does); the rest phase A wrote.
    double gs[4] = {0, 0, 0, 0};
    for (std::int64_t k = lanes.lane(); k < GH; k += lanes.lanes()) {
      const T gx = dpx[k] * gamma_x[k];
      gs[0] += static_cast<double>(gx);
      gs[1] += static_cast<double>(gx) * ln_normalised(cx[k], rstd_x);
      if (k < 2 * H) {
        const T gh = dpx[k] * gamma_h[k];
        gs[2] += static_cast<double>(gh);
        gs[3] += static_cast<double>(gh) * ln_normalised(ch[k], rstd_h);
      }
    }
    lanes.sum(gs);
    const double mx = gs[0] / static_cast<double>(GH), mxx = gs[1] / static_cast<double>(GH);
    const double mh = gs[2] / static_cast<double>(2 * H);
    const double mhh = gs[3] / static_cast<double>(2 * H);
    T* dgx = a.dgx + b * GH;
    T* dgh = a.dgh + b * GH;
    T* dln = a.dln + b * 2 * GH;
    for (std::int64_t k = lanes.lane(); k < GH; k += lanes.lanes()) {
      const T xhat = ln_normalised(cx[k], rstd_x);
      dgx[k] = ln_input_gradient(dpx[k] * gamma_x[k], xhat, rstd_x, mx, mxx);
      dln[k] = dpx[k] * xhat;
      if (k < 2 * H) {
        const T hhat = ln_normalised(ch[k], rstd_h);
        dgh[k] = ln_input_gradient(dpx[k] * gamma_h[k], hhat, rstd_h, mh, mhh);
        dln[GH + k] = dpx[k] * hhat;
      }
    }
  }
};

}  // namespace recur::kernels
