// bench/recur_driver.cpp: recur through its public API (recur::Rnn), as a user calls it.
//   inference      rnn.forward(x, {}, {}, Mode::Inference)
//   training step  rnn.forward(x) (Mode::Training), then rnn.backward(dy)
// On the GPU every call is bracketed by CUDA events on the model's stream.
#include <recur/recur.h>

#include <memory>
#include <optional>
#include <random>

#include "result.h"

namespace bench {
namespace {

// The one place a benchmark Problem becomes a recur::RnnConfig: stacks without connections
// between layers (y_l feeds layer l+1), as PyTorch and the anchors run them.
std::optional<recur::RnnConfig> to_recur_config(const Problem& p, std::string* /*why*/) {
  recur::RnnConfig config;
  config.num_layers = p.layers;
  config.bidirectional = p.bidirectional;
  config.connection = recur::Connection::None;
  config.cell = cell_kind(p.cell);
  config.input_size = p.I;
  config.hidden_size = p.H;
  config.bias = true;
  config.dtype = recur::DType::Float32;
  return config;
}

recur::Tensor random_tensor(const recur::Shape& shape, std::uint32_t seed, recur::Device device) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> data(static_cast<std::size_t>(recur::numel(shape)));
  for (float& v : data) v = dist(gen);
  return recur::Tensor::from_vector(data, shape, device);
}

}  // namespace

Prepared prepare_recur(const Problem& p, bool gpu, Mode mode, recur::Math math) {
  Prepared out;
  out.result = note_result("recur", math, gpu ? "gpu" : "cpu", p, mode, "");
  std::string why;
  std::optional<recur::RnnConfig> config = to_recur_config(p, &why);
  if (!config) {
    out.result.note = why;
    return out;
  }
  config->math = math;
  // What one call needs, kept alive by the call.
  struct State {
    recur::Rnn rnn;
    recur::Tensor x, dy;
  };
  try {
    const recur::Device device = gpu ? recur::Device::cuda(0) : recur::Device::cpu();
    // Reduced math takes x and dy in its storage type and gives y and dx back in it, as the
    // anchors of that precision do (oneDNN's and cuDNN's bf16 and fp16 data).
    const recur::DType io = math == recur::Math::Bf16   ? recur::DType::BFloat16
                            : math == recur::Math::Fp16 ? recur::DType::Float16
                                                        : recur::DType::Float32;
    auto s = std::make_shared<State>(State{
        recur::Rnn(*config, device, /*seed=*/1), random_tensor({p.T, p.B, p.I}, 2, device).to(io),
        random_tensor({p.T, p.B, (p.bidirectional ? 2 : 1) * p.H}, 3, device).to(io)});
    std::function<void()> fn;
    if (mode == Mode::Inference) {
      fn = [s] { s->rnn.forward(s->x, {}, {}, recur::Mode::Inference); };
    } else {
      fn = [s] {
        s->rnn.forward(s->x);
        s->rnn.backward(s->dy);
      };
    }
#ifdef RECUR_BENCH_CUDA
    out.call = gpu ? cuda_timed(fn, s->rnn.cuda_stream()) : host_timed(fn);
#else
    out.call = host_timed(fn);
#endif
  } catch (const std::exception& e) {  // the model or its inputs could not be made
    out.result.note = std::string("error: ") + e.what();
  }
  return out;
}

}  // namespace bench
