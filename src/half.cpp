// src/half.cpp: recur::bfloat16 and recur::float16 (recur/half.h), through the rounding
// rules of kernels/precision.h.
#include "recur/half.h"

#include "kernels/precision.h"

namespace recur {

bfloat16::bfloat16(float value) : bits(kernels::float_to_bf16(value)) {}
bfloat16::operator float() const { return kernels::bf16_to_float(bits); }

float16::float16(float value) : bits(kernels::float_to_fp16(value)) {}
float16::operator float() const { return kernels::fp16_to_float(bits); }

}  // namespace recur
