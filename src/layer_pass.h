// src/layer_pass.h: one layer in one direction over all T steps, forward and backward,
// written once against Ops<T>.
//
// Buffers follow the "T+1 slots" convention: hs[0] = h0 and hs[t+1] = h_t, so step t
// reads slot t and writes slot t+1 and there is no special first step; hs[0..T) is also
// the matrix of all h_{t-1}, which makes dW_hh one GEMM. Matrices are column-major views
// of row-major tensors: x [T, B, I] is I x (T*B) with ld I, a weight [G*H, I] is its
// transpose I x G*H with ld I, so W x becomes gemm(T, N).
#pragma once

#include <cstdint>

#include "ops.h"

namespace recur::detail {

template <typename T>
struct LayerWeights {
  const T* w_ih = nullptr;  // [G*H, I]
  const T* w_hh = nullptr;  // [G*H, H]
  const T* b_ih = nullptr;  // [G*H] or nullptr
  const T* b_hh = nullptr;  // [G*H] or nullptr
};

template <typename T>
struct LayerGrads {
  T* w_ih = nullptr;
  T* w_hh = nullptr;
  T* b_ih = nullptr;
  T* b_hh = nullptr;
};

struct LayerShape {
  std::int64_t steps = 0, batch = 0, input = 0, hidden = 0;
  int gates = 0;        // G
  int saved_slots = 0;  // S
  StepKind kind = StepKind::Lstm;
  bool reset_before_product = false;  // GRU (Cho): two step kernels and two GEMMs
};

// What a forward pass reads and writes. hs, cs: [T+1, B, H] (cs for LSTM only);
// gx: [T, B, G*H]; gh: [B, G*H]; saved: [T, B, S*H] in training, or for the
// reset-before-product GRU in inference a [B, S*H] scratch, else nullptr; rh: [T, B, H] in
// training, [B, H] in inference (reset-before-product only).
template <typename T>
struct ForwardBuffers {
  const T* x = nullptr;  // [T, B, I]
  T* hs = nullptr;
  T* cs = nullptr;
  T* gx = nullptr;
  T* gh = nullptr;
  T* saved = nullptr;
  T* rh = nullptr;
  bool training = false;
};

// What a backward pass reads and writes, beside the forward buffers it consumes.
// dgx, dgh: [T, B, G*H] (dgh may equal dgx except for the linear-before-reset GRU);
// dh, dc: [B, H], in: dJ/dh_T, dJ/dc_T; out: dJ/dh_0, dJ/dc_0; drh: [B, H] scratch;
// ones: [T*B] of 1s (bias gradients as GEMMs); dx: [T, B, I] out.
template <typename T>
struct BackwardBuffers {
  const T* dy = nullptr;  // [T, B, H] or nullptr
  T* dgx = nullptr;
  T* dgh = nullptr;
  T* dh = nullptr;
  T* dc = nullptr;
  T* drh = nullptr;
  const T* ones = nullptr;
  T* dx = nullptr;
};

template <typename T>
void layer_forward(Ops<T>& ops, const LayerShape& s, const LayerWeights<T>& w,
                   const ForwardBuffers<T>& f);

// Adds the parameter gradients into g and writes dx, dh, dc.
template <typename T>
void layer_backward(Ops<T>& ops, const LayerShape& s, const LayerWeights<T>& w,
                    const LayerGrads<T>& g, const ForwardBuffers<T>& f,
                    const BackwardBuffers<T>& b);

}  // namespace recur::detail
