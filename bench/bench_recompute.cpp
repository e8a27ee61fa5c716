// bench/bench_recompute.cpp: what recomputation costs and saves.
//
// Times a training step (forward + backward) with every step's activations stored and
// recomputed (ActivationMemory::Recompute): unidirectional LSTM stacks in segments of
// sqrt(T) steps and a few others, bidirectional ones layer by layer; side by side in one
// run, and prints each one's time and peak memory (recur's own allocations above the
// model's parameters and gradients, x and dy: memory_stats) as ratios to the stored
// step's. On the CPU, and on the GPU when one is usable (synchronising after each step).
#include <recur/recur.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Timed {
  double ms = 0;
  std::int64_t peak = 0;
};

Timed time_step(const recur::RnnConfig& c, recur::Device device, const recur::Tensor& x,
                const recur::Tensor& dy, recur::ActivationMemory memory, std::int64_t segment,
                int reps) {
  recur::Rnn rnn(c, device, 1);  // a model of its own: no workspaces pooled by another mode
  recur::ForwardOptions fo;
  fo.activations = memory;
  fo.segment_steps = segment;
  recur::reset_peak_memory();
  const std::int64_t before = recur::memory_stats(device).bytes;
  std::vector<double> ms;
  for (int r = 0; r < reps + 2; ++r) {
    const auto start = std::chrono::steady_clock::now();
    rnn.forward(x, fo);
    rnn.backward(dy);
    rnn.synchronize();
    const double t =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (r >= 2) ms.push_back(t);  // two warm-up steps
  }
  std::sort(ms.begin(), ms.end());
  Timed out;
  out.ms = ms[ms.size() / 2];
  out.peak = recur::memory_stats(device).peak_bytes - before;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  bool gpu_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) reps = 1;
    if (std::strcmp(argv[i], "--gpu") == 0) gpu_only = true;
  }
  struct Shape {
    std::int64_t T, B, H, L;
    bool bidirectional;
  };
  const std::vector<Shape> shapes = {{1024, 16, 128, 2, false},
                                     {256, 64, 512, 2, false},
                                     {4096, 8, 256, 1, false},
                                     {256, 32, 256, 4, true},
                                     {512, 16, 128, 3, true}};
  std::vector<recur::Device> devices;
  if (!gpu_only) devices.push_back(recur::Device::cpu());
  if (recur::cuda_device_count() > 0) devices.push_back(recur::Device::cuda(0));
  std::printf("recur %s: training step (forward + backward), LSTM, I = H\n", recur::version());
  std::printf("%-6s %6s %4s %5s %2s %2s %-22s %10s %12s %10s %12s\n", "device", "T", "B", "H", "L",
              "D", "activations", "ms", "peak MiB", "time x", "memory x");
  for (const recur::Device& device : devices) {
    for (const Shape& s : shapes) {
      recur::RnnConfig c;
      c.cell = recur::CellKind::Lstm;
      c.input_size = s.H;
      c.hidden_size = s.H;
      c.num_layers = s.L;
      c.bidirectional = s.bidirectional;
      const std::int64_t D = s.bidirectional ? 2 : 1;
      std::vector<float> xv(static_cast<std::size_t>(s.T * s.B * s.H * D));
      for (std::size_t i = 0; i < xv.size(); ++i) {
        xv[i] = static_cast<float>((i * 7919 % 1000) / 1000.0 - 0.5);
      }
      const std::vector<float> x_values(xv.begin(), xv.begin() + s.T * s.B * s.H);
      const recur::Tensor x = recur::Tensor::from_vector(x_values, {s.T, s.B, s.H}, device);
      const recur::Tensor dy = recur::Tensor::from_vector(xv, {s.T, s.B, D * s.H}, device);
      const auto root = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(s.T))));
      struct Mode {
        std::string name;
        recur::ActivationMemory memory;
        std::int64_t segment;
      };
      const auto store = recur::ActivationMemory::Store;
      const auto recompute = recur::ActivationMemory::Recompute;
      std::vector<Mode> modes = {{"stored", store, 0}};
      if (s.bidirectional) {
        modes.push_back({"recompute by layers", recompute, 0});
      } else {
        modes.push_back({"recompute sqrt(T)=" + std::to_string(root), recompute, root});
        modes.push_back({"recompute 4 sqrt(T)", recompute, 4 * root});
        modes.push_back({"recompute sqrt(T)/4", recompute, std::max<std::int64_t>(1, root / 4)});
      }
      Timed stored;
      for (const Mode& m : modes) {
        const Timed t = time_step(c, device, x, dy, m.memory, m.segment, reps);
        if (m.memory == store) stored = t;
        std::printf("%-6s %6lld %4lld %5lld %2lld %2lld %-22s %10.2f %12.1f %10.3f %12.3f\n",
                    device.str().c_str(), static_cast<long long>(s.T), static_cast<long long>(s.B),
                    static_cast<long long>(s.H), static_cast<long long>(s.L),
                    static_cast<long long>(D), m.name.c_str(), t.ms,
                    static_cast<double>(t.peak) / (1 << 20), t.ms / stored.ms,
                    static_cast<double>(t.peak) / static_cast<double>(stored.peak));
      }
    }
  }
  return 0;
}
