// src/engine/memory_model.cpp: the bytes a pass lays out, told before it runs
// (Rnn::step_memory), and the Error for a pass that could never fit.
#include <algorithm>
#include <string>

#include "../memory.h"
#include "engine_impl.h"
#include "recur/error.h"

namespace recur::detail {

template <typename T>
PassMemory EngineImpl<T>::memory(std::int64_t steps, std::int64_t batch,
                                 const std::vector<std::int64_t>& lengths, bool training,
                                 std::int64_t segment_steps, bool recompute_layers) {
  Saved<T> s;
  s.timeline = lengths.empty() ? Timeline::full(steps, batch) : Timeline::packed(lengths);
  s.rows_as_given = lengths.empty() && !plan_.config.batch_first;
  s.steps = steps;
  s.batch = batch;
  s.pass = make_pass_plan(plan_, s.timeline, training, capabilities_of(*ops_, plan_, s.timeline),
                          ops_->tuning());
  if (recompute_layers) recompute_by_layers(s.pass, plan_, s.timeline);
  s.maps = RowMaps(s.timeline, steps, plan_.config.batch_first,
                   static_cast<int>(plan_.config.num_layers) * plan_.directions);
  const std::int64_t own_words = own_index_words(s.maps, training);
  if (segment_steps > 0) {
    s.segment = segment_steps;
    return recomputed_memory(s, own_words);
  }
  return memory_of(s, own_words);
}

template <typename T>
PassMemory EngineImpl<T>::recomputed_memory(const Saved<T>& s, std::int64_t own_index_words) const {
  const auto size = static_cast<std::int64_t>(sizeof(T));
  Saved<T> seg;
  seg.timeline = s.timeline.window(0, std::min(s.timeline.steps, s.segment));
  seg.rows_as_given = true;
  seg.steps = seg.timeline.steps;
  seg.batch = s.batch;
  seg.pass = make_pass_plan(plan_, seg.timeline, true, capabilities_of(*ops_, plan_, seg.timeline),
                            ops_->tuning());
  PassMemory m = memory_of(seg, 0);
  Saved<T> kept_only;  // lay_out_kept's pointers go here, not into s
  kept_only.timeline = s.timeline;
  kept_only.segment = s.segment;
  Carver<T> kept(nullptr);
  lay_out_kept(kept, kept_only, own_index_words);
  const std::int64_t states = state_elements(s.batch);
  m.saved += kept.used() * size;
  // The caller's y and dx, the final states and their gradients; and the larger of the
  // forward's scratch (y in timeline rows where the caller's layout is another, the final
  // states) and backward's (dJ/dh and dJ/dc, dx in timeline rows likewise).
  const std::int64_t R = s.timeline.rows(), DH = plan_.output_size();
  const std::int64_t I = plan_.config.input_size;
  const std::int64_t forward_scratch = (s.rows_as_given ? 0 : R * DH) + states;
  const std::int64_t backward_scratch = (s.rows_as_given ? 0 : R * I) + states;
  m.outputs =
      (s.steps * s.batch * (DH + I) + 2 * states + std::max(forward_scratch, backward_scratch)) *
      size;
  return m;
}

template <typename T>
PassMemory EngineImpl<T>::memory_of(const Saved<T>& s, std::int64_t own_index_words) const {
  const auto size = static_cast<std::int64_t>(sizeof(T));
  const Timeline& tl = s.timeline;
  const std::int64_t B = tl.batch, H = plan_.config.hidden_size, DH = plan_.output_size();
  const std::int64_t I = plan_.config.input_size, GH = plan_.gates * H;
  const std::int64_t states = state_elements(B);
  const bool training = s.pass.training;
  PassMemory m;
  StackBuffers<T> b;
  Carver<T> forward(nullptr);
  lay_out_forward(forward, b, s, nullptr, own_index_words);
  m.saved = forward.used() * size;
  m.outputs = (s.steps * B * DH + states) * size;  // y, h_n, c_n
  // The zeros that stand for states the caller does not pass (this->zeros).
  m.workspace = plan_.config.num_layers * plan_.directions * B * H * size;
  if (training) {
    Carver<T> backward(nullptr);
    T* dh = nullptr;
    T* dc = nullptr;
    lay_out_backward(backward, b, tl, s.pass.recomputes_layers, s.rows_as_given, nullptr, &dh, &dc);
    m.workspace += backward.used() * size;
    m.outputs += (s.steps * B * I + states) * size;  // dx, dh0, dc0
  }
  if (s.pass.weights == StepWeights::Packed) {
    // What StackPass::hold_step_weights holds: every unit's recurrent weights, and W_ih
    // forward where the input is projected in the steps (or, in a wavefront, above layer
    // 0), backward always (the input gradients).
    std::int64_t forward_held = 0, backward_held = 0;
    for (const UnitOffsets& u : plan_.units) {
      const std::int64_t w_ih = GH * plan_.layers[u.layer].input_size;
      forward_held += plan_.step_weight_elements();
      if (s.pass.projects_in_steps[u.layer] || (s.pass.wavefront && u.layer > 0)) {
        forward_held += w_ih;
      }
      if (training) backward_held += plan_.step_weight_elements() + w_ih;
    }
    m.weight_copies = ops_->held_weight_bytes(forward_held, backward_held);
  }
  return m;
}

template <typename T>
std::int64_t EngineImpl<T>::state_elements(std::int64_t batch) const {
  const std::int64_t units = plan_.config.num_layers * plan_.directions;
  return units * batch *
         (plan_.state_size() + (has_cell_state(plan_.config.cell) ? plan_.config.hidden_size : 0));
}

template <typename T>
void EngineImpl<T>::check_fits(const PassMemory& m, std::int64_t steps, std::int64_t batch) const {
  const std::uint64_t have = device_memory_bytes(device_);
  const std::int64_t need = m.total();
  if (have == 0 || static_cast<std::uint64_t>(need) <= have) return;
  const char* part = "the activations saved for backward";
  std::int64_t most = m.saved;
  if (m.workspace > most) part = "the backward workspace", most = m.workspace;
  if (m.outputs > most) part = "the outputs and input gradients", most = m.outputs;
  if (m.weight_copies > most) part = "the weights' working copies", most = m.weight_copies;
  throw Error("Rnn::forward", "x",
              "a pass whose memory fits in the " + device_.str() + " device's " +
                  std::to_string(have) + " bytes",
              "T = " + std::to_string(steps) + ", B = " + std::to_string(batch) + ": " +
                  std::to_string(need) + " bytes, the most of it " + part + " (" +
                  std::to_string(most) + " bytes)");
}

#define RECUR_ENGINE_MEMORY_MODEL(T)                                                           \
  template PassMemory EngineImpl<T>::memory(                                                   \
      std::int64_t, std::int64_t, const std::vector<std::int64_t>&, bool, std::int64_t, bool); \
  template PassMemory EngineImpl<T>::recomputed_memory(const Saved<T>&, std::int64_t) const;   \
  template PassMemory EngineImpl<T>::memory_of(const Saved<T>&, std::int64_t) const;           \
  template std::int64_t EngineImpl<T>::state_elements(std::int64_t) const;                     \
  template void EngineImpl<T>::check_fits(const PassMemory&, std::int64_t, std::int64_t) const;
RECUR_ENGINE_MEMORY_MODEL(float)
RECUR_ENGINE_MEMORY_MODEL(double)
#undef RECUR_ENGINE_MEMORY_MODEL

}  // namespace recur::detail
