// src/engine.cpp: workspace management around layer_forward / layer_backward.
#include "engine.h"

#include "layer_pass.h"
#include "ops.h"

namespace recur::detail {
namespace {

// A device buffer that only ever grows: the workspace is sized once per shape, and a
// loop over batches of one shape allocates nothing after the first.
template <typename T>
class Scratch {
 public:
  T* get(std::int64_t n, Device device) {
    if (n <= 0) return nullptr;
    if (tensor_.numel() < n) tensor_ = Tensor::empty({n}, dtype_of<T>(), device);
    return tensor_.template data_as<T>();
  }

 private:
  Tensor tensor_;
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
    const LayerShape s = shape(x.size(0), x.size(1));
    const bool training = mode == Mode::Training;
    const std::int64_t BH = s.batch * s.hidden, TB = s.steps * s.batch;
    const bool lstm = plan_.config.cell == CellKind::Lstm;

    ForwardBuffers<T> f;
    f.training = training;
    if (training) {
      // backward needs x after the caller may have reused it
      T* xs = xs_.get(TB * s.input, device_);
      ops_->copy(xs, x.data_as<T>(), TB * s.input);
      f.x = xs;
    } else {
      f.x = x.data_as<T>();
    }
    f.hs = hs_.get((s.steps + 1) * BH, device_);
    if (lstm) f.cs = cs_.get((s.steps + 1) * BH, device_);
    f.gx = gx_.get(TB * s.gates * s.hidden, device_);
    f.gh = gh_.get(BH * s.gates, device_);
    const std::int64_t saved_per_step = BH * s.saved_slots;
    if (training) {
      f.saved = saved_.get(s.steps * saved_per_step, device_);
    } else if (s.reset_before_product) {
      f.saved = saved_.get(saved_per_step, device_);  // z travels between the two phases
    }
    if (s.reset_before_product) f.rh = rh_.get((training ? s.steps : 1) * BH, device_);

    set_state(f.hs, h0, BH);
    if (lstm) set_state(f.cs, c0, BH);

    layer_forward(*ops_, s, weights(params), f);

    ForwardResult out;
    out.y = Tensor::empty({s.steps, s.batch, s.hidden}, dtype_of<T>(), device_);
    ops_->copy(out.y.data_as<T>(), f.hs + BH, s.steps * BH);
    out.h_n = state_tensor(f.hs + s.steps * BH, s.batch);
    if (lstm) out.c_n = state_tensor(f.cs + s.steps * BH, s.batch);
    if (training) {
      forward_ = f;
      saved_steps_ = s.steps;
      saved_batch_ = s.batch;
    }
    return out;
  }

  BackwardResult backward(const TensorView& dy, const TensorView& dh_n, const TensorView& dc_n,
                          const TensorView& params, const TensorView& grads) override {
    OpsScope<T> scope(*ops_);
    const LayerShape s = shape(saved_steps_, saved_batch_);
    const std::int64_t BH = s.batch * s.hidden, TB = s.steps * s.batch;
    const std::int64_t GTBH = TB * s.gates * s.hidden;
    const bool lstm = plan_.config.cell == CellKind::Lstm;

    BackwardBuffers<T> b;
    b.dy = dy.defined() ? dy.data_as<T>() : nullptr;
    b.dgx = dgx_.get(GTBH, device_);
    b.dgh = plan_.config.cell == CellKind::GruLinearBeforeReset ? dgh_.get(GTBH, device_) : b.dgx;
    BackwardResult out;
    out.dh0 = Tensor::empty({1, s.batch, s.hidden}, dtype_of<T>(), device_);
    b.dh = out.dh0.data_as<T>();
    set_state(b.dh, dh_n, BH);
    if (lstm) {
      out.dc0 = Tensor::empty({1, s.batch, s.hidden}, dtype_of<T>(), device_);
      b.dc = out.dc0.data_as<T>();
      set_state(b.dc, dc_n, BH);
    }
    if (s.reset_before_product) b.drh = drh_.get(BH, device_);
    if (plan_.config.bias) {
      if (ones_count_ < TB) {
        T* ones = ones_.get(TB, device_);
        ops_->fill(ones, TB, T(1));
        ones_count_ = TB;
      }
      b.ones = ones_.get(TB, device_);
    }
    out.dx = Tensor::empty({s.steps, s.batch, s.input}, dtype_of<T>(), device_);
    b.dx = out.dx.data_as<T>();

    layer_backward(*ops_, s, weights(params), gradients(grads), forward_, b);
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
  LayerShape shape(std::int64_t steps, std::int64_t batch) const {
    LayerShape s;
    s.steps = steps;
    s.batch = batch;
    s.input = plan_.layer.input_size;
    s.hidden = plan_.config.hidden_size;
    s.gates = plan_.gates;
    s.saved_slots = plan_.saved_slots;
    s.reset_before_product = plan_.config.cell == CellKind::GruResetBeforeProduct;
    s.kind = step_kind(plan_.config.cell);
    return s;
  }

  static StepKind step_kind(CellKind cell) {
    switch (cell) {
      case CellKind::RnnTanh: return StepKind::RnnTanh;
      case CellKind::RnnRelu: return StepKind::RnnRelu;
      case CellKind::RnnSigmoid: return StepKind::RnnSigmoid;
      case CellKind::Lstm: return StepKind::Lstm;
      case CellKind::GruLinearBeforeReset: return StepKind::GruLinearBeforeReset;
      case CellKind::GruResetBeforeProduct: return StepKind::GruRbpOutput;
    }
    return StepKind::Lstm;
  }

  LayerWeights<T> weights(const TensorView& params) const {
    const T* p = params.data_as<T>();
    const LayerOffsets& o = plan_.layer;
    LayerWeights<T> w;
    w.w_ih = p + o.w_ih;
    w.w_hh = p + o.w_hh;
    if (o.b_ih >= 0) {
      w.b_ih = p + o.b_ih;
      w.b_hh = p + o.b_hh;
    }
    return w;
  }

  LayerGrads<T> gradients(const TensorView& grads) const {
    T* p = grads.data_as<T>();
    const LayerOffsets& o = plan_.layer;
    LayerGrads<T> g;
    g.w_ih = p + o.w_ih;
    g.w_hh = p + o.w_hh;
    if (o.b_ih >= 0) {
      g.b_ih = p + o.b_ih;
      g.b_hh = p + o.b_hh;
    }
    return g;
  }

  // dst = given state, or zeros when the caller passed none.
  void set_state(T* dst, const TensorView& given, std::int64_t n) {
    if (given.defined()) {
      ops_->copy(dst, given.data_as<T>(), n);
    } else {
      ops_->fill(dst, n, T(0));
    }
  }

  Tensor state_tensor(const T* src, std::int64_t batch) {
    Tensor t = Tensor::empty({1, batch, plan_.config.hidden_size}, dtype_of<T>(), device_);
    ops_->copy(t.data_as<T>(), src, batch * plan_.config.hidden_size);
    return t;
  }

  const Plan& plan_;
  Device device_;
  std::unique_ptr<Ops<T>> ops_;
  Scratch<T> xs_, hs_, cs_, gx_, gh_, saved_, rh_;
  Scratch<T> dgx_, dgh_, drh_, ones_;
  std::int64_t ones_count_ = 0;
  ForwardBuffers<T> forward_;
  std::int64_t saved_steps_ = 0, saved_batch_ = 0;
};

}  // namespace

std::unique_ptr<Engine> make_engine(const Plan& plan, Device device) {
  if (plan.config.dtype == DType::Float32) return std::make_unique<EngineImpl<float>>(plan, device);
  return std::make_unique<EngineImpl<double>>(plan, device);
}

}  // namespace recur::detail
