// src/engine/recompute.cpp: a training forward that keeps only x and the states at each
// segment's start, and its backward, which runs each segment's forward again, last
// segment first (docs/design.md, "Recomputation").
#include <algorithm>

#include "../pass/stack_pass.h"
#include "engine_impl.h"

namespace recur::detail {

template <typename T>
ForwardResult EngineImpl<T>::forward_recomputed(
    const TensorView& x, const TensorView& h0, const TensorView& c0,
    const std::vector<std::int64_t>& lengths, std::uint64_t dropout_seed,
    std::uint64_t dropout_stream, const TensorView& params, std::int64_t segment_steps,
    std::unique_ptr<SavedState>* saved) {
  OpsScope<T> scope(*ops_);
  std::unique_ptr<Saved<T>> state = new_state(x, lengths);
  Saved<T>& s = *state;
  const bool batch_first = plan_.config.batch_first;
  const std::int64_t caller_steps = s.steps, B = s.batch;
  const Timeline& tl = s.timeline;
  s.segment = segment_steps;
  const std::int64_t H = plan_.config.hidden_size, O = plan_.state_size(), DH = plan_.output_size();
  const std::int64_t I = plan_.config.input_size, R = tl.rows();
  const bool lstm = plan_.config.cell == CellKind::Lstm;
  const int LD = static_cast<int>(plan_.config.num_layers) * plan_.directions;
  const std::int64_t h_states = LD * B * O, c_states = lstm ? LD * B * H : 0;
  const std::int64_t segments = (tl.steps + segment_steps - 1) / segment_steps;
  s.maps = RowMaps(tl, caller_steps, batch_first, LD);
  const RowMaps& maps = s.maps;
  const std::int64_t own_words = own_index_words(maps, true);
  check_fits(recomputed_memory(s, own_words), caller_steps, B);
  stage_rows_and_carve(s, own_words,
                       [&](Carver<T>& c, std::int64_t words) { return lay_out_kept(c, s, words); });
  const std::int64_t* rows = s.rows;
  s.buffers.dropout_seed = dropout_seed;
  s.buffers.dropout_stream = dropout_stream;
  if (s.rows_as_given) {
    ops_->copy(s.xs, x.data_as<T>(), R * I);
  } else {
    gather(s.xs, I, x.data_as<T>(), I, rows + maps.to_packed, R, I);
  }
  set_state(s.starts_h, O, O, h0, rows + maps.state_in, LD * B);  // the first segment's start
  if (lstm) set_state(s.starts_c, H, H, c0, rows + maps.state_in, LD * B);

  ForwardResult out;
  out.y = Tensor::empty(batch_first ? Shape{B, caller_steps, DH} : Shape{caller_steps, B, DH},
                        dtype_of<T>(), device_);
  out.h_n = Tensor::empty({LD, B, O}, dtype_of<T>(), device_);
  if (lstm) out.c_n = Tensor::empty({LD, B, H}, dtype_of<T>(), device_);
  // y in timeline rows (the caller's y itself where those are the caller's rows), and the
  // final states in sorted order.
  Tensor scratch =
      Tensor::empty({(s.rows_as_given ? 0 : R * DH) + h_states + c_states}, dtype_of<T>(), device_);
  T* last_h = scratch.data_as<T>();
  T* last_c = lstm ? last_h + h_states : nullptr;
  T* y_rows = s.rows_as_given ? out.y.data_as<T>() : last_h + h_states + c_states;
  for (std::int64_t k = 0; k < segments; ++k) {
    Saved<T> seg;
    forward_segment(s, k, params, seg);
    const Timeline& w = seg.timeline;
    const std::int64_t t0 = k * segment_steps, t1 = t0 + w.steps;
    ops_->copy(y_rows + tl.offset[t0] * DH, seg.buffers.acts[plan_.output].data, w.rows() * DH);
    // The states of the sequences that end in this segment are final; the others' at its
    // last step start the next segment.
    for (int u = 0; u < LD; ++u) {
      const T* ys = seg.buffers.ys[plan_.units[u].layer];
      const T* cs = seg.buffers.units[u].cs;
      auto keep = [&](T* h_to, T* c_to, std::int64_t e, std::int64_t lo, std::int64_t hi) {
        const std::int64_t row = B + w.offset[e - t0] + lo;  // Y_l's row of (step e, lo)
        ops_->copy_rows(h_to + lo * O, O, ys + row * DH, DH, hi - lo, O);
        if (lstm) ops_->copy_rows(c_to + lo * H, H, cs + row * H, H, hi - lo, H);
      };
      T* final_c = lstm ? last_c + u * B * H : nullptr;
      for (std::int64_t e = t0; e < t1; ++e) {
        const std::int64_t lo = e + 1 < tl.steps ? tl.active[e + 1] : 0;
        if (tl.active[e] > lo) keep(last_h + u * B * O, final_c, e, lo, tl.active[e]);
      }
      if (k + 1 < segments) {
        T* next_c = lstm ? s.starts_c + (k + 1) * c_states + u * B * H : nullptr;
        keep(s.starts_h + (k + 1) * h_states + u * B * O, next_c, t1 - 1, 0, tl.active[t1]);
      }
    }
  }
  if (!s.rows_as_given) {
    gather(out.y.data_as<T>(), DH, y_rows, DH, rows + maps.to_caller, caller_steps * B, DH);
  }
  gather(out.h_n.data_as<T>(), O, last_h, O, rows + maps.state_out, LD * B, O);
  if (lstm) gather(out.c_n.data_as<T>(), H, last_c, H, rows + maps.state_out, LD * B, H);
  *saved = std::move(state);
  return out;
}

template <typename T>
void EngineImpl<T>::forward_segment(const Saved<T>& s, std::int64_t k, const TensorView& params,
                                    Saved<T>& seg) {
  const Timeline& tl = s.timeline;
  const std::int64_t t0 = k * s.segment, t1 = std::min(tl.steps, t0 + s.segment);
  const std::int64_t B = tl.batch, H = plan_.config.hidden_size, DH = plan_.output_size();
  const std::int64_t I = plan_.config.input_size, O = plan_.state_size();
  const auto units = static_cast<std::int64_t>(plan_.units.size());
  seg.pool = pool_;
  seg.timeline = tl.window(t0, t1);
  seg.rows_as_given = true;
  seg.steps = t1 - t0;
  seg.batch = B;
  seg.pass = make_pass_plan(plan_, seg.timeline, true, capabilities_of(*ops_, plan_, seg.timeline),
                            ops_->tuning());
  StackBuffers<T>& b = seg.buffers;
  seg.storage = carve(*pool_, [&](Carver<T>& c) { lay_out_forward(c, b, seg, nullptr, 0); });
  b.dropout_seed = s.buffers.dropout_seed;
  b.dropout_stream = s.buffers.dropout_stream;
  b.dropout_row0 = tl.offset[t0];
  ops_->copy_rows(b.acts[0].data, b.acts[0].ld, s.xs + tl.offset[t0] * I, I, seg.timeline.rows(),
                  I);
  for (int u = 0; u < static_cast<int>(plan_.units.size()); ++u) {
    const T* h = s.starts_h + (k * units + u) * B * O;
    ops_->copy_rows(b.ys[plan_.units[u].layer], DH, h, O, B, O);
    if (s.starts_c != nullptr) {
      ops_->copy_rows(b.units[u].cs, H, s.starts_c + (k * units + u) * B * H, H, B, H);
    }
  }
  ops_->statistics() = PassStatistics();
  StackPass<T>(plan_, seg.pass, *ops_, seg.timeline, b, params.data_as<T>()).forward();
  forward_statistics_ = with_plan(ops_->statistics(), seg.pass, false);
}

template <typename T>
BackwardResult EngineImpl<T>::backward_recomputed(Saved<T>& s, const TensorView& dy,
                                                  const TensorView& dh_n, const TensorView& dc_n,
                                                  const TensorView& params, const TensorView& grads,
                                                  double* flow) {
  const Timeline& tl = s.timeline;
  const std::int64_t B = tl.batch, R = tl.rows(), H = plan_.config.hidden_size;
  const std::int64_t I = plan_.config.input_size, O = plan_.state_size();
  const bool lstm = plan_.config.cell == CellKind::Lstm;
  const bool batch_first = plan_.config.batch_first;
  const int LD = static_cast<int>(plan_.config.num_layers) * plan_.directions;
  const std::int64_t h_states = LD * B * O, c_states = lstm ? LD * B * H : 0;
  const RowMaps& maps = s.maps;
  const std::int64_t* rows = s.rows;
  BackwardResult out;
  out.dx = Tensor::empty(batch_first ? Shape{B, s.steps, I} : Shape{s.steps, B, I}, dtype_of<T>(),
                         device_);
  out.dh0 = Tensor::empty({LD, B, O}, dtype_of<T>(), device_);
  if (lstm) out.dc0 = Tensor::empty({LD, B, H}, dtype_of<T>(), device_);
  // dJ/dh and dJ/dc in sorted order, and dx in timeline rows (the caller's dx itself where
  // those are the caller's rows).
  Tensor scratch =
      Tensor::empty({h_states + c_states + (s.rows_as_given ? 0 : R * I)}, dtype_of<T>(), device_);
  T* dh = scratch.data_as<T>();
  T* dc = lstm ? dh + h_states : nullptr;
  T* dx_rows = s.rows_as_given ? out.dx.data_as<T>() : dh + h_states + c_states;
  set_state(dh, O, O, dh_n, rows + maps.state_in, LD * B);
  if (lstm) set_state(dc, H, H, dc_n, rows + maps.state_in, LD * B);
  const std::int64_t segments = (tl.steps + s.segment - 1) / s.segment;
  for (std::int64_t k = segments - 1; k >= 0; --k) {
    Saved<T> seg;
    forward_segment(s, k, params, seg);
    const Timeline& w = seg.timeline;
    const std::int64_t t0 = k * s.segment, r0 = tl.offset[t0], Rw = w.rows();
    StackBuffers<T>& b = seg.buffers;
    T* unused_dh = nullptr;
    T* unused_dc = nullptr;
    // dx's rows in the arena, not in place: every segment's pass then reads and writes the
    // same addresses, so a GPU records its step lists once and replays them.
    backward_arena_.carve(device_, [&](Carver<T>& c) {
      lay_out_backward(c, b, w, false, false, nullptr, &unused_dh, &unused_dc);
    });
    for (int u = 0; u < LD; ++u) {
      b.units[u].dh = dh + u * B * O;
      b.units[u].dc = dc == nullptr ? nullptr : dc + u * B * H;
    }
    for (std::size_t a = 0; a < b.acts.size(); ++a) {
      const std::int64_t width = plan_.activations[a].width;
      if (static_cast<int>(a) == plan_.output && dy.defined()) {
        if (s.rows_as_given) {
          ops_->copy(b.acts[a].grad, dy.data_as<T>() + r0 * width, Rw * width);
        } else {
          gather(b.acts[a].grad, width, dy.data_as<T>(), width, rows + maps.to_packed + r0, Rw,
                 width);
        }
      } else {
        ops_->fill(b.acts[a].grad, Rw * width, T(0));
      }
    }
    ops_->fill(const_cast<T*>(b.ones), 2 * Rw, T(1));
    b.flow = flow == nullptr ? nullptr : flow + t0;  // written at [unit * steps + t]
    b.flow_steps = s.steps;
    ops_->statistics() = PassStatistics();
    StackPass<T>(plan_, seg.pass, *ops_, w, b, params.data_as<T>()).backward(grads.data_as<T>());
    backward_statistics_ = with_plan(ops_->statistics(), seg.pass, true);
    ops_->copy(dx_rows + r0 * I, b.acts[0].grad, Rw * I);
  }
  if (!s.rows_as_given) {
    gather(out.dx.data_as<T>(), I, dx_rows, I, rows + maps.to_caller, s.steps * B, I);
  }
  gather(out.dh0.data_as<T>(), O, dh, O, rows + maps.state_out, LD * B, O);
  if (lstm) gather(out.dc0.data_as<T>(), H, dc, H, rows + maps.state_out, LD * B, H);
  return out;
}

template <typename T>
T* EngineImpl<T>::lay_out_kept(Carver<T>& c, Saved<T>& s, std::int64_t own_index_words) const {
  const Timeline& tl = s.timeline;
  const auto states = static_cast<std::int64_t>(plan_.units.size()) * tl.batch;
  const std::int64_t segments = (tl.steps + s.segment - 1) / s.segment;
  s.xs = c.take(tl.rows() * plan_.config.input_size);
  s.starts_h = c.take(segments * states * plan_.state_size());
  s.starts_c = plan_.config.cell == CellKind::Lstm
                   ? c.take(segments * states * plan_.config.hidden_size)
                   : nullptr;
  return c.take(own_index_words);
}

#define RECUR_ENGINE_RECOMPUTE(T)                                                                \
  template ForwardResult EngineImpl<T>::forward_recomputed(                                      \
      const TensorView&, const TensorView&, const TensorView&, const std::vector<std::int64_t>&, \
      std::uint64_t, std::uint64_t, const TensorView&, std::int64_t,                             \
      std::unique_ptr<SavedState>*);                                                             \
  template void EngineImpl<T>::forward_segment(const Saved<T>&, std::int64_t, const TensorView&, \
                                               Saved<T>&);                                       \
  template BackwardResult EngineImpl<T>::backward_recomputed(                                    \
      Saved<T>&, const TensorView&, const TensorView&, const TensorView&, const TensorView&,     \
      const TensorView&, double*);                                                               \
  template T* EngineImpl<T>::lay_out_kept(Carver<T>&, Saved<T>&, std::int64_t) const;
RECUR_ENGINE_RECOMPUTE(float)
RECUR_ENGINE_RECOMPUTE(double)
#undef RECUR_ENGINE_RECOMPUTE

}  // namespace recur::detail
