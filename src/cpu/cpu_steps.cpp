// src/cpu/cpu_steps.cpp: the CPU's fused step loops.
//
// The CUDA backend gives each (b, j) element to a thread; here one call walks the active
// rows and, inside a row, the H contiguous elements, calling the functor's `at` (the same
// code a CUDA thread runs). Within a row the conditions a functor tests (bias or not,
// carried row or not, training or not) are fixed, so the inner loop is straight-line code
// over j: `omp simd` (OpenMP's vectorisation pragma only, -fopenmp-simd, no threads) states
// that its iterations are independent, which they are, whatever the pointers' aliasing.
//
// The float loops are compiled three times, for AVX-512 (x86-64-v4), AVX2 + FMA (v3) and
// the baseline, and the loader picks the best the CPU runs (GCC's target_clones through
// an ifunc); `flatten` inlines the functors and fast_math.h into each copy so they get
// that copy's instructions. The float activations are kernels/fast_math.h's: libm's would
// be scalar calls. float64 keeps libm and one baseline loop: it serves the gradient checks.
#include "cpu_steps.h"

namespace recur::detail {
namespace {

template <class Functor, class Args>
void apply_rows(const Functor& functor, const Args* units, int count) {
  for (int u = 0; u < count; ++u) {
    // A local copy: stores through the output pointers cannot change it, so the compiler
    // knows every pointer and flag in it is fixed for the whole loop.
    const Args a = units[u];
    for (std::int64_t b = 0; b < a.active; ++b) {
#pragma omp simd
      for (std::int64_t j = 0; j < a.hidden; ++j) functor.at(b, j, a);
    }
  }
}

}  // namespace

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RECUR_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#else
#define RECUR_CPU_CLONES
#endif

RECUR_CPU_CLONES void cpu_step_forward(kernels::StepKind kind,
                                       const kernels::StepForward<float>* units, int count) {
  kernels::dispatch_forward<float>(kind, [&](auto functor) { apply_rows(functor, units, count); });
}

RECUR_CPU_CLONES void cpu_step_backward(kernels::StepKind kind,
                                        const kernels::StepBackward<float>* units, int count) {
  kernels::dispatch_backward<float>(kind, [&](auto functor) { apply_rows(functor, units, count); });
}

void cpu_step_forward(kernels::StepKind kind, const kernels::StepForward<double>* units,
                      int count) {
  kernels::dispatch_forward<double>(kind,
                                    [&](auto functor) { apply_rows(functor, units, count); });
}

void cpu_step_backward(kernels::StepKind kind, const kernels::StepBackward<double>* units,
                       int count) {
  kernels::dispatch_backward<double>(kind,
                                     [&](auto functor) { apply_rows(functor, units, count); });
}

const char* cpu_step_isa() {
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
  if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
#endif
  return "baseline";
}

}  // namespace recur::detail
