// src/nn/joins.cpp: the joins of recur/joins.h: validation, and the dispatch of the
// functors of kernels/joins.cuh to CPU loops or to the CUDA backend (kernels/joins.cu).
#include "recur/joins.h"

#include <memory>
#include <string>
#include <utility>

#include "../cuda_backend.h"
#include "../float_dispatch.h"
#include "../validate.h"
#include "functor_loop.h"
#include "index_checks.h"
#include "recur/error.h"

namespace recur {
namespace {

using detail::cpu_loop;

// The legacy default stream of x's GPU, current for the scope of the call (nullptr on
// the CPU).
class Queue {
 public:
  Queue(const char* where, Device device) {
    if (device.is_cpu()) return;
    scope_ = std::make_unique<detail::CudaDeviceScope>(device.index);
    cuda_ = &detail::require_cuda_backend(where);
  }
  detail::CudaBackend* cuda() const { return cuda_; }
  void* stream() const { return cuda_->legacy_default_stream(); }

 private:
  std::unique_ptr<detail::CudaDeviceScope> scope_;
  detail::CudaBackend* cuda_ = nullptr;
};

void expect_device(const char* where, const char* name, const TensorView& t, Device device,
                   const char* whose) {
  if (t.device() != device) {
    throw Error(where, name, "device " + device.str() + " (" + whose + ")",
                "device " + t.device().str());
  }
}

std::int64_t checked_dim(const char* where, std::int64_t dim, std::int64_t rank) {
  if (dim < 0 || dim >= rank) {
    throw Error(where, "dim", "a dimension in [0, " + std::to_string(rank) + ")",
                std::to_string(dim));
  }
  return dim;
}

// x seen as [outer, size(dim) * inner] rows around `dim`.
std::int64_t outer_of(const Shape& shape, std::int64_t dim) {
  std::int64_t n = 1;
  for (std::int64_t d = 0; d < dim; ++d) n *= shape[static_cast<std::size_t>(d)];
  return n;
}
std::int64_t inner_of(const Shape& shape, std::int64_t dim) {
  std::int64_t n = 1;
  for (std::size_t d = static_cast<std::size_t>(dim) + 1; d < shape.size(); ++d) n *= shape[d];
  return n;
}

// One BlockCopy (kernels/joins.cuh) of elements of `bytes` bytes.
struct Copy {
  std::int64_t outer = 0, width = 0;
  const void* src = nullptr;
  std::int64_t src_width = 0, src_offset = 0;
  void* dst = nullptr;
  std::int64_t dst_width = 0, dst_offset = 0;
};

template <typename E>
void run_copy(const Copy& c, const Queue& q) {
  kernels::BlockCopyArgs<E> a;
  a.outer = c.outer;
  a.width = c.width;
  a.src = static_cast<const E*>(c.src);
  a.src_width = c.src_width;
  a.src_offset = c.src_offset;
  a.dst = static_cast<E*>(c.dst);
  a.dst_width = c.dst_width;
  a.dst_offset = c.dst_offset;
  if (q.cuda() == nullptr) {
    cpu_loop<kernels::BlockCopy<E>>(a.outer * a.width, a);
  } else {
    q.cuda()->block_copy(a, q.stream());
  }
}

void copy_blocks(const Copy& c, DType dtype, const Queue& q) {
  if (c.outer * c.width == 0) return;
  switch (dtype_size(dtype)) {
    case 2: run_copy<std::uint16_t>(c, q); return;
    case 4: run_copy<std::uint32_t>(c, q); return;
    default: run_copy<std::uint64_t>(c, q); return;
  }
}

// Lengths [B] (Int32 or Int64, on `device`), checked on the host when they live there.
kernels::IndexArray lengths_of(const char* where, const TensorView& lengths, std::int64_t batch,
                               std::int64_t steps, Device device) {
  detail::expect_indices(where, "lengths", lengths);
  expect_device(where, "lengths", lengths, device, "that of the data");
  if (lengths.shape() != Shape{batch}) {
    throw Error(where, "lengths", "shape [" + std::to_string(batch) + "] (one per sequence)",
                "shape " + to_string(lengths.shape()));
  }
  if (device.is_cpu()) {
    detail::check_index_range(where, "lengths", lengths, 0, steps + 1,
                              "lengths in [0, " + std::to_string(steps) + "] (T)");
  }
  return detail::index_array(lengths);
}

}  // namespace

TensorView reshape(const TensorView& x, const Shape& shape) {
  const char* where = "reshape";
  detail::expect_defined(where, "x", x);
  const TensorView out(x.data(), shape, x.dtype(), x.device());  // checks the sizes
  if (out.numel() != x.numel()) {
    throw Error(where, "shape",
                std::to_string(x.numel()) + " elements (those of x " + to_string(x.shape()) + ")",
                to_string(shape));
  }
  return out;
}

Tensor concat(const std::vector<TensorView>& parts, std::int64_t dim) {
  const char* where = "concat";
  if (parts.empty()) throw Error(where, "parts", "at least one tensor", "none");
  for (std::size_t i = 0; i < parts.size(); ++i) {
    detail::expect_defined(where, ("parts[" + std::to_string(i) + "]").c_str(), parts[i]);
  }
  const TensorView& first = parts[0];
  checked_dim(where, dim, first.dim());
  Shape shape = first.shape();
  std::int64_t total = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string name = "parts[" + std::to_string(i) + "]";
    const TensorView& p = parts[i];
    if (p.dtype() != first.dtype() || p.device() != first.device()) {
      throw Error(where, name,
                  std::string("dtype ") + to_string(first.dtype()) + " on " + first.device().str() +
                      " (those of parts[0])",
                  std::string("dtype ") + to_string(p.dtype()) + " on " + p.device().str());
    }
    Shape want = first.shape();
    want[static_cast<std::size_t>(dim)] = p.dim() == first.dim() ? p.size(dim) : 0;
    if (p.shape() != want) {
      throw Error(where, name,
                  "the shape of parts[0] " + to_string(first.shape()) + " but along dim " +
                      std::to_string(dim),
                  "shape " + to_string(p.shape()));
    }
    total += p.size(dim);
  }
  shape[static_cast<std::size_t>(dim)] = total;
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  const Queue q(where, first.device());
  const std::int64_t outer = outer_of(shape, dim), inner = inner_of(shape, dim);
  std::int64_t offset = 0;
  for (const TensorView& p : parts) {
    const std::int64_t width = p.size(dim) * inner;
    copy_blocks({outer, width, p.data(), width, 0, out.data(), total * inner, offset}, p.dtype(),
                q);
    offset += width;
  }
  return out;
}

std::vector<Tensor> split(const TensorView& x, const std::vector<std::int64_t>& sizes,
                          std::int64_t dim) {
  const char* where = "split";
  detail::expect_defined(where, "x", x);
  checked_dim(where, dim, x.dim());
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0 || sizes[i] > x.size(dim) - sum) {
      throw Error(where, "sizes",
                  "sizes >= 0 summing to " + std::to_string(x.size(dim)) + " (x's size along dim " +
                      std::to_string(dim) + ")",
                  "sizes[" + std::to_string(i) + "] = " + std::to_string(sizes[i]) +
                      " after a sum of " + std::to_string(sum));
    }
    sum += sizes[i];
  }
  if (sum != x.size(dim)) {
    throw Error(where, "sizes", "sizes summing to " + std::to_string(x.size(dim)),
                "a sum of " + std::to_string(sum));
  }
  const Queue q(where, x.device());
  const std::int64_t outer = outer_of(x.shape(), dim), inner = inner_of(x.shape(), dim);
  std::vector<Tensor> out;
  std::int64_t offset = 0;
  for (std::int64_t size : sizes) {
    Shape shape = x.shape();
    shape[static_cast<std::size_t>(dim)] = size;
    out.push_back(Tensor::empty(shape, x.dtype(), x.device()));
    const std::int64_t width = size * inner;
    copy_blocks({outer, width, x.data(), x.size(dim) * inner, offset, out.back().data(), width, 0},
                x.dtype(), q);
    offset += width;
  }
  return out;
}

Tensor narrow(const TensorView& x, std::int64_t dim, std::int64_t start, std::int64_t length) {
  const char* where = "narrow";
  detail::expect_defined(where, "x", x);
  checked_dim(where, dim, x.dim());
  const std::int64_t size = x.size(dim);
  if (start < 0 || start > size) {
    throw Error(where, "start", "an index in [0, " + std::to_string(size) + "]",
                std::to_string(start));
  }
  if (length < 0 || length > size - start) {
    throw Error(where, "length", "a length in [0, " + std::to_string(size - start) + "]",
                std::to_string(length));
  }
  Shape shape = x.shape();
  shape[static_cast<std::size_t>(dim)] = length;
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const Queue q(where, x.device());
  const std::int64_t inner = inner_of(x.shape(), dim);
  copy_blocks({outer_of(x.shape(), dim), length * inner, x.data(), size * inner, start * inner,
               out.data(), length * inner, 0},
              x.dtype(), q);
  return out;
}

Tensor narrow_backward(const TensorView& dy, const Shape& shape, std::int64_t dim,
                       std::int64_t start) {
  const char* where = "narrow_backward";
  detail::expect_defined(where, "dy", dy);
  checked_dim(where, dim, dy.dim());
  Shape want = dy.shape();
  if (shape.size() != want.size()) {
    throw Error(where, "shape", "rank " + std::to_string(want.size()) + " (dy's)",
                to_string(shape));
  }
  want[static_cast<std::size_t>(dim)] = shape[static_cast<std::size_t>(dim)];
  if (shape != want || shape[static_cast<std::size_t>(dim)] < dy.size(dim)) {
    throw Error(where, "shape",
                "dy's shape " + to_string(dy.shape()) + " but along dim " + std::to_string(dim) +
                    ", where at least " + std::to_string(dy.size(dim)),
                to_string(shape));
  }
  const std::int64_t size = shape[static_cast<std::size_t>(dim)];
  if (start < 0 || start > size - dy.size(dim)) {
    throw Error(where, "start",
                "an index in [0, " + std::to_string(size - dy.size(dim)) + "] (dy fits in shape)",
                std::to_string(start));
  }
  Tensor dx = Tensor::zeros(shape, dy.dtype(), dy.device());
  const Queue q(where, dy.device());
  const std::int64_t inner = inner_of(shape, dim);
  copy_blocks({outer_of(shape, dim), dy.size(dim) * inner, dy.data(), dy.size(dim) * inner, 0,
               dx.data(), size * inner, start * inner},
              dy.dtype(), q);
  return dx;
}

Tensor scale(const TensorView& x, double factor) {
  const char* where = "scale";
  detail::expect_float_tensor(where, "x", x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Queue q(where, x.device());
  detail::with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::MultiplyArgs<T> a;
    a.n = x.numel();
    a.x = x.data_as<T>();
    a.factor = static_cast<T>(factor);
    a.y = y.data_as<T>();
    if (q.cuda() == nullptr) {
      cpu_loop<kernels::Multiply<T>>(a.n, a);
    } else if (a.n > 0) {
      q.cuda()->multiply(a, q.stream());
    }
  });
  return y;
}

namespace {

template <typename T>
void run_masked_mean(bool backward, const kernels::MaskedMeanArgs<T>& a, const Queue& q) {
  if (q.cuda() != nullptr) {
    q.cuda()->masked_mean(backward, a, q.stream());
  } else if (backward) {
    cpu_loop<kernels::MaskedMeanBackward<T>>(a.steps * a.batch * a.features, a);
  } else {
    cpu_loop<kernels::MaskedMeanForward<T>>(a.batch * a.features, a);
  }
}

}  // namespace

Tensor masked_mean(const TensorView& y, const TensorView& lengths, bool batch_first) {
  const char* where = "masked_mean";
  detail::expect_float_tensor(where, "y", y);
  if (y.dim() != 3) {
    throw Error(where, "y", batch_first ? "rank 3 [B, T, F]" : "rank 3 [T, B, F]",
                "shape " + to_string(y.shape()));
  }
  const std::int64_t steps = y.size(batch_first ? 1 : 0), batch = y.size(batch_first ? 0 : 1);
  const kernels::IndexArray l = lengths_of(where, lengths, batch, steps, y.device());
  Tensor pooled = Tensor::empty({batch, y.size(2)}, y.dtype(), y.device());
  const Queue q(where, y.device());
  detail::with_float_type(y.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::MaskedMeanArgs<T> a;
    a.steps = steps;
    a.batch = batch;
    a.features = y.size(2);
    a.batch_first = batch_first;
    a.lengths = l;
    a.y = y.data_as<T>();
    a.pooled = pooled.data_as<T>();
    if (pooled.numel() > 0) run_masked_mean(false, a, q);
  });
  return pooled;
}

Tensor masked_mean_backward(const TensorView& dpooled, const TensorView& lengths,
                            std::int64_t steps, bool batch_first) {
  const char* where = "masked_mean_backward";
  detail::expect_float_tensor(where, "dpooled", dpooled);
  if (dpooled.dim() != 2) {
    throw Error(where, "dpooled", "rank 2 [B, F]", "shape " + to_string(dpooled.shape()));
  }
  if (steps < 0) throw Error(where, "steps", ">= 0 (T)", std::to_string(steps));
  const std::int64_t batch = dpooled.size(0), features = dpooled.size(1);
  const kernels::IndexArray l = lengths_of(where, lengths, batch, steps, dpooled.device());
  const Shape shape = batch_first ? Shape{batch, steps, features} : Shape{steps, batch, features};
  Tensor dy = Tensor::empty(shape, dpooled.dtype(), dpooled.device());
  const Queue q(where, dpooled.device());
  detail::with_float_type(dpooled.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::MaskedMeanArgs<T> a;
    a.steps = steps;
    a.batch = batch;
    a.features = features;
    a.batch_first = batch_first;
    a.lengths = l;
    a.dpooled = dpooled.data_as<T>();
    a.dy = dy.data_as<T>();
    if (dy.numel() > 0) run_masked_mean(true, a, q);
  });
  return dy;
}

namespace {

// logits [..., V] with V >= 1; returns the rows.
std::int64_t logit_rows(const char* where, const TensorView& logits, const char* name) {
  detail::expect_float_tensor(where, name, logits);
  if (logits.dim() < 1 || logits.shape().back() < 1) {
    throw Error(where, name, "shape [..., V] with V >= 1", "shape " + to_string(logits.shape()));
  }
  return logits.numel() / logits.shape().back();
}

template <typename T>
void run_argmax(bool count_correct, const kernels::ArgmaxArgs<T>& a, const Queue& q) {
  if (a.rows == 0) return;
  if (q.cuda() != nullptr) {
    q.cuda()->argmax(count_correct, a, q.stream());
  } else if (count_correct) {
    cpu_loop<kernels::CountCorrect<T>>(a.rows, a);
  } else {
    cpu_loop<kernels::ArgmaxRows<T>>(a.rows, a);
  }
}

}  // namespace

Tensor argmax(const TensorView& x) {
  const char* where = "argmax";
  const std::int64_t rows = logit_rows(where, x, "x");
  Tensor out =
      Tensor::empty(Shape(x.shape().begin(), x.shape().end() - 1), DType::Int64, x.device());
  const Queue q(where, x.device());
  detail::with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::ArgmaxArgs<T> a;
    a.rows = rows;
    a.classes = x.shape().back();
    a.logits = x.data_as<T>();
    a.indices = out.data_as<std::int64_t>();
    run_argmax(false, a, q);
  });
  return out;
}

void count_correct(const TensorView& logits, const TensorView& targets, const TensorView& totals,
                   std::int64_t ignore_index) {
  const char* where = "count_correct";
  const std::int64_t rows = logit_rows(where, logits, "logits");
  detail::expect_indices(where, "targets", targets);
  expect_device(where, "targets", targets, logits.device(), "the logits'");
  if (targets.numel() != rows) {
    throw Error(
        where, "targets",
        std::to_string(rows) + " targets (one per row of logits " + to_string(logits.shape()) + ")",
        std::to_string(targets.numel()) + " targets");
  }
  detail::expect_defined(where, "totals", totals);
  if (totals.dtype() != DType::Int64 || totals.shape() != Shape{2}) {
    throw Error(
        where, "totals", "an Int64 tensor [2] (correct, counted)",
        std::string("dtype ") + to_string(totals.dtype()) + " shape " + to_string(totals.shape()));
  }
  expect_device(where, "totals", totals, logits.device(), "the logits'");
  const Queue q(where, logits.device());
  detail::with_float_type(logits.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::ArgmaxArgs<T> a;
    a.rows = rows;
    a.classes = logits.shape().back();
    a.logits = logits.data_as<T>();
    a.targets = detail::index_array(targets);
    a.ignore_index = ignore_index;
    a.totals = totals.data_as<std::int64_t>();
    run_argmax(true, a, q);
  });
}

}  // namespace recur
