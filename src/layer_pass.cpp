// src/layer_pass.cpp: the time loop, forward and backward, for every cell.
#include "layer_pass.h"

namespace recur::detail {
namespace {

// C = op(A) op(B) (+ C when accumulate), column-major.
template <typename T>
Gemm<T> gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
             std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
             bool accumulate) {
  Gemm<T> g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.alpha = T(1);
  g.beta = accumulate ? T(1) : T(0);
  return g;
}

}  // namespace

template <typename T>
void layer_forward(Ops<T>& ops, const LayerShape& s, const LayerWeights<T>& w,
                   const ForwardBuffers<T>& f) {
  const std::int64_t B = s.batch, H = s.hidden, I = s.input, GH = s.gates * H, BH = B * H;
  // Input projections of all T steps at once: gx = W_ih x.
  ops.gemm(gemm(Trans::T, Trans::N, GH, s.steps * B, I, w.w_ih, I, f.x, I, f.gx, GH, false));

  for (std::int64_t t = 0; t < s.steps; ++t) {
    StepForward<T> a;
    a.batch = B;
    a.hidden = H;
    a.gx = f.gx + t * B * GH;
    a.gh = f.gh;
    a.b_ih = w.b_ih;
    a.b_hh = w.b_hh;
    a.h_prev = f.hs + t * BH;
    a.h = f.hs + (t + 1) * BH;
    if (f.cs != nullptr) {
      a.c_prev = f.cs + t * BH;
      a.c = f.cs + (t + 1) * BH;
    }
    if (f.saved != nullptr) a.saved = f.training ? f.saved + t * B * s.saved_slots * H : f.saved;

    if (s.reset_before_product) {
      a.rh = f.training ? f.rh + t * BH : f.rh;
      // gh[r, z] = W_h[r, z] h_{t-1}; then r, z and rh = r*h_{t-1}.
      ops.gemm(gemm(Trans::T, Trans::N, 2 * H, B, H, w.w_hh, H, a.h_prev, H, f.gh, GH, false));
      ops.step_forward(StepKind::GruRbpGates, a);
      // gh[n] = W_hn rh; then n and h_t.
      ops.gemm(gemm(Trans::T, Trans::N, H, B, H, w.w_hh + 2 * H * H, H, a.rh, H, f.gh + 2 * H, GH,
                    false));
      ops.step_forward(StepKind::GruRbpOutput, a);
    } else {
      ops.gemm(gemm(Trans::T, Trans::N, GH, B, H, w.w_hh, H, a.h_prev, H, f.gh, GH, false));
      ops.step_forward(s.kind, a);
    }
  }
}

template <typename T>
void layer_backward(Ops<T>& ops, const LayerShape& s, const LayerWeights<T>& w,
                    const LayerGrads<T>& g, const ForwardBuffers<T>& f,
                    const BackwardBuffers<T>& b) {
  const std::int64_t B = s.batch, H = s.hidden, I = s.input, GH = s.gates * H, BH = B * H;
  const std::int64_t TB = s.steps * B;

  for (std::int64_t t = s.steps - 1; t >= 0; --t) {
    StepBackward<T> a;
    a.batch = B;
    a.hidden = H;
    a.dy = b.dy != nullptr ? b.dy + t * BH : nullptr;
    a.h = f.hs + (t + 1) * BH;
    a.h_prev = f.hs + t * BH;
    if (f.cs != nullptr) {
      a.c = f.cs + (t + 1) * BH;
      a.c_prev = f.cs + t * BH;
    }
    if (f.saved != nullptr) a.saved = f.saved + t * B * s.saved_slots * H;
    a.dh = b.dh;
    a.dc = b.dc;
    a.dgx = b.dgx + t * B * GH;
    a.dgh = b.dgh + t * B * GH;

    if (s.reset_before_product) {
      a.drh = b.drh;
      ops.step_backward(StepKind::GruRbpOutput, a);
      // drh = W_hn^T dn
      ops.gemm(gemm(Trans::N, Trans::N, H, B, H, w.w_hh + 2 * H * H, H, a.dgx + 2 * H, GH, b.drh, H,
                    false));
      ops.step_backward(StepKind::GruRbpGates, a);
      // dh_{t-1} += W_h[r, z]^T d[r, z]
      ops.gemm(gemm(Trans::N, Trans::N, H, B, 2 * H, w.w_hh, H, a.dgx, GH, b.dh, H, true));
    } else {
      ops.step_backward(s.kind, a);
      // dh_{t-1} += W_hh^T dgh_t
      ops.gemm(gemm(Trans::N, Trans::N, H, B, GH, w.w_hh, H, a.dgh, GH, b.dh, H, true));
    }
  }

  // Weight gradients of all steps, one GEMM each: dW_ih^T += x dgx^T, dW_hh^T += h_prev dgh^T.
  ops.gemm(gemm(Trans::N, Trans::T, I, GH, TB, f.x, I, b.dgx, GH, g.w_ih, I, true));
  if (s.reset_before_product) {
    ops.gemm(gemm(Trans::N, Trans::T, H, 2 * H, TB, f.hs, H, b.dgx, GH, g.w_hh, H, true));
    ops.gemm(gemm(Trans::N, Trans::T, H, H, TB, f.rh, H, b.dgx + 2 * H, GH, g.w_hh + 2 * H * H, H,
                  true));
  } else {
    ops.gemm(gemm(Trans::N, Trans::T, H, GH, TB, f.hs, H, b.dgh, GH, g.w_hh, H, true));
  }
  // Bias gradients: sums over all T*B columns, as GEMMs with a vector of ones.
  if (g.b_ih != nullptr) {
    ops.gemm(gemm(Trans::N, Trans::N, GH, 1, TB, b.dgx, GH, b.ones, TB, g.b_ih, GH, true));
    ops.gemm(gemm(Trans::N, Trans::N, GH, 1, TB, b.dgh, GH, b.ones, TB, g.b_hh, GH, true));
  }
  // dx = W_ih^T dgx for all steps at once.
  ops.gemm(gemm(Trans::N, Trans::N, I, TB, GH, w.w_ih, I, b.dgx, GH, b.dx, I, false));
}

template void layer_forward(Ops<float>&, const LayerShape&, const LayerWeights<float>&,
                            const ForwardBuffers<float>&);
template void layer_forward(Ops<double>&, const LayerShape&, const LayerWeights<double>&,
                            const ForwardBuffers<double>&);
template void layer_backward(Ops<float>&, const LayerShape&, const LayerWeights<float>&,
                             const LayerGrads<float>&, const ForwardBuffers<float>&,
                             const BackwardBuffers<float>&);
template void layer_backward(Ops<double>&, const LayerShape&, const LayerWeights<double>&,
                             const LayerGrads<double>&, const ForwardBuffers<double>&,
                             const BackwardBuffers<double>&);

}  // namespace recur::detail
