// examples/gradient_flow.cpp: the picture of vanishing and exploding gradients.
//
// Vanilla RNNs (sigmoid and tanh), an LSTM and a GRU read the same random input. For a
// loss J that reads the output at the last step i = T-1 only, recur::gradient_flow records
// ||dJ/dh_j|| for every earlier step j, by the backward pass itself. The vanilla RNNs'
// W_hh are scaled to a largest singular value sigma below and above 1 (and, for the
// sigmoid, above 4 = 1/max sigmoid'): dJ/dh_j is a product of i-j Jacobians
// diag(act'(.)) W_hh, so it shrinks or grows geometrically with i-j (Pascanu et al. 2013).
// The LSTM's and GRU's gated paths (the cell state, the update gate) keep it alive.
//
//   gradient_flow [--smoke] [--out DIR]
//
// Prints a table of ||dJ/dh_j|| against i-j and writes DIR/gradient_flow.tsv (every
// model, every distance) and DIR/gradient_flow.md (the table); examples/plot_gradients.py
// turns the TSV into a log-scale plot. --smoke: small sizes, a second or so.
#include <recur/recur.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Model {
  std::string name;
  recur::CellKind cell;
  double sigma;            // the largest singular value W_hh is scaled to; <= 0: as initialised
  double gate_bias = 0.0;  // added to b_hh of the LSTM's forget gate or the GRU's update
                           // gate (0: PyTorch's init), which keeps the gated path open
};

std::vector<double> uniform(std::size_t n, std::uint64_t seed) {
  std::vector<double> v(n);
  std::uint64_t s = seed;
  for (double& e : v) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    e = 2.0 * static_cast<double>(z >> 11) * 0x1.0p-53 - 1.0;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  bool smoke = false;
  std::string out_dir = ".";
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--smoke") == 0) {
      smoke = true;
    } else if (std::strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
      out_dir = argv[++a];
    } else {
      std::fprintf(stderr, "usage: %s [--smoke] [--out DIR]\n", argv[0]);
      return 2;
    }
  }
  const std::int64_t T = smoke ? 24 : 100, B = smoke ? 4 : 16, I = 8, H = smoke ? 16 : 64;
  const std::int64_t i = T - 1;
  const recur::Device device =
      recur::cuda_device_count() > 0 ? recur::Device::cuda(0) : recur::Device::cpu();
  std::printf(
      "gradient flow on %s: T = %lld, B = %lld, I = %lld, H = %lld, loss at step i = %lld\n",
      device.str().c_str(), static_cast<long long>(T), static_cast<long long>(B),
      static_cast<long long>(I), static_cast<long long>(H), static_cast<long long>(i));

  using recur::CellKind;
  const std::vector<Model> models = {
      {"sigmoid RNN", CellKind::RnnSigmoid, 0.5},
      {"sigmoid RNN", CellKind::RnnSigmoid, 2.0},
      {"sigmoid RNN", CellKind::RnnSigmoid, 8.0},
      {"sigmoid RNN", CellKind::RnnSigmoid, 16.0},
      {"tanh RNN", CellKind::RnnTanh, 0.5},
      {"tanh RNN", CellKind::RnnTanh, 1.0},
      {"tanh RNN", CellKind::RnnTanh, 2.0},
      {"tanh RNN", CellKind::RnnTanh, 4.0},
      {"LSTM", CellKind::Lstm, -1.0},
      {"LSTM, forget bias +3", CellKind::Lstm, -1.0, 3.0},
      {"GRU", CellKind::GruLinearBeforeReset, -1.0},
      {"GRU, update bias +3", CellKind::GruLinearBeforeReset, -1.0, 3.0},
  };
  // One input for every model.
  recur::Tensor x = recur::Tensor::from_vector(uniform(static_cast<std::size_t>(T * B * I), 7),
                                               {T, B, I}, device);

  const std::vector<std::int64_t> shown = {0, 1, 2, 5, 10, 20, 50, 99};
  const std::string tsv_path = out_dir + "/gradient_flow.tsv";
  const std::string md_path = out_dir + "/gradient_flow.md";
  std::FILE* tsv = std::fopen(tsv_path.c_str(), "w");
  std::FILE* md = std::fopen(md_path.c_str(), "w");
  if (tsv == nullptr || md == nullptr) {
    std::fprintf(stderr, "cannot write %s or %s\n", tsv_path.c_str(), md_path.c_str());
    return 1;
  }
  std::fprintf(tsv, "model\tcell\tsigma\tdistance\tnorm\n");
  std::string header = "| model | sigma_max(W_hh) |", rule = "| --- | --- |";
  for (std::int64_t d : shown) {
    if (d >= T) continue;
    header += " i-j=" + std::to_string(d) + " |";
    rule += " --- |";
  }
  std::fprintf(md, "%s\n%s\n", header.c_str(), rule.c_str());
  std::printf("%s\n%s\n", header.c_str(), rule.c_str());

  for (const Model& m : models) {
    recur::RnnConfig config;
    config.cell = m.cell;
    config.input_size = I;
    config.hidden_size = H;
    config.dtype = recur::DType::Float64;  // shows the geometric decay far below float's range
    recur::Rnn rnn(config, device, /*seed=*/3);
    if (m.sigma > 0) recur::set_largest_singular_values(rnn, m.sigma);
    if (m.gate_bias != 0.0) {  // LSTM i, f, g, o and GRU r, z, n: rows [H, 2H) either way
      recur::TensorView b = rnn.parameter("bias_hh_l0");
      std::vector<double> host = b.to_vector<double>();
      for (std::int64_t k = H; k < 2 * H; ++k) host[k] += m.gate_bias;
      b.copy_from_host(host.data());
    }
    const double sigma = recur::largest_singular_values(rnn)[0];
    const recur::GradientFlow flow = recur::gradient_flow(rnn, x, i);
    std::string row = "| " + m.name + " | " + std::to_string(sigma).substr(0, 5) + " |";
    for (std::int64_t j = i; j >= 0; --j) {
      std::fprintf(tsv, "%s\t%s\t%.6g\t%lld\t%.6e\n", m.name.c_str(), recur::to_string(m.cell),
                   sigma, static_cast<long long>(i - j), flow.norm(0, 0, j));
    }
    for (std::int64_t d : shown) {
      if (d >= T) continue;
      char cell[32];
      std::snprintf(cell, sizeof cell, " %.2e |", flow.norm(0, 0, i - d));
      row += cell;
    }
    std::fprintf(md, "%s\n", row.c_str());
    std::printf("%s\n", row.c_str());
  }
  std::fclose(tsv);
  std::fclose(md);
  std::printf("wrote %s and %s\n", tsv_path.c_str(), md_path.c_str());
  return 0;
}
