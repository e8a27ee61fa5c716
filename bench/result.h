// bench/result.h: one measured (implementation, device, problem, mode), and the driver
// entry points that produce them.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "timer.h"

namespace bench {

struct Result {
  std::string impl;    // "recur", "onednn", "cudnn", "cudnn_tensor_op"
  std::string device;  // "cpu" or "gpu"
  Problem problem;
  Mode mode = Mode::Training;
  bool ok = false;
  std::string note;  // why it was skipped or failed; empty when ok
  Stats stats;
  // Round by round (timer.h), this row's time / recur's on the same problem, mode and
  // device: > 1 means recur is faster (the fields named *_ms hold these ratios). reps == 0
  // for recur's own rows and unpaired ones.
  Stats vs_recur;
  double gflops = 0;          // flops(problem, mode) / median time
  double ceiling_gflops = 0;  // sgemm at this problem's GEMM shapes on this device; 0 unknown
  int load = 0;               // busy processes competing for the cores while it ran (--beside-load)
};

// One implementation on one problem and mode, made ready to run: `call` owns what it needs
// (model or primitives, inputs, buffers), runs one inference or training step and returns
// its time in ms. When it could not be made, `call` is empty and result.note says why.
struct Prepared {
  Result result;
  TimedCall call;
};

// A skipped or failed result.
Result note_result(const char* impl, const char* device, const Problem& p, Mode mode,
                   const std::string& note);

// recur through its public API, on Device::cpu() or Device::cuda(0), its products in
// `math` ("recur", or "recur_tf32" etc. for reduced math, paired with the anchor of the
// same precision).
Prepared prepare_recur(const Problem& p, bool gpu, Mode mode, recur::Math math = recur::Math::Fp32);

#ifdef RECUR_BENCH_ONEDNN
// oneDNN's RNN primitives (f32, CPU), one primitive per layer so that stacks concatenate
// directions between layers as PyTorch (and recur) do. Made in the plugin
// libbench_onednn.so (onednn_driver.cpp); without it the result says why.
Prepared prepare_onednn(const Problem& p, Mode mode);
std::string onednn_version();  // "2.6.3 (hash)", or "unavailable (why)"
#endif

#ifdef RECUR_BENCH_CUDNN
// cuDNN's RNN API (CUDNN_RNN_ALGO_STANDARD, FP32 data). tensor_ops: allow TF32 tensor-core
// math (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION), reported as its own implementation;
// otherwise CUDNN_FMA_MATH, true FP32 as recur computes.
Prepared prepare_cudnn(const Problem& p, bool tensor_ops, Mode mode);
// "9.19.0", or "unavailable: <why>" when libcudnn cannot be loaded.
std::string cudnn_version();
#endif

// The sgemm ceiling: GFLOP/s that sgemm (the faster of OpenBLAS's and oneDNN's on the CPU,
// cuBLAS on the GPU) reaches at the GEMM shapes this problem runs, weighted by their FLOPs
// (see sgemm_ceiling.cpp). Each shape is measured when first asked for and cached.
double sgemm_ceiling_gflops(const Problem& p, Mode mode, bool gpu, const TimingOptions& opt);
// Measures every shape asked for so far once more and keeps the faster rate, so that a
// neighbour's burst of work during one measurement does not set a shape's rate (and a
// problem's ceiling below what recur or an anchor reached). The driver calls it once all
// problems have run, minutes after the first measurements, then asks for the ceilings again.
void remeasure_sgemm_shapes(const TimingOptions& opt);
// Every shape measured so far: column-major C[m,n] = op(A) op(B), K = k. gflops is the
// ceiling's rate; on the CPU each library's too (onednn 0 where it is not loaded).
struct GemmRate {
  bool gpu, trans_a, trans_b;
  std::int64_t m, n, k;
  double gflops, openblas_gflops, onednn_gflops;
};
std::vector<GemmRate> measured_gemm_rates();
std::string openblas_info();

}  // namespace bench
