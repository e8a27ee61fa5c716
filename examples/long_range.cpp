// examples/long_range.cpp: what vanishing and exploding gradients do to training.
//
// The adding problem (Hochreiter & Schmidhuber 1997): at each of T steps the input is a
// value v_t ~ U(0, 1) and a marker m_t; exactly two markers are 1, one in each half of
// the sequence, and the target, read from the last hidden state by a linear layer, is the
// sum of the two marked values. Predicting the mean 1 gives a mean squared error of 1/6;
// a prediction counts as correct when it is within 0.04 of the target. The first marker
// is at least T/2 steps before the end, so the distance the gradient must travel grows
// with T.
//
// Three experiments, each a table in DIR/long_range.md and curves in DIR/long_range_*.tsv:
//   1. distance: a tanh RNN, an LSTM and a GRU at several T (Adam, clipping at 1);
//   2. clipping: a tanh RNN with W_hh scaled to a largest singular value of 4 and plain
//      SGD with a high learning rate, without clipping (the loss becomes Inf/NaN) and
//      with clip_grad_norm at 1 (it trains);
//   3. depth: 8-layer tanh stacks with no connection, residual and highway connections.
//
//   long_range [--smoke] [--out DIR] [--only distance|clipping|depth]
//
// --smoke: tiny sizes and a few steps, a few seconds in all (run by CTest).
#include <recur/recur.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// splitmix64: the same numbers on every platform.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  double uniform() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }
  std::int64_t below(std::int64_t n) { return static_cast<std::int64_t>(uniform() * n); }

 private:
  std::uint64_t state_;
};

// A batch of the adding problem: x [T, B, 2], targets [B].
struct Batch {
  std::vector<float> x, target;
};

Batch adding_batch(std::int64_t T, std::int64_t B, Random& rng) {
  Batch b;
  b.x.assign(static_cast<std::size_t>(T * B * 2), 0.0f);
  b.target.resize(static_cast<std::size_t>(B));
  for (std::int64_t s = 0; s < B; ++s) {
    const std::int64_t half = T / 2;
    const std::int64_t first = rng.below(half), second = half + rng.below(T - half);
    double sum = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      const float v = static_cast<float>(rng.uniform());
      b.x[(t * B + s) * 2] = v;
      if (t == first || t == second) {
        b.x[(t * B + s) * 2 + 1] = 1.0f;
        sum += v;
      }
    }
    b.target[s] = static_cast<float>(sum);
  }
  return b;
}

struct Setup {
  recur::CellKind cell = recur::CellKind::Lstm;
  std::int64_t T = 50, B = 32, H = 32, layers = 1;
  recur::Connection connection = recur::Connection::None;
  int steps = 1000;
  bool adam = true;
  double lr = 1e-2;
  double head_lr = 0.0;
  double momentum = 0.0;   // SGD
  double gate_bias = 0.0;  // Highway: every highway_bias_l{l} starts here (< 0: carry u_l)  // > 0:
                           // the head's own learning rate (else lr)
  double clip = 1.0;       // <= 0: no clipping
  double sigma = 0.0;      // > 0: W_hh scaled to this largest singular value first
  std::uint64_t seed = 1;
};

struct Outcome {
  std::vector<double> loss;  // per training step (the batch's MSE before the update)
  std::vector<double> grad_norm;
  double test_mse = 0, accuracy = 0;
  int first_nonfinite = -1;  // first step whose loss or gradient is not finite
  double seconds = 0;
};

// Trains an Rnn + Linear(H, 1) head on the adding problem; evaluates on 1000 sequences.
Outcome train(const Setup& s, recur::Device device) {
  recur::RnnConfig config;
  config.cell = s.cell;
  config.input_size = 2;
  config.hidden_size = s.H;
  config.num_layers = s.layers;
  config.connection = s.connection;
  recur::Rnn rnn(config, device, s.seed);
  if (s.sigma > 0) recur::set_largest_singular_values(rnn, s.sigma);
  for (const recur::ParamInfo& info : rnn.parameter_info()) {
    if (s.gate_bias == 0.0 || info.name.rfind("highway_bias", 0) != 0) continue;
    const recur::TensorView b = rnn.parameter(info.name);
    const std::vector<float> v(static_cast<std::size_t>(b.numel()),
                               static_cast<float>(s.gate_bias));
    b.copy_from_host(v.data());
  }
  recur::Linear head(s.H, 1, true, recur::DType::Float32, device, s.seed + 1);
  recur::AdamOptions adam_options;
  adam_options.lr = s.lr;
  recur::SgdOptions sgd_options;
  sgd_options.lr = s.lr;
  std::unique_ptr<recur::Optimizer> opt_rnn, opt_head;
  if (s.adam) {
    opt_rnn = std::make_unique<recur::Adam>(rnn.parameters(), adam_options);
    if (s.head_lr > 0) adam_options.lr = s.head_lr;
    opt_head = std::make_unique<recur::Adam>(head.parameters(), adam_options);
  } else {
    sgd_options.momentum = s.momentum;
    opt_rnn = std::make_unique<recur::Sgd>(rnn.parameters(), sgd_options);
    if (s.head_lr > 0) sgd_options.lr = s.head_lr;
    opt_head = std::make_unique<recur::Sgd>(head.parameters(), sgd_options);
  }
  const std::int64_t T = s.T, B = s.B, H = s.H;
  Random rng(s.seed * 7919 + static_cast<std::uint64_t>(T));
  recur::GradNorm norm;
  Outcome out;
  const auto start = std::chrono::steady_clock::now();
  recur::Tensor dy = recur::Tensor::zeros({T, B, H}, recur::DType::Float32, device);
  const std::size_t last = static_cast<std::size_t>((T - 1) * B * H) * sizeof(float);
  for (int step = 0; step < s.steps; ++step) {
    const Batch batch = adding_batch(T, B, rng);
    recur::Tensor x = recur::Tensor::from_vector(batch.x, {T, B, 2}, device);
    rnn.zero_grad();
    head.zero_grad();
    recur::ForwardResult f = rnn.forward(x);
    const recur::TensorView h_last(static_cast<char*>(f.y.data()) + last, {B, H},
                                   recur::DType::Float32, device);
    recur::Tensor pred = head.forward(h_last);
    const std::vector<float> p = pred.to_vector<float>();
    std::vector<float> dpred(static_cast<std::size_t>(B));
    double mse = 0;
    for (std::int64_t b = 0; b < B; ++b) {
      const double e = static_cast<double>(p[b]) - batch.target[b];
      mse += e * e / static_cast<double>(B);
      dpred[b] = static_cast<float>(2.0 * e / static_cast<double>(B));
    }
    recur::Tensor dh = head.backward(h_last, recur::Tensor::from_vector(dpred, {B, 1}, device));
    recur::TensorView(static_cast<char*>(dy.data()) + last, {B, H}, recur::DType::Float32, device)
        .copy_from(dh);
    rnn.backward(dy);
    if (s.clip > 0) {
      recur::clip_grad_norm({rnn.gradients(), head.gradients()}, s.clip, norm);
      opt_rnn->step(rnn.gradients(), &norm);
      opt_head->step(head.gradients(), &norm);
    } else {
      // No clipping, and no safety net: the optimizer steps whatever the gradient is.
      recur::global_norm({rnn.gradients(), head.gradients()}, norm);
      opt_rnn->step(rnn.gradients());
      opt_head->step(head.gradients());
    }
    out.loss.push_back(mse);
    out.grad_norm.push_back(norm.norm());
    if (out.first_nonfinite < 0 && (!std::isfinite(mse) || !norm.finite())) {
      out.first_nonfinite = step;
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Held-out evaluation.
  Random test_rng(424242 + static_cast<std::uint64_t>(T));
  const std::int64_t tests = 1000;
  const Batch batch = adding_batch(T, tests, test_rng);
  recur::ForwardResult f = rnn.forward(recur::Tensor::from_vector(batch.x, {T, tests, 2}, device),
                                       {}, {}, recur::Mode::Inference);
  const recur::TensorView h_last(static_cast<char*>(f.y.data()) +
                                     static_cast<std::size_t>((T - 1) * tests * H) * sizeof(float),
                                 {tests, H}, recur::DType::Float32, device);
  const std::vector<float> p = head.forward(h_last).to_vector<float>();
  int correct = 0;
  for (std::int64_t b = 0; b < tests; ++b) {
    const double e = static_cast<double>(p[b]) - batch.target[b];
    out.test_mse += e * e / static_cast<double>(tests);
    if (std::fabs(e) < 0.04) ++correct;
  }
  out.accuracy = static_cast<double>(correct) / static_cast<double>(tests);
  return out;
}

const char* cell_name(recur::CellKind c) {
  switch (c) {
    case recur::CellKind::RnnTanh: return "tanh RNN";
    case recur::CellKind::Lstm: return "LSTM";
    case recur::CellKind::GruLinearBeforeReset: return "GRU";
    default: return recur::to_string(c);
  }
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Mean of the last `n` losses (NaN/Inf propagate).
double tail_mean(const std::vector<double>& v, std::size_t n) {
  n = std::min(n, v.size());
  double s = 0;
  for (std::size_t k = v.size() - n; k < v.size(); ++k) s += v[k];
  return s / static_cast<double>(n);
}

class Report {
 public:
  Report(const std::string& dir, const std::string& name) : dir_(dir) {
    md_ = std::fopen((dir + "/" + name).c_str(), "w");
  }
  ~Report() {
    if (md_ != nullptr) std::fclose(md_);
  }
  bool ok() const { return md_ != nullptr; }
  void line(const std::string& s) {
    std::fprintf(md_, "%s\n", s.c_str());
    std::fflush(md_);
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }
  // One curve per run: step, loss, gradient norm.
  void curves(const std::string& file, const std::vector<std::string>& names,
              const std::vector<Outcome>& runs) {
    std::FILE* f = std::fopen((dir_ + "/" + file).c_str(), "w");
    if (f == nullptr) return;
    std::fprintf(f, "run\tstep\tloss\tgrad_norm\n");
    for (std::size_t r = 0; r < runs.size(); ++r) {
      for (std::size_t k = 0; k < runs[r].loss.size(); ++k) {
        std::fprintf(f, "%s\t%zu\t%.6g\t%.6g\n", names[r].c_str(), k, runs[r].loss[k],
                     runs[r].grad_norm[k]);
      }
    }
    std::fclose(f);
  }

 private:
  std::string dir_;
  std::FILE* md_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  bool smoke = false;
  std::string out_dir = ".", only;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--smoke") == 0) {
      smoke = true;
    } else if (std::strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
      out_dir = argv[++a];
    } else if (std::strcmp(argv[a], "--only") == 0 && a + 1 < argc) {
      only = argv[++a];
    } else {
      std::fprintf(stderr, "usage: %s [--smoke] [--out DIR] [--only distance|clipping|depth]\n",
                   argv[0]);
      return 2;
    }
  }
  const recur::Device device =
      recur::cuda_device_count() > 0 ? recur::Device::cuda(0) : recur::Device::cpu();
  Report report(out_dir, only.empty() ? "long_range.md" : "long_range_" + only + ".md");
  if (!report.ok()) {
    std::fprintf(stderr, "cannot write into %s\n", out_dir.c_str());
    return 1;
  }
  using recur::CellKind;
  int failures = 0;

  if (only.empty() || only == "distance") {
    const std::vector<std::int64_t> lengths =
        smoke ? std::vector<std::int64_t>{8} : std::vector<std::int64_t>{10, 50, 100};
    const std::vector<CellKind> cells = {CellKind::RnnTanh, CellKind::Lstm,
                                         CellKind::GruLinearBeforeReset};
    Setup base;
    base.H = smoke ? 8 : 32;
    base.B = smoke ? 8 : 32;
    base.steps = smoke ? 20 : 2000;
    base.lr = 1e-2;
    report.line("### Adding problem: accuracy against distance");
    report.line("");
    report.line(std::to_string(base.steps) + " Adam steps (lr " + fmt("%g", base.lr) + ", batch " +
                std::to_string(base.B) + ", H = " + std::to_string(base.H) +
                ", clipping at 1); accuracy = share of 1000 held-out sequences predicted within "
                "0.04; test MSE (predicting the mean: 0.167).");
    report.line("");
    report.line("| T | cell | accuracy | test MSE | train loss (last 100) | seconds |");
    report.line("| --- | --- | --- | --- | --- | --- |");
    std::vector<std::string> names;
    std::vector<Outcome> runs;
    for (std::int64_t T : lengths) {
      for (CellKind cell : cells) {
        Setup s = base;
        s.cell = cell;
        s.T = T;
        const Outcome o = train(s, device);
        report.line("| " + std::to_string(T) + " | " + cell_name(cell) + " | " +
                    fmt("%.1f%%", 100 * o.accuracy) + " | " + fmt("%.4f", o.test_mse) + " | " +
                    fmt("%.4f", tail_mean(o.loss, 100)) + " | " + fmt("%.0f", o.seconds) + " |");
        names.push_back(std::string(cell_name(cell)) + ", T=" + std::to_string(T));
        runs.push_back(o);
        if (!std::isfinite(o.test_mse)) ++failures;
      }
    }
    report.line("");
    report.curves("long_range_distance.tsv", names, runs);
  }

  if (only.empty() || only == "clipping") {
    Setup base;
    base.cell = CellKind::RnnRelu;
    base.T = 15;
    base.H = smoke ? 16 : 32;
    base.B = smoke ? 8 : 32;
    base.steps = smoke ? 20 : 1500;
    base.adam = false;
    base.lr = 0.03;
    base.momentum = 0.9;
    base.head_lr = 0.01;
    base.sigma = 4.0;
    report.line("### Exploding gradients: the same run without and with clipping");
    report.line("");
    report.line(
        "ReLU RNN, W_hh scaled to sigma_max = " + fmt("%g", base.sigma) +
        ", adding problem at T = " + std::to_string(base.T) + ", H = " + std::to_string(base.H) +
        ", SGD with momentum " + fmt("%g", base.momentum) + " at lr " + fmt("%g", base.lr) +
        " (the linear head at " + fmt("%g", base.head_lr) + "), " + std::to_string(base.steps) +
        " steps; the optimizer is not given the norm, so nothing skips a step.");
    report.line("");
    report.line(
        "| run | first non-finite step | largest gradient norm | train loss (last 50) | test MSE "
        "| accuracy |");
    report.line("| --- | --- | --- | --- | --- | --- |");
    std::vector<std::string> names;
    std::vector<Outcome> runs;
    for (double clip : {0.0, 1.0}) {
      Setup s = base;
      s.clip = clip;
      const Outcome o = train(s, device);
      double largest = 0;
      for (double g : o.grad_norm) {
        if (std::isfinite(g)) largest = std::max(largest, g);
      }
      const std::string name = clip > 0 ? "clip_grad_norm at 1" : "no clipping";
      report.line(
          "| " + name + " | " +
          (o.first_nonfinite < 0 ? std::string("none") : std::to_string(o.first_nonfinite)) +
          " | " + fmt("%.3g", largest) + " | " + fmt("%.4g", tail_mean(o.loss, 50)) + " | " +
          fmt("%.4g", o.test_mse) + " | " + fmt("%.1f%%", 100 * o.accuracy) + " |");
      names.push_back(name);
      runs.push_back(o);
    }
    report.line("");
    report.curves("long_range_clipping.tsv", names, runs);
  }

  if (only.empty() || only == "depth") {
    Setup base;
    base.cell = CellKind::RnnTanh;
    base.layers = smoke ? 3 : 8;
    base.T = smoke ? 6 : 20;  // long enough that a plain 8-layer stack cannot start
    base.H = smoke ? 8 : 32;
    base.B = smoke ? 8 : 32;
    base.steps = smoke ? 20 : 2000;
    base.adam = false;
    base.lr = 0.03;
    base.momentum = 0.9;
    base.head_lr = 0.01;
    base.gate_bias = -2.0;
    report.line("### Depth: " + std::to_string(base.layers) + "-layer stacks");
    report.line("");
    report.line("tanh RNN stacks, adding problem at T = " + std::to_string(base.T) +
                ", H = " + std::to_string(base.H) + ", SGD with momentum " +
                fmt("%g", base.momentum) + " at lr " + fmt("%g", base.lr) + " (head " +
                fmt("%g", base.head_lr) + "), clipping at 1, " + std::to_string(base.steps) +
                " steps; highway gate biases start at " + fmt("%g", base.gate_bias) +
                " (carry). Train loss: mean over the 50 steps before the step named.");
    report.line("");
    report.line(
        "| connection | loss @500 | loss @1000 | loss @2000 | test MSE | accuracy | seconds |");
    report.line("| --- | --- | --- | --- | --- | --- | --- |");
    std::vector<std::string> names;
    std::vector<Outcome> runs;
    auto run_row = [&](const std::string& name, const Setup& s) {
      const Outcome o = train(s, device);
      std::string row = "| " + name + " |";
      for (std::size_t at : {std::size_t{500}, std::size_t{1000}, std::size_t{2000}}) {
        at = std::min(at, o.loss.size());
        const std::vector<double> upto(o.loss.begin(), o.loss.begin() + at);
        row += " " + fmt("%.4f", tail_mean(upto, 50)) + " |";
      }
      report.line(row + " " + fmt("%.4f", o.test_mse) + " | " + fmt("%.1f%%", 100 * o.accuracy) +
                  " | " + fmt("%.0f", o.seconds) + " |");
      names.push_back(name);
      runs.push_back(o);
      if (!std::isfinite(o.test_mse)) ++failures;
    };
    // The reference: one layer of the same cell, trained alike.
    Setup one = base;
    one.layers = 1;
    run_row("one layer (reference)", one);
    for (recur::Connection c :
         {recur::Connection::None, recur::Connection::Residual, recur::Connection::Highway}) {
      Setup s = base;
      s.connection = c;
      run_row(recur::to_string(c), s);
    }
    report.line("");
    report.line(
        "Highway gates that start closed (carry) make the stack pass its first layer's output "
        "up nearly unchanged, so it trains like the one layer, which does not learn this "
        "problem in these steps either; the residual stack adds every layer's output to the "
        "path and does.");
    report.line("");
    report.curves("long_range_depth.tsv", names, runs);
  }
  return failures == 0 ? 0 : 1;
}
