// bench/bench_clip.cpp: recur_bench_clip times global-norm clipping over many spans.
//
// On a GPU: global_norm (reads 4 bytes per float) and clip_grad_norm with a scale < 1
// (reads them twice and writes them once: 12 bytes per float), timed with CUDA events on
// one stream, as achieved GB/s beside the device's theoretical memory bandwidth
// (2 x memory clock x bus width) and a device-to-device cudaMemcpy as the practical
// ceiling. Then, when --torch-script finds torch with CUDA, PyTorch's clip_grad_norm_ on
// the same sizes. Without a GPU it says so and times the CPU path instead.
// Prints a table and one JSON line per measurement (also appended to --json FILE).
//
//   recur_bench_clip [--n 100000000] [--spans 64] [--reps 20] [--json FILE]
//                    [--torch-script bench/bench_clip_torch.py]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "recur/recur.h"
#if RECUR_BENCH_CUDA
#include <cuda_runtime.h>
#endif

namespace {

struct Options {
  std::int64_t n = 100'000'000;
  int spans = 64;
  int reps = 20;
  std::string json;
  std::string torch_script;
};

Options parse(int argc, char** argv) {
  Options o;
#ifdef RECUR_BENCH_CLIP_TORCH_SCRIPT
  o.torch_script = RECUR_BENCH_CLIP_TORCH_SCRIPT;
#endif
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--n" && has_value) {
      o.n = std::atoll(argv[++i]);
    } else if (a == "--spans" && has_value) {
      o.spans = std::atoi(argv[++i]);
    } else if (a == "--reps" && has_value) {
      o.reps = std::atoi(argv[++i]);
    } else if (a == "--json" && has_value) {
      o.json = argv[++i];
    } else if (a == "--torch-script" && has_value) {
      o.torch_script = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--n N] [--spans S] [--reps R] [--json FILE] "
                   "[--torch-script PATH]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  o.n = std::max<std::int64_t>(o.n, 1);
  o.spans = std::max(1, o.spans);
  o.reps = std::max(1, o.reps);
  return o;
}

// Uneven span sizes that add up to n (a model's gradient buffers are not all alike).
std::vector<std::int64_t> span_sizes(std::int64_t n, int spans) {
  std::vector<std::int64_t> sizes;
  std::int64_t left = n;
  for (int s = 0; s < spans; ++s) {
    const std::int64_t share = s + 1 == spans ? left : left * (1 + s % 3) / (2 * (spans - s) + 1);
    sizes.push_back(std::min(share, left));
    left -= sizes.back();
  }
  return sizes;
}

void emit(const Options& o, const std::string& line) {
  std::printf("%s\n", line.c_str());
  if (!o.json.empty()) std::ofstream(o.json, std::ios::app) << line << "\n";
}

std::string json_line(const std::string& device, const std::string& op, const Options& o, double ms,
                      double bytes, double peak_gbs, double copy_gbs) {
  char buffer[512];
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  std::snprintf(buffer, sizeof(buffer),
                "{\"bench\": \"clip\", \"impl\": \"recur\", \"device\": \"%s\", \"op\": \"%s\", "
                "\"n\": %lld, \"spans\": %d, \"ms\": %.4f, \"bytes\": %.0f, \"gbs\": %.1f, "
                "\"peak_gbs\": %.1f, \"memcpy_gbs\": %.1f, \"fraction_of_peak\": %.3f}",
                device.c_str(), op.c_str(), static_cast<long long>(o.n), o.spans, ms, bytes, gbs,
                peak_gbs, copy_gbs, peak_gbs > 0 ? gbs / peak_gbs : 0.0);
  return buffer;
}

// Deterministic values in [-1, 1), written into host memory.
void fill(float* p, std::int64_t n) {
  std::uint32_t x = 1u;
  for (std::int64_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = static_cast<float>(static_cast<std::int32_t>(x)) * 0x1p-31f;
  }
}

std::vector<recur::TensorView> make_spans(float* base, const std::vector<std::int64_t>& sizes,
                                          recur::Device device) {
  std::vector<recur::TensorView> spans;
  std::int64_t offset = 0;
  for (std::int64_t s : sizes) {
    spans.emplace_back(base + offset, recur::Shape{s}, recur::DType::Float32, device);
    offset += s;
  }
  return spans;
}

void run_cpu(const Options& o) {
  recur::Tensor data = recur::Tensor::empty({o.n}, recur::DType::Float32);
  fill(data.data_as<float>(), o.n);
  const auto spans =
      make_spans(data.data_as<float>(), span_sizes(o.n, o.spans), recur::Device::cpu());
  recur::GradNorm g;
  const auto time_ms = [&](const std::function<void()>& fn) {
    fn();  // warm-up
    double best = 1e300;
    for (int r = 0; r < std::min(o.reps, 5); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      const auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    return best;
  };
  const double norm_ms = time_ms([&] { recur::global_norm(spans, g); });
  const double clip_ms = time_ms([&] { recur::clip_grad_norm(spans, 0.0, g); });
  const double n = static_cast<double>(o.n);
  std::printf("cpu: global_norm %.3f ms (%.1f GB/s), clip_grad_norm %.3f ms (%.1f GB/s)\n", norm_ms,
              4 * n / norm_ms / 1e6, clip_ms, 12 * n / clip_ms / 1e6);
  emit(o, json_line("cpu", "global_norm", o, norm_ms, 4 * n, 0, 0));
  emit(o, json_line("cpu", "clip_grad_norm", o, clip_ms, 12 * n, 0, 0));
}

#if RECUR_BENCH_CUDA
void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// The median time of fn() over o.reps runs, in ms, with CUDA events on `stream`.
double time_cuda(const Options& o, cudaStream_t stream, const std::function<void()>& fn) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 3; ++i) fn();
  std::vector<float> ms;
  for (int r = 0; r < o.reps; ++r) {
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    fn();
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float t = 0;
    check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void run_gpu(const Options& o) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  int clock_khz = 0, bus_bits = 0;
  check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0), "memory clock");
  check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0), "bus width");
  const double peak_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // DDR

  const recur::Device gpu = recur::Device::cuda(0);
  std::vector<float> host(static_cast<std::size_t>(o.n));
  fill(host.data(), o.n);
  recur::Tensor data = recur::Tensor::from_vector(host, {o.n}, gpu);
  recur::Tensor copy = recur::Tensor::empty({o.n}, recur::DType::Float32, gpu);
  const auto spans = make_spans(data.data_as<float>(), span_sizes(o.n, o.spans), gpu);
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const double n = static_cast<double>(o.n);

  const double copy_ms = time_cuda(o, stream, [&] {
    check(
        cudaMemcpyAsync(copy.data(), data.data(), data.nbytes(), cudaMemcpyDeviceToDevice, stream),
        "cudaMemcpyAsync");
  });
  const double copy_gbs = 8 * n / (copy_ms * 1e-3) / 1e9;

  recur::GradNorm g;  // reused: no allocation or table upload inside the timed loop
  const double norm_ms = time_cuda(o, stream, [&] { recur::global_norm(spans, g, stream); });
  const double norm_value = g.norm();
  // max_norm = 0: every call scales (by 0 after the first), so each one reads twice and
  // writes once, the cost of a real clip.
  const double clip_ms =
      time_cuda(o, stream, [&] { recur::clip_grad_norm(spans, 0.0, g, stream); });

  std::printf(
      "device: %s, theoretical %.0f GB/s (%d kHz x %d bits x 2), cudaMemcpy d2d %.0f GB/s\n",
      prop.name, peak_gbs, clock_khz, bus_bits, copy_gbs);
  std::printf("n = %lld floats in %d spans, norm %.6g\n", static_cast<long long>(o.n), o.spans,
              norm_value);
  std::printf("global_norm     %8.3f ms  %7.1f GB/s  %5.1f%% of peak\n", norm_ms,
              4 * n / norm_ms / 1e6, 100 * 4 * n / norm_ms / 1e6 / peak_gbs);
  std::printf("clip_grad_norm  %8.3f ms  %7.1f GB/s  %5.1f%% of peak\n", clip_ms,
              12 * n / clip_ms / 1e6, 100 * 12 * n / clip_ms / 1e6 / peak_gbs);
  emit(o, json_line(prop.name, "global_norm", o, norm_ms, 4 * n, peak_gbs, copy_gbs));
  emit(o, json_line(prop.name, "clip_grad_norm", o, clip_ms, 12 * n, peak_gbs, copy_gbs));
  cudaStreamDestroy(stream);
}

// PyTorch's clip_grad_norm_ on the GPU beside recur's: only a CUDA build times the GPU.
void run_torch(const Options& o) {
  if (o.torch_script.empty() || !std::ifstream(o.torch_script)) {
    std::printf("torch: no script (pass --torch-script bench/bench_clip_torch.py)\n");
    return;
  }
  std::string command = "python3 '" + o.torch_script + "' --n " + std::to_string(o.n) +
                        " --spans " + std::to_string(o.spans) + " --reps " + std::to_string(o.reps);
  if (!o.json.empty()) command += " --json '" + o.json + "'";
  std::fflush(stdout);
  if (std::system(command.c_str()) != 0) std::printf("torch: the script failed\n");
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (recur::cuda_device_count() == 0) {
    std::printf("no usable CUDA device: GPU clipping skipped; timing the CPU path instead\n");
    run_cpu(o);
    return 0;
  }
#if RECUR_BENCH_CUDA
  run_gpu(o);
  run_torch(o);
#endif
  return 0;
}
