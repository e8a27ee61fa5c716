// recur/tensor.h: an owning, contiguous, row-major tensor and a non-owning view of one.
//
// Tensor owns its memory (host memory for Device::cpu(), device memory allocated with
// cudaMalloc for Device::cuda(i)). It is move-only; clone() and to() make deep copies.
// Elements are float, double, recur::bfloat16, recur::float16 (recur/half.h), int32_t or
// int64_t.
// TensorView is a (pointer, shape, dtype, device) tuple that owns nothing; every public
// function that reads a tensor takes a TensorView, so callers can pass a Tensor or
// memory of their own. A default-constructed view is "undefined" and stands for a
// missing optional argument.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "recur/device.h"
#include "recur/export.h"
#include "recur/half.h"

namespace recur {

using Shape = std::vector<std::int64_t>;

RECUR_API std::string to_string(const Shape& shape);  // "[2, 3, 4]"
// The product of the sizes; throws recur::Error for a negative size or a product that
// does not fit in int64.
RECUR_API std::int64_t numel(const Shape& shape);

namespace detail {
[[noreturn]] RECUR_API void throw_size_mismatch(std::int64_t given, const Shape& shape);
}  // namespace detail

// The DType of host element type T.
template <typename T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, bfloat16> || std::is_same_v<T, float16> ||
                    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>,
                "recur tensors hold float, double, recur::bfloat16, recur::float16, int32_t or "
                "int64_t");
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  if constexpr (std::is_same_v<T, double>) return DType::Float64;
  if constexpr (std::is_same_v<T, bfloat16>) return DType::BFloat16;
  if constexpr (std::is_same_v<T, std::int32_t>) return DType::Int32;
  if constexpr (std::is_same_v<T, std::int64_t>) return DType::Int64;
  return DType::Float16;
}

class RECUR_API TensorView {
 public:
  TensorView() = default;
  // `data` must hold numel(shape) contiguous elements of `dtype` on `device`, and outlive
  // the view. Throws recur::Error for a negative size, an unknown dtype, or a shape whose
  // bytes do not fit in int64.
  TensorView(void* data, Shape shape, DType dtype, Device device);

  bool defined() const { return data_ != nullptr; }
  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(data_);
  }
  const Shape& shape() const { return shape_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t d) const { return shape_.at(static_cast<std::size_t>(d)); }
  std::int64_t numel() const { return recur::numel(shape_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // Copies between this view and host memory of nbytes() bytes (synchronous).
  void copy_from_host(const void* src) const;
  void copy_to_host(void* dst) const;
  // Copies another view of the same dtype and element count, on any device.
  void copy_from(const TensorView& src) const;

  template <typename T>
  std::vector<T> to_vector() const {
    check_dtype(dtype_of<T>());
    std::vector<T> out(static_cast<std::size_t>(numel()));
    copy_to_host(out.data());
    return out;
  }

 private:
  void check_dtype(DType want) const;

  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::Float32;
  Device device_;
};

class RECUR_API Tensor {
 public:
  Tensor() = default;
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  ~Tensor();

  // Uninitialised memory. Throws recur::Error for a shape TensorView would refuse, and
  // when the memory cannot be had.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // Copies numel(shape) elements from host memory.
  template <typename T>
  static Tensor from_host(const T* data, const Shape& shape, Device device = Device::cpu()) {
    Tensor t = empty(shape, dtype_of<T>(), device);
    t.view().copy_from_host(data);
    return t;
  }
  template <typename T>
  static Tensor from_vector(const std::vector<T>& data, const Shape& shape,
                            Device device = Device::cpu());

  // Deep copies.
  Tensor clone() const;
  Tensor to(Device device) const;
  // A copy converted to `dtype`, on the same device; the same dtype is a clone. Any pair
  // of Float32, Float64, BFloat16 and Float16 converts. Widening is exact; narrowing
  // rounds to nearest, ties to even, once (Float64 to BFloat16 or Float16 too, without
  // a second rounding through Float32), with the rules of recur/half.h for subnormals,
  // overflow, infinities and NaN. A CUDA tensor is converted on its device (no copy
  // through host memory), and like copy_from the call is synchronous. An undefined tensor
  // gives an undefined one. Integer tensors convert to nothing but their own dtype (a
  // clone): ids are not numbers to round.
  // Throws recur::Error for a `dtype` that is no DType, or an integer conversion.
  Tensor to(DType dtype) const;

  bool defined() const { return view_.defined(); }
  // The view of a const Tensor must only be read through.
  TensorView view() const { return view_; }
  operator TensorView() const { return view_; }  // NOLINT: a Tensor is usable as a view

  void* data() const { return view_.data(); }
  template <typename T>
  T* data_as() const {
    return view_.data_as<T>();
  }
  const Shape& shape() const { return view_.shape(); }
  std::int64_t dim() const { return view_.dim(); }
  std::int64_t size(std::int64_t d) const { return view_.size(d); }
  std::int64_t numel() const { return view_.numel(); }
  std::size_t nbytes() const { return view_.nbytes(); }
  DType dtype() const { return view_.dtype(); }
  Device device() const { return view_.device(); }
  template <typename T>
  std::vector<T> to_vector() const {
    return view_.to_vector<T>();
  }

 private:
  struct Storage;
  std::shared_ptr<Storage> storage_;  // sole owner; shared_ptr only for its type erasure
  TensorView view_;
};

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& data, const Shape& shape, Device device) {
  if (static_cast<std::int64_t>(data.size()) != recur::numel(shape)) {
    detail::throw_size_mismatch(static_cast<std::int64_t>(data.size()), shape);
  }
  return from_host(data.data(), shape, device);
}

}  // namespace recur
