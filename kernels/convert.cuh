// kernels/convert.cuh: one element converted between storage types on the GPU (Tensor::to
// on a CUDA tensor), with the rounding the CPU's loops (src/convert.cpp) apply: exact when
// widening, one rounding to nearest even when narrowing (kernels/precision.h; float64 to
// BF16 or FP16 without a second rounding through float32).
#pragma once

#include <cstdint>

#include "hd.h"
#include "precision.h"

namespace recur::kernels {

enum class Storage : int { Float32, Float64, BFloat16, Float16 };

struct ConvertArgs {
  const void* src = nullptr;
  Storage from = Storage::Float32;
  void* dst = nullptr;  // not overlapping src
  Storage to = Storage::Float32;
  std::int64_t n = 0;
};

struct ConvertElement {
  RECUR_HD void operator()(std::int64_t i, const ConvertArgs& a) const {
    if (a.from == Storage::Float64) {
      const double x = static_cast<const double*>(a.src)[i];
      switch (a.to) {
        case Storage::Float32: static_cast<float*>(a.dst)[i] = static_cast<float>(x); return;
        case Storage::Float64: static_cast<double*>(a.dst)[i] = x; return;
        case Storage::BFloat16: static_cast<std::uint16_t*>(a.dst)[i] = float64_to_bf16(x); return;
        case Storage::Float16: static_cast<std::uint16_t*>(a.dst)[i] = float64_to_fp16(x); return;
      }
      return;
    }
    // Every other source is exact as a float.
    float x = 0.0f;
    switch (a.from) {
      case Storage::Float32: x = static_cast<const float*>(a.src)[i]; break;
      case Storage::BFloat16: x = bf16_to_float(static_cast<const std::uint16_t*>(a.src)[i]); break;
      case Storage::Float16: x = fp16_to_float(static_cast<const std::uint16_t*>(a.src)[i]); break;
      case Storage::Float64: break;
    }
    switch (a.to) {
      case Storage::Float32: static_cast<float*>(a.dst)[i] = x; return;
      case Storage::Float64: static_cast<double*>(a.dst)[i] = x; return;
      case Storage::BFloat16: static_cast<std::uint16_t*>(a.dst)[i] = float_to_bf16(x); return;
      case Storage::Float16: static_cast<std::uint16_t*>(a.dst)[i] = float_to_fp16(x); return;
    }
  }
};

}  // namespace recur::kernels
