// examples/adding.h: the adding problem and a small trainer for it (long_range.cpp, depth.cpp).
//
// The adding problem (Hochreiter & Schmidhuber 1997): at each of T steps the input is a
// value v_t ~ U(0, 1) and a marker m_t; exactly two markers are 1, one in each half of
// the sequence, and the target, read from the last hidden state by a linear layer, is the
// sum of the two marked values. Predicting the mean 1 gives a mean squared error of 1/6;
// a prediction counts as correct when it is within 0.04 of the target.
#pragma once

#include <recur/recur.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace adding {

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

inline Batch make_batch(std::int64_t T, std::int64_t B, Random& rng) {
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
  double head_lr = 0.0;    // > 0: the head's own learning rate (else lr)
  double momentum = 0.0;   // SGD
  double gate_bias = 0.0;  // Highway: every highway_bias_l{l} starts here (< 0: carry u_l)
  double clip = 1.0;       // <= 0: no clipping
  double sigma = 0.0;      // > 0: W_hh scaled to this largest singular value first
  std::uint64_t seed = 1;
};

// The recurrent stack and its Linear(D*H, 1) head.
struct Model {
  recur::Rnn rnn;
  recur::Linear head;
};

inline Model make_model(const Setup& s, recur::Device device) {
  recur::RnnConfig config;
  config.cell = s.cell;
  config.input_size = 2;
  config.hidden_size = s.H;
  config.num_layers = s.layers;
  config.connection = s.connection;
  Model m{recur::Rnn(config, device, s.seed),
          recur::Linear(s.H, 1, true, recur::DType::Float32, device, s.seed + 1)};
  if (s.sigma > 0) recur::set_largest_singular_values(m.rnn, s.sigma);
  for (const recur::ParamInfo& info : m.rnn.parameter_info()) {
    if (s.gate_bias == 0.0 || info.name.rfind("highway_bias", 0) != 0) continue;
    const recur::TensorView b = m.rnn.parameter(info.name);
    const std::vector<float> v(static_cast<std::size_t>(b.numel()),
                               static_cast<float>(s.gate_bias));
    b.copy_from_host(v.data());
  }
  return m;
}

// The stack's output at the last step, [B, H], a view into y [T, B, H].
inline recur::TensorView last_step(const recur::Tensor& y, std::int64_t T, std::int64_t B,
                                   std::int64_t H) {
  return recur::TensorView(
      static_cast<char*>(y.data()) + static_cast<std::size_t>((T - 1) * B * H) * sizeof(float),
      {B, H}, recur::DType::Float32, y.device());
}

struct Score {
  double mse = 0, accuracy = 0;
};

// Mean squared error and accuracy on n held-out sequences drawn from `seed`.
inline Score evaluate(Model& m, std::int64_t T, std::int64_t n, std::uint64_t seed) {
  const recur::Device device = m.rnn.device();
  const std::int64_t H = m.rnn.config().hidden_size;
  Random rng(seed);
  const Batch batch = make_batch(T, n, rng);
  recur::ForwardResult f = m.rnn.forward(recur::Tensor::from_vector(batch.x, {T, n, 2}, device), {},
                                         {}, recur::Mode::Inference);
  const std::vector<float> p = m.head.forward(last_step(f.y, T, n, H)).to_vector<float>();
  Score score;
  int correct = 0;
  for (std::int64_t b = 0; b < n; ++b) {
    const double e = static_cast<double>(p[b]) - batch.target[b];
    score.mse += e * e / static_cast<double>(n);
    if (std::fabs(e) < 0.04) ++correct;
  }
  score.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  return score;
}

struct Outcome {
  std::vector<double> loss;  // per training step (the batch's MSE before the update)
  std::vector<double> grad_norm;
  double test_mse = 0, accuracy = 0;
  int first_nonfinite = -1;  // first step whose loss or gradient is not finite
  double seconds = 0;
};

// Trains the model s.steps steps on fresh batches (MSE loss); fills loss, grad_norm,
// first_nonfinite and seconds.
inline void fit(Model& m, const Setup& s, Outcome& out) {
  const recur::Device device = m.rnn.device();
  recur::AdamOptions adam_options;
  adam_options.lr = s.lr;
  recur::SgdOptions sgd_options;
  sgd_options.lr = s.lr;
  std::unique_ptr<recur::Optimizer> opt_rnn, opt_head;
  if (s.adam) {
    opt_rnn = std::make_unique<recur::Adam>(m.rnn.parameters(), adam_options);
    if (s.head_lr > 0) adam_options.lr = s.head_lr;
    opt_head = std::make_unique<recur::Adam>(m.head.parameters(), adam_options);
  } else {
    sgd_options.momentum = s.momentum;
    opt_rnn = std::make_unique<recur::Sgd>(m.rnn.parameters(), sgd_options);
    if (s.head_lr > 0) sgd_options.lr = s.head_lr;
    opt_head = std::make_unique<recur::Sgd>(m.head.parameters(), sgd_options);
  }
  const std::int64_t T = s.T, B = s.B, H = s.H;
  Random rng(s.seed * 7919 + static_cast<std::uint64_t>(T));
  recur::GradNorm norm;
  const auto start = std::chrono::steady_clock::now();
  recur::Tensor dy = recur::Tensor::zeros({T, B, H}, recur::DType::Float32, device);
  for (int step = 0; step < s.steps; ++step) {
    const Batch batch = make_batch(T, B, rng);
    recur::Tensor x = recur::Tensor::from_vector(batch.x, {T, B, 2}, device);
    m.rnn.zero_grad();
    m.head.zero_grad();
    recur::ForwardResult f = m.rnn.forward(x);
    const recur::TensorView h_last = last_step(f.y, T, B, H);
    recur::Tensor pred = m.head.forward(h_last);
    const std::vector<float> p = pred.to_vector<float>();
    std::vector<float> dpred(static_cast<std::size_t>(B));
    double mse = 0;
    for (std::int64_t b = 0; b < B; ++b) {
      const double e = static_cast<double>(p[b]) - batch.target[b];
      mse += e * e / static_cast<double>(B);
      dpred[b] = static_cast<float>(2.0 * e / static_cast<double>(B));
    }
    recur::Tensor dh = m.head.backward(h_last, recur::Tensor::from_vector(dpred, {B, 1}, device));
    last_step(dy, T, B, H).copy_from(dh);
    m.rnn.backward(dy);
    if (s.clip > 0) {
      recur::clip_grad_norm({m.rnn.gradients(), m.head.gradients()}, s.clip, norm);
      opt_rnn->step(m.rnn.gradients(), &norm);
      opt_head->step(m.head.gradients(), &norm);
    } else {
      // No clipping, and no safety net: the optimizer steps whatever the gradient is.
      recur::global_norm({m.rnn.gradients(), m.head.gradients()}, norm);
      opt_rnn->step(m.rnn.gradients());
      opt_head->step(m.head.gradients());
    }
    out.loss.push_back(mse);
    out.grad_norm.push_back(norm.norm());
    if (out.first_nonfinite < 0 && (!std::isfinite(mse) || !norm.finite())) {
      out.first_nonfinite = step;
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The seed of the held-out test set at length T (1000 sequences, never trained on).
inline std::uint64_t test_seed(std::int64_t T) { return 424242 + static_cast<std::uint64_t>(T); }

// Trains an Rnn + Linear(H, 1) head on the adding problem; evaluates on the test set.
inline Outcome train(const Setup& s, recur::Device device) {
  Model m = make_model(s, device);
  Outcome out;
  fit(m, s, out);
  const Score score = evaluate(m, s.T, 1000, test_seed(s.T));
  out.test_mse = score.mse;
  out.accuracy = score.accuracy;
  return out;
}

// Mean of the last `n` values (NaN/Inf propagate).
inline double tail_mean(const std::vector<double>& v, std::size_t n) {
  n = std::min(n, v.size());
  double s = 0;
  for (std::size_t k = v.size() - n; k < v.size(); ++k) s += v[k];
  return s / static_cast<double>(n);
}

}  // namespace adding
