// bench/bench_packed.cpp: what a variable-length batch costs.
//
// Times a training step (forward + backward) of the same model on batches whose lengths
// vary, against the same batch at full length, and prints the time ratio beside the
// ratio of real steps, sum(lengths) / (B*T). recur computes only the steps of sequences
// still running, so the two ratios should be close. Runs on the CPU, and on the GPU when
// one is usable (synchronising after each step).
#include <recur/recur.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

namespace {

double median_ms(recur::Rnn& rnn, const recur::Tensor& x, const recur::Tensor& dy,
                 const std::vector<std::int64_t>& lengths, int reps) {
  std::vector<double> ms;
  for (int r = 0; r < reps + 2; ++r) {
    const auto start = std::chrono::steady_clock::now();
    rnn.forward(x, {}, {}, recur::Mode::Training, lengths);
    rnn.backward(dy);
    rnn.synchronize();
    const double t =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (r >= 2) ms.push_back(t);  // two warm-up steps
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 7;
  bool gpu_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) reps = 3;
    if (std::strcmp(argv[i], "--gpu") == 0) gpu_only = true;
  }
  const std::int64_t T = 64, B = 32, I = 128, H = 128;
  std::vector<recur::Device> devices;
  if (!gpu_only) devices.push_back(recur::Device::cpu());
  if (recur::cuda_device_count() > 0) devices.push_back(recur::Device::cuda(0));

  // Lengths: all T; spread evenly over 1..T (about half the steps); all T/4 but one.
  std::vector<std::int64_t> spread(B), short_ones(B, T / 4);
  for (std::int64_t b = 0; b < B; ++b) spread[b] = 1 + (b * 37 % B) * (T - 1) / (B - 1);
  short_ones[5] = T;
  const std::vector<std::pair<const char*, std::vector<std::int64_t>>> batches = {
      {"full", std::vector<std::int64_t>(B, T)},
      {"spread 1..T", spread},
      {"T/4, one T", short_ones}};

  std::printf(
      "recur %s: training step (forward + backward), LSTM, 2 layers, bidirectional, "
      "T=%lld B=%lld I=%lld H=%lld\n",
      recur::version(), static_cast<long long>(T), static_cast<long long>(B),
      static_cast<long long>(I), static_cast<long long>(H));
  std::printf("%-6s %-12s %10s %12s %12s\n", "device", "lengths", "ms", "time ratio",
              "steps ratio");
  for (const recur::Device& device : devices) {
    recur::RnnConfig c;
    c.cell = recur::CellKind::Lstm;
    c.input_size = I;
    c.hidden_size = H;
    c.num_layers = 2;
    c.bidirectional = true;
    recur::Rnn rnn(c, device, 1);
    std::vector<float> xv(T * B * I), dyv(T * B * 2 * H);
    for (std::size_t i = 0; i < xv.size(); ++i)
      xv[i] = static_cast<float>((i * 7919 % 1000) / 1000.0 - 0.5);
    for (std::size_t i = 0; i < dyv.size(); ++i)
      dyv[i] = static_cast<float>((i * 104729 % 1000) / 1000.0 - 0.5);
    recur::Tensor x = recur::Tensor::from_vector(xv, {T, B, I}, device);
    recur::Tensor dy = recur::Tensor::from_vector(dyv, {T, B, 2 * H}, device);
    double full_ms = 0;
    for (const auto& [name, lengths] : batches) {
      const double ms = median_ms(rnn, x, dy, lengths, reps);
      if (full_ms == 0) full_ms = ms;
      const double steps =
          static_cast<double>(std::accumulate(lengths.begin(), lengths.end(), std::int64_t{0})) /
          static_cast<double>(B * T);
      std::printf("%-6s %-12s %10.2f %12.3f %12.3f\n", device.str().c_str(), name, ms, ms / full_ms,
                  steps);
    }
  }
  return 0;
}
