// src/engine.cpp: workspace management around StackPass: buffers sized once per shape,
// initial states in, final states out, and what a training forward keeps for backward.
#include "engine.h"

#include "ops.h"
#include "stack_pass.h"

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

template <typename T>
class EngineImpl final : public Engine {
 public:
  EngineImpl(const Plan& plan, Device device)
      : plan_(plan), device_(device), ops_(make_ops<T>(device)) {}

  ForwardResult forward(const TensorView& x, const TensorView& h0, const TensorView& c0, Mode mode,
                        const TensorView& params) override {
    OpsScope<T> scope(*ops_);
    saved_steps_ = saved_batch_ = 0;  // a new forward replaces whatever was kept
    const std::int64_t T_ = x.size(0), B = x.size(1);
    const bool training = mode == Mode::Training;
    const std::int64_t H = plan_.config.hidden_size, BH = B * H, DH = plan_.output_size();
    const std::int64_t I = plan_.config.input_size;
    const bool lstm = plan_.config.cell == CellKind::Lstm;
    const bool rbp = plan_.config.cell == CellKind::GruResetBeforeProduct;
    const int L = static_cast<int>(plan_.config.num_layers), D = plan_.directions;

    StackBuffers<T>& b = buffers_;
    forward_arena_.carve(device_, [&](Carver<T>& c) {
      b = StackBuffers<T>();
      b.training = training;
      b.acts.assign(plan_.activations.size(), {});
      b.acts[0].ld = I;
      b.acts[0].data = training ? c.take(T_ * B * I) : const_cast<T*>(x.data_as<T>());
      for (int l = 0; l < L; ++l) {
        b.ys.push_back(c.take((T_ + 2) * B * DH));
        ActivationBuffers<T>& y = b.acts[plan_.layers[l].output];
        y.data = b.ys.back() == nullptr ? nullptr : b.ys.back() + B * DH;
        y.ld = DH;
        const Join& j = plan_.layers[l].join;
        b.gates.push_back(j.kind == Connection::Highway ? c.take(T_ * B * DH) : nullptr);
        if (j.kind != Connection::None) {
          b.acts[j.out].data = c.take(T_ * B * DH);
          b.acts[j.out].ld = DH;
        }
      }
      for (int u = 0; u < L * D; ++u) {
        UnitBuffers<T> ub;
        if (lstm) ub.cs = c.take((T_ + 1) * BH);
        ub.gx = c.take(T_ * B * plan_.gates * H);
        ub.gh = c.take(B * plan_.gates * H);
        if (training) {
          ub.saved = c.take(T_ * BH * plan_.saved_slots);
        } else if (rbp) {
          ub.saved = c.take(BH * plan_.saved_slots);  // z travels between the two phases
        }
        if (rbp) ub.rh = c.take((training ? T_ : 1) * BH);
        b.units.push_back(ub);
      }
    });
    if (training) ops_->copy(b.acts[0].data, x.data_as<T>(), T_ * B * I);

    // Initial states: h0 into slot 0 (forward) or T+1 (reverse) of Y_l; c0 into cs.
    for (int u = 0; u < L * D; ++u) {
      const UnitOffsets& uo = plan_.units[u];
      T* h_slot = b.ys[uo.layer] + (uo.dir == 0 ? 0 : (T_ + 1) * B * DH) + uo.dir * H;
      if (h0.defined()) {
        ops_->copy_rows(h_slot, DH, h0.data_as<T>() + u * BH, H, B, H);
      } else {
        ops_->copy_rows(h_slot, DH, zeros(BH), H, B, H);
      }
      if (lstm) {
        T* c_slot = b.units[u].cs + (uo.dir == 0 ? 0 : T_ * BH);
        if (c0.defined()) {
          ops_->copy(c_slot, c0.data_as<T>() + u * BH, BH);
        } else {
          ops_->fill(c_slot, BH, T(0));
        }
      }
    }

    StackPass<T>(plan_, *ops_, T_, B, b, params.data_as<T>()).forward();

    ForwardResult out;
    const ActivationBuffers<T>& y = b.acts[plan_.output];
    out.y = Tensor::empty({T_, B, DH}, dtype_of<T>(), device_);
    ops_->copy(out.y.data_as<T>(), y.data, T_ * B * DH);  // y.ld == DH: contiguous
    out.h_n = Tensor::empty({L * D, B, H}, dtype_of<T>(), device_);
    if (lstm) out.c_n = Tensor::empty({L * D, B, H}, dtype_of<T>(), device_);
    for (int u = 0; u < L * D; ++u) {
      const UnitOffsets& uo = plan_.units[u];
      // Final states: the forward direction ends at step T-1 (slot T), the reverse at 0.
      const T* h_last = b.ys[uo.layer] + (uo.dir == 0 ? T_ : 1) * B * DH + uo.dir * H;
      ops_->copy_rows(out.h_n.data_as<T>() + u * BH, H, h_last, DH, B, H);
      if (lstm) {
        ops_->copy(out.c_n.data_as<T>() + u * BH, b.units[u].cs + (uo.dir == 0 ? T_ : 0) * BH, BH);
      }
    }
    if (training) {
      saved_steps_ = T_;
      saved_batch_ = B;
    }
    return out;
  }

  BackwardResult backward(const TensorView& dy, const TensorView& dh_n, const TensorView& dc_n,
                          const TensorView& params, const TensorView& grads) override {
    OpsScope<T> scope(*ops_);
    const std::int64_t T_ = saved_steps_, B = saved_batch_;
    const std::int64_t H = plan_.config.hidden_size, BH = B * H, DH = plan_.output_size();
    const std::int64_t I = plan_.config.input_size, TB = T_ * B, GTBH = TB * plan_.gates * H;
    const bool lstm = plan_.config.cell == CellKind::Lstm;
    const bool rbp = plan_.config.cell == CellKind::GruResetBeforeProduct;
    const bool lbr = plan_.config.cell == CellKind::GruLinearBeforeReset;
    const int L = static_cast<int>(plan_.config.num_layers), D = plan_.directions;
    StackBuffers<T>& b = buffers_;

    BackwardResult out;
    out.dx = Tensor::empty({T_, B, I}, dtype_of<T>(), device_);
    out.dh0 = Tensor::empty({L * D, B, H}, dtype_of<T>(), device_);
    if (lstm) out.dc0 = Tensor::empty({L * D, B, H}, dtype_of<T>(), device_);

    backward_arena_.carve(device_, [&](Carver<T>& c) {
      b.acts[0].grad = out.dx.data_as<T>();
      for (int l = 0; l < L; ++l) {
        b.acts[plan_.layers[l].output].grad = c.take(TB * DH);
        const Join& j = plan_.layers[l].join;
        if (j.kind != Connection::None) b.acts[j.out].grad = c.take(TB * DH);
      }
      b.dgates.assign(L, nullptr);
      for (int l = 0; l < L; ++l) {
        if (plan_.layers[l].join.kind == Connection::Highway) b.dgates[l] = c.take(TB * DH);
      }
      for (int u = 0; u < L * D; ++u) {
        UnitBuffers<T>& ub = b.units[u];
        ub.dgx = c.take(GTBH);
        ub.dgh = lbr ? c.take(GTBH) : ub.dgx;
        if (rbp) ub.drh = c.take(BH);
        ub.dh = out.dh0.data_as<T>() + u * BH;
        ub.dc = lstm ? out.dc0.data_as<T>() + u * BH : nullptr;
      }
      b.ones = c.take(TB);
    });
    // Every activation gradient is accumulated (+=), so it starts at zero; the stack's
    // output starts at dy.
    for (std::size_t a = 0; a < b.acts.size(); ++a) {
      const std::int64_t n = TB * plan_.activations[a].width;
      if (static_cast<int>(a) == plan_.output && dy.defined()) {
        ops_->copy(b.acts[a].grad, dy.data_as<T>(), n);
      } else if (b.acts[a].grad != nullptr) {
        ops_->fill(b.acts[a].grad, n, T(0));
      }
    }
    ops_->fill(const_cast<T*>(b.ones), TB, T(1));
    set_or_zero(out.dh0.data_as<T>(), dh_n, L * D * BH);
    if (lstm) set_or_zero(out.dc0.data_as<T>(), dc_n, L * D * BH);

    StackPass<T>(plan_, *ops_, T_, B, b, params.data_as<T>()).backward(grads.data_as<T>());
    saved_steps_ = saved_batch_ = 0;  // consumed
    return out;
  }

  void* stream() const override { return ops_->stream(); }
  void set_stream(void* stream) override { ops_->set_stream(stream); }
  void synchronize() override {
    OpsScope<T> scope(*ops_);
    ops_->synchronize();
  }

  std::int64_t saved_steps() const override { return saved_steps_; }
  std::int64_t saved_batch() const override { return saved_batch_; }

 private:
  // dst = given, or zeros when the caller passed none.
  void set_or_zero(T* dst, const TensorView& given, std::int64_t n) {
    if (given.defined()) {
      ops_->copy(dst, given.data_as<T>(), n);
    } else {
      ops_->fill(dst, n, T(0));
    }
  }

  // A device buffer of at least n zeros (for states the caller did not pass).
  const T* zeros(std::int64_t n) {
    if (zeros_.numel() < n) {
      zeros_ = Tensor::zeros({n}, dtype_of<T>(), device_);
    }
    return zeros_.template data_as<T>();
  }

  const Plan& plan_;
  Device device_;
  std::unique_ptr<Ops<T>> ops_;
  Arena<T> forward_arena_, backward_arena_;
  Tensor zeros_;
  StackBuffers<T> buffers_;
  std::int64_t saved_steps_ = 0, saved_batch_ = 0;
};

}  // namespace

std::unique_ptr<Engine> make_engine(const Plan& plan, Device device) {
  if (plan.config.dtype == DType::Float32) return std::make_unique<EngineImpl<float>>(plan, device);
  return std::make_unique<EngineImpl<double>>(plan, device);
}

}  // namespace recur::detail
