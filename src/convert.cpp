// src/convert.cpp: the loops of convert_host, one per pair of dtypes.
#include "convert.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/cpu_steps.h"
#include "kernels/precision.h"

namespace recur::detail {
namespace {

// `load(i)` gives source element i as an exact float: write it to `dst` as `to`, rounding
// at most once.
template <class Load>
void store_from_float(Load load, void* dst, DType to, std::size_t n) {
  switch (to) {
    case DType::Float32: {
      auto* d = static_cast<float*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = load(i);
      return;
    }
    case DType::Float64: {
      auto* d = static_cast<double*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = load(i);
      return;
    }
    case DType::BFloat16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = kernels::float_to_bf16(load(i));
      return;
    }
    case DType::Float16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = kernels::float_to_fp16(load(i));
      return;
    }
    case DType::Int32:
    case DType::Int64: return;  // not floating: convert_host's callers never ask
  }
}

// From float64 every narrowing is one rounding: BF16 and FP16 go through float32 by
// round-to-odd, which does not round a second time (kernels/precision.h).
void store_from_double(const double* s, void* dst, DType to, std::size_t n) {
  switch (to) {
    case DType::Float32: {
      auto* d = static_cast<float*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::Float64: std::memcpy(dst, s, n * sizeof(double)); return;
    case DType::BFloat16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = kernels::float64_to_bf16(s[i]);
      return;
    }
    case DType::Float16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < n; ++i) d[i] = kernels::float64_to_fp16(s[i]);
      return;
    }
    case DType::Int32:
    case DType::Int64: return;
  }
}

// float32 <-> bfloat16, the conversions of every BF16 call's x, y, dy and dx: on the bits,
// in loops the compiler vectorises (store_from_float's, through a float, it does not).
void float_to_bf16_bits(const float* s, std::uint16_t* d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t f;
    std::memcpy(&f, s + i, sizeof f);
    d[i] = kernels::float_bits_to_bf16(f);
  }
}

void bf16_to_float_bits(const std::uint16_t* s, float* d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t f = kernels::bf16_to_float_bits(s[i]);
    std::memcpy(d + i, &f, sizeof f);
  }
}

void convert_serially(const void* src, DType from, void* dst, DType to, std::size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  if (from == DType::Float32 && to == DType::BFloat16) {
    float_to_bf16_bits(static_cast<const float*>(src), static_cast<std::uint16_t*>(dst), n);
    return;
  }
  if (from == DType::BFloat16 && to == DType::Float32) {
    bf16_to_float_bits(static_cast<const std::uint16_t*>(src), static_cast<float*>(dst), n);
    return;
  }
  const auto* half = static_cast<const std::uint16_t*>(src);
  switch (from) {
    case DType::Float32: {
      const auto* s = static_cast<const float*>(src);
      store_from_float([s](std::size_t i) { return s[i]; }, dst, to, n);
      return;
    }
    case DType::Float64: store_from_double(static_cast<const double*>(src), dst, to, n); return;
    case DType::BFloat16:
      store_from_float([half](std::size_t i) { return kernels::bf16_to_float(half[i]); }, dst, to,
                       n);
      return;
    case DType::Float16:
      store_from_float([half](std::size_t i) { return kernels::fp16_to_float(half[i]); }, dst, to,
                       n);
      return;
    case DType::Int32:
    case DType::Int64: return;
  }
}

}  // namespace

// Sliced as the CPU's copies are (cpu_for_slices), on the threads the float step loops
// use: a reduced-precision call converts x or dy in and y or dx out, megabytes each.
void convert_host(const void* src, DType from, void* dst, DType to, std::size_t n) {
  if (n == 0) return;
  const std::size_t in_size = dtype_size(from), out_size = dtype_size(to);
  cpu_for_slices(static_cast<std::int64_t>(n),
                 static_cast<std::int64_t>(std::max(in_size, out_size)), cpu_step_threads() > 1,
                 [&](std::int64_t begin, std::int64_t end) {
                   const auto b = static_cast<std::size_t>(begin);
                   convert_serially(static_cast<const char*>(src) + b * in_size, from,
                                    static_cast<char*>(dst) + b * out_size, to,
                                    static_cast<std::size_t>(end - begin));
                 });
}

}  // namespace recur::detail
