// recur/modules.h: what a language model needs beside the Rnn: an embedding, a linear
// layer and softmax cross-entropy, on the CPU or a GPU.
//
//   recur::EmbeddingOptions eo;
//   eo.device = device;
//   eo.padding_idx = 0;                                  // token 0 pads
//   recur::Embedding embed(vocab, 64, eo);
//   recur::Linear head(128, vocab, /*bias*/ true, recur::DType::Float32, device);
//   recur::SoftmaxCrossEntropy xent;                     // ignore_index -100
//
//   recur::Tensor ids = recur::Tensor::from_vector(host_ids, {T, B}, device);  // int32
//   recur::Tensor x = embed.forward(ids);                // [T, B, 64]
//   recur::ForwardResult r = rnn.forward(x);             // r.y [T, B, 128]
//   recur::Tensor logits = head.forward(r.y);            // [T, B, vocab]
//   recur::CrossEntropyResult ce = xent.forward_backward(logits, targets);
//   recur::Tensor dy = head.backward(r.y, ce.dlogits);   // adds dW, db; returns dJ/d(r.y)
//   recur::BackwardResult g = rnn.backward(dy);
//   embed.backward(ids, g.dx);                           // adds d(weight)
//   double loss = ce.loss.to_vector<float>()[0];         // the only host wait
//
// Token ids and targets are Int32 or Int64 tensors on the module's (or the logits')
// device, so a step on a GPU reads nothing back. Ids and targets in host memory are
// checked there, before anything runs: an id outside [0, V) (a target outside [0, V) and
// not ignore_index) is a recur::Error naming its position. On a GPU nothing reads them
// back, so a bad id gives a row of NaN and a bad target a NaN loss: the loss, the
// gradient norm and the optimizers' non-finite skip (recur/clip.h) see it, and the step
// is skipped. The overloads taking std::vector<int32_t> check on the host, then upload
// (a synchronous copy on a GPU).
//
// Like Rnn, each module with parameters owns one flat parameter buffer and a gradient
// buffer of the same layout, with PyTorch's names and shapes ("weight", "bias"), so
// clipping, optimizers and checkpoints take parameters() / gradients() as they are.
// Backward passes add (+=) into the gradients; zero_grad() clears them. Gradient sums
// are deterministic: no atomics, a fixed order (the same bits on every run).
//
// Streams: on a GPU, a module queues its work on the legacy default stream unless
// set_cuda_stream() names another; the legacy default stream orders itself after the
// work of every blocking stream (an Rnn's own included) and before later work on them,
// so modules and an Rnn on their default streams need no synchronisation. Results read
// on the host (to_vector, copy_to_host) wait for the work.
//
// Every argument is validated before anything changes: a bad shape, dtype, device or id
// throws recur::Error naming the argument, and leaves parameters and gradients as they
// were.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/device.h"
#include "recur/export.h"
#include "recur/rnn.h"
#include "recur/tensor.h"

namespace recur {

struct EmbeddingOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  std::uint64_t seed = 0;  // reset_parameters(seed)
  // PyTorch's padding_idx: a row in [-V, V) (negative counts from the end) that starts at
  // zero and gets no gradient, so padding tokens contribute nothing; kNoPadding for none.
  std::int64_t padding_idx = kNoPadding;
  static constexpr std::int64_t kNoPadding = INT64_MIN;
};

// PyTorch's nn.Embedding: weight [V, E], initialised from N(0, 1) (the padding row, if
// any, from zeros).
class RECUR_API Embedding {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim,
            const EmbeddingOptions& options);
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, DType dtype = DType::Float32,
            Device device = Device::cpu(), std::uint64_t seed = 0);
  ~Embedding();
  Embedding(Embedding&&) noexcept;
  Embedding& operator=(Embedding&&) noexcept;
  Embedding(const Embedding&) = delete;
  Embedding& operator=(const Embedding&) = delete;

  std::int64_t num_embeddings() const;  // V
  std::int64_t embedding_dim() const;   // E
  // The padding row in [0, V), or EmbeddingOptions::kNoPadding.
  std::int64_t padding_idx() const;
  DType dtype() const;
  Device device() const;

  TensorView parameters() const;                         // flat [V*E]
  TensorView gradients() const;                          // flat [V*E]
  const std::vector<ParamInfo>& parameter_info() const;  // "weight" [V, E]
  TensorView parameter(const std::string& name) const;   // throws for an unknown name
  TensorView gradient(const std::string& name) const;
  TensorView weight() const;       // [V, E]
  TensorView weight_grad() const;  // [V, E]

  void reset_parameters(std::uint64_t seed);
  void zero_grad();
  void* cuda_stream() const;  // nullptr for a CPU module
  void set_cuda_stream(void* stream);
  void synchronize();

  // ids: an Int32 or Int64 tensor of rank >= 1 (e.g. [T, B]) on the module's device, at
  // most 2^31 - 1 of them, each in [0, V) (see the top of this file for bad ids). Returns
  // the rows of the weight, ids.shape() + [E].
  Tensor forward(const TensorView& ids);
  // dy = dJ/d(forward(ids)), ids.shape() + [E]. Adds dJ/dweight into the gradients: row v
  // gets the sum of dy over the positions of v, in increasing position; the padding row
  // and bad ids get nothing. Deterministic on both backends (the ids are sorted stably,
  // then each row sums its own run).
  void backward(const TensorView& ids, const TensorView& dy);
  // The same with ids in host memory, row-major in `shape`.
  Tensor forward(const std::vector<std::int32_t>& ids, const Shape& shape);
  void backward(const std::vector<std::int32_t>& ids, const Shape& shape, const TensorView& dy);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// PyTorch's nn.Linear: y = x W^T + b over the last dimension; weight [out, in], bias
// [out], both initialised from U(-1/sqrt(in), 1/sqrt(in)).
class RECUR_API Linear {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true,
         DType dtype = DType::Float32, Device device = Device::cpu(), std::uint64_t seed = 0);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;
  Linear(const Linear&) = delete;
  Linear& operator=(const Linear&) = delete;

  std::int64_t in_features() const;
  std::int64_t out_features() const;
  bool has_bias() const;
  DType dtype() const;
  Device device() const;

  TensorView parameters() const;  // flat [out*in (+ out)]: weight, then bias
  TensorView gradients() const;
  const std::vector<ParamInfo>& parameter_info() const;  // "weight" [out, in], "bias" [out]
  TensorView parameter(const std::string& name) const;
  TensorView gradient(const std::string& name) const;
  TensorView weight() const;  // [out, in]
  TensorView bias() const;    // [out]; undefined without bias
  TensorView weight_grad() const;
  TensorView bias_grad() const;

  void reset_parameters(std::uint64_t seed);
  void zero_grad();
  void* cuda_stream() const;
  void set_cuda_stream(void* stream);
  void synchronize();

  // x [..., in] (rank >= 1, the module's dtype and device) -> y [..., out].
  Tensor forward(const TensorView& x);
  // x as given to forward, dy = dJ/dy [..., out]. Adds dJ/dW and dJ/db into the
  // gradients and returns dJ/dx [..., in].
  Tensor backward(const TensorView& x, const TensorView& dy);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CrossEntropyOptions {
  // Rows whose target is this id count for nothing (PyTorch's ignore_index).
  std::int64_t ignore_index = -100;
};

// Each tensor stays on the logits' device until read.
struct CrossEntropyResult {
  Tensor loss;     // [1], the mean over counted rows (0 when none counts), the logits' dtype
  Tensor dlogits;  // [..., V] d(loss)/d(logits); undefined from forward()
  Tensor count;    // [1] Int64: the rows counted (targets != ignore_index)
};

// PyTorch's nn.CrossEntropyLoss (reduction "mean") over logits [..., V] (the last
// dimension holds the classes) and one target per row, computed in one fused pass per row
// with the maximum subtracted (no overflow for any finite logits).
class RECUR_API SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(const CrossEntropyOptions& options = {});
  ~SoftmaxCrossEntropy();
  SoftmaxCrossEntropy(SoftmaxCrossEntropy&&) noexcept;
  SoftmaxCrossEntropy& operator=(SoftmaxCrossEntropy&&) noexcept;
  SoftmaxCrossEntropy(const SoftmaxCrossEntropy&) = delete;
  SoftmaxCrossEntropy& operator=(const SoftmaxCrossEntropy&) = delete;

  const CrossEntropyOptions& options() const;
  void* cuda_stream() const;
  void set_cuda_stream(void* stream);  // nullptr: the legacy default stream

  // logits [..., V] (rank >= 1, float32 or float64, any device); targets: an Int32 or
  // Int64 tensor on the logits' device with one target per row (numel(logits) / V of
  // them, in any shape, e.g. [T, B]), each in [0, V) or ignore_index. Returns the mean
  // loss and d(loss)/d(logits). Scratch memory (the per-row losses) is kept for the next
  // call.
  CrossEntropyResult forward_backward(const TensorView& logits, const TensorView& targets);
  // The loss alone (dlogits undefined).
  CrossEntropyResult forward(const TensorView& logits, const TensorView& targets);
  // The same with targets in host memory.
  CrossEntropyResult forward_backward(const TensorView& logits,
                                      const std::vector<std::int32_t>& targets);
  CrossEntropyResult forward(const TensorView& logits, const std::vector<std::int32_t>& targets);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
