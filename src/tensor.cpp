// src/tensor.cpp: Tensor and TensorView.
#include "recur/tensor.h"

#include <algorithm>
#include <limits>
#include <string>

#include "convert.h"
#include "cuda_backend.h"
#include "memory.h"
#include "recur/error.h"
#include "validate.h"

namespace recur {

std::string to_string(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {

// The product of non-negative sizes into *n; false when it does not fit in int64. A zero
// anywhere makes the product 0, however large the rest.
bool product_fits(const Shape& shape, std::int64_t* n) {
  bool overflow = false;
  *n = 1;
  for (std::int64_t d : shape) {
    if (d == 0) {
      *n = 0;
      return true;
    }
    overflow = overflow || __builtin_mul_overflow(*n, d, n);
  }
  return !overflow;
}

}  // namespace

std::int64_t numel(const Shape& shape) {
  for (std::int64_t d : shape) {
    if (d < 0) throw Error("numel", "shape", "non-negative sizes", to_string(shape));
  }
  std::int64_t n = 0;
  if (!product_fits(shape, &n)) {
    throw Error("numel", "shape", "sizes whose product fits in int64", to_string(shape));
  }
  return n;
}

namespace detail {
void throw_size_mismatch(std::int64_t given, const Shape& shape) {
  throw Error("Tensor::from_vector", "data",
              std::to_string(numel(shape)) + " elements for shape " + to_string(shape),
              std::to_string(given) + " elements");
}
}  // namespace detail

namespace {

[[noreturn]] void throw_unknown_dtype(const char* where, DType dtype) {
  throw Error(where, "dtype", "DType::Float32, Float64, BFloat16, Float16, Int32 or Int64",
              detail::dtype_name(dtype));
}

// Every view's numel() and nbytes() are then exact: the shape's product fits in int64 and
// its bytes in size_t, whatever the dtype.
void check_shape(const char* where, const Shape& shape, DType dtype) {
  if (!detail::known_dtype(dtype)) throw_unknown_dtype(where, dtype);
  for (std::int64_t d : shape) {
    if (d < 0) throw Error(where, "shape", "non-negative sizes", to_string(shape));
  }
  std::int64_t n = 0;
  const bool fits = product_fits(shape, &n);
  const auto most =
      static_cast<std::int64_t>(std::min<std::uint64_t>(std::numeric_limits<std::int64_t>::max(),
                                                        std::numeric_limits<std::size_t>::max()) /
                                dtype_size(dtype));
  if (!fits || n > most) {
    throw Error(where, "shape",
                "at most " + std::to_string(most) + " elements of " + to_string(dtype) +
                    " (bytes that fit in int64)",
                to_string(shape));
  }
}

}  // namespace

TensorView::TensorView(void* data, Shape shape, DType dtype, Device device)
    : data_(data), shape_(std::move(shape)), dtype_(dtype), device_(device) {
  check_shape("TensorView", shape_, dtype_);
}

void TensorView::check_dtype(DType want) const {
  if (dtype_ != want) throw Error("TensorView::data_as", "T", to_string(dtype_), to_string(want));
}

void TensorView::copy_from_host(const void* src) const {
  detail::copy_bytes(data_, device_, src, Device::cpu(), nbytes());
}

void TensorView::copy_to_host(void* dst) const {
  detail::copy_bytes(dst, Device::cpu(), data_, device_, nbytes());
}

void TensorView::copy_from(const TensorView& src) const {
  if (src.dtype() != dtype_) {
    throw Error("TensorView::copy_from", "src", std::string("dtype ") + to_string(dtype_),
                std::string("dtype ") + to_string(src.dtype()));
  }
  if (src.numel() != numel()) {
    throw Error("TensorView::copy_from", "src", std::to_string(numel()) + " elements",
                std::to_string(src.numel()) + " elements " + to_string(src.shape()));
  }
  detail::copy_bytes(data_, device_, src.data(), src.device(), nbytes());
}

struct Tensor::Storage {
  Storage(Device d, std::size_t bytes) : device(d), ptr(detail::allocate(d, bytes)) {}
  ~Storage() { detail::deallocate(device, ptr); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Device device;
  void* ptr;
};

Tensor::~Tensor() = default;

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape("Tensor::empty", shape, dtype);
  Tensor t;
  const std::size_t bytes = static_cast<std::size_t>(recur::numel(shape)) * dtype_size(dtype);
  t.storage_ = std::make_shared<Storage>(device, bytes);
  // A zero-element tensor is still defined: give it a non-null, never-dereferenced address.
  void* data = t.storage_->ptr != nullptr ? t.storage_->ptr : static_cast<void*>(t.storage_.get());
  t.view_ = TensorView(data, shape, dtype, device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  detail::zero_bytes(t.storage_->ptr, device, t.nbytes());
  return t;
}

Tensor Tensor::clone() const { return to(device()); }

Tensor Tensor::to(Device device) const {
  if (!defined()) return Tensor();
  Tensor t = empty(shape(), dtype(), device);
  t.view_.copy_from(view_);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (!detail::known_dtype(dtype)) throw_unknown_dtype("Tensor::to", dtype);
  if (!defined()) return Tensor();
  if (dtype == this->dtype()) return clone();
  if (is_integer(dtype) || is_integer(this->dtype())) {
    throw Error("Tensor::to", "dtype",
                std::string("a floating dtype, to convert a ") + to_string(this->dtype()) +
                    " tensor (integer tensors convert to their own dtype only)",
                to_string(dtype));
  }
  return detail::converted(view_, dtype);
}

namespace detail {

Tensor converted(const TensorView& view, DType dtype) {
  Tensor out = Tensor::empty(view.shape(), dtype, view.device());
  const auto n = static_cast<std::size_t>(view.numel());
  if (view.device().is_cpu()) {
    convert_host(view.data(), view.dtype(), out.data(), dtype, n);
    return out;
  }
  // On the device, on the legacy default stream (after the work queued on every blocking
  // stream, an Rnn's own included), and waited for, like a copy: then it is ordered with
  // non-blocking streams too.
  auto storage = [](DType d) {
    switch (d) {
      case DType::Float64: return kernels::Storage::Float64;
      case DType::BFloat16: return kernels::Storage::BFloat16;
      case DType::Float16: return kernels::Storage::Float16;
      case DType::Float32:
      case DType::Int32:  // integers never get here (Tensor::to refuses them)
      case DType::Int64: break;
    }
    return kernels::Storage::Float32;
  };
  CudaDeviceScope scope(view.device().index);
  CudaBackend& cuda = require_cuda_backend("Tensor::to");
  cuda.convert({view.data(), storage(view.dtype()), out.data(), storage(dtype),
                static_cast<std::int64_t>(n)},
               cuda.legacy_default_stream());
  return out;
}

}  // namespace detail

}  // namespace recur
