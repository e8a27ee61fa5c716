// src/rnn.cpp: the public Rnn: validate, then hand over to the Engine. No math here.
#include "recur/rnn.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "engine.h"
#include "live.h"
#include "memory.h"
#include "plan.h"
#include "recur/error.h"
#include "rnn_access.h"
#include "splitmix.h"
#include "validate.h"

namespace recur {

using detail::expect_tensor;
using detail::output_shape_text;
using detail::state_shape_text;

struct Rnn::Impl {
  Impl(detail::Plan p, Device d)
      : plan(std::move(p)),
        device(d),
        params(Tensor::empty({plan.total}, plan.config.dtype, d)),
        grads(Tensor::zeros({plan.total}, plan.config.dtype, d)),
        engine(detail::make_engine(plan, d)) {}

  detail::Plan plan;
  Device device;
  Tensor params, grads;
  std::unique_ptr<detail::Engine> engine;
  std::uint64_t dropout_seed = 0, dropout_step = 0;
  // The state of the last Mode::Training forward without return_saved, until a backward()
  // without a SavedForward consumes it.
  std::unique_ptr<detail::SavedState> kept;
};

namespace {

// The storage type of a model's reduced math (BF16 or FP16 products), in which x, y, dy and
// dx may come and go; the model's own dtype for every other math.
DType io_dtype(const RnnConfig& c) {
  if (c.math == Math::Bf16) return DType::BFloat16;
  if (c.math == Math::Fp16) return DType::Float16;
  return c.dtype;
}

// The dtype a caller's x or dy must have: the model's, or its math's storage type.
DType accepted_dtype(const RnnConfig& c, const TensorView& t) {
  return t.defined() && t.dtype() == io_dtype(c) ? io_dtype(c) : c.dtype;
}

// `t` as a float32 tensor (Tensor::to's conversion, on the view).
Tensor widened(const TensorView& t) { return detail::converted(t, DType::Float32); }

// U(-bound, bound) everywhere, then the layer-norm gains 1 and biases 0 (their values
// before any training, as haste and PyTorch's LayerNorm start).
template <typename T>
void fill_uniform(const TensorView& dst, const detail::Plan& plan, double bound,
                  std::uint64_t seed) {
  std::vector<T> host(static_cast<std::size_t>(dst.numel()));
  detail::SplitMix random(seed);
  for (T& v : host) v = static_cast<T>(random.uniform(bound));
  for (const ParamInfo& info : plan.params) {
    if (!detail::is_layer_norm_param(info.name)) continue;
    const T value = detail::is_layer_norm_bias(info.name) ? T(0) : T(1);
    std::fill(host.begin() + info.offset, host.begin() + info.offset + info.shape[0], value);
  }
  dst.copy_from_host(host.data());
}

void check_device(const Device& device) {
  if (device.is_cuda()) {
    const int count = cuda_device_count();
    if (device.index < 0 || device.index >= count) {
      throw Error("Rnn", "device",
                  "a CUDA device index in [0, " + std::to_string(count) + ")" +
                      (cuda_built() ? "" : " (recur was built without CUDA)"),
                  device.str());
    }
  }
}

// Parameters and gradients that could never fit are an Error before anything is
// allocated.
void check_fits(const detail::Plan& plan, Device device) {
  const auto bytes = static_cast<std::uint64_t>(plan.total) * dtype_size(plan.config.dtype);
  detail::expect_fits("Rnn", "config", device, 2 * bytes,
                      "parameters and gradients of " + std::to_string(plan.total) + " elements");
}

// lengths: empty, or one per sequence, each in [1, T].
void check_lengths(const char* where, const std::string& argument,
                   const std::vector<std::int64_t>& lengths, std::int64_t T, std::int64_t B) {
  if (lengths.empty()) return;
  if (static_cast<std::int64_t>(lengths.size()) != B) {
    throw Error(where, argument, "one length per sequence: " + std::to_string(B),
                std::to_string(lengths.size()) + " lengths");
  }
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] < 1 || lengths[i] > T) {
      throw Error(where, argument, "every length in [1, T = " + std::to_string(T) + "]",
                  "lengths[" + std::to_string(i) + "] = " + std::to_string(lengths[i]));
    }
  }
}

template <class P>
auto& live(const P& impl, const char* where) {
  return detail::live(impl, "Rnn", where);
}

}  // namespace

Rnn::Rnn(const RnnConfig& config, Device device, std::uint64_t seed) {
  detail::Plan plan = detail::Plan::make(config);
  check_device(device);
  check_fits(plan, device);
  impl_ = std::make_unique<Impl>(std::move(plan), device);
  impl_->dropout_seed = seed;
  reset_parameters(seed);
}

Rnn::~Rnn() = default;
Rnn::Rnn(Rnn&&) noexcept = default;
Rnn& Rnn::operator=(Rnn&&) noexcept = default;

const RnnConfig& Rnn::config() const { return live(impl_, "Rnn::config").plan.config; }
Device Rnn::device() const { return live(impl_, "Rnn::device").device; }
TensorView Rnn::parameters() const { return live(impl_, "Rnn::parameters").params.view(); }
TensorView Rnn::gradients() const { return live(impl_, "Rnn::gradients").grads.view(); }
const std::vector<ParamInfo>& Rnn::parameter_info() const {
  return live(impl_, "Rnn::parameter_info").plan.params;
}

namespace {

TensorView named_view(const detail::Plan& plan, const Tensor& buffer, const std::string& name,
                      const char* where) {
  const ParamInfo* info = plan.find(name);
  if (info == nullptr) {
    std::string names;
    for (const ParamInfo& p : plan.params) names += (names.empty() ? "" : ", ") + p.name;
    throw Error(where, "name", "one of {" + names + "}", "'" + name + "'");
  }
  char* base = static_cast<char*>(buffer.data());
  return TensorView(base + info->offset * static_cast<std::int64_t>(dtype_size(buffer.dtype())),
                    info->shape, buffer.dtype(), buffer.device());
}

}  // namespace

TensorView Rnn::parameter(const std::string& name) const {
  const Impl& self = live(impl_, "Rnn::parameter");
  return named_view(self.plan, self.params, name, "Rnn::parameter");
}

TensorView Rnn::gradient(const std::string& name) const {
  const Impl& self = live(impl_, "Rnn::gradient");
  return named_view(self.plan, self.grads, name, "Rnn::gradient");
}

void* Rnn::cuda_stream() const { return live(impl_, "Rnn::cuda_stream").engine->stream(); }

void Rnn::set_cuda_stream(void* stream) {
  live(impl_, "Rnn::set_cuda_stream");
  if (!impl_->device.is_cuda()) {
    throw Error("Rnn::set_cuda_stream", "stream", "a model on a CUDA device",
                "a model on " + impl_->device.str());
  }
  impl_->engine->set_stream(stream);
}

void Rnn::synchronize() { live(impl_, "Rnn::synchronize").engine->synchronize(); }

void Rnn::set_dropout_seed(std::uint64_t seed) {
  live(impl_, "Rnn::set_dropout_seed").dropout_seed = seed;
  impl_->dropout_step = 0;
}

std::uint64_t Rnn::dropout_step() const { return live(impl_, "Rnn::dropout_step").dropout_step; }

void Rnn::reset_parameters(std::uint64_t seed) {
  live(impl_, "Rnn::reset_parameters");
  const double bound = 1.0 / std::sqrt(static_cast<double>(impl_->plan.config.hidden_size));
  if (impl_->plan.config.dtype == DType::Float32) {
    fill_uniform<float>(impl_->params.view(), impl_->plan, bound, seed);
  } else {
    fill_uniform<double>(impl_->params.view(), impl_->plan, bound, seed);
  }
}

void Rnn::zero_grad() {
  Impl& self = live(impl_, "Rnn::zero_grad");
  // In place: synchronous like a copy (it waits for the model's queued work first).
  detail::zero_bytes(self.grads.data(), self.device, self.grads.nbytes());
}

namespace detail {

struct SavedAccess {
  static std::unique_ptr<SavedState>& state(SavedForward& s) { return s.state_; }
  static void set_consumed(SavedForward& s) { s.consumed_ = true; }
  static SavedForward make(std::unique_ptr<SavedState> state) {
    SavedForward s;
    s.state_ = std::move(state);
    return s;
  }
};

}  // namespace detail

SavedForward::SavedForward() noexcept = default;
SavedForward::~SavedForward() = default;
SavedForward::SavedForward(SavedForward&& other) noexcept
    : state_(std::move(other.state_)), consumed_(other.consumed_) {
  other.consumed_ = false;
}
SavedForward& SavedForward::operator=(SavedForward&& other) noexcept {
  if (this != &other) {
    state_ = std::move(other.state_);
    consumed_ = other.consumed_;
    other.consumed_ = false;
  }
  return *this;
}
bool SavedForward::defined() const noexcept { return state_ != nullptr; }
bool SavedForward::consumed() const noexcept { return consumed_; }
std::int64_t SavedForward::steps() const noexcept { return state_ ? state_->steps : 0; }
std::int64_t SavedForward::batch() const noexcept { return state_ ? state_->batch : 0; }
void SavedForward::reset() noexcept { state_.reset(); }

namespace {

// Names the arguments of a call with positional arguments ("h0") or with options
// ("options.h0").
struct ArgumentNames {
  bool options;
  std::string operator()(const char* name) const {
    return options ? std::string("options.") + name : std::string(name);
  }
};

}  // namespace

namespace {

// How a training forward under `options` keeps its activations: stored (both fields
// 0), recomputed by segments of segment_steps steps, or recomputed by layers.
struct Recomputation {
  std::int64_t segment_steps = 0;
  bool layers = false;
};

// ActivationMemory::Recompute over T caller steps: a unidirectional stack by segments of
// options.segment_steps, or ceil(sqrt(longest sequence)); a bidirectional one by layers (a
// reverse direction's state at a segment's start depends on every later step).
Recomputation recomputation(const char* where, const RnnConfig& c, const ForwardOptions& options,
                            std::int64_t T) {
  if (options.activations == ActivationMemory::Store) return {};
  if (options.activations != ActivationMemory::Recompute) {
    throw Error(where, "options.activations", "ActivationMemory::Store or Recompute",
                "value " + std::to_string(static_cast<int>(options.activations)));
  }
  if (options.mode != Mode::Training) {
    throw Error(where, "options.activations",
                "ActivationMemory::Store in Mode::Inference (it keeps nothing)", "Recompute");
  }
  if (options.segment_steps < 0) {
    throw Error(where, "options.segment_steps", "0 (sqrt(T)) or a number of steps >= 1",
                std::to_string(options.segment_steps));
  }
  if (c.bidirectional) {
    if (c.num_layers == 1) {
      throw Error(where, "options.activations",
                  "ActivationMemory::Store for a one-layer bidirectional model (a bidirectional "
                  "model recomputes layer by layer, keeping what flows between the layers: one "
                  "layer would keep as much as it stores)",
                  "Recompute");
    }
    if (options.segment_steps > 0) {
      throw Error(where, "options.segment_steps",
                  "0 for a bidirectional model (it recomputes layer by layer, not by segments "
                  "of time)",
                  std::to_string(options.segment_steps));
    }
    return {0, true};
  }
  if (options.segment_steps > 0) return {options.segment_steps, false};
  std::int64_t longest = std::max<std::int64_t>(T, 1);
  if (!options.lengths.empty()) {
    longest = std::clamp<std::int64_t>(
        *std::max_element(options.lengths.begin(), options.lengths.end()), 1, longest);
  }
  return {std::max<std::int64_t>(
              1, static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(longest))))),
          false};
}

}  // namespace

ForwardResult Rnn::forward(const TensorView& x, const ForwardOptions& options) {
  const RnnConfig& c = live(impl_, "Rnn::forward").plan.config;
  // x's shape and the lengths are checked by forward_impl, before anything runs.
  const std::int64_t T = x.defined() && x.dim() == 3 ? x.size(c.batch_first ? 1 : 0) : 1;
  const Recomputation r = recomputation("Rnn::forward", c, options, T);
  return forward_impl(x, options.h0, options.c0, options.mode, options.lengths,
                      options.return_saved, true, r.segment_steps, r.layers);
}

StepMemory Rnn::step_memory(std::int64_t steps, std::int64_t batch, const ForwardOptions& options,
                            int optimizer_slots) const {
  const char* where = "Rnn::step_memory";
  const detail::Plan& plan = live(impl_, where).plan;
  constexpr std::int64_t kMost = std::int64_t{1} << 40;
  if (steps < 1 || steps > kMost) {
    throw Error(where, "steps", "in [1, 2^40]", std::to_string(steps));
  }
  if (batch < 1 || batch > kMost) {
    throw Error(where, "batch", "in [1, 2^40]", std::to_string(batch));
  }
  const Mode mode = options.mode;
  const std::vector<std::int64_t>& lengths = options.lengths;
  if (mode != Mode::Training && mode != Mode::Inference) {
    throw Error(where, "options.mode", "Mode::Training or Mode::Inference",
                "value " + std::to_string(static_cast<int>(mode)));
  }
  if (optimizer_slots < 0 || optimizer_slots > 8) {
    throw Error(where, "optimizer_slots", "in [0, 8]", std::to_string(optimizer_slots));
  }
  check_lengths(where, "options.lengths", lengths, steps, batch);
  const Recomputation r = recomputation(where, plan.config, options, steps);
  // A forward of this size keeps host tables of about 8 bytes a row; so does the model.
  const double rows = static_cast<double>(steps) * static_cast<double>(batch);
  const double table_bytes = 8.0 * (2.0 * rows + static_cast<double>(steps) + 8.0 * batch);
  detail::expect_fits(
      where, "steps", Device::cpu(),
      table_bytes > 1e19 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(table_bytes),
      "the row tables of T = " + std::to_string(steps) + ", B = " + std::to_string(batch));
  const bool training = mode == Mode::Training;
  const detail::PassMemory m =
      impl_->engine->memory(steps, batch, lengths, training, r.segment_steps, r.layers);
  const auto bytes = plan.total * static_cast<std::int64_t>(dtype_size(plan.config.dtype));
  StepMemory out;
  out.parameters = bytes;
  out.gradients = bytes;  // allocated with the model
  out.optimizer_state = training ? optimizer_slots * bytes : 0;
  out.activations = m.saved;
  out.workspace = m.workspace;
  out.outputs = m.outputs;
  out.weight_copies = m.weight_copies;
  return out;
}

ForwardResult Rnn::forward(const TensorView& x, const TensorView& h0, const TensorView& c0,
                           Mode mode, const std::vector<std::int64_t>& lengths) {
  return forward_impl(x, h0, c0, mode, lengths, false, false);
}

ForwardResult Rnn::forward_impl(const TensorView& x, const TensorView& h0, const TensorView& c0,
                                Mode mode, const std::vector<std::int64_t>& lengths,
                                bool return_saved, bool with_options, std::int64_t segment_steps,
                                bool recompute_layers) {
  const char* where = "Rnn::forward";
  const ArgumentNames name{with_options};
  const RnnConfig& c = live(impl_, where).plan.config;
  const Device dev = impl_->device;
  const DType x_dtype = accepted_dtype(c, x);
  expect_tensor(where, "x", x, {-1, -1, c.input_size},
                c.batch_first ? "[B, T, input_size] (batch_first)" : "[T, B, input_size]", x_dtype,
                dev);
  const std::int64_t T = c.batch_first ? x.size(1) : x.size(0);
  const std::int64_t B = c.batch_first ? x.size(0) : x.size(1);
  const std::int64_t LD = c.num_layers * impl_->plan.directions;
  check_lengths(where, name("lengths"), lengths, T, B);
  if (h0.defined()) {
    expect_tensor(where, name("h0").c_str(), h0, {LD, B, impl_->plan.state_size()},
                  state_shape_text(c).c_str(), c.dtype, dev);
  }
  if (c0.defined()) {
    if (!has_cell_state(c.cell)) {
      throw Error(where, name("c0"), "an undefined view (only Lstm has a cell state)",
                  std::string("a tensor for cell ") + to_string(c.cell));
    }
    expect_tensor(where, name("c0").c_str(), c0, {LD, B, c.hidden_size},
                  "[num_layers*D, B, hidden_size]", c.dtype, dev);
  }
  if (mode != Mode::Training && mode != Mode::Inference) {
    throw Error(where, name("mode"), "Mode::Training or Mode::Inference",
                "value " + std::to_string(static_cast<int>(mode)));
  }
  const bool training = mode == Mode::Training;
  if (return_saved && !training) {
    throw Error(where, name("return_saved"), "false in Mode::Inference (it keeps nothing)", "true");
  }
  const std::uint64_t stream = impl_->dropout_step;
  // x in the math's storage type: widened for the pass, and y comes back so; the states
  // stay float32.
  const bool reduced_x = x_dtype != c.dtype;
  const Tensor x32 = reduced_x ? widened(x) : Tensor();
  std::unique_ptr<detail::SavedState> state;
  const TensorView x_in = reduced_x ? x32.view() : x;
  ForwardResult out =
      segment_steps > 0
          ? impl_->engine->forward_recomputed(x_in, h0, c0, lengths, impl_->dropout_seed, stream,
                                              impl_->params, segment_steps, &state)
          : impl_->engine->forward(x_in, h0, c0, lengths, impl_->dropout_seed, stream,
                                   impl_->params, recompute_layers, training ? &state : nullptr);
  if (reduced_x) out.y = out.y.to(x_dtype);
  if (training) {
    ++impl_->dropout_step;
    state->x_dtype = x_dtype;
    if (return_saved) {
      out.saved = detail::SavedAccess::make(std::move(state));
    } else {
      impl_->kept = std::move(state);  // the one kept before is released
    }
  }
  return out;
}

BackwardResult Rnn::backward(const TensorView& dy, const BackwardOptions& options) {
  return backward_kept(dy, options.dh_n, options.dc_n, true);
}

BackwardResult Rnn::backward(const TensorView& dy, const TensorView& dh_n, const TensorView& dc_n) {
  return backward_kept(dy, dh_n, dc_n, false);
}

BackwardResult Rnn::backward_kept(const TensorView& dy, const TensorView& dh_n,
                                  const TensorView& dc_n, bool with_options) {
  const char* where = "Rnn::backward";
  live(impl_, where);
  if (impl_->kept == nullptr) {
    throw Error(where, "this", "a preceding forward() in Mode::Training, not yet consumed",
                "none (never run, run in Mode::Inference, or consumed by a backward())");
  }
  check_backward(*impl_->kept, dy, dh_n, dc_n, with_options, false);
  std::unique_ptr<detail::SavedState> state = std::move(impl_->kept);
  return run_backward(*state, dy, dh_n, dc_n);  // then its workspace goes back to the pool
}

BackwardResult Rnn::backward_saved(SavedForward& saved, const TensorView& dy,
                                   const BackwardOptions& options) {
  const char* where = "Rnn::backward";
  live(impl_, where);
  const std::string expected = "a SavedForward of a Mode::Training forward() of this Rnn";
  std::unique_ptr<detail::SavedState>& held = detail::SavedAccess::state(saved);
  if (held == nullptr) {
    throw Error(where, "saved", expected,
                saved.consumed() ? "one already consumed by a backward()"
                                 : "an empty one (default-constructed, moved from or reset)");
  }
  if (held->engine != impl_->engine->id()) {
    throw Error(where, "saved", expected, "one of another Rnn");
  }
  check_backward(*held, dy, options.dh_n, options.dc_n, true, true);
  std::unique_ptr<detail::SavedState> state = std::move(held);
  detail::SavedAccess::set_consumed(saved);
  return run_backward(*state, dy, options.dh_n, options.dc_n);
}

void Rnn::check_backward(const detail::SavedState& saved, const TensorView& dy,
                         const TensorView& dh_n, const TensorView& dc_n, bool with_options,
                         bool returned) const {
  const char* where = "Rnn::backward";
  const ArgumentNames name{with_options};
  const RnnConfig& c = impl_->plan.config;
  const Device dev = impl_->device;
  const std::int64_t T = saved.steps, B = saved.batch;
  const std::int64_t LD = c.num_layers * impl_->plan.directions;
  // A SavedForward's own T and B are named: the caller may hold several.
  const std::string of_the_forward = !returned ? std::string(" of the forward")
                                               : " of the saved forward (T = " + std::to_string(T) +
                                                     ", B = " + std::to_string(B) + ")";
  if (dy.defined()) {
    const Shape want = c.batch_first ? Shape{B, T, impl_->plan.output_size()}
                                     : Shape{T, B, impl_->plan.output_size()};
    expect_tensor(where, "dy", dy, want, (output_shape_text(c) + of_the_forward).c_str(),
                  accepted_dtype(c, dy), dev);
  }
  if (dh_n.defined()) {
    expect_tensor(where, name("dh_n").c_str(), dh_n, {LD, B, impl_->plan.state_size()},
                  (state_shape_text(c) + of_the_forward).c_str(), c.dtype, dev);
  }
  if (dc_n.defined()) {
    if (!has_cell_state(c.cell)) {
      throw Error(where, name("dc_n"), "an undefined view (only Lstm has a cell state)",
                  std::string("a tensor for cell ") + to_string(c.cell));
    }
    expect_tensor(where, name("dc_n").c_str(), dc_n, {LD, B, c.hidden_size},
                  ("[num_layers*D, B, hidden_size]" + of_the_forward).c_str(), c.dtype, dev);
  }
}

BackwardResult Rnn::run_backward(detail::SavedState& saved, const TensorView& dy,
                                 const TensorView& dh_n, const TensorView& dc_n) {
  const RnnConfig& c = impl_->plan.config;
  const bool reduced_dy = dy.defined() && dy.dtype() != c.dtype;
  const Tensor dy32 = reduced_dy ? widened(dy) : Tensor();
  BackwardResult out = impl_->engine->backward(saved, reduced_dy ? dy32.view() : dy, dh_n, dc_n,
                                               impl_->params, impl_->grads, nullptr);
  // dx in the dtype x came in; dh0 and dc0 stay float32, as the states.
  if (saved.x_dtype != c.dtype) out.dx = out.dx.to(saved.x_dtype);
  return out;
}

namespace detail {

Engine& RnnAccess::engine(Rnn& rnn) { return *live(rnn.impl_, "Rnn", "diagnostics").engine; }
const Plan& RnnAccess::plan(const Rnn& rnn) { return live(rnn.impl_, "Rnn", "diagnostics").plan; }
std::uint64_t RnnAccess::dropout_seed(const Rnn& rnn) {
  return live(rnn.impl_, "Rnn", "diagnostics").dropout_seed;
}

}  // namespace detail

}  // namespace recur
