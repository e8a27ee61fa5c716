// src/engine/buffer_layout.cpp: where a pass's buffers lie in its workspace, as the pass
// plan says (src/pass/buffers.h).
#include "engine_impl.h"

namespace recur::detail {
namespace {

// Where a pass recomputes layers, a unit's step buffers are the same direction's unit's one
// layer below (`below`); elsewhere, and for the first layer (below == null), fresh ones.
template <typename T>
T* take_or_share(Carver<T>& c, const UnitBuffers<T>* below, T* UnitBuffers<T>::*buffer,
                 std::int64_t n) {
  return below != nullptr ? below->*buffer : c.take(n);
}

// The unit whose step buffers unit u shares (the same direction's one layer below), or null.
template <typename T>
const UnitBuffers<T>* shared_below(const Plan& plan, const StackBuffers<T>& b, int u,
                                   bool recomputes_layers) {
  return recomputes_layers && plan.units[u].layer > 0 ? &b.units[u - plan.directions] : nullptr;
}

}  // namespace

template <typename T>
T* EngineImpl<T>::lay_out_forward(Carver<T>& c, StackBuffers<T>& b, const Saved<T>& s, const T* x,
                                  std::int64_t own_index_words) const {
  const PassPlan& pass = s.pass;
  const Timeline& tl = s.timeline;
  const bool training = pass.training;
  const std::int64_t B = tl.batch, R = tl.rows();
  const std::int64_t H = plan_.config.hidden_size, BH = B * H, DH = plan_.output_size();
  const std::int64_t I = plan_.config.input_size, GH = plan_.gates * H;
  const bool lstm = plan_.config.cell == CellKind::Lstm;
  const bool rbp = plan_.config.cell == CellKind::GruResetBeforeProduct;
  const int L = static_cast<int>(plan_.config.num_layers), D = plan_.directions;
  b = StackBuffers<T>();
  b.acts.assign(plan_.activations.size(), {});
  // Training keeps layer 0's h_{t-1} beside x in x's copy.
  const bool beside_x = pass.hp_beside_x;
  const std::int64_t O = plan_.state_size();
  b.acts[0].ld = beside_x ? I + O : I;
  b.acts[0].ld_grad = I;
  // backward needs x after the caller may have reused it; other layouts are gathered
  b.acts[0].data = training || !s.rows_as_given ? c.take(R * b.acts[0].ld) : const_cast<T*>(x);
  for (int l = 0; l < L; ++l) {
    const LayerPlan& layer = plan_.layers[l];
    b.ys.push_back(c.take((B + R + B) * DH));
    ActivationBuffers<T>& y = b.acts[layer.output];
    y.data = b.ys.back() == nullptr ? nullptr : b.ys.back() + B * DH;
    y.ld = DH;
    if (layer.next_input != layer.output) {  // dropout: a dropped copy in training, else y itself
      b.acts[layer.next_input].data = training ? c.take(R * DH) : y.data;
      b.acts[layer.next_input].ld = DH;
    }
    const Join& j = layer.join;
    b.gates.push_back(j.kind == Connection::Highway ? c.take(R * DH) : nullptr);
    if (j.kind != Connection::None) {
      b.acts[j.out].data = c.take(R * DH);
      b.acts[j.out].ld = DH;
    }
  }
  // A pass that recomputes layers keeps each direction's step buffers once: every layer
  // above the first reuses the layer below's (`below`), since a layer's steps are rebuilt
  // just before its backward. So each is taken at the largest size any layer needs.
  bool any_gx_rows = false;  // some layer projects its input for all steps at once
  for (bool in_steps : pass.projects_in_steps) any_gx_rows = any_gx_rows || !in_steps;
  for (int u = 0; u < L * D; ++u) {
    const int layer = plan_.units[u].layer;
    const UnitBuffers<T>* below = shared_below(plan_, b, u, pass.recomputes_layers);
    auto take = [&](T* UnitBuffers<T>::*buffer, std::int64_t n) {
      return take_or_share(c, below, buffer, n);
    };
    UnitBuffers<T> ub;
    if (lstm) ub.cs = c.take((B + R + B) * H);
    ub.gx_in_steps = pass.projects_in_steps[layer];
    const bool gx_rows = pass.recomputes_layers ? any_gx_rows : !ub.gx_in_steps;
    ub.gx = take(&UnitBuffers<T>::gx, (gx_rows ? R : B) * GH);
    ub.gh = take(&UnitBuffers<T>::gh, B * GH);
    if (pass.weights == StepWeights::Transposed) {  // the forward's, kept for backward's rebuild
      ub.w_t = c.take(GH * O);
      if (pass.wavefront && layer > 0) {
        ub.w_ih_t = c.take(GH * plan_.layers[layer].input_size);
      }
    }
    if (plan_.units[u].dir == 1 && !tl.uniform) ub.g0 = take(&UnitBuffers<T>::g0, B * GH);
    if (training && u == 0 && beside_x) {
      ub.hp = b.acts[0].data == nullptr ? nullptr : b.acts[0].data + I;
      ub.ldhp = I + O;
      ub.hp_beside_x = true;
    } else if (training) {
      // (layer 0's forward unit keeps its h_{t-1} beside x: nothing to share there)
      ub.hp = below != nullptr && !below->hp_beside_x ? below->hp : c.take(R * O);
      ub.ldhp = O;
    }
    if (plan_.projects()) ub.m = take(&UnitBuffers<T>::m, (training ? R : B) * H);
    if (training) {
      ub.saved = take(&UnitBuffers<T>::saved, R * H * plan_.saved_slots);
    } else if (rbp) {
      ub.saved = c.take(BH * plan_.saved_slots);  // z travels between the two phases
    }
    if (rbp) ub.rh = take(&UnitBuffers<T>::rh, (training ? R : B) * H);
    b.units.push_back(ub);
  }
  return c.take(own_index_words);
}

template <typename T>
void EngineImpl<T>::lay_out_backward(Carver<T>& c, StackBuffers<T>& b, const Timeline& tl,
                                     bool recomputes_layers, bool rows_as_given, T* dx, T** dh,
                                     T** dc) const {
  const std::int64_t B = tl.batch, R = tl.rows();
  const std::int64_t H = plan_.config.hidden_size, BH = B * H, DH = plan_.output_size();
  const std::int64_t I = plan_.config.input_size, GRH = R * plan_.gates * H;
  const bool lstm = plan_.config.cell == CellKind::Lstm;
  const bool rbp = plan_.config.cell == CellKind::GruResetBeforeProduct;
  const bool lbr = plan_.config.cell == CellKind::GruLinearBeforeReset;
  const bool ln = plan_.config.layer_norm;
  const int L = static_cast<int>(plan_.config.num_layers), D = plan_.directions;
  b.acts[0].grad = rows_as_given ? dx : c.take(R * I);
  for (std::size_t a = 1; a < b.acts.size(); ++a) {
    b.acts[a].grad = c.take(R * plan_.activations[a].width);
  }
  b.dgates.assign(L, nullptr);
  for (int l = 0; l < L; ++l) {
    if (plan_.layers[l].join.kind == Connection::Highway) b.dgates[l] = c.take(R * DH);
  }
  const std::int64_t O = plan_.state_size();
  *dh = c.take(L * D * B * O);  // in sorted order; unsorted into dh0 at the end
  b.dw_scratch = b.units[0].hp_beside_x ? c.take(plan_.gates * H * b.acts[0].ld) : nullptr;
  if (lstm) *dc = c.take(L * D * BH);
  // Recomputing layers, a layer's backward buffers are done with once its weight
  // gradients are in: the layers of one direction share them, as their step buffers.
  for (int u = 0; u < L * D; ++u) {
    UnitBuffers<T>& ub = b.units[u];
    const UnitBuffers<T>* below = shared_below(plan_, b, u, recomputes_layers);
    auto take = [&](T* UnitBuffers<T>::*buffer, std::int64_t n) {
      return take_or_share(c, below, buffer, n);
    };
    ub.dgx = take(&UnitBuffers<T>::dgx, GRH);
    ub.dgh = lbr || ln ? take(&UnitBuffers<T>::dgh, GRH) : ub.dgx;
    if (ln) {
      ub.dpx = take(&UnitBuffers<T>::dpx, GRH);
      if (lbr) ub.dph = take(&UnitBuffers<T>::dph, GRH);  // the other cells' d/d ah is dpx
      ub.dln = take(&UnitBuffers<T>::dln, R * plan_.ln_width);
    }
    if (rbp) ub.drh = take(&UnitBuffers<T>::drh, BH);
    if (plan_.projects()) {
      ub.dproj = take(&UnitBuffers<T>::dproj, R * O);
      ub.dm = take(&UnitBuffers<T>::dm, BH);
    }
    ub.dh = *dh == nullptr ? nullptr : *dh + u * B * O;
    ub.dc = *dc == nullptr ? nullptr : *dc + u * BH;
  }
  b.ones = c.take(2 * R);
}

#define RECUR_ENGINE_BUFFER_LAYOUT(T)                                                          \
  template T* EngineImpl<T>::lay_out_forward(Carver<T>&, StackBuffers<T>&, const Saved<T>&,    \
                                             const T*, std::int64_t) const;                    \
  template void EngineImpl<T>::lay_out_backward(Carver<T>&, StackBuffers<T>&, const Timeline&, \
                                                bool, bool, T*, T**, T**) const;
RECUR_ENGINE_BUFFER_LAYOUT(float)
RECUR_ENGINE_BUFFER_LAYOUT(double)
#undef RECUR_ENGINE_BUFFER_LAYOUT

}  // namespace recur::detail
