// src/nn/index_checks.h: integer tensors (ids, targets, lengths) as the modules and joins
// take them: their dtype, their values where the host can read them, and the functors'
// view of them (kernels/indices.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../kernels/indices.h"
#include "recur/error.h"
#include "recur/tensor.h"

namespace recur::detail {

// t is a defined Int32 or Int64 tensor.
inline void expect_indices(const std::string& where, const char* name, const TensorView& t) {
  if (!t.defined()) throw Error(where, name, "a defined tensor", "an undefined view");
  if (!is_integer(t.dtype())) {
    throw Error(where, name, "dtype int32 or int64", std::string("dtype ") + to_string(t.dtype()));
  }
}

inline kernels::IndexArray index_array(const TensorView& t) {
  return {t.data(), t.dtype() == DType::Int64};
}

// For t in host memory: each value in [lo, hi), or equal to *also when `also` is given;
// else a recur::Error naming the first that is not ("<name>[i] = v"), expecting
// `expected`.
inline void check_index_range(const std::string& where, const char* name, const TensorView& t,
                              std::int64_t lo, std::int64_t hi, const std::string& expected,
                              const std::int64_t* also = nullptr) {
  const kernels::IndexArray a = index_array(t);
  const std::int64_t n = t.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t v = a[i];
    if ((v < lo || v >= hi) && (also == nullptr || v != *also)) {
      throw Error(where, name, expected,
                  std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v));
    }
  }
}

}  // namespace recur::detail
