// bench/sgemm_ceiling.cpp: what sgemm alone reaches at an RNN's GEMM shapes.
//
// Per layer and direction (G*H gate rows, layer input C, column-major, the transposes
// recur passes to BLAS), a training step runs:
//   forward   1 x  gx  = W_ih x         M=G*H N=T*B K=C   (T,N)
//             T x  gh  = W_hh h_{t-1}   M=G*H N=B   K=H   (T,N), or (N,N) on a transposed
//                                                          copy of W_hh, whichever is faster
//   backward  T x  dh += W_hh^T dg_t    M=H   N=B   K=G*H (N,N)
//             1 x  dW_ih += x dg^T      M=C   N=G*H K=T*B (N,T)
//             1 x  dW_hh += h dg^T      M=H   N=G*H K=T*B (N,T)
//             1 x  dx  = W_ih^T dg      M=C   N=T*B K=G*H (N,N)
// Each distinct shape is timed alone (repeated on the same operands, so the weights stay
// as warm in cache as they do in the time loop), twice: after the first problem that runs
// it and again once every problem has run (remeasure_sgemm_shapes), the faster of the two
// counting. The ceiling is the FLOP-weighted harmonic mean: total FLOPs /
// sum(FLOPs_shape / GFLOP/s_shape), i.e. the rate of a training step whose every GEMM ran
// as fast as sgemm does at that shape, and whose element-wise work took no time. Inference
// uses the forward rows only.
//
// On the CPU a shape's rate is the faster of OpenBLAS's sgemm and, where libdnnl.so.2
// loads, oneDNN's (dnnl_sgemm, on OpenMP's threads): recur's float GEMMs run on oneDNN's,
// which beats OpenBLAS at most of these shapes, and a ceiling below what recur reaches
// would bound nothing.
#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <stdexcept>
#include <thread>
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

// oneDNN's row-major sgemm, or null where libdnnl.so.2 does not load.
using DnnlSgemm = int (*)(char, char, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
DnnlSgemm dnnl_sgemm_fn() {
  static const DnnlSgemm fn = []() -> DnnlSgemm {
    void* lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    return lib != nullptr ? reinterpret_cast<DnnlSgemm>(dlsym(lib, "dnnl_sgemm")) : nullptr;
  }();
  return fn;
}

// How long OpenBLAS's threads get to stop spinning after its last call (see cpu_gflops).
constexpr int kOpenblasSettleMs = 300;

// Both CPU libraries' rates at one shape; onednn is 0 where it is not loaded.
struct CpuRates {
  double openblas = 0, onednn = 0;
};

CpuRates cpu_gflops(const Shape& s, const TimingOptions& opt) {
  const std::int64_t lda = s.ta ? s.k : s.m, ldb = s.tb ? s.n : s.k;
  std::vector<float> a(static_cast<std::size_t>(s.m * s.k), 0.5f);
  std::vector<float> b(static_cast<std::size_t>(s.k * s.n), 0.25f);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n), 0.0f);
  // About 5 ms a sample (1 GFLOP at 200 GFLOP/s): with 0.2 GFLOP, the per-step shapes'
  // seven samples took about a millisecond together, and one burst of a neighbour's work
  // could spoil them all (one grid's NN M=512 N=64 K=512 read 114 GFLOP/s for both libraries,
  // where recur's whole step ran at 209).
  const int inner = inner_calls(s, 1e9);
  auto rate = [&](const std::function<void()>& one) {
    const Stats st = time_host(
        [&] {
          for (int i = 0; i < inner; ++i) one();
        },
        opt);
    return inner * s.flops() / (st.min_ms * 1e6);
  };
  CpuRates r;
  if (const DnnlSgemm dnnl = dnnl_sgemm_fn()) {
    // Column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T, as recur calls it.
    r.onednn = rate([&] {
      dnnl(s.tb ? 'T' : 'N', s.ta ? 'T' : 'N', s.n, s.m, s.k, 1.0f, b.data(), ldb, a.data(), lda,
           0.0f, c.data(), s.m);
    });
  }
  r.openblas = rate([&] {
    cblas_sgemm(CblasColMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans,
                blasint(s.m), blasint(s.n), blasint(s.k), 1.0f, a.data(), blasint(lda), b.data(),
                blasint(ldb), 0.0f, c.data(), blasint(s.m));
  });
  // OpenBLAS's threads spin for a while after a call before they sleep, and meanwhile take
  // the cores from OpenMP's (oneDNN's sgemm above, recur and the oneDNN anchor after):
  // timed right after OpenBLAS, dnnl_sgemm measured 26 GFLOP/s where it runs 200.
  std::this_thread::sleep_for(std::chrono::milliseconds(kOpenblasSettleMs));
  return r;
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

using ShapeKey = std::tuple<bool, std::tuple<bool, bool, std::int64_t, std::int64_t, std::int64_t>>;

// Each shape's rate so far (the best of its measurements), by device and shape.
std::map<ShapeKey, double>& rate_cache() {
  static std::map<ShapeKey, double> cache;
  return cache;
}

// One measurement of shape s: the best of 7 samples on the CPU, shared with other work (a
// ceiling is what the library can reach, and a slow sample says more about the neighbours).
GemmRate measure(const Shape& s, bool gpu, const TimingOptions& opt) {
  TimingOptions o = opt;
  o.warmup = 1;
  o.reps = gpu ? std::max(3, std::min(opt.reps, 7)) : 7;
  o.max_seconds = 2.0;
  GemmRate rate{gpu, s.ta, s.tb, s.m, s.n, s.k, 0, 0, 0};
  if (gpu) {
#ifdef RECUR_BENCH_CUDA
    rate.gflops = gpu_gflops(s, o);
#else
    throw std::runtime_error("no CUDA in this build");
#endif
  } else {
    const CpuRates r = cpu_gflops(s, o);
    rate.openblas_gflops = r.openblas;
    rate.onednn_gflops = r.onednn;
    rate.gflops = std::max(r.openblas, r.onednn);
  }
  return rate;
}

double shape_gflops(const Shape& s, bool gpu, const TimingOptions& opt) {
  const ShapeKey key = std::make_tuple(gpu, s.key());
  auto it = rate_cache().find(key);
  if (it != rate_cache().end()) return it->second;
  const GemmRate rate = measure(s, gpu, opt);
  rate_cache().emplace(key, rate.gflops);
  measured().push_back(rate);
  return rate.gflops;
}

}  // namespace

double sgemm_ceiling_gflops(const Problem& p, Mode mode, bool gpu, const TimingOptions& opt) {
  const std::int64_t GH = gate_count(p.cell) * p.H, TB = p.T * p.B;
  double total_flops = 0, total_ms = 0;
  // `other`, when given, is the same product in a second layout: the faster counts.
  auto add = [&](const Shape& s, std::int64_t count, const Shape* other = nullptr) {
    const double f = double(count) * s.flops() * p.directions();
    double rate = shape_gflops(s, gpu, opt);
    if (other != nullptr) rate = std::max(rate, shape_gflops(*other, gpu, opt));
    total_flops += f;
    total_ms += f / (rate * 1e6);
  };
  for (int l = 0; l < p.layers; ++l) {
    const std::int64_t C = p.layer_input(l);
    add({true, false, GH, TB, C}, 1);
    const Shape on_transposed{false, false, GH, p.B, p.H};
    add({true, false, GH, p.B, p.H}, p.T, &on_transposed);
    if (mode == Mode::Training) {
      add({false, false, p.H, p.B, GH}, p.T);
      add({false, true, C, GH, TB}, 1);
      add({false, true, p.H, GH, TB}, 1);
      add({false, false, C, TB, GH}, 1);
    }
  }
  return total_ms > 0 ? total_flops / (total_ms * 1e6) : 0;
}

void remeasure_sgemm_shapes(const TimingOptions& opt) {
  for (GemmRate& rate : measured()) {
    const Shape s{rate.trans_a, rate.trans_b, rate.m, rate.n, rate.k};
    const GemmRate again = measure(s, rate.gpu, opt);
    rate.gflops = std::max(rate.gflops, again.gflops);
    rate.openblas_gflops = std::max(rate.openblas_gflops, again.openblas_gflops);
    rate.onednn_gflops = std::max(rate.onednn_gflops, again.onednn_gflops);
    rate_cache()[std::make_tuple(rate.gpu, s.key())] = rate.gflops;
  }
}

std::vector<GemmRate> measured_gemm_rates() { return measured(); }

std::string openblas_info() {
  return std::string(openblas_get_config()) + ", " + std::to_string(openblas_get_num_threads()) +
         " threads";
}

}  // namespace bench
