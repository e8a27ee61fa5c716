// src/engine/engine_impl.h: the Engine (src/engine.h) of one float type. Its jobs, one file
// each: the stored pass, forward and backward, with the caller's layout in and out
// (src/engine.cpp); the buffers' layouts (buffer_layout.cpp); recomputation
// (recompute.cpp); and the memory model that tells a step's bytes before it runs
// (memory_model.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../engine.h"
#include "../ops.h"
#include "../pass/buffers.h"
#include "../pass/pass_plan.h"
#include "../timeline.h"
#include "saved_forward.h"
#include "workspace.h"

namespace recur::detail {

template <typename T>
class EngineImpl final : public Engine {
 public:
  EngineImpl(const Plan& plan, Device device);

  std::uint64_t id() const override { return id_; }
  const Tuning& tuning() const override { return ops_->tuning(); }
  void set_tuning(const Tuning& tuning) override { ops_->set_tuning(tuning); }
  const PassStatistics& forward_statistics() const override { return forward_statistics_; }
  const PassStatistics& backward_statistics() const override { return backward_statistics_; }
  WorkspaceCounts workspaces() const override { return pool_->counts(); }

  ForwardResult forward(const TensorView& x, const TensorView& h0, const TensorView& c0,
                        const std::vector<std::int64_t>& lengths, std::uint64_t dropout_seed,
                        std::uint64_t dropout_stream, const TensorView& params,
                        bool recompute_layers, std::unique_ptr<SavedState>* saved) override;

  ForwardResult forward_recomputed(const TensorView& x, const TensorView& h0, const TensorView& c0,
                                   const std::vector<std::int64_t>& lengths,
                                   std::uint64_t dropout_seed, std::uint64_t dropout_stream,
                                   const TensorView& params, std::int64_t segment_steps,
                                   std::unique_ptr<SavedState>* saved) override;

  BackwardResult backward(SavedState& saved, const TensorView& dy, const TensorView& dh_n,
                          const TensorView& dc_n, const TensorView& params, const TensorView& grads,
                          double* flow) override;

  void* stream() const override { return ops_->stream(); }
  void set_stream(void* stream) override { ops_->set_stream(stream); }
  void synchronize() override {
    OpsScope<T> scope(*ops_);
    ops_->synchronize();
  }

  PassMemory memory(std::int64_t steps, std::int64_t batch,
                    const std::vector<std::int64_t>& lengths, bool training,
                    std::int64_t segment_steps, bool recompute_layers) override;

 private:
  // ---- the stored pass and the helpers every pass uses (src/engine.cpp) ----

  // A forward's state over x (the caller's layout) and lengths: its timeline, and whether
  // the caller's rows are the timeline's.
  std::unique_ptr<Saved<T>> new_state(const TensorView& x,
                                      const std::vector<std::int64_t>& lengths) const;

  // The words of T a forward's own copy of its staged row indices takes: a training
  // forward keeps one where the backend stages them into a buffer of its own (a GPU's,
  // which a later forward stages others into); none where they stay the host table (CPU).
  std::int64_t own_index_words(const RowMaps& maps, bool training) const {
    if (!training || device_.is_cpu()) return 0;
    return static_cast<std::int64_t>(maps.table.size() * sizeof(std::int64_t) / sizeof(T));
  }

  // Stages s.maps' row indices for the backend and lays the forward's workspace out from
  // the pool by layout(carver, own_words), which returns where the forward's own copy of
  // the staged indices goes; sets s.storage and s.rows.
  template <class Layout>
  void stage_rows_and_carve(Saved<T>& s, std::int64_t own_words, Layout&& layout) {
    const std::int64_t* staged = ops_->stage_indices(s.maps.table.data(), s.maps.table.size());
    T* own_at = nullptr;
    s.storage = carve(*pool_, [&](Carver<T>& c) { own_at = layout(c, own_words); });
    if (own_words > 0) {
      // Bit for bit, queued after the staging copy (the words are T's size, not int64's).
      ops_->copy(own_at, reinterpret_cast<const T*>(staged), own_words);
      staged = reinterpret_cast<const std::int64_t*>(own_at);
    }
    s.rows = staged;
  }

  // dst's row r (row stride ld_dst) = src's row index[r], `width` elements (kernels/gather.cuh).
  void gather(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
              const std::int64_t* index, std::int64_t rows, std::int64_t width);

  // rows x width of a state (h: O wide, c: H) into dst (row stride ld): the caller's,
  // reordered by `order`, or zeros when the caller passed none.
  void set_state(T* dst, std::int64_t ld, std::int64_t width, const TensorView& given,
                 const std::int64_t* order, std::int64_t rows);

  // A device buffer of at least n zeros (for states the caller did not pass).
  const T* zeros(std::int64_t n) {
    if (zeros_.numel() < n) zeros_ = Tensor::zeros({n}, dtype_of<T>(), device_);
    return zeros_.template data_as<T>();
  }

  // The backend's counts of a pass, with what the pass plan chose for it.
  static PassStatistics with_plan(PassStatistics counted, const PassPlan& pass, bool backward);

  // ---- where the buffers lie (buffer_layout.cpp) ----

  // Lays a forward's buffers out in `c` as s.pass says; x is the caller's (read in place
  // where nothing needs a copy). own_index_words > 0: room for the forward's own copy of the
  // staged row indices, whose start it returns.
  T* lay_out_forward(Carver<T>& c, StackBuffers<T>& b, const Saved<T>& s, const T* x,
                     std::int64_t own_index_words) const;

  // Lays a backward's buffers out in `c`, beside the forward's buffers `b` (which share
  // their layers' step buffers where the pass recomputes layers); dx: the caller's dx,
  // written in place where the rows are the caller's.
  void lay_out_backward(Carver<T>& c, StackBuffers<T>& b, const Timeline& tl,
                        bool recomputes_layers, bool rows_as_given, T* dx, T** dh, T** dc) const;

  // ---- recomputation (recompute.cpp) ----

  // Segment k of a recomputed forward `s`, run again from its start states as a training
  // forward of its own (`seg`: its window of the timeline, pass plan and workspace). Its
  // dropout masks are the rows' of the whole pass.
  void forward_segment(const Saved<T>& s, std::int64_t k, const TensorView& params, Saved<T>& seg);

  // backward() of a recomputed forward: segment by segment, the last first, each forward
  // run again and then its backward, with dJ/dh and dJ/dc carried from segment to segment.
  BackwardResult backward_recomputed(Saved<T>& s, const TensorView& dy, const TensorView& dh_n,
                                     const TensorView& dc_n, const TensorView& params,
                                     const TensorView& grads, double* flow);

  // Lays out what a recomputed forward keeps in `c`: x in timeline rows and the segments'
  // start states into s's pointers; returns room for own_index_words more (its own copy of
  // the staged row indices).
  T* lay_out_kept(Carver<T>& c, Saved<T>& s, std::int64_t own_index_words) const;

  // ---- the memory model (memory_model.cpp) ----

  // The bytes a pass of `s`'s shape lays out (Carvers that only measure), and what it
  // returns and keeps besides.
  PassMemory memory_of(const Saved<T>& s, std::int64_t own_index_words) const;

  // A recomputed forward's memory: what it keeps (lay_out_kept), one segment's forward and
  // backward, and the outputs of the whole pass. s: its timeline and segment.
  PassMemory recomputed_memory(const Saved<T>& s, std::int64_t own_index_words) const;

  // The elements of a pass's states: h (L*D*B*O) and, for the LSTM, c (L*D*B*H).
  std::int64_t state_elements(std::int64_t batch) const;

  // A pass that could never fit in the device's memory is an Error before anything is
  // allocated, naming its largest part.
  void check_fits(const PassMemory& m, std::int64_t steps, std::int64_t batch) const;

  const Plan& plan_;
  Device device_;
  std::unique_ptr<Ops<T>> ops_;
  std::shared_ptr<WorkspacePool<T>> pool_;  // forward workspaces
  std::uint64_t id_;
  PassStatistics forward_statistics_, backward_statistics_;
  Arena<T> backward_arena_;  // one backward at a time
  Tensor zeros_;
};

}  // namespace recur::detail
