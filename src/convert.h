// src/convert.h: element-wise conversion between dtypes, in host memory (and, through
// converted(), on a GPU).
#pragma once

#include <cstddef>

#include "recur/device.h"
#include "recur/tensor.h"

namespace recur::detail {

// Writes the `n` elements of `src` (of dtype `from`) to `dst` as dtype `to`, both in host
// memory and not overlapping, with the rounding of Tensor::to (recur/tensor.h): exact
// when widening, one rounding to nearest even when narrowing (kernels/precision.h). Both
// dtypes must be floating DType values (Float32, Float64, BFloat16, Float16).
void convert_host(const void* src, DType from, void* dst, DType to, std::size_t n);

// A copy of `view` converted to `dtype`, on the same device: Tensor::to(DType) on a view
// (`dtype` a DType value; a CUDA view converts on its device, kernels/convert.cuh).
Tensor converted(const TensorView& view, DType dtype);

}  // namespace recur::detail
