// src/validate.cpp: argument checks and their messages.
#include "validate.h"

#include "recur/error.h"

namespace recur::detail {

bool known_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32:
    case DType::Float64:
    case DType::BFloat16:
    case DType::Float16:
    case DType::Int32:
    case DType::Int64: return true;
  }
  return false;
}

std::string dtype_name(DType dtype) {
  return known_dtype(dtype) ? std::string(to_string(dtype))
                            : "value " + std::to_string(static_cast<int>(dtype));
}

void expect_compute_dtype(const char* where, const char* name, DType dtype) {
  if (dtype != DType::Float32 && dtype != DType::Float64) {
    throw Error(where, name, "Float32 or Float64 (the dtypes recur computes in)",
                dtype_name(dtype));
  }
}

void expect_defined(const std::string& where, const std::string& name, const TensorView& t) {
  if (!t.defined()) throw Error(where, name, "a defined tensor", "an undefined TensorView");
}

void expect_float_tensor(const std::string& where, const std::string& name, const TensorView& t) {
  expect_defined(where, name, t);
  if (t.dtype() != DType::Float32 && t.dtype() != DType::Float64) {
    throw Error(where, name, "dtype float32 or float64", "dtype " + dtype_name(t.dtype()));
  }
}

void expect_shape(const char* where, const char* name, const TensorView& t, const Shape& expected,
                  const char* symbolic) {
  if (t.dim() != static_cast<std::int64_t>(expected.size())) {
    throw Error(where, name, "rank " + std::to_string(expected.size()) + " " + symbolic,
                "rank " + std::to_string(t.dim()) + " " + to_string(t.shape()));
  }
  bool ok = true;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const std::int64_t got = t.shape()[i];
    ok = ok && (expected[i] < 0 ? got >= 1 : got == expected[i]);
  }
  if (!ok) {
    std::string want = "shape [";
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (i > 0) want += ", ";
      want += expected[i] < 0 ? std::string(">=1") : std::to_string(expected[i]);
    }
    throw Error(where, name, want + "] " + symbolic, to_string(t.shape()));
  }
}

void expect_dtype(const char* where, const char* name, const TensorView& t, DType dtype) {
  if (t.dtype() != dtype) {
    throw Error(where, name, std::string("dtype ") + to_string(dtype) + " (the model's)",
                std::string("dtype ") + to_string(t.dtype()));
  }
}

void expect_device(const char* where, const char* name, const TensorView& t, Device device) {
  if (t.device() != device) {
    throw Error(where, name, "device " + device.str() + " (the model's)",
                "device " + t.device().str());
  }
}

std::string state_shape_text(const RnnConfig& c) {
  return std::string("[num_layers*D, B, ") + (c.proj_size > 0 ? "proj_size]" : "hidden_size]");
}

std::string output_shape_text(const RnnConfig& c) {
  const std::string width = c.proj_size > 0 ? "D*proj_size]" : "D*hidden_size]";
  return (c.batch_first ? "[B, T, " : "[T, B, ") + width;
}

}  // namespace recur::detail
