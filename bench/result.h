// bench/result.h: one measured (implementation, device, problem, mode), and the driver
// entry points that produce them.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "timer.h"

namespace bench {

struct Result {
  std::string impl;    // impl_name(): "recur", "recur_bf16", "onednn", "onednn_bf16", "cudnn_tf32"
  std::string device;  // "cpu" or "gpu"
  Problem problem;
  Mode mode = Mode::Training;
  recur::Math math = recur::Math::Fp32;  // the precision it computes in (pairs_with())
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
// The same, for `base` ("recur", "onednn", "cudnn") at `math`: impl is impl_name(base, math).
Result note_result(const char* base, recur::Math math, const char* device, const Problem& p,
                   Mode mode, const std::string& note);

// "recur" at Fp32, else base + "_tf32", "_bf16" or "_fp16".
std::string impl_name(const char* base, recur::Math math);
const char* math_name(recur::Math math);  // "fp32", "tf32", "bf16", "fp16"
bool parse_math(const std::string& text, recur::Math* math);
bool is_recur(const Result& r);  // one of recur's own rows, at any math
bool same_problem(const Problem& a, const Problem& b);
// The pairing rule, its one definition: anchor row `a` is compared with recur's row `r`
// when both ran the same problem, mode and device under the same load, at the same
// precision (onednn_bf16 with recur_bf16, cudnn_tf32 with recur_tf32, onednn and cudnn
// with recur).
bool pairs_with(const Result& a, const Result& r);

// recur through its public API, on Device::cpu() or Device::cuda(0), its products in
// `math` ("recur", or "recur_tf32" etc. for reduced math, paired with the anchor of the
// same precision).
Prepared prepare_recur(const Problem& p, bool gpu, Mode mode, recur::Math math = recur::Math::Fp32);

#ifdef RECUR_BENCH_ONEDNN
// oneDNN's RNN primitives (CPU), one primitive per layer so that stacks concatenate
// directions between layers as PyTorch (and recur) do. math Fp32: f32 throughout ("onednn");
// Bf16: bf16 data and weights, f32 bias and cell state ("onednn_bf16"); others are refused
// in the row's note. Made in the plugin libbench_onednn.so (onednn_driver.cpp); without it
// the result says why.
Prepared prepare_onednn(const Problem& p, Mode mode, recur::Math math = recur::Math::Fp32);
std::string onednn_version();  // "2.6.3 (hash)", or "unavailable (why)"
#endif

#ifdef RECUR_BENCH_CUDNN
// cuDNN's RNN API (CUDNN_RNN_ALGO_STANDARD) at `math`: Fp32 "cudnn" (FP32 data,
// CUDNN_FMA_MATH, true FP32 as recur computes); Tf32 "cudnn_tf32" (FP32 data,
// CUDNN_DEFAULT_MATH, which permits TF32 tensor ops); Bf16 "cudnn_bf16" (cuDNN 9.13 and
// later) and Fp16 "cudnn_fp16" (BF16 or FP16 data and weights, CUDNN_TENSOR_OP_MATH, FP32
// math precision).
Prepared prepare_cudnn(const Problem& p, recur::Math math, Mode mode);
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
