// bench/sgemm_ceiling.cpp: what sgemm alone reaches at an RNN's GEMM shapes.
//
// Per layer and direction (G*H gate rows, layer input C, column-major, the transposes
// recur passes to BLAS), a training step runs:
//   forward   1 x  gx  = W_ih x         M=G*H N=T*B K=C   (T,N)
//             T x  gh  = W_hh h_{t-1}   M=G*H N=B   K=H   (T,N)
//   backward  T x  dh += W_hh^T dg_t    M=H   N=B   K=G*H (N,N)
//             1 x  dW_ih += x dg^T      M=C   N=G*H K=T*B (N,T)
//             1 x  dW_hh += h dg^T      M=H   N=G*H K=T*B (N,T)
//             1 x  dx  = W_ih^T dg      M=C   N=T*B K=G*H (N,N)
// Each distinct shape is timed alone (repeated on the same operands, so the weights stay
// as warm in cache as they do in the time loop), and the ceiling is the FLOP-weighted
// harmonic mean: total FLOPs / sum(FLOPs_shape / GFLOP/s_shape), i.e. the rate of a
// training step whose every GEMM ran as fast as sgemm does at that shape, and whose
// element-wise work took no time. Inference uses the forward rows only.
#include <cblas.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "result.h"

#ifdef RECUR_BENCH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

namespace bench {
namespace {

struct Shape {
  bool ta = false, tb = false;
  std::int64_t m = 0, n = 0, k = 0;
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
  auto key() const { return std::make_tuple(ta, tb, m, n, k); }
};

// How many calls make one timed sample: enough work that the clock's resolution and the
// call overhead do not matter.
int inner_calls(const Shape& s, double target_flops) {
  const double n = target_flops / s.flops();
  return n < 1 ? 1 : (n > 1000 ? 1000 : static_cast<int>(n));
}

double cpu_gflops(const Shape& s, const TimingOptions& opt) {
  const std::int64_t lda = s.ta ? s.k : s.m, ldb = s.tb ? s.n : s.k;
  std::vector<float> a(static_cast<std::size_t>(s.m * s.k), 0.5f);
  std::vector<float> b(static_cast<std::size_t>(s.k * s.n), 0.25f);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n), 0.0f);
  const int inner = inner_calls(s, 2e8);
  const Stats st = time_host(
      [&] {
        for (int i = 0; i < inner; ++i) {
          cblas_sgemm(CblasColMajor, s.ta ? CblasTrans : CblasNoTrans,
                      s.tb ? CblasTrans : CblasNoTrans, blasint(s.m), blasint(s.n), blasint(s.k),
                      1.0f, a.data(), blasint(lda), b.data(), blasint(ldb), 0.0f, c.data(),
                      blasint(s.m));
        }
      },
      opt);
  return inner * s.flops() / (st.median_ms * 1e6);
}

#ifdef RECUR_BENCH_CUDA
void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Device memory freed on every path.
struct DeviceFloats {
  float* ptr = nullptr;
  explicit DeviceFloats(std::int64_t n) {
    cuda_check(cudaMalloc(&ptr, static_cast<std::size_t>(n) * sizeof(float)), "cudaMalloc");
    cuda_check(cudaMemset(ptr, 0, static_cast<std::size_t>(n) * sizeof(float)), "cudaMemset");
  }
  ~DeviceFloats() { cudaFree(ptr); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
};

struct Cublas {
  cublasHandle_t handle = nullptr;
  Cublas() {
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate");
    cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);  // FP32, no TF32, like recur
  }
  ~Cublas() { cublasDestroy(handle); }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;
};

double gpu_gflops(const Shape& s, const TimingOptions& opt) {
  static Cublas blas;
  const std::int64_t lda = s.ta ? s.k : s.m, ldb = s.tb ? s.n : s.k;
  DeviceFloats a(s.m * s.k), b(s.k * s.n), c(s.m * s.n);
  const int inner = inner_calls(s, 5e9);
  const float one = 1.0f, zero = 0.0f;
  const Stats st = time_cuda(
      [&] {
        for (int i = 0; i < inner; ++i) {
          const cublasStatus_t status =
              cublasSgemm(blas.handle, s.ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                          s.tb ? CUBLAS_OP_T : CUBLAS_OP_N, int(s.m), int(s.n), int(s.k), &one,
                          a.ptr, int(lda), b.ptr, int(ldb), &zero, c.ptr, int(s.m));
          if (status != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasSgemm failed");
        }
      },
      nullptr, opt);
  return inner * s.flops() / (st.median_ms * 1e6);
}
#endif

std::vector<GemmRate>& measured() {
  static std::vector<GemmRate> rates;
  return rates;
}

double shape_gflops(const Shape& s, bool gpu, const TimingOptions& opt) {
  static std::map<
      std::tuple<bool, std::tuple<bool, bool, std::int64_t, std::int64_t, std::int64_t>>, double>
      cache;
  const auto key = std::make_tuple(gpu, s.key());
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  TimingOptions o = opt;
  o.warmup = 1;
  o.reps = std::max(3, std::min(opt.reps, 7));
  o.max_seconds = 2.0;
  double rate = 0;
#ifdef RECUR_BENCH_CUDA
  rate = gpu ? gpu_gflops(s, o) : cpu_gflops(s, o);
#else
  if (gpu) throw std::runtime_error("no CUDA in this build");
  rate = cpu_gflops(s, o);
#endif
  cache.emplace(key, rate);
  measured().push_back({gpu, s.ta, s.tb, s.m, s.n, s.k, rate});
  return rate;
}

}  // namespace

double sgemm_ceiling_gflops(const Problem& p, Mode mode, bool gpu, const TimingOptions& opt) {
  const std::int64_t GH = gate_count(p.cell) * p.H, TB = p.T * p.B;
  double total_flops = 0, total_ms = 0;
  auto add = [&](const Shape& s, std::int64_t count) {
    const double f = double(count) * s.flops() * p.directions();
    total_flops += f;
    total_ms += f / (shape_gflops(s, gpu, opt) * 1e6);
  };
  for (int l = 0; l < p.layers; ++l) {
    const std::int64_t C = p.layer_input(l);
    add({true, false, GH, TB, C}, 1);
    add({true, false, GH, p.B, p.H}, p.T);
    if (mode == Mode::Training) {
      add({false, false, p.H, p.B, GH}, p.T);
      add({false, true, C, GH, TB}, 1);
      add({false, true, p.H, GH, TB}, 1);
      add({false, false, C, TB, GH}, 1);
    }
  }
  return total_ms > 0 ? total_flops / (total_ms * 1e6) : 0;
}

std::vector<GemmRate> measured_gemm_rates() { return measured(); }

std::string openblas_info() {
  return std::string(openblas_get_config()) + ", " + std::to_string(openblas_get_num_threads()) +
         " threads";
}

}  // namespace bench
