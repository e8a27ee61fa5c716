// bench/recur_driver.cpp: recur through its public API (recur::Rnn), as a user calls it.
//   inference      rnn.forward(x, {}, {}, Mode::Inference)
//   training step  rnn.forward(x) (Mode::Training), then rnn.backward(dy)
// On the GPU every call is bracketed by CUDA events on the model's stream.
#include <recur/recur.h>

#include <optional>
#include <random>

#include "result.h"

namespace bench {
namespace {

recur::CellKind to_recur_cell(Cell cell) {
  switch (cell) {
    case Cell::RnnTanh: return recur::CellKind::RnnTanh;
    case Cell::RnnRelu: return recur::CellKind::RnnRelu;
    case Cell::Lstm: return recur::CellKind::Lstm;
    case Cell::Gru: return recur::CellKind::GruLinearBeforeReset;
    case Cell::GruRbp: return recur::CellKind::GruResetBeforeProduct;
  }
  return recur::CellKind::Lstm;
}

// The one place a benchmark Problem becomes a recur::RnnConfig: stacks without connections
// between layers (y_l feeds layer l+1), as PyTorch and the anchors run them.
std::optional<recur::RnnConfig> to_recur_config(const Problem& p, std::string* /*why*/) {
  recur::RnnConfig config;
  config.num_layers = p.layers;
  config.bidirectional = p.bidirectional;
  config.connection = recur::Connection::None;
  config.cell = to_recur_cell(p.cell);
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

std::vector<Result> run_recur(const Problem& p, bool gpu, const DriverOptions& opt) {
  const char* dev_name = gpu ? "gpu" : "cpu";
  std::vector<Result> out;
  std::string why;
  const std::optional<recur::RnnConfig> config = to_recur_config(p, &why);
  if (!config) {
    for (Mode m : opt.modes) out.push_back(note_result("recur", dev_name, p, m, why));
    return out;
  }
  try {
    const recur::Device device = gpu ? recur::Device::cuda(0) : recur::Device::cpu();
    recur::Rnn rnn(*config, device, /*seed=*/1);
    const recur::Tensor x = random_tensor({p.T, p.B, p.I}, 2, device);
    const recur::Tensor dy = random_tensor({p.T, p.B, (p.bidirectional ? 2 : 1) * p.H}, 3, device);
    for (Mode m : opt.modes) {
      Result r = note_result("recur", dev_name, p, m, "");
      std::function<void()> fn;
      if (m == Mode::Inference) {
        fn = [&] { rnn.forward(x, {}, {}, recur::Mode::Inference); };
      } else {
        fn = [&] {
          rnn.forward(x);
          rnn.backward(dy);
        };
      }
      try {
#ifdef RECUR_BENCH_CUDA
        r.stats = gpu ? time_cuda(fn, rnn.cuda_stream(), opt.timing) : time_host(fn, opt.timing);
        if (gpu) rnn.synchronize();
#else
        r.stats = time_host(fn, opt.timing);
#endif
        r.ok = true;
      } catch (const std::exception& e) {
        r.note = std::string("error: ") + e.what();
      }
      out.push_back(r);
    }
  } catch (const std::exception& e) {  // the model or its inputs could not be made
    for (Mode m : opt.modes) {
      out.push_back(note_result("recur", dev_name, p, m, std::string("error: ") + e.what()));
    }
  }
  return out;
}

}  // namespace bench
