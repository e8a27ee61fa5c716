// examples/train_small_lstm.cpp: trains a small LSTM for a few steps and says what it did.
//
// The task: read a noisy sine wave and predict the next value (a linear read-out of the
// LSTM's last hidden unit stands in for an output layer). Plain SGD on the host keeps the
// example self-contained; recur does the recurrent part, forward and backward, on the GPU
// when one is usable and otherwise on the CPU.
#include <recur/recur.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 200;
  const std::int64_t T = 32, B = 16, I = 1, H = 32;
  const recur::Device device =
      recur::cuda_device_count() > 0 ? recur::Device::cuda(0) : recur::Device::cpu();
  std::printf("recur %s: training a %lld-unit LSTM on %s (%s)\n", recur::version(),
              static_cast<long long>(H), device.str().c_str(),
              device.is_cuda() ? "a CUDA GPU was found"
                               : (recur::cuda_built() ? "built with CUDA, but no usable GPU"
                                                      : "built without CUDA"));

  recur::RnnConfig config;
  config.cell = recur::CellKind::Lstm;
  config.input_size = I;
  config.hidden_size = H;
  recur::Rnn rnn(config, device, /*seed=*/1);

  std::vector<float> x(T * B), target(T * B), y_host(T * B * H), dy(T * B * H);
  std::vector<float> params(static_cast<std::size_t>(rnn.parameters().numel()));
  std::vector<float> grads(params.size());
  std::uint32_t rng = 12345;
  auto noise = [&rng] {
    rng = rng * 1664525u + 1013904223u;
    return static_cast<float>(rng >> 8) / 16777216.0f - 0.5f;
  };
  const float lr = 0.5f;
  double first_loss = 0, last_loss = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    // A batch of sine waves with random phases; target is the next clean value.
    for (std::int64_t b = 0; b < B; ++b) {
      const float phase = 6.2831853f * (noise() + 0.5f);
      for (std::int64_t t = 0; t < T; ++t) {
        x[t * B + b] = std::sin(phase + 0.3f * t) + 0.05f * noise();
        target[t * B + b] = 0.5f * std::sin(phase + 0.3f * (t + 1));
      }
    }
    recur::Tensor xt = recur::Tensor::from_vector(x, {T, B, I}, device);
    recur::ForwardResult out = rnn.forward(xt);
    out.y.view().copy_to_host(y_host.data());
    // Loss: mean squared error of hidden unit 0 against the target.
    double loss = 0;
    std::fill(dy.begin(), dy.end(), 0.0f);
    for (std::int64_t i = 0; i < T * B; ++i) {
      const float err = y_host[i * H] - target[i];
      loss += err * err;
      dy[i * H] = 2.0f * err / static_cast<float>(T * B);
    }
    loss /= static_cast<double>(T * B);
    if (step == 0) first_loss = loss;
    last_loss = loss;
    rnn.zero_grad();
    rnn.backward(recur::Tensor::from_vector(dy, {T, B, H}, device));
    rnn.parameters().copy_to_host(params.data());
    rnn.gradients().copy_to_host(grads.data());
    for (std::size_t i = 0; i < params.size(); ++i) params[i] -= lr * grads[i];
    rnn.parameters().copy_from_host(params.data());
    if (step % 50 == 0 || step == steps - 1) {
      std::printf("step %4d  loss %.5f\n", step, loss);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d steps of T=%lld, B=%lld in %.2f s: %.0f sequences/s, loss %.5f -> %.5f\n", steps,
              static_cast<long long>(T), static_cast<long long>(B), seconds, steps * B / seconds,
              first_loss, last_loss);
  return last_loss < first_loss ? 0 : 1;
}
