// src/cpu/cpu_steps.h: the CPU's fused step loops: each shared gate functor of
// kernels/*.cuh applied to every active (b, j) of every unit, vectorised over j.
#pragma once

#include <cstdint>
#include <functional>

#include "../../kernels/dispatch.h"

namespace recur::detail {

// units[u] for u < count, as Ops::step_forward / step_backward describe them. With
// `threaded`, rows are shared among OpenMP's threads when there are enough of them;
// without, the calling thread does all.
void cpu_step_forward(kernels::StepKind kind, const kernels::StepForward<float>* units, int count,
                      bool threaded);
void cpu_step_forward(kernels::StepKind kind, const kernels::StepForward<double>* units, int count,
                      bool threaded);
void cpu_step_backward(kernels::StepKind kind, const kernels::StepBackward<float>* units, int count,
                       bool threaded);
void cpu_step_backward(kernels::StepKind kind, const kernels::StepBackward<double>* units,
                       int count, bool threaded);

// Rows [b0, b1) of one unit's step (b1 at most its active rows), on the calling thread: a
// row-parallel run's share (CpuOps::run_step_list).
// (float only: float64 runs step by step.)
void cpu_step_rows(kernels::StepKind kind, const kernels::StepForward<float>& unit, std::int64_t b0,
                   std::int64_t b1);
void cpu_step_rows(kernels::StepKind kind, const kernels::StepBackward<float>& unit,
                   std::int64_t b0, std::int64_t b1);

// dst = src^T (kernels/gather.cuh), in tiles; with `threaded`, tile rows are shared among
// OpenMP's threads.
template <typename T>
void cpu_transpose(const kernels::TransposeArgs<T>& args, bool threaded);

// Calls fn(begin, end) on slices of the elements [0, n), each `element_bytes` wide: with
// `threaded` and at least a megabyte, one slice per OpenMP thread, in parallel; else
// fn(0, n). The slicing of cpu_copy and cpu_fill, for loops of their own.
void cpu_for_slices(std::int64_t n, std::int64_t element_bytes, bool threaded,
                    const std::function<void(std::int64_t, std::int64_t)>& fn);

// dst[0..n) = src[0..n) and dst[0..n) = value; with `threaded` and at least a megabyte,
// OpenMP's threads copy one slice each (one core does not reach the memory bandwidth, and
// the other would only spin-wait meanwhile).
template <typename T>
void cpu_copy(T* dst, const T* src, std::int64_t n, bool threaded);
template <typename T>
void cpu_fill(T* dst, std::int64_t n, T value, bool threaded);

// dst[r * ld_dst + k] = src[r * ld_src + k] for r < rows, k < width (copy_rows), or +=
// (add_rows); with `threaded` and at least a megabyte, OpenMP's threads take a slice of
// rows each.
template <typename T>
void cpu_copy_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src,
                   std::int64_t rows, std::int64_t width, bool threaded);
template <typename T>
void cpu_add_rows(T* dst, std::int64_t ld_dst, const T* src, std::int64_t ld_src, std::int64_t rows,
                  std::int64_t width, bool threaded);

// dst[c] += sum over r < rows of src[r * cols + c] (and the same into dst2 unless null),
// the sums kept in double; with `threaded`, OpenMP's threads take a slice of rows each and
// their sums are added in thread order (the same bits for the same thread count).
template <typename T>
void cpu_add_column_sums(const T* src, std::int64_t rows, std::int64_t cols, T* dst, T* dst2,
                         bool threaded);

// The instruction set the float loops run with on this CPU: "x86-64-v4" (AVX-512),
// "x86-64-v3" (AVX2 + FMA) or "baseline". For recur::cpu_backend_info().
const char* cpu_step_isa();

// How many threads a large float step call uses: OpenMP's when the float GEMMs run on
// oneDNN (see CpuOps), else 1.
int cpu_step_threads();

}  // namespace recur::detail
