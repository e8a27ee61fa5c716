// recur/rnn.h: a recurrent network (vanilla RNN, LSTM or GRU; stacked, bidirectional,
// with connections between layers), forward and backward.
//
//   recur::Rnn rnn({recur::CellKind::Lstm, /*input*/ 32, /*hidden*/ 64});
//   auto out = rnn.forward(x);          // x [T, B, 32]  ->  out.y [T, B, 64]
//   auto grads = rnn.backward(dy);      // adds dJ/dθ into rnn.gradients(); returns dx
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
//
// Every argument is validated before any state changes; a bad one throws recur::Error
// naming it, and leaves parameters, gradients and the saved forward state as they were.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/config.h"
#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

namespace detail {
struct RnnAccess;
}

enum class Mode {
  Inference,  // keeps nothing for backward
  Training,   // keeps what backward() needs
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
};

struct BackwardResult {
  Tensor dx;   // [T, B, I]
  Tensor dh0;  // [L*D, B, H]
  Tensor dc0;  // [L*D, B, H] (LSTM); undefined for other cells
};

class RECUR_API Rnn {
 public:
  // Allocates parameters (initialised like PyTorch: U(-1/sqrt(H), 1/sqrt(H)) from `seed`)
  // and zeroed gradients on `device`.
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

  // Re-draws every parameter from U(-1/sqrt(H), 1/sqrt(H)), deterministically from `seed`.
  void reset_parameters(std::uint64_t seed);
  // Sets every gradient to zero.
  void zero_grad();

  // x [T, B, I] ([B, T, I] when config.batch_first); h0, c0 [L*D, B, H] or undefined
  // (zeros). c0 only for LSTM. Every tensor must have the model's dtype and device; a model
  // whose config.math is Bf16 or Fp16 also takes x in that storage type (BFloat16,
  // Float16), and then returns y in it too (h_n, c_n stay the model's dtype). In
  // Mode::Training the input and the activations are kept for one backward().
  //
  // lengths: empty, or B lengths, each in 1..T, in any order: sequence b is x[0..len_b)
  // and the rest is padding, PyTorch's PackedSequence semantics. Its outputs past its end
  // are zero, its final states are those after its last step, and the reverse direction
  // starts at its last step. Steps past the longest sequence are not computed, and each
  // step computes only the sequences still running, so a batch costs about the sum of
  // its lengths, not B*T.
  ForwardResult forward(const TensorView& x, const TensorView& h0 = {}, const TensorView& c0 = {},
                        Mode mode = Mode::Training, const std::vector<std::int64_t>& lengths = {});

  // dy [T, B, D*H] ([B, T, D*H] batch-first; in the math's storage type too, as x), dh_n,
  // dc_n [L*D, B, H], each optional (undefined = zeros; dy's padding is ignored), matching
  // the last Mode::Training forward(). Adds dJ/dθ into gradients() and returns dx (in the
  // dtype that forward's x had), dh0 and dc0. Consumes the saved forward state: a second
  // backward() needs a new forward().
  BackwardResult backward(const TensorView& dy, const TensorView& dh_n = {},
                          const TensorView& dc_n = {});

 private:
  friend struct detail::RnnAccess;  // src/rnn_access.h: diagnostics reach the engine
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
