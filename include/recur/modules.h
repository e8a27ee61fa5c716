// recur/modules.h: what a language model needs beside the Rnn: an embedding, a linear
// layer and softmax cross-entropy, on the CPU or a GPU.
//
//   recur::Embedding embed(vocab, 64, recur::DType::Float32, device);
//   recur::Linear head(128, vocab, /*bias*/ true, recur::DType::Float32, device);
//   recur::SoftmaxCrossEntropy xent;
//
//   recur::Tensor x = embed.forward(ids, {T, B});        // [T, B, 64]
//   recur::ForwardResult r = rnn.forward(x);             // r.y [T, B, 128]
//   recur::Tensor logits = head.forward(r.y);            // [T, B, vocab]
//   recur::CrossEntropyResult ce = xent.forward_backward(logits, targets);
//   recur::Tensor dy = head.backward(r.y, ce.dlogits);   // adds dW, db; returns dJ/d(r.y)
//   recur::BackwardResult g = rnn.backward(dy);
//   embed.backward(ids, {T, B}, g.dx);                   // adds d(weight)
//   double loss = ce.loss.to_vector<float>()[0];         // the only host wait
//
// Token ids and targets are int32 in host memory (recur tensors are float32/float64):
// each call validates them on the host and uploads them (a synchronous copy on a GPU).
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

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/device.h"
#include "recur/export.h"
#include "recur/rnn.h"
#include "recur/tensor.h"

namespace recur {

// PyTorch's nn.Embedding: weight [V, E], initialised from N(0, 1).
class RECUR_API Embedding {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, DType dtype = DType::Float32,
            Device device = Device::cpu(), std::uint64_t seed = 0);
  ~Embedding();
  Embedding(Embedding&&) noexcept;
  Embedding& operator=(Embedding&&) noexcept;
  Embedding(const Embedding&) = delete;
  Embedding& operator=(const Embedding&) = delete;

  std::int64_t num_embeddings() const;  // V
  std::int64_t embedding_dim() const;   // E
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

  // ids: numel(shape) ids in [0, V), row-major in `shape` (e.g. [T, B]). Returns the rows
  // of the weight, shape + [E].
  Tensor forward(const std::vector<std::int32_t>& ids, const Shape& shape);
  // dy = dJ/d(forward(ids, shape)), shape + [E]. Adds dJ/dweight into the gradients:
  // row v gets the sum of dy over the positions of v, in increasing position.
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
  std::int32_t ignore_index = -100;
};

struct CrossEntropyResult {
  Tensor loss;             // [1], the mean over counted rows (0 when none counts); stays on the
                           // logits' device until read
  Tensor dlogits;          // [..., V] d(loss)/d(logits); undefined from forward()
  std::int64_t count = 0;  // rows counted (targets != ignore_index)
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

  // logits [..., V] (rank >= 1, float32 or float64, any device), targets: one per row
  // (numel(logits) / V of them), each in [0, V) or ignore_index. Returns the mean loss
  // and d(loss)/d(logits). Scratch memory (the targets' device copy, the per-row losses)
  // is kept for the next call.
  CrossEntropyResult forward_backward(const TensorView& logits,
                                      const std::vector<std::int32_t>& targets);
  // The loss alone (dlogits undefined).
  CrossEntropyResult forward(const TensorView& logits, const std::vector<std::int32_t>& targets);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
