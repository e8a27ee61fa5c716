// src/validate.h: argument checks shared by the public entry points. Each throws
// recur::Error naming the function, the argument, what was expected and what was given.
#pragma once

#include <string>

#include "recur/config.h"
#include "recur/tensor.h"

namespace recur::detail {

// True for the DType values (a DType cast from a number may be none).
bool known_dtype(DType dtype);
// to_string(dtype) for a DType value, "value N" for a number that is none: for messages.
std::string dtype_name(DType dtype);
// A model's or a module's dtype (the one it computes in) must be Float32 or Float64.
void expect_compute_dtype(const char* where, const char* name, DType dtype);

// A required tensor argument must be defined.
void expect_defined(const std::string& where, const std::string& name, const TensorView& t);
// ... and hold float32 or float64 (a buffer recur's kernels read as floats).
void expect_float_tensor(const std::string& where, const std::string& name, const TensorView& t);
// `t` has `expected` shape; a -1 in `expected` accepts any size >= 1 there. `symbolic`
// spells the shape with names, e.g. "[T, B, input_size]", for the message.
void expect_shape(const char* where, const char* name, const TensorView& t, const Shape& expected,
                  const char* symbolic);
void expect_dtype(const char* where, const char* name, const TensorView& t, DType dtype);
void expect_device(const char* where, const char* name, const TensorView& t, Device device);

// A model's h states [num_layers*D, B, hidden_size] and output [T, B, D*hidden_size]
// ([B, T, ..] batch_first) spelt for messages, with proj_size where the LSTM projects.
std::string state_shape_text(const RnnConfig& c);
std::string output_shape_text(const RnnConfig& c);

// All of the above for a model's tensor argument.
inline void expect_tensor(const char* where, const char* name, const TensorView& t,
                          const Shape& shape, const char* symbolic, DType dtype, Device device) {
  expect_defined(where, name, t);
  expect_shape(where, name, t, shape, symbolic);
  expect_dtype(where, name, t, dtype);
  expect_device(where, name, t, device);
}

}  // namespace recur::detail
