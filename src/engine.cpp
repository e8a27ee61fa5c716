// src/engine.cpp: workspace management around StackPass: buffers laid out as the pass
// plan says (src/pass/pass_plan.h) in workspaces a pool reuses by size, the caller's
// layout in and out (batch-first, unsorted and padded variable-length batches become
// recur's sorted, packed time-major rows by one gather each way), initial and final
// states, and each training forward's SavedState for its backward.
#include "engine.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>

#include "memory.h"
#include "ops.h"
#include "pass/pass_plan.h"
#include "pass/stack_pass.h"
#include "recur/error.h"
#include "timeline.h"

namespace recur::detail {
namespace {

// Lays buffers out in one allocation. Run a layout once with no storage to measure it,
// then again on storage of that size to get the pointers. Each buffer starts on a
// 256-byte boundary.
template <typename T>
class Carver {
 public:
  explicit Carver(T* base) : base_(base) {}
  T* take(std::int64_t n) {
    if (n <= 0) return nullptr;
    T* p = base_ != nullptr ? base_ + used_ : nullptr;
    constexpr std::int64_t kAlign = 256 / static_cast<std::int64_t>(sizeof(T));
    used_ += (n + kAlign - 1) / kAlign * kAlign;
    return p;
  }
  std::int64_t used() const { return used_; }

 private:
  T* base_;
  std::int64_t used_ = 0;
};

// Storage that only grows: a loop over batches of one shape allocates nothing after the
// first.
template <typename T>
class Arena {
 public:
  template <class Layout>
  void carve(Device device, Layout&& layout) {
    Carver<T> measure(nullptr);
    layout(measure);
    if (storage_.numel() < measure.used()) {
      storage_ = Tensor();  // free first: the old and new arena need not coexist
      storage_ = Tensor::empty({measure.used()}, dtype_of<T>(), device);
    }
    Carver<T> real(measure.used() > 0 ? storage_.template data_as<T>() : nullptr);
    layout(real);
  }

 private:
  Tensor storage_;
};

// Forward workspaces, reused by size: a pass takes the smallest spare one that fits, or
// allocates one; a workspace comes back when its SavedState is destroyed (or, for an
// inference pass, at its end). Where none fits, the largest spare one is freed first, so
// the pool never holds more workspaces than were ever in use at once, and a loop over
// batches of one shape allocates nothing after its first round. Shared with the
// SavedStates, which may outlive the engine; locked, since they may die on any thread.
template <typename T>
class WorkspacePool {
 public:
  explicit WorkspacePool(Device device) : device_(device) {}

  Tensor take(std::int64_t n) {
    if (n <= 0) return Tensor();
    std::lock_guard<std::mutex> lock(mutex_);
    auto fits = spare_.end();
    for (auto it = spare_.begin(); it != spare_.end(); ++it) {
      if (it->numel() >= n && (fits == spare_.end() || it->numel() < fits->numel())) fits = it;
    }
    Tensor out;
    if (fits != spare_.end()) {
      out = std::move(*fits);
      spare_.erase(fits);
    } else {
      if (!spare_.empty()) {  // free first: the old and new workspace need not coexist
        spare_.erase(std::max_element(
            spare_.begin(), spare_.end(),
            [](const Tensor& a, const Tensor& b) { return a.numel() < b.numel(); }));
      }
      out = Tensor::empty({n}, dtype_of<T>(), device_);
      ++allocations_;
    }
    ++held_;
    return out;
  }

  void give(Tensor t) noexcept {
    if (!t.defined()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    --held_;
    try {
      spare_.push_back(std::move(t));
    } catch (...) {  // no room to keep it: t frees it
    }
  }

  WorkspaceCounts counts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    WorkspaceCounts c;
    c.held = held_;
    c.spare = static_cast<std::int64_t>(spare_.size());
    c.allocations = allocations_;
    return c;
  }

 private:
  Device device_;
  mutable std::mutex mutex_;
  std::vector<Tensor> spare_;
  std::int64_t held_ = 0, allocations_ = 0;
};

// Lays a layout out in a workspace from `pool` (see Carver); returns the workspace.
template <typename T, class Layout>
Tensor carve(WorkspacePool<T>& pool, Layout&& layout) {
  Carver<T> measure(nullptr);
  layout(measure);
  Tensor storage = pool.take(measure.used());
  Carver<T> real(measure.used() > 0 ? storage.template data_as<T>() : nullptr);
  layout(real);
  return storage;
}

// Row maps between the caller's layout and the timeline's packed rows, in one table that
// is staged once per pass.
struct RowMaps {
  std::vector<std::int64_t> table;
  std::size_t to_packed = 0;     // [R]: packed row <- caller's row
  std::size_t to_caller = 0;     // [T*B]: caller's row <- packed row, or -1 (padding)
  std::size_t state_in = 0;      // [L*D*B]: sorted state row <- caller's state row
  std::size_t state_out = 0;     // [L*D*B]: caller's state row <- sorted state row
  std::size_t last[2] = {0, 0};  // [B] per direction: Y_l row of the final state, by caller's b

  RowMaps() = default;
  RowMaps(const Timeline& tl, std::int64_t caller_steps, bool batch_first, std::int64_t units) {
    const std::int64_t B = tl.batch;
    auto caller_row = [&](std::int64_t t, std::int64_t b) {
      return batch_first ? b * caller_steps + t : t * B + b;
    };
    to_packed = table.size();
    for (std::int64_t t = 0; t < tl.steps; ++t) {
      for (std::int64_t s = 0; s < tl.active[t]; ++s) table.push_back(caller_row(t, tl.order[s]));
    }
    to_caller = table.size();
    table.resize(table.size() + static_cast<std::size_t>(caller_steps * B), -1);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t t = 0; t < tl.length[b]; ++t) {
        table[to_caller + caller_row(t, b)] = tl.offset[t] + tl.rank[b];
      }
    }
    state_in = table.size();
    for (std::int64_t u = 0; u < units; ++u) {
      for (std::int64_t s = 0; s < B; ++s) table.push_back(u * B + tl.order[s]);
    }
    state_out = table.size();
    for (std::int64_t u = 0; u < units; ++u) {
      for (std::int64_t b = 0; b < B; ++b) table.push_back(u * B + tl.rank[b]);
    }
    // Final states: forward after the sequence's last step, reverse after step 0.
    last[0] = table.size();
    for (std::int64_t b = 0; b < B; ++b)
      table.push_back(B + tl.offset[tl.length[b] - 1] + tl.rank[b]);
    last[1] = table.size();
    for (std::int64_t b = 0; b < B; ++b) table.push_back(B + tl.rank[b]);
  }
};

// One forward's state, kept for its backward: the workspace its buffers point into, the
// buffers, timeline, pass plan, row maps and its own copy of the staged row indices (a
// later forward stages others into the backend's one staging buffer). An inference pass
// builds one too, and drops it at its end.
template <typename T>
struct Saved final : SavedState {
  std::shared_ptr<WorkspacePool<T>> pool;
  Tensor storage;  // from pool, given back on destruction
  StackBuffers<T> buffers;
  Timeline timeline;
  PassPlan pass;
  RowMaps maps;
  const std::int64_t* rows = nullptr;  // maps.table where the backend reads it
  // The caller's x and y rows are the timeline's rows as they are (time-major, no
  // lengths): no gathers in or out.
  bool rows_as_given = true;
  // A recomputed forward's (forward_recomputed): its segments' steps, and in `storage` x in
  // timeline rows [R, I] and the states at each segment's start in sorted order:
  // [segments][L*D, B, O] for h, and [segments][L*D, B, H] for an LSTM's c.
  std::int64_t segment = 0;
  T* xs = nullptr;
  T* starts_h = nullptr;
  T* starts_c = nullptr;

  Saved() = default;
  Saved(const Saved&) = delete;
  Saved& operator=(const Saved&) = delete;
  ~Saved() override {
    if (pool != nullptr) pool->give(std::move(storage));
  }
};

std::atomic<std::uint64_t> next_engine_id{1};

template <typename T>
class EngineImpl final : public Engine {
 public:
  EngineImpl(const Plan& plan, Device device)
      : plan_(plan),
        device_(device),
        ops_(make_ops<T>(device)),
        pool_(std::make_shared<WorkspacePool<T>>(device)),
        id_(next_engine_id++) {
    ops_->set_math(plan.config.math);
  }

  std::uint64_t id() const override { return id_; }
  const Tuning& tuning() const override { return ops_->tuning(); }
  void set_tuning(const Tuning& tuning) override { ops_->set_tuning(tuning); }
  const PassStatistics& forward_statistics() const override { return forward_statistics_; }
  const PassStatistics& backward_statistics() const override { return backward_statistics_; }
  WorkspaceCounts workspaces() const override { return pool_->counts(); }

  ForwardResult forward(const TensorView& x, const TensorView& h0, const TensorView& c0,
                        const std::vector<std::int64_t>& lengths, std::uint64_t dropout_seed,
                        std::uint64_t dropout_stream, const TensorView& params,
                        std::unique_ptr<SavedState>* saved) override {
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
    const PassPlan& pass = s.pass;

    // The row maps, staged for the backend. A training forward keeps a copy of its own
    // where the staged table is the backend's shared buffer (not the host table itself).
    s.maps = RowMaps(tl, caller_steps, batch_first, L * D);
    const RowMaps& maps = s.maps;
    const auto index_words =
        static_cast<std::int64_t>(maps.table.size() * sizeof(std::int64_t) / sizeof(T));
    // Before anything is staged or allocated (a GPU's training forward keeps its own copy
    // of the staged indices).
    check_fits(memory_of(s, training && !device_.is_cpu() ? index_words : 0), caller_steps, B);
    const std::int64_t* staged = ops_->stage_indices(maps.table.data(), maps.table.size());
    const bool own_rows = training && staged != maps.table.data();
    T* own_rows_at = nullptr;

    StackBuffers<T>& b = s.buffers;
    s.storage = carve(*pool_, [&](Carver<T>& c) {
      own_rows_at = lay_out_forward(c, b, s, x.data_as<T>(), own_rows ? index_words : 0);
    });
    b.dropout_seed = dropout_seed;
    b.dropout_stream = dropout_stream;
    if (own_rows) {
      // Bit for bit, queued after the staging copy (the words are T's size, not int64's).
      ops_->copy(own_rows_at, reinterpret_cast<const T*>(staged), index_words);
      staged = reinterpret_cast<const std::int64_t*>(own_rows_at);
    }
    s.rows = staged;
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

  ForwardResult forward_recomputed(const TensorView& x, const TensorView& h0, const TensorView& c0,
                                   const std::vector<std::int64_t>& lengths,
                                   std::uint64_t dropout_seed, std::uint64_t dropout_stream,
                                   const TensorView& params, std::int64_t segment_steps,
                                   std::unique_ptr<SavedState>* saved) override {
    OpsScope<T> scope(*ops_);
    std::unique_ptr<Saved<T>> state = new_state(x, lengths);
    Saved<T>& s = *state;
    const bool batch_first = plan_.config.batch_first;
    const std::int64_t caller_steps = s.steps, B = s.batch;
    const Timeline& tl = s.timeline;
    s.segment = segment_steps;
    const std::int64_t H = plan_.config.hidden_size, O = plan_.state_size(),
                       DH = plan_.output_size();
    const std::int64_t I = plan_.config.input_size, R = tl.rows();
    const bool lstm = plan_.config.cell == CellKind::Lstm;
    const int LD = static_cast<int>(plan_.config.num_layers) * plan_.directions;
    const std::int64_t h_states = LD * B * O, c_states = lstm ? LD * B * H : 0;
    const std::int64_t segments = (tl.steps + segment_steps - 1) / segment_steps;
    s.maps = RowMaps(tl, caller_steps, batch_first, LD);
    const RowMaps& maps = s.maps;
    const auto index_words =
        static_cast<std::int64_t>(maps.table.size() * sizeof(std::int64_t) / sizeof(T));
    check_fits(recomputed_memory(s, device_.is_cpu() ? 0 : index_words), caller_steps, B);
    const std::int64_t* staged = ops_->stage_indices(maps.table.data(), maps.table.size());
    const bool own_rows = staged != maps.table.data();
    T* own_rows_at = nullptr;
    s.storage = carve(*pool_, [&](Carver<T>& c) {
      own_rows_at = lay_out_kept(c, s, own_rows ? index_words : 0);
    });
    if (own_rows) {
      ops_->copy(own_rows_at, reinterpret_cast<const T*>(staged), index_words);
      staged = reinterpret_cast<const std::int64_t*>(own_rows_at);
    }
    s.rows = staged;
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
    Tensor scratch = Tensor::empty({(s.rows_as_given ? 0 : R * DH) + h_states + c_states},
                                   dtype_of<T>(), device_);
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

  BackwardResult backward(SavedState& saved, const TensorView& dy, const TensorView& dh_n,
                          const TensorView& dc_n, const TensorView& params, const TensorView& grads,
                          double* flow) override {
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
      lay_out_backward(c, b, tl, rows_as_given, out.dx.data_as<T>(), &dh, &dc);
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

  void* stream() const override { return ops_->stream(); }
  void set_stream(void* stream) override { ops_->set_stream(stream); }
  void synchronize() override {
    OpsScope<T> scope(*ops_);
    ops_->synchronize();
  }

  PassMemory memory(std::int64_t steps, std::int64_t batch,
                    const std::vector<std::int64_t>& lengths, bool training,
                    std::int64_t segment_steps) override {
    Saved<T> s;
    s.timeline = lengths.empty() ? Timeline::full(steps, batch) : Timeline::packed(lengths);
    s.rows_as_given = lengths.empty() && !plan_.config.batch_first;
    s.steps = steps;
    s.batch = batch;
    s.pass = make_pass_plan(plan_, s.timeline, training, capabilities_of(*ops_, plan_, s.timeline),
                            ops_->tuning());
    s.maps = RowMaps(s.timeline, steps, plan_.config.batch_first,
                     static_cast<int>(plan_.config.num_layers) * plan_.directions);
    // A GPU's training forward keeps its own copy of the staged row indices.
    const auto index_words =
        static_cast<std::int64_t>(s.maps.table.size() * sizeof(std::int64_t) / sizeof(T));
    const std::int64_t own_words = training && !device_.is_cpu() ? index_words : 0;
    if (segment_steps > 0) {
      s.segment = segment_steps;
      return recomputed_memory(s, own_words);
    }
    return memory_of(s, own_words);
  }

 private:
  // A forward's state over x (the caller's layout) and lengths: its timeline, and whether
  // the caller's rows are the timeline's.
  std::unique_ptr<Saved<T>> new_state(const TensorView& x,
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

  // Segment k of a recomputed forward `s`, run again from its start states as a training
  // forward of its own (`seg`: its window of the timeline, pass plan and workspace). Its
  // dropout masks are the rows' of the whole pass.
  void forward_segment(const Saved<T>& s, std::int64_t k, const TensorView& params, Saved<T>& seg) {
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
    seg.pass = make_pass_plan(plan_, seg.timeline, true,
                              capabilities_of(*ops_, plan_, seg.timeline), ops_->tuning());
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

  // backward() of a recomputed forward: segment by segment, the last first, each forward
  // run again and then its backward, with dJ/dh and dJ/dc carried from segment to segment.
  BackwardResult backward_recomputed(Saved<T>& s, const TensorView& dy, const TensorView& dh_n,
                                     const TensorView& dc_n, const TensorView& params,
                                     const TensorView& grads, double* flow) {
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
    Tensor scratch = Tensor::empty({h_states + c_states + (s.rows_as_given ? 0 : R * I)},
                                   dtype_of<T>(), device_);
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
        lay_out_backward(c, b, w, false, nullptr, &unused_dh, &unused_dc);
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

  // Lays out what a recomputed forward keeps in `c`: x in timeline rows and the segments'
  // start states into s's pointers; returns room for own_index_words more (its own copy of
  // the staged row indices).
  T* lay_out_kept(Carver<T>& c, Saved<T>& s, std::int64_t own_index_words) const {
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

  // A recomputed forward's memory: what it keeps (lay_out_kept), one segment's forward and
  // backward, and the outputs of the whole pass. s: its timeline and segment.
  PassMemory recomputed_memory(const Saved<T>& s, std::int64_t own_index_words) const {
    const auto size = static_cast<std::int64_t>(sizeof(T));
    Saved<T> seg;
    seg.timeline = s.timeline.window(0, std::min(s.timeline.steps, s.segment));
    seg.rows_as_given = true;
    seg.steps = seg.timeline.steps;
    seg.batch = s.batch;
    seg.pass = make_pass_plan(plan_, seg.timeline, true,
                              capabilities_of(*ops_, plan_, seg.timeline), ops_->tuning());
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

  // The bytes a pass of `s`'s shape lays out (Carvers that only measure), and what it
  // returns and keeps besides.
  PassMemory memory_of(const Saved<T>& s, std::int64_t own_index_words) const {
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
      lay_out_backward(backward, b, tl, s.rows_as_given, nullptr, &dh, &dc);
      m.workspace += backward.used() * size;
      m.outputs += (s.steps * B * I + states) * size;  // dx, dh0, dc0
    }
    if (s.pass.weights == StepWeights::Packed) {
      std::int64_t held = 0;
      for (const UnitOffsets& u : plan_.units) {
        held += GH * plan_.state_size() + std::max<std::int64_t>(plan_.config.proj_size, 0) * H;
        if (s.pass.projects_in_steps[u.layer]) held += GH * plan_.layers[u.layer].input_size;
      }
      m.weight_copies = ops_->held_weight_bytes(held, training);
    }
    return m;
  }

  // The elements of a pass's states: h (L*D*B*O) and, for the LSTM, c (L*D*B*H).
  std::int64_t state_elements(std::int64_t batch) const {
    const std::int64_t units = plan_.config.num_layers * plan_.directions;
    return units * batch *
           (plan_.state_size() +
            (has_cell_state(plan_.config.cell) ? plan_.config.hidden_size : 0));
  }

  // A pass that could never fit in the device's memory is an Error before anything is
  // allocated, naming its largest part.
  void check_fits(const PassMemory& m, std::int64_t steps, std::int64_t batch) const {
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

  // Lays a forward's buffers out in `c` as s.pass says; x is the caller's (read in place
  // where nothing needs a copy). own_index_words > 0: room for the forward's own copy of the
  // staged row indices, whose start it returns.
  T* lay_out_forward(Carver<T>& c, StackBuffers<T>& b, const Saved<T>& s, const T* x,
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
    for (int u = 0; u < L * D; ++u) {
      UnitBuffers<T> ub;
      if (lstm) ub.cs = c.take((B + R + B) * H);
      ub.gx_in_steps = pass.projects_in_steps[plan_.units[u].layer];
      ub.gx = c.take((ub.gx_in_steps ? B : R) * GH);
      ub.gh = c.take(B * GH);
      if (pass.weights == StepWeights::Transposed) {
        ub.w_t = c.take(GH * O);
        if (pass.wavefront && plan_.units[u].layer > 0) {
          ub.w_ih_t = c.take(GH * plan_.layers[plan_.units[u].layer].input_size);
        }
      }
      if (plan_.units[u].dir == 1 && !tl.uniform) ub.g0 = c.take(B * GH);
      if (training && u == 0 && beside_x) {
        ub.hp = b.acts[0].data == nullptr ? nullptr : b.acts[0].data + I;
        ub.ldhp = I + O;
        ub.hp_beside_x = true;
      } else if (training) {
        ub.hp = c.take(R * O);
        ub.ldhp = O;
      }
      if (plan_.projects()) ub.m = c.take((training ? R : B) * H);
      if (training) {
        ub.saved = c.take(R * H * plan_.saved_slots);
      } else if (rbp) {
        ub.saved = c.take(BH * plan_.saved_slots);  // z travels between the two phases
      }
      if (rbp) ub.rh = c.take((training ? R : B) * H);
      b.units.push_back(ub);
    }
    return c.take(own_index_words);
  }

  // Lays a backward's buffers out in `c`, beside the forward's buffers `b`; dx: the
  // caller's dx, written in place where the rows are the caller's.
  void lay_out_backward(Carver<T>& c, StackBuffers<T>& b, const Timeline& tl, bool rows_as_given,
                        T* dx, T** dh, T** dc) const {
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
    for (int u = 0; u < L * D; ++u) {
      UnitBuffers<T>& ub = b.units[u];
      ub.dgx = c.take(GRH);
      ub.dgh = lbr || ln ? c.take(GRH) : ub.dgx;
      if (ln) {
        ub.dpx = c.take(GRH);
        if (lbr) ub.dph = c.take(GRH);  // the other cells' d/d ah is dpx
        ub.dln = c.take(R * plan_.ln_width);
      }
      if (rbp) ub.drh = c.take(BH);
      if (plan_.projects()) {
        ub.dproj = c.take(R * O);
        ub.dm = c.take(BH);
      }
      ub.dh = *dh == nullptr ? nullptr : *dh + u * B * O;
      ub.dc = *dc == nullptr ? nullptr : *dc + u * BH;
    }
    b.ones = c.take(2 * R);
  }

  void gather(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
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

  // rows x width of a state (h: O wide, c: H) into dst (row stride ld): the caller's,
  // reordered by `order`, or zeros when the caller passed none.
  void set_state(T* dst, std::int64_t ld, std::int64_t width, const TensorView& given,
                 const std::int64_t* order, std::int64_t rows) {
    if (given.defined()) {
      gather(dst, ld, given.data_as<T>(), width, order, rows, width);
    } else {
      ops_->copy_rows(dst, ld, zeros(rows * width), width, rows, width);
    }
  }

  // A device buffer of at least n zeros (for states the caller did not pass).
  const T* zeros(std::int64_t n) {
    if (zeros_.numel() < n) zeros_ = Tensor::zeros({n}, dtype_of<T>(), device_);
    return zeros_.template data_as<T>();
  }

  // The backend's counts of a pass, with what the pass plan chose for it.
  static PassStatistics with_plan(PassStatistics counted, const PassPlan& pass, bool backward) {
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

  const Plan& plan_;
  Device device_;
  std::unique_ptr<Ops<T>> ops_;
  std::shared_ptr<WorkspacePool<T>> pool_;  // forward workspaces
  std::uint64_t id_;
  PassStatistics forward_statistics_, backward_statistics_;
  Arena<T> backward_arena_;  // one backward at a time
  Tensor zeros_;
};

}  // namespace

std::unique_ptr<Engine> make_engine(const Plan& plan, Device device) {
  if (plan.config.dtype == DType::Float32) return std::make_unique<EngineImpl<float>>(plan, device);
  return std::make_unique<EngineImpl<double>>(plan, device);
}

}  // namespace recur::detail
