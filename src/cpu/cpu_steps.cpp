// src/cpu/cpu_steps.cpp: the CPU's fused step loops, and the transpose, copies and fills
// beside them (the loops that run on OpenMP's threads).
//
// The CUDA backend gives each (b, j) element to a thread; here a call walks a range of
// active rows and, inside a row, the H contiguous elements, calling the functor's `at`
// (the same code a CUDA thread runs). Within a row the conditions a functor tests (bias or
// not, carried row or not, training or not) are fixed, so the inner loop is straight-line
// code over j: `omp simd` states that its iterations are independent, which they are,
// whatever the pointers' aliasing, and the larger unswitching limits this file is built
// with (src/CMakeLists.txt) let GCC split the loop by those conditions first.
//
// The row loops are compiled three times, for AVX-512 (x86-64-v4), AVX2 + FMA (v3) and
// the baseline, and the loader picks the best the CPU runs (GCC's target_clones through
// an ifunc); `flatten` inlines the functors and fast_math.h into each copy so they get
// that copy's instructions. The float activations are kernels/fast_math.h's: libm's would
// be scalar calls. float64 keeps libm: it serves the gradient checks.
//
// Rows are shared among OpenMP threads: the same pool that runs oneDNN's sgemm (both use
// the compiler's OpenMP runtime), so the cores that just ran a step's GEMM run its gate
// math too, and no second set of threads competes for them. The row functions are called
// from inside the parallel loop rather than containing it, because GCC outlines a parallel
// region's body before it makes the target clones, and the outlined body would not be cloned.
#include "cpu_steps.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "cpu_ops.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

// clang (14) does not vectorise some of the `omp simd` loops below (a functor's branches,
// float64's libm calls, the sanitizers' checks) and warns once per loop and copy: a
// missed optimisation of the clang build, not a fault; GCC's build is the fast one.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

namespace recur::detail {
namespace {

// Fewer elements than this per thread and a fork costs more than it saves.
constexpr std::int64_t kElementsPerThread = 4096;

template <class Functor, class Args>
void apply_rows(const Functor& functor, const Args& units, std::int64_t b0, std::int64_t b1) {
  // A local copy: stores through the output pointers cannot change it, so the compiler
  // knows every pointer and flag in it is fixed for the whole loop.
  const Args a = units;
  if constexpr (kernels::is_per_row<Functor>) {
    // A layer-normalised cell: one lane per row (kernels/layer_norm.cuh).
    kernels::SerialLanes lanes;
    for (std::int64_t b = b0; b < b1; ++b) functor.row(b, a, lanes);
  } else {
    for (std::int64_t b = b0; b < b1; ++b) {
#pragma omp simd
      for (std::int64_t j = 0; j < a.hidden; ++j) functor.at(b, j, a);
    }
  }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RECUR_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#else
#define RECUR_CPU_CLONES
#endif

RECUR_CPU_CLONES void step_rows(kernels::StepKind kind, const kernels::StepForward<float>& a,
                                std::int64_t b0, std::int64_t b1) {
  kernels::dispatch_forward<float>(kind, [&](auto functor) { apply_rows(functor, a, b0, b1); });
}

RECUR_CPU_CLONES void step_rows(kernels::StepKind kind, const kernels::StepBackward<float>& a,
                                std::int64_t b0, std::int64_t b1) {
  kernels::dispatch_backward<float>(kind, [&](auto functor) { apply_rows(functor, a, b0, b1); });
}

void step_rows(kernels::StepKind kind, const kernels::StepForward<double>& a, std::int64_t b0,
               std::int64_t b1) {
  kernels::dispatch_forward<double>(kind, [&](auto functor) { apply_rows(functor, a, b0, b1); });
}

void step_rows(kernels::StepKind kind, const kernels::StepBackward<double>& a, std::int64_t b0,
               std::int64_t b1) {
  kernels::dispatch_backward<double>(kind, [&](auto functor) { apply_rows(functor, a, b0, b1); });
}

int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Each unit's active rows cut into `parts` equal ranges; work item i is part i % parts of
// unit i / parts, so the items need no list (nothing is allocated per step).
template <class Args>
void run(kernels::StepKind kind, const Args* units, int count, bool threaded) {
  std::int64_t elements = 0, widest = 0;
  for (int u = 0; u < count; ++u) {
    elements += units[u].active * units[u].hidden;
    widest = std::max(widest, units[u].active);
  }
  const std::int64_t want = std::max<std::int64_t>(1, elements / kElementsPerThread);
  const std::int64_t threads = threaded ? std::min<std::int64_t>(max_threads(), want) : 1;
  const std::int64_t parts = std::max<std::int64_t>(
      1, std::min(widest, (threads + count - 1) / static_cast<std::int64_t>(count)));
  const std::int64_t items = count * parts;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (std::int64_t i = 0; i < items; ++i) {
    const Args& a = units[i / parts];
    const std::int64_t part = i % parts;
    const std::int64_t b0 = a.active * part / parts, b1 = a.active * (part + 1) / parts;
    if (b0 < b1) step_rows(kind, a, b0, b1);
  }
}

}  // namespace

void cpu_step_forward(kernels::StepKind kind, const kernels::StepForward<float>* units, int count,
                      bool threaded) {
  run(kind, units, count, threaded);
}
void cpu_step_forward(kernels::StepKind kind, const kernels::StepForward<double>* units, int count,
                      bool threaded) {
  run(kind, units, count, threaded);
}
void cpu_step_backward(kernels::StepKind kind, const kernels::StepBackward<float>* units, int count,
                       bool threaded) {
  run(kind, units, count, threaded);
}
void cpu_step_backward(kernels::StepKind kind, const kernels::StepBackward<double>* units,
                       int count, bool threaded) {
  run(kind, units, count, threaded);
}

void cpu_step_rows(kernels::StepKind kind, const kernels::StepForward<float>& unit, std::int64_t b0,
                   std::int64_t b1) {
  step_rows(kind, unit, b0, b1);
}
void cpu_step_rows(kernels::StepKind kind, const kernels::StepBackward<float>& unit,
                   std::int64_t b0, std::int64_t b1) {
  step_rows(kind, unit, b0, b1);
}

template <typename T>
void cpu_transpose(const kernels::TransposeArgs<T>& args, bool threaded) {
  // 16 x 16 tiles, walking each tile's source column by column: the 16 source rows stay in
  // L1 while the destination is written in whole cache lines. (32 x 32 measured up to 3x
  // slower at H = 1024, whose power-of-two strides map a tile's rows onto few cache sets.)
  constexpr std::int64_t kTile = 16;
  const kernels::Transpose<T> functor;
  const std::int64_t tile_rows = (args.rows + kTile - 1) / kTile;
  const int threads =
      threaded && args.rows * args.cols >= 2 * kElementsPerThread ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (std::int64_t tr = 0; tr < tile_rows; ++tr) {
    const std::int64_t r0 = tr * kTile, r1 = std::min(r0 + kTile, args.rows);
    for (std::int64_t c0 = 0; c0 < args.cols; c0 += kTile) {
      const std::int64_t c1 = std::min(c0 + kTile, args.cols);
      for (std::int64_t c = c0; c < c1; ++c) {
        for (std::int64_t r = r0; r < r1; ++r) functor.at(c, r, args);
      }
    }
  }
}

template void cpu_transpose<float>(const kernels::TransposeArgs<float>&, bool);
template void cpu_transpose<double>(const kernels::TransposeArgs<double>&, bool);

namespace {

// Calls fn(begin, end) on slices of [0, n) elements of `element_bytes` each: one per OpenMP
// thread for large threaded calls, else one for all.
template <class Fn>
void for_slices(std::int64_t n, std::int64_t element_bytes, bool threaded, Fn&& fn) {
  constexpr std::int64_t kMinBytes = std::int64_t{1} << 20;
  const int threads = threaded && n * element_bytes >= kMinBytes ? max_threads() : 1;
  if (threads == 1) return fn(std::int64_t{0}, n);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int s = 0; s < threads; ++s) fn(n * s / threads, n * (s + 1) / threads);
}

}  // namespace

void cpu_for_slices(std::int64_t n, std::int64_t element_bytes, bool threaded,
                    const std::function<void(std::int64_t, std::int64_t)>& fn) {
  for_slices(n, element_bytes, threaded, fn);
}

template <typename T>
void cpu_copy(T* dst, const T* src, std::int64_t n, bool threaded) {
  for_slices(n, sizeof(T), threaded, [&](std::int64_t b, std::int64_t e) {
    if (e > b) std::memcpy(dst + b, src + b, static_cast<std::size_t>(e - b) * sizeof(T));
  });
}

template <typename T>
void cpu_fill(T* dst, std::int64_t n, T value, bool threaded) {
  for_slices(n, sizeof(T), threaded,
             [&](std::int64_t b, std::int64_t e) { std::fill(dst + b, dst + e, value); });
}

namespace {

// fn(r) for r < rows, in slices of rows sized as for_slices sizes slices of elements.
template <typename T, class Fn>
void for_row_slices(std::int64_t rows, std::int64_t width, bool threaded, Fn&& fn) {
  if (width <= 0) return;
  for_slices(rows * width, sizeof(T), threaded, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b / width; r < e / width; ++r) fn(r);
  });
}

}  // namespace

template <typename T>
void cpu_copy_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                   std::int64_t rows, std::int64_t width, bool threaded) {
  for_row_slices<T>(rows, width, threaded, [&](std::int64_t r) {
    std::memcpy(dst + r * ld_dst, src + r * ld_src, static_cast<std::size_t>(width) * sizeof(T));
  });
}

template <typename T>
void cpu_add_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src, std::int64_t rows,
                  std::int64_t width, bool threaded) {
  for_row_slices<T>(rows, width, threaded, [&](std::int64_t r) {
    T* d = dst + r * ld_dst;
    const T* s = src + r * ld_src;
#pragma omp simd
    for (std::int64_t k = 0; k < width; ++k) d[k] += s[k];
  });
}

namespace {

// acc[c] += the sum of src's rows [r0, r1) at column c.
template <typename T>
void sum_rows(const T* src, std::int64_t r0, std::int64_t r1, std::int64_t cols, double* acc) {
  for (std::int64_t r = r0; r < r1; ++r) {
    const T* row = src + r * cols;
#pragma omp simd
    for (std::int64_t c = 0; c < cols; ++c) acc[c] += static_cast<double>(row[c]);
  }
}

RECUR_CPU_CLONES void sum_rows_float(const float* src, std::int64_t r0, std::int64_t r1,
                                     std::int64_t cols, double* acc) {
  sum_rows(src, r0, r1, cols, acc);
}

}  // namespace

template <typename T>
void cpu_add_column_sums(const T* src, std::int64_t rows, std::int64_t cols, T* dst, T* dst2,
                         bool threaded) {
  if (rows <= 0 || cols <= 0) return;
  const std::int64_t want = std::max<std::int64_t>(1, rows * cols / (4 * kElementsPerThread));
  const int threads =
      threaded ? static_cast<int>(std::min<std::int64_t>({max_threads(), want, rows})) : 1;
  std::vector<double> sums(static_cast<std::size_t>(threads * cols), 0.0);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int t = 0; t < threads; ++t) {
    const std::int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
    double* acc = sums.data() + t * cols;
    if constexpr (std::is_same_v<T, float>) {
      sum_rows_float(src, r0, r1, cols, acc);
    } else {
      sum_rows(src, r0, r1, cols, acc);
    }
  }
  for (std::int64_t c = 0; c < cols; ++c) {
    double sum = 0;
    for (int t = 0; t < threads; ++t) sum += sums[static_cast<std::size_t>(t * cols + c)];
    dst[c] += static_cast<T>(sum);
    if (dst2 != nullptr) dst2[c] += static_cast<T>(sum);
  }
}

template void cpu_add_column_sums<float>(const float*, std::int64_t, std::int64_t, float*, float*,
                                         bool);
template void cpu_add_column_sums<double>(const double*, std::int64_t, std::int64_t, double*,
                                          double*, bool);
template void cpu_copy<float>(float*, const float*, std::int64_t, bool);
template void cpu_copy<double>(double*, const double*, std::int64_t, bool);
template void cpu_fill<float>(float*, std::int64_t, float, bool);
template void cpu_fill<double>(double*, std::int64_t, double, bool);
template void cpu_copy_rows<float>(float*, std::int64_t, const float*, std::int64_t, std::int64_t,
                                   std::int64_t, bool);
template void cpu_copy_rows<double>(double*, std::int64_t, const double*, std::int64_t,
                                    std::int64_t, std::int64_t, bool);
template void cpu_add_rows<float>(float*, std::int64_t, const float*, std::int64_t, std::int64_t,
                                  std::int64_t, bool);
template void cpu_add_rows<double>(double*, std::int64_t, const double*, std::int64_t, std::int64_t,
                                   std::int64_t, bool);

int cpu_step_threads() { return cpu_float_loops_threaded() ? max_threads() : 1; }

// Which copy of the row loops runs. Under GCC the ifunc resolver picks a target_clones
// copy by the CPU's features; the same test here, feature by feature, in names GCC and
// clang both accept (clang 14 knows no "x86-64-v4"): v3 = AVX2, FMA, BMI1/2 (the level's
// F16C, LZCNT, MOVBE come with them on every such CPU), v4 = v3 + AVX-512 F, BW, CD, DQ,
// VL. Clang builds one copy (RECUR_CPU_CLONES is empty), for the target it compiles for.
const char* cpu_step_isa() {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  if (v4) return "x86-64-v4";
  if (v3) return "x86-64-v3";
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) && \
    defined(__AVX512DQ__) && defined(__AVX512VL__)
  return "x86-64-v4";
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI__) && defined(__BMI2__)
  return "x86-64-v3";
#endif
  return "baseline";
}

}  // namespace recur::detail
