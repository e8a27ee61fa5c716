// src/engine.cpp: the stored pass around StackPass: a forward lays its buffers out as
// the pass plan says in a workspace from the pool, brings the caller's layout in
// (batch-first, unsorted and padded variable-length batches become recur's sorted, packed
// time-major rows by one gather each way) with the initial states, and keeps its
// SavedState for the backward; the backward runs in the engine's arena and hands dx and
// the initial states' gradients back in the caller's layout. (The rest of the engine:
// src/engine/engine_impl.h.)
#include "engine.h"

#include <atomic>
#include <utility>

#include "engine/engine_impl.h"
#include "pass/stack_pass.h"

namespace recur::detail {
namespace {

std::atomic<std::uint64_t> next_engine_id{1};

}  // namespace

template <typename T>
EngineImpl<T>::EngineImpl(const Plan& plan, Device device)
    : plan_(plan),
      device_(device),
      ops_(make_ops<T>(device)),
      pool_(std::make_shared<WorkspacePool<T>>(device)),
      id_(next_engine_id++) {
  ops_->set_math(plan.config.math);
}

template <typename T>
ForwardResult EngineImpl<T>::forward(const TensorView& x, const TensorView& h0,
                                     const TensorView& c0, const std::vector<std::int64_t>& lengths,
                                     std::uint64_t dropout_seed, std::uint64_t dropout_stream,
                                     const TensorView& params, bool recompute_layers,
                                     std::unique_ptr<SavedState>* saved) {
  OpsScope<T> scope(*ops_);
  std::unique_ptr<Saved<T>> state = new_state(x, lengths);
  Saved<T>& s = *state;
  const bool batch_first = plan_.config.batch_first;
  const std::int64_t caller_steps = s.steps, B = s.batch;
  const Timeline& tl = s.timeline;
  const bool rows_as_given = s.rows_as_given;
  const bool training = saved != nullptr;
  const std::int64_t H = plan_.config.hidden_size, BH = B * H, DH = plan_.output_size();
  const std::int64_t O = plan_.state_size(), BO = B * O;
  const std::int64_t I = plan_.config.input_size, R = tl.rows();
  const bool lstm = plan_.config.cell == CellKind::Lstm;
  const int L = static_cast<int>(plan_.config.num_layers), D = plan_.directions;
  s.pass = make_pass_plan(plan_, tl, training, capabilities_of(*ops_, plan_, tl), ops_->tuning());
  if (recompute_layers) recompute_by_layers(s.pass, plan_, tl);
  const PassPlan& pass = s.pass;

  s.maps = RowMaps(tl, caller_steps, batch_first, L * D);
  const RowMaps& maps = s.maps;
  const std::int64_t own_words = own_index_words(maps, training);
  check_fits(memory_of(s, own_words), caller_steps, B);  // before anything is allocated
  StackBuffers<T>& b = s.buffers;
  stage_rows_and_carve(s, own_words, [&](Carver<T>& c, std::int64_t words) {
    return lay_out_forward(c, b, s, x.data_as<T>(), words);
  });
  b.dropout_seed = dropout_seed;
  b.dropout_stream = dropout_stream;
  const std::int64_t* rows = s.rows;

  if (rows_as_given) {
    if (training && b.acts[0].ld == I) {
      ops_->copy(b.acts[0].data, x.data_as<T>(), R * I);
    } else if (training) {
      ops_->copy_rows(b.acts[0].data, b.acts[0].ld, x.data_as<T>(), I, R, I);  // beside hp
    }
  } else {
    gather(b.acts[0].data, b.acts[0].ld, x.data_as<T>(), I, rows + maps.to_packed, R, I);
  }

  // Initial states, in sorted order: h0 into Y_l's h0 blocks, c0 into cs's.
  for (int u = 0; u < L * D; ++u) {
    const UnitOffsets& uo = plan_.units[u];
    const std::int64_t block = uo.dir == 0 ? 0 : B + R;
    T* h_block = b.ys[uo.layer] + block * DH + uo.dir * O;
    const std::int64_t* order = rows + maps.state_in + u * B;
    set_state(h_block, DH, O, h0, order, B);
    if (lstm) set_state(b.units[u].cs + block * H, H, H, c0, order, B);
  }

  ops_->statistics() = PassStatistics();
  StackPass<T>(plan_, pass, *ops_, tl, b, params.data_as<T>()).forward();
  forward_statistics_ = with_plan(ops_->statistics(), pass, false);

  ForwardResult out;
  const ActivationBuffers<T>& y = b.acts[plan_.output];
  out.y = Tensor::empty(batch_first ? Shape{B, caller_steps, DH} : Shape{caller_steps, B, DH},
                        dtype_of<T>(), device_);
  if (rows_as_given) {
    ops_->copy(out.y.data_as<T>(), y.data, R * DH);  // y.ld == DH: contiguous
  } else {
    gather(out.y.data_as<T>(), DH, y.data, DH, rows + maps.to_caller, caller_steps * B, DH);
  }
  out.h_n = Tensor::empty({L * D, B, O}, dtype_of<T>(), device_);
  if (lstm) out.c_n = Tensor::empty({L * D, B, H}, dtype_of<T>(), device_);
  for (int u = 0; u < L * D; ++u) {
    const UnitOffsets& uo = plan_.units[u];
    const std::int64_t* last = rows + maps.last[uo.dir];
    gather(out.h_n.data_as<T>() + u * BO, O, b.ys[uo.layer] + uo.dir * O, DH, last, B, O);
    if (lstm) gather(out.c_n.data_as<T>() + u * BH, H, b.units[u].cs, H, last, B, H);
  }
  if (training) *saved = std::move(state);  // else the workspace goes back to the pool
  return out;
}

template <typename T>
BackwardResult EngineImpl<T>::backward(SavedState& saved, const TensorView& dy,
                                       const TensorView& dh_n, const TensorView& dc_n,
                                       const TensorView& params, const TensorView& grads,
                                       double* flow) {
  OpsScope<T> scope(*ops_);
  Saved<T>& s = static_cast<Saved<T>&>(saved);  // the caller checked it is this engine's
  if (s.segment > 0) return backward_recomputed(s, dy, dh_n, dc_n, params, grads, flow);
  const Timeline& tl = s.timeline;
  const std::int64_t caller_steps = s.steps;
  const std::int64_t B = tl.batch, R = tl.rows();
  const std::int64_t H = plan_.config.hidden_size, O = plan_.state_size();
  const std::int64_t I = plan_.config.input_size;
  const bool lstm = plan_.config.cell == CellKind::Lstm;
  const bool batch_first = plan_.config.batch_first;
  const bool rows_as_given = s.rows_as_given;
  const int L = static_cast<int>(plan_.config.num_layers), D = plan_.directions;
  StackBuffers<T>& b = s.buffers;

  BackwardResult out;
  out.dx = Tensor::empty(batch_first ? Shape{B, caller_steps, I} : Shape{caller_steps, B, I},
                         dtype_of<T>(), device_);
  out.dh0 = Tensor::empty({L * D, B, O}, dtype_of<T>(), device_);
  if (lstm) out.dc0 = Tensor::empty({L * D, B, H}, dtype_of<T>(), device_);

  T* dh = nullptr;
  T* dc = nullptr;
  backward_arena_.carve(device_, [&](Carver<T>& c) {
    lay_out_backward(c, b, tl, s.pass.recomputes_layers, rows_as_given, out.dx.data_as<T>(), &dh,
                     &dc);
  });

  // The forward's own row maps and staged indices.
  const RowMaps& maps = s.maps;
  const std::int64_t* rows = s.rows;
  // Every activation gradient is accumulated (+=), so it starts at zero; the stack's
  // output starts at dy.
  for (std::size_t a = 0; a < b.acts.size(); ++a) {
    const std::int64_t width = plan_.activations[a].width;
    if (static_cast<int>(a) == plan_.output && dy.defined()) {
      if (rows_as_given) {
        ops_->copy(b.acts[a].grad, dy.data_as<T>(), R * width);
      } else {
        gather(b.acts[a].grad, width, dy.data_as<T>(), width, rows + maps.to_packed, R, width);
      }
    } else {
      ops_->fill(b.acts[a].grad, R * width, T(0));
    }
  }
  ops_->fill(const_cast<T*>(b.ones), 2 * R, T(1));
  set_state(dh, O, O, dh_n, rows + maps.state_in, L * D * B);
  if (lstm) set_state(dc, H, H, dc_n, rows + maps.state_in, L * D * B);

  b.flow = flow;
  b.flow_steps = caller_steps;
  ops_->statistics() = PassStatistics();
  StackPass<T>(plan_, s.pass, *ops_, tl, b, params.data_as<T>()).backward(grads.data_as<T>());
  backward_statistics_ = with_plan(ops_->statistics(), s.pass, true);
  b.flow = nullptr;

  if (!rows_as_given) {
    gather(out.dx.data_as<T>(), I, b.acts[0].grad, I, rows + maps.to_caller, caller_steps * B, I);
  }
  gather(out.dh0.data_as<T>(), O, dh, O, rows + maps.state_out, L * D * B, O);
  if (lstm) gather(out.dc0.data_as<T>(), H, dc, H, rows + maps.state_out, L * D * B, H);
  return out;
}

template <typename T>
std::unique_ptr<Saved<T>> EngineImpl<T>::new_state(const TensorView& x,
                                                   const std::vector<std::int64_t>& lengths) const {
  auto s = std::make_unique<Saved<T>>();
  const bool batch_first = plan_.config.batch_first;
  s->pool = pool_;
  s->engine = id_;
  s->steps = batch_first ? x.size(1) : x.size(0);
  s->batch = batch_first ? x.size(0) : x.size(1);
  s->timeline = lengths.empty() ? Timeline::full(s->steps, s->batch) : Timeline::packed(lengths);
  s->rows_as_given = lengths.empty() && !batch_first;
  return s;
}

template <typename T>
void EngineImpl<T>::gather(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                           const std::int64_t* index, std::int64_t rows, std::int64_t width) {
  GatherArgs<T> a;
  a.rows = rows;
  a.width = width;
  a.dst = dst;
  a.ld_dst = ld_dst;
  a.src = src;
  a.ld_src = ld_src;
  a.index = index;
  ops_->gather(a);
}

template <typename T>
void EngineImpl<T>::set_state(T* dst, std::int64_t ld, std::int64_t width, const TensorView& given,
                              const std::int64_t* order, std::int64_t rows) {
  if (given.defined()) {
    gather(dst, ld, given.data_as<T>(), width, order, rows, width);
  } else {
    ops_->copy_rows(dst, ld, zeros(rows * width), width, rows, width);
  }
}

template <typename T>
PassStatistics EngineImpl<T>::with_plan(PassStatistics counted, const PassPlan& pass,
                                        bool backward) {
  counted.wavefront = pass.wavefront;
  if (!backward) {
    for (bool in_steps : pass.projects_in_steps) counted.layers_projecting_in_steps += in_steps;
  }
  for (const PassOp& op : backward ? pass.backward : pass.forward) {
    for (const GemmGroup& g : op.groups[0]) {
      counted.fused_wave_gemms += static_cast<std::int64_t>(g.inputs);
    }
  }
  return counted;
}

template class EngineImpl<float>;
template class EngineImpl<double>;

std::unique_ptr<Engine> make_engine(const Plan& plan, Device device) {
  if (plan.config.dtype == DType::Float32) return std::make_unique<EngineImpl<float>>(plan, device);
  return std::make_unique<EngineImpl<double>>(plan, device);
}

}  // namespace recur::detail
