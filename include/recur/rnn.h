// recur/rnn.h: a recurrent network (vanilla RNN, LSTM or GRU; stacked, bidirectional,
// with connections between layers), forward and backward.
//
//   recur::Rnn rnn({recur::CellKind::Lstm, /*input*/ 32, /*hidden*/ 64});
//   auto out = rnn.forward(x);          // x [T, B, 32]  ->  out.y [T, B, 64]
//   auto grads = rnn.backward(dy);      // adds dJ/dθ into rnn.gradients(); returns dx
//
//   recur::ForwardOptions options;      // named arguments instead of positional {}s
//   options.h0 = h0;                    // [L*D, B, 64]
//   options.lengths = {5, 2, 7};        // one per sequence
//   auto packed = rnn.forward(x, options);
//   recur::BackwardOptions grad_of_state;
//   grad_of_state.dh_n = dh_n;          // dJ/dh_n [L*D, B, 64]
//   rnn.backward(dy, grad_of_state);
//
//   options.return_saved = true;        // forwards in flight: each returns its SavedForward
//   auto a = rnn.forward(x1, options), b = rnn.forward(x2, options);
//   rnn.backward(std::move(b.saved), dy2);   // in any order; each consumed once
//   rnn.backward(std::move(a.saved), dy1);
//
// Shapes are time-major and row-major: x [T, B, I], y [T, B, D*H], states [L*D, B, H]
// (L = num_layers, D = 2 when bidirectional, else 1; state l*D + d is layer l, direction
// d, as in PyTorch). Parameters live in one flat buffer (parameters()) and their
// gradients in a second one with the same layout (gradients()); named views use
// PyTorch's names, shapes and gate order, so a PyTorch state dict maps onto them one to
// one: for each layer l and direction (suffix "" or "_reverse")
//   weight_ih_l{l} [G*H, in_l], weight_hh_l{l} [G*H, H], bias_ih_l{l} [G*H], bias_hh_l{l} [G*H]
// with G = 1 (vanilla), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n), in_0 = I and in_l = D*H
// (Dense: I + l*D*H); then, for Highway, highway_weight_l{l} [D*H, D*H] and
// highway_bias_l{l} [D*H] for each layer where the highway applies.
// With an LSTM projection (RnnConfig::proj_size = P) h has P features: read P for H in the
// shapes of y, h0, h_n, dy, dh_n and dh0, in weight_hh_l{l} [4H, P] and in in_l = D*P;
// each unit's weight_hr_l{l} [P, H] follows its bias_hh_l{l}, and c0, c_n, dc_n and dc0
// stay [L*D, B, H], as in PyTorch.
//
// Ownership: every TensorView argument is read during the call only (a training forward
// copies what its backward needs), and every result is a Tensor of its own. A training
// forward's saved state (recur::SavedForward) holds that copy and the activations, in a
// workspace of the model's device memory.
//
// Every argument is validated before any state changes; a bad one throws recur::Error
// naming it, and leaves parameters, gradients and the saved forward states as they were.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "recur/config.h"
#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

namespace detail {
struct RnnAccess;
struct SavedAccess;
struct SavedState;
}  // namespace detail

enum class Mode {
  Inference,  // keeps nothing for backward
  Training,   // keeps what backward() needs
};

// What one Mode::Training forward keeps for its backward: a copy of its input, the
// activations, its batch's timeline and row maps, in a workspace of the model's device
// memory. Move-only; Rnn::backward(std::move(saved), ...) consumes it. Any number may be
// outstanding, consumed in any order. Destroying one that was not consumed drops it; in
// both cases its workspace goes back to its Rnn's pool, which later forwards reuse (or is
// freed, when the Rnn is gone). It belongs to the Rnn that made it, and reads that model's
// parameters when consumed (those of the backward's time, not the forward's).
class RECUR_API SavedForward {
 public:
  SavedForward() noexcept;  // empty
  ~SavedForward();
  SavedForward(SavedForward&& other) noexcept;             // `other` is left empty
  SavedForward& operator=(SavedForward&& other) noexcept;  // drops what this held
  SavedForward(const SavedForward&) = delete;
  SavedForward& operator=(const SavedForward&) = delete;

  // Whether it holds a forward not yet consumed.
  bool defined() const noexcept;
  // Whether a backward consumed it (it is then empty, as after reset()).
  bool consumed() const noexcept;
  // The caller's T and B of its forward; 0 when empty.
  std::int64_t steps() const noexcept;
  std::int64_t batch() const noexcept;
  // Drops it now (as destroying it would).
  void reset() noexcept;

 private:
  friend struct detail::SavedAccess;  // src/rnn.cpp
  std::unique_ptr<detail::SavedState> state_;
  bool consumed_ = false;
};

// What a training forward keeps for its backward (ForwardOptions::activations).
//   Store      every step's activations (gates, states, input projections): backward reads
//              them. The fastest.
//   Recompute  one more forward for much less memory. A unidirectional stack keeps only x
//              (in the timeline's rows) and the states at the start of each segment of
//              segment_steps steps; backward runs each segment's forward again, the last
//              segment first, then that segment's backward: activations of one segment
//              instead of all T steps (with S = sqrt(T), O(sqrt(T)) besides x and y). A
//              bidirectional stack (of at least 2 layers; a reverse direction's state at a
//              segment's start depends on every later step) keeps only what flows between
//              its layers (each layer's output, the connections', an LSTM's cell states);
//              backward runs each layer's steps again, the top layer first, then that
//              layer's backward: the gates, input projections and gradients of one layer
//              instead of all L. The gradients are the stored mode's bit for bit.
enum class ActivationMemory { Store, Recompute };

// The optional arguments of Rnn::forward(x, options), by name.
struct ForwardOptions {
  // Initial states [L*D, B, H] in the model's dtype and device, or undefined (zeros). c0
  // only for Lstm. Read during the call only.
  TensorView h0, c0;
  Mode mode = Mode::Training;
  // Empty, or B lengths, each in 1..T, in any order: sequence b is x[0..len_b) and the
  // rest is padding (PyTorch's PackedSequence semantics; see Rnn::forward).
  std::vector<std::int64_t> lengths;
  // Mode::Training only (an Error otherwise). false: the Rnn keeps this forward's state
  // for the next backward() that takes no SavedForward, dropping the one it kept before.
  // true: ForwardResult::saved holds it instead, and what the Rnn kept stays as it was.
  bool return_saved = false;
  // Mode::Training only. Recompute: see ActivationMemory; segment_steps 0 means
  // ceil(sqrt(T)) for T the longest sequence (and must be 0 for a bidirectional model). By
  // segments the gradients are the stored mode's up to the order of the weight gradients'
  // sums (added segment by segment); by layers, bit for bit.
  ActivationMemory activations = ActivationMemory::Store;
  std::int64_t segment_steps = 0;
};

// The optional arguments of Rnn::backward(dy, options), by name: the gradients reaching
// the final states, [L*D, B, H] in the model's dtype and device, or undefined (zeros).
// dc_n only for Lstm. Read during the call only.
struct BackwardOptions {
  TensorView dh_n, dc_n;
};

// One named parameter inside the flat buffer.
struct ParamInfo {
  std::string name;     // PyTorch's name, e.g. "weight_hh_l0"
  Shape shape;          // PyTorch's shape, e.g. [4*H, H]
  std::int64_t offset;  // first element inside the flat buffer
};

struct ForwardResult {
  Tensor y;    // [T, B, D*H], the stack's output at every step
  Tensor h_n;  // [L*D, B, H], each layer-direction's last hidden state
  Tensor c_n;  // [L*D, B, H], the last cell states (LSTM); undefined for other cells
  // The state for backward, from a Mode::Training forward with options.return_saved;
  // empty otherwise (the Rnn kept it, or there is none).
  SavedForward saved;
};

struct BackwardResult {
  Tensor dx;   // [T, B, I]
  Tensor dh0;  // [L*D, B, H]
  Tensor dc0;  // [L*D, B, H] (LSTM); undefined for other cells
};

// The bytes one step of an Rnn needs on its device (Rnn::step_memory), by part. All but
// weight_copies are memory recur allocates, counted by memory_stats().
struct StepMemory {
  std::int64_t parameters = 0;       // the flat parameter buffer
  std::int64_t gradients = 0;        // the flat gradient buffer (training)
  std::int64_t optimizer_state = 0;  // optimizer_slots buffers the size of the parameters
  std::int64_t activations = 0;      // the forward's workspace: what training keeps for backward
  std::int64_t workspace = 0;        // backward's scratch, zeros for states not passed
  std::int64_t outputs = 0;          // y, h_n, c_n; training also dx, dh0, dc0
  // The backend's copies of the recurrent weights laid out for its GEMMs, made once per pass
  // (oneDNN's packed layouts on the CPU, the reduced-precision working copies). Estimated
  // from their shapes; on the CPU they are oneDNN's memory, not counted by memory_stats().
  std::int64_t weight_copies = 0;
  std::int64_t total() const {
    return parameters + gradients + optimizer_state + activations + workspace + outputs +
           weight_copies;
  }
};

class RECUR_API Rnn {
 public:
  // Allocates parameters (initialised like PyTorch: U(-1/sqrt(H), 1/sqrt(H)) from `seed`;
  // with config.layer_norm the layer-norm gains 1 and the cell's bias 0) and zeroed
  // gradients on `device`.
  explicit Rnn(const RnnConfig& config, Device device = Device::cpu(), std::uint64_t seed = 0);
  ~Rnn();
  Rnn(Rnn&&) noexcept;
  Rnn& operator=(Rnn&&) noexcept;
  Rnn(const Rnn&) = delete;
  Rnn& operator=(const Rnn&) = delete;

  const RnnConfig& config() const;
  Device device() const;

  // The flat parameter buffer [P] and the gradient buffer [P] of the same layout. The views
  // stay valid for the Rnn's lifetime; writing through them changes the model.
  TensorView parameters() const;
  TensorView gradients() const;
  const std::vector<ParamInfo>& parameter_info() const;
  // A named view inside parameters() / gradients(); throws for an unknown name.
  TensorView parameter(const std::string& name) const;
  TensorView gradient(const std::string& name) const;

  // What one step of T x B needs on the model's device, as the model's pass would be planned
  // now (its config, tuning and backend), before anything is allocated: the step that
  // forward(x, options) starts (options' mode, lengths, activations and segment_steps; h0
  // and c0 are not read). For Mode::Training: forward, backward and an optimizer keeping
  // `optimizer_slots` buffers the size of the parameters (0 plain SGD, 1 SGD with momentum,
  // 2 Adam); for Mode::Inference the forward alone. Matches memory_stats()'s peak over such
  // a step, from the parameters up, within 5% (plus weight_copies where those are not
  // recur's). x and dy are the caller's and not counted. A forward whose own part could
  // never fit in the device's memory is an Error (argument x) naming its largest part,
  // before it allocates or queues anything.
  StepMemory step_memory(std::int64_t steps, std::int64_t batch, const ForwardOptions& options = {},
                         int optimizer_slots = 2) const;

  // The CUDA stream (a cudaStream_t) all of this model's work is queued on; nullptr for a
  // CPU model. By default each CUDA model has a stream of its own. set_cuda_stream() makes
  // the model use the caller's stream instead (nullptr: back to its own); the caller keeps
  // ownership and must keep the stream alive while the model uses it. Throws for a CPU
  // model. forward() and backward() return before the GPU has finished; copying a result
  // to the host (TensorView::copy_to_host, to_vector) waits for it, as does synchronize().
  void* cuda_stream() const;
  void set_cuda_stream(void* stream);
  void synchronize();

  // Dropout masks (config.dropout > 0) come from Philox-4x32-10 keyed by the seed, with a
  // new stream for every Mode::Training forward: the n-th training forward after
  // set_dropout_seed(s) draws the same masks on the CPU and on a GPU. The default seed is
  // the constructor's.
  void set_dropout_seed(std::uint64_t seed);
  // Training forwards since the seed was set (the stream the next one uses).
  std::uint64_t dropout_step() const;

  // Re-draws every parameter from U(-1/sqrt(H), 1/sqrt(H)), deterministically from `seed`
  // (the layer-norm parameters back to 1 and 0).
  void reset_parameters(std::uint64_t seed);
  // Sets every gradient to zero.
  void zero_grad();

  // x [T, B, I] ([B, T, I] when config.batch_first), in the model's dtype and device; a
  // model whose config.math is Bf16 or Fp16 also takes x in that storage type (BFloat16,
  // Float16), and then returns y in it too (h_n, c_n stay the model's dtype). x is read
  // during the call only. options (ForwardOptions): h0, c0, mode, lengths, and whether
  // the training state comes back (return_saved) or stays with the Rnn.
  //
  // lengths: empty, or B lengths, each in 1..T, in any order: sequence b is x[0..len_b)
  // and the rest is padding, PyTorch's PackedSequence semantics. Its outputs past its end
  // are zero, its final states are those after its last step, and the reverse direction
  // starts at its last step. Steps past the longest sequence are not computed, and each
  // step computes only the sequences still running, so a batch costs about the sum of
  // its lengths, not B*T.
  //
  // Mode::Training keeps what backward needs (SavedForward): by default the Rnn keeps it,
  // replacing the state it kept from an earlier training forward, for backward(dy); with
  // options.return_saved it is returned in ForwardResult::saved instead, for
  // backward(std::move(saved), dy), and what the Rnn kept is left alone. Mode::Inference
  // keeps nothing and leaves every saved state as it was. Every training forward draws
  // the next dropout stream (dropout_step()).
  ForwardResult forward(const TensorView& x, const ForwardOptions& options);
  // The same with positional arguments (options.return_saved = false).
  ForwardResult forward(const TensorView& x, const TensorView& h0 = {}, const TensorView& c0 = {},
                        Mode mode = Mode::Training, const std::vector<std::int64_t>& lengths = {});

  // Consumes the forward state the Rnn kept (from its last Mode::Training forward without
  // return_saved) and runs its backward. dy [T, B, D*H] ([B, T, D*H] batch-first; in the
  // math's storage type too, as x) of that forward, or undefined (zeros; dy's padding is
  // ignored); options: dh_n, dc_n. Adds dJ/dθ into gradients() (+=, never overwrites)
  // and returns dx (in the dtype that forward's x had), dh0 and dc0 (the gradients
  // reaching h0 and c0). A second backward() needs a new forward(); an Error ('this')
  // when the Rnn keeps none.
  BackwardResult backward(const TensorView& dy, const BackwardOptions& options);
  // The same with positional arguments.
  BackwardResult backward(const TensorView& dy, const TensorView& dh_n = {},
                          const TensorView& dc_n = {});

  // The same for a SavedForward this Rnn returned (rnn.backward(std::move(saved), dy,
  // options)): consumes `saved`, which is left empty and consumed(); what the Rnn kept is
  // left alone. An Error ('saved') when it is empty, consumed, or another Rnn's; dy, dh_n
  // and dc_n take that forward's T and B. (A template only so that a braced {} first
  // argument still picks backward(dy, dh_n, dc_n); S must be SavedForward, an rvalue.)
  template <class S, class = std::enable_if_t<std::is_same_v<S, SavedForward>>>
  BackwardResult backward(S&& saved, const TensorView& dy, const BackwardOptions& options = {}) {
    return backward_saved(saved, dy, options);
  }

 private:
  ForwardResult forward_impl(const TensorView& x, const TensorView& h0, const TensorView& c0,
                             Mode mode, const std::vector<std::int64_t>& lengths, bool return_saved,
                             bool with_options, std::int64_t segment_steps = 0,
                             bool recompute_layers = false);
  BackwardResult backward_kept(const TensorView& dy, const TensorView& dh_n, const TensorView& dc_n,
                               bool with_options);
  BackwardResult backward_saved(SavedForward& saved, const TensorView& dy,
                                const BackwardOptions& options);
  void check_backward(const detail::SavedState& saved, const TensorView& dy, const TensorView& dh_n,
                      const TensorView& dc_n, bool with_options, bool returned) const;
  BackwardResult run_backward(detail::SavedState& saved, const TensorView& dy,
                              const TensorView& dh_n, const TensorView& dc_n);

  friend struct detail::RnnAccess;  // src/rnn_access.h: diagnostics reach the engine
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
