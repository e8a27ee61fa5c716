// src/nn/modules.cpp: Embedding, Linear and SoftmaxCrossEntropy: validation, parameter
// buffers, and the dispatch of their work: GEMMs through Ops<T> (cblas / cuBLAS), the
// element-wise functors of kernels/nn.cuh through CPU loops or kernels/nn.cu.
#include "recur/modules.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <utility>

#include "../kernels/nn.cuh"
#include "cuda_backend.h"
#include "float_dispatch.h"
#include "functor_loop.h"
#include "index_checks.h"
#include "live.h"
#include "memory.h"
#include "ops.h"
#include "recur/error.h"
#include "splitmix.h"
#include "validate.h"

namespace recur {
namespace {

using detail::cpu_loop;
using detail::Gemm;
using detail::Ops;
using detail::Trans;

// ---- helpers ----

using detail::SplitMix;

// Writes `values` (doubles) into `dst` converted to its dtype.
void fill_from(const TensorView& dst, const std::vector<double>& values) {
  detail::with_float_type(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const std::vector<T> v(values.begin(), values.end());
    dst.copy_from_host(v.data());
  });
}

void check_device(const char* where, Device device) {
  if (device.is_cuda() && !cuda_built()) {
    throw Error(where, "device", "the CPU (recur was built without CUDA)", device.str());
  }
}

void check_tensor(const std::string& where, const char* name, const TensorView& t, DType dtype,
                  Device device) {
  detail::expect_defined(where, name, t);
  if (t.dtype() != dtype) {
    throw Error(where, name, std::string("dtype ") + to_string(dtype) + " (the module's)",
                std::string("dtype ") + to_string(t.dtype()));
  }
  if (t.device() != device) {
    throw Error(where, name, "device " + device.str() + " (the module's)",
                "device " + t.device().str());
  }
}

template <typename T>
void run_bias(Device device, bool backward, const kernels::BiasArgs<T>& a, void* stream) {
  if (device.is_cpu()) {
    if (backward) {
      cpu_loop<kernels::BiasGradient<T>>(a.cols, a);
    } else {
      cpu_loop<kernels::BiasBroadcast<T>>(a.rows * a.cols, a);
    }
    return;
  }
  detail::require_cuda_backend("Linear").bias(backward, a, stream);
}

// The rows of a cross-entropy as a GPU block computes them (kernels/nn.cuh): the lanes'
// statistics, the same merge tree, then the outputs.
template <typename T>
void cross_entropy_rows(const kernels::CrossEntropyArgs<T>& a) {
  const int lanes = kernels::row_lanes(a.classes);
  kernels::SoftmaxStats<T> part[kernels::kMaxRowLanes];
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const T* x = a.logits + r * a.classes;
    for (int k = 0; k < lanes; ++k) part[k] = kernels::lane_stats(x, a.classes, k, lanes);
    for (int stride = lanes / 2; stride > 0; stride /= 2) {
      for (int k = 0; k < stride; ++k) part[k] = kernels::merge(part[k], part[k + stride]);
    }
    const kernels::CrossEntropyRow<T> row(a, r, part[0]);
    a.row_loss[r] = row.loss(x);
    if (a.dlogits == nullptr) continue;
    T* d = a.dlogits + r * a.classes;
    for (std::int64_t j = 0; j < a.classes; ++j) d[j] = row.grad(x, j);
  }
}

template <typename T>
void run_cross_entropy(Device device, const kernels::CrossEntropyArgs<T>& a, void* stream) {
  if (device.is_cpu()) {
    cpu_loop<kernels::CrossEntropyClear<T>>(1, a);
    cpu_loop<kernels::CrossEntropyCount<T>>(a.rows, a);
    cross_entropy_rows(a);
    cpu_loop<kernels::CrossEntropyPartial<T>>(kernels::cross_entropy_chunks(a.rows), a);
    cpu_loop<kernels::CrossEntropyMean<T>>(1, a);
    return;
  }
  detail::CudaDeviceScope scope(device.index);
  detail::require_cuda_backend("SoftmaxCrossEntropy").cross_entropy(a, stream);
}

// Waits for all work on a GPU (before freeing memory that kernels may still read): a
// zero-byte-free copy through copy_bytes, which waits for the device first.
void synchronize_device(Device device) {
  unsigned char byte = 0;
  Tensor one = Tensor::empty({1}, DType::Float32, device);
  detail::copy_bytes(&byte, Device::cpu(), one.data(), device, 1);
}

// A scratch tensor of at least n elements of dtype on device, reallocated only when it
// is smaller or another kind (after the device's queued kernels, which may still read it).
void keep_scratch(Tensor& t, DType dtype, Device device, std::int64_t n) {
  if (t.defined() && t.dtype() == dtype && t.device() == device && t.numel() >= n) return;
  if (t.defined() && t.device().is_cuda()) synchronize_device(t.device());
  t = Tensor();
  t = Tensor::empty({std::max<std::int64_t>(n, 1)}, dtype, device);
}

// The number of rows of a [..., width] tensor, and that tensor's leading shape.
Shape leading(const Shape& shape) { return Shape(shape.begin(), shape.end() - 1); }

}  // namespace

// ---- what Embedding and Linear share ----

namespace detail {

// Flat parameter and gradient buffers with named views, the backend of the module's
// dtype (Ops<T>: GEMMs and the stream), and validation messages under `name`.
// a * b + c elements of a module's parameters; a recur::Error when that overflows int64.
inline std::int64_t size_product(const char* where, std::int64_t a, std::int64_t b,
                                 std::int64_t c) {
  std::int64_t n = 0;
  if (__builtin_mul_overflow(a, b, &n) || __builtin_add_overflow(n, c, &n)) {
    throw Error(where, "sizes", "sizes whose parameter count fits in int64",
                std::to_string(a) + " x " + std::to_string(b));
  }
  return n;
}

class ModuleCore {
 public:
  ModuleCore(const char* name, std::vector<ParamInfo> infos, std::int64_t total, DType dtype,
             Device device)
      : name_(name), dtype_(dtype), device_(device), infos_(std::move(infos)) {
    detail::expect_compute_dtype(name, "dtype", dtype);
    check_device(name, device);
    detail::expect_fits(name, "sizes", device,
                        2 * static_cast<std::uint64_t>(total) * dtype_size(dtype),
                        "parameters and gradients of " + std::to_string(total) + " elements");
    params_ = Tensor::zeros({total}, dtype, device);
    grads_ = Tensor::zeros({total}, dtype, device);
    detail::with_float_type(dtype, [&](auto zero) {
      using T = decltype(zero);
      auto ops = make_ops<T>(device);
      if (device.is_cuda()) {
        ops->set_stream(require_cuda_backend(name).legacy_default_stream());
      }
      if constexpr (std::is_same_v<T, float>) {
        ops_f_ = std::move(ops);
      } else {
        ops_d_ = std::move(ops);
      }
    });
  }

  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::vector<ParamInfo>& infos() const { return infos_; }
  TensorView params() const { return params_.view(); }
  TensorView grads() const { return grads_.view(); }

  TensorView view(const Tensor& buffer, const std::string& param, const char* fn) const {
    for (const ParamInfo& p : infos_) {
      if (p.name == param) {
        auto* base = static_cast<unsigned char*>(buffer.data());
        return TensorView(base + p.offset * static_cast<std::int64_t>(dtype_size(dtype_)), p.shape,
                          dtype_, device_);
      }
    }
    std::string names;
    for (const ParamInfo& p : infos_) names += (names.empty() ? "" : ", ") + p.name;
    throw Error(name_ + "::" + fn, "name", "one of: " + names, "\"" + param + "\"");
  }
  TensorView param(const std::string& p) const { return view(params_, p, "parameter"); }
  TensorView grad(const std::string& p) const { return view(grads_, p, "gradient"); }

  template <typename T>
  Ops<T>& ops() const {
    if constexpr (std::is_same_v<T, float>) {
      return *ops_f_;
    } else {
      return *ops_d_;
    }
  }

  // The stream the module's work goes to (nullptr on the CPU).
  void* stream() const { return dtype_ == DType::Float32 ? ops_f_->stream() : ops_d_->stream(); }
  void* user_stream() const { return user_stream_; }
  void set_stream(void* stream) {
    if (!device_.is_cuda()) {
      throw Error(name_ + "::set_cuda_stream", "stream", "a module on a CUDA device",
                  "a module on " + device_.str());
    }
    void* s = stream != nullptr ? stream : require_cuda_backend(name_).legacy_default_stream();
    detail::with_float_type(dtype_, [&](auto zero) { ops<decltype(zero)>().set_stream(s); });
    user_stream_ = stream;
  }
  void synchronize() {
    detail::with_float_type(dtype_, [&](auto zero) { ops<decltype(zero)>().synchronize(); });
  }
  void zero_grad() { zero_bytes(grads_.data(), device_, grads_.nbytes()); }

 private:
  std::string name_;
  DType dtype_;
  Device device_;
  std::vector<ParamInfo> infos_;
  Tensor params_, grads_;
  std::unique_ptr<Ops<float>> ops_f_;
  std::unique_ptr<Ops<double>> ops_d_;
  void* user_stream_ = nullptr;
};

}  // namespace detail

// ---- Embedding ----

struct Embedding::Impl {
  Impl(std::int64_t v, std::int64_t e, std::int64_t padding, DType dtype, Device device)
      : vocab(v),
        dim(e),
        padding_idx(padding),
        core("Embedding", {{"weight", {v, e}, 0}}, detail::size_product("Embedding", v, e, 0),
             dtype, device) {}

  // Checks ids (an integer tensor on the module's device; on the host, their values too);
  // returns their count.
  std::int64_t check_ids(const std::string& where, const TensorView& ids) const {
    detail::expect_indices(where, "ids", ids);
    if (ids.device() != core.device()) {
      throw Error(where, "ids", "device " + core.device().str() + " (the module's)",
                  "device " + ids.device().str());
    }
    if (ids.dim() < 1) throw Error(where, "ids", "rank >= 1, e.g. [T, B]", "rank 0 []");
    const std::int64_t n = ids.numel();
    if (n > INT_MAX) throw Error(where, "ids", "at most 2^31 - 1 ids", to_string(ids.shape()));
    if (ids.device().is_cpu()) check_values(where, ids);
    return n;
  }

  // Every id of host tensor `ids` in [0, V).
  void check_values(const std::string& where, const TensorView& ids) const {
    detail::check_index_range(
        where, "ids", ids, 0, vocab,
        "ids in [0, " + std::to_string(vocab) + ") (num_embeddings " + std::to_string(vocab) + ")");
  }

  // Host ids in `shape`, checked (shape, count; their values here for a GPU module, where
  // the tensor path cannot read them, and by that path for a CPU one) and copied into a
  // tensor on the module's device.
  Tensor upload(const char* fn, const std::vector<std::int32_t>& values, const Shape& shape) const {
    const std::string where = std::string("Embedding::") + fn;
    if (shape.empty()) throw Error(where, "shape", "rank >= 1, e.g. [T, B]", "rank 0 []");
    for (std::int64_t d : shape) {
      if (d < 0) throw Error(where, "shape", "non-negative sizes", to_string(shape));
    }
    const std::int64_t n = numel(shape);
    if (static_cast<std::int64_t>(values.size()) != n) {
      throw Error(where, "ids", std::to_string(n) + " ids (shape " + to_string(shape) + ")",
                  std::to_string(values.size()) + " ids");
    }
    Tensor host = Tensor::from_vector(values, shape);
    if (core.device().is_cpu()) return host;
    check_values(where, host);
    return host.to(core.device());
  }

  template <typename T>
  kernels::EmbeddingArgs<T> args(const TensorView& ids) const {
    kernels::EmbeddingArgs<T> a;
    a.rows = ids.numel();
    a.dim = dim;
    a.vocab = vocab;
    a.padding_idx = padding_idx == EmbeddingOptions::kNoPadding ? -1 : padding_idx;
    a.ids = detail::index_array(ids);
    return a;
  }

  // Embedding's backward: the sort of (id, position) pairs, then the runs' sums.
  template <typename T>
  void run_backward(kernels::EmbeddingArgs<T> a) {
    const auto n = static_cast<std::size_t>(a.rows);
    if (core.device().is_cpu()) {
      std::vector<std::int32_t> keys_in(n), positions_in(n), keys(n), positions(n);
      a.keys_in = keys_in.data();
      a.positions_in = positions_in.data();
      cpu_loop<kernels::EmbeddingKeys<T>>(a.rows, a);
      // Sorting the (key, position) pairs is a stable sort by key, as the GPU's radix sort.
      std::vector<std::pair<std::int32_t, std::int32_t>> order(n);
      for (std::size_t i = 0; i < n; ++i) order[i] = {keys_in[i], positions_in[i]};
      std::sort(order.begin(), order.end());
      for (std::size_t i = 0; i < n; ++i) {
        keys[i] = order[i].first;
        positions[i] = order[i].second;
      }
      a.keys = keys.data();
      a.positions = positions.data();
      cpu_loop<kernels::EmbeddingBackward<T>>(a.rows * a.dim, a);
      return;
    }
    detail::CudaBackend& cuda = detail::require_cuda_backend("Embedding::backward");
    const std::size_t sort_bytes = cuda.embedding_sort_bytes(a.rows, a.vocab);
    // [keys_in | positions_in | keys | positions | the sort's own], 256-byte aligned.
    const std::size_t array_bytes = (n * sizeof(std::int32_t) + 255) / 256 * 256;
    const std::size_t bytes = 4 * array_bytes + sort_bytes;
    keep_scratch(scratch, DType::Int64, core.device(), static_cast<std::int64_t>((bytes + 7) / 8));
    auto* base = static_cast<unsigned char*>(scratch.data());
    a.keys_in = reinterpret_cast<std::int32_t*>(base);
    a.positions_in = reinterpret_cast<std::int32_t*>(base + array_bytes);
    a.keys = reinterpret_cast<std::int32_t*>(base + 2 * array_bytes);
    a.positions = reinterpret_cast<std::int32_t*>(base + 3 * array_bytes);
    cuda.embedding(true, a, base + 4 * array_bytes, sort_bytes, core.stream());
  }

  std::int64_t vocab, dim, padding_idx;
  detail::ModuleCore core;
  Tensor scratch;  // a GPU backward's sort, kept for the next call
};

namespace {

// padding_idx in [-V, V), made non-negative; kNoPadding stays.
std::int64_t padding_row(std::int64_t padding_idx, std::int64_t vocab) {
  if (padding_idx == EmbeddingOptions::kNoPadding) return padding_idx;
  if (padding_idx < -vocab || padding_idx >= vocab) {
    throw Error("Embedding", "options.padding_idx",
                "a row in [" + std::to_string(-vocab) + ", " + std::to_string(vocab) +
                    ") or EmbeddingOptions::kNoPadding",
                std::to_string(padding_idx));
  }
  return padding_idx < 0 ? padding_idx + vocab : padding_idx;
}

}  // namespace

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, DType dtype,
                     Device device, std::uint64_t seed)
    : Embedding(num_embeddings, embedding_dim, EmbeddingOptions{dtype, device, seed}) {}

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim,
                     const EmbeddingOptions& options) {
  // Ids are sorted as int32 keys, with num_embeddings itself the key of a bad id.
  if (num_embeddings < 1 || num_embeddings >= INT_MAX) {
    throw Error("Embedding", "num_embeddings", ">= 1 and < 2^31 - 1",
                std::to_string(num_embeddings));
  }
  if (embedding_dim < 1) {
    throw Error("Embedding", "embedding_dim", ">= 1", std::to_string(embedding_dim));
  }
  impl_ = std::make_unique<Impl>(num_embeddings, embedding_dim,
                                 padding_row(options.padding_idx, num_embeddings), options.dtype,
                                 options.device);
  reset_parameters(options.seed);
}
Embedding::~Embedding() = default;
Embedding::Embedding(Embedding&&) noexcept = default;
Embedding& Embedding::operator=(Embedding&&) noexcept = default;

std::int64_t Embedding::num_embeddings() const {
  return detail::live(impl_, "Embedding", "Embedding::num_embeddings").vocab;
}
std::int64_t Embedding::embedding_dim() const {
  return detail::live(impl_, "Embedding", "Embedding::embedding_dim").dim;
}
std::int64_t Embedding::padding_idx() const {
  return detail::live(impl_, "Embedding", "Embedding::padding_idx").padding_idx;
}
DType Embedding::dtype() const {
  return detail::live(impl_, "Embedding", "Embedding::dtype").core.dtype();
}
Device Embedding::device() const {
  return detail::live(impl_, "Embedding", "Embedding::device").core.device();
}
TensorView Embedding::parameters() const {
  return detail::live(impl_, "Embedding", "Embedding::parameters").core.params();
}
TensorView Embedding::gradients() const {
  return detail::live(impl_, "Embedding", "Embedding::gradients").core.grads();
}
const std::vector<ParamInfo>& Embedding::parameter_info() const {
  return detail::live(impl_, "Embedding", "Embedding::parameter_info").core.infos();
}
TensorView Embedding::parameter(const std::string& name) const {
  return detail::live(impl_, "Embedding", "Embedding::parameter").core.param(name);
}
TensorView Embedding::gradient(const std::string& name) const {
  return detail::live(impl_, "Embedding", "Embedding::gradient").core.grad(name);
}
TensorView Embedding::weight() const {
  return detail::live(impl_, "Embedding", "Embedding::weight").core.param("weight");
}
TensorView Embedding::weight_grad() const {
  return detail::live(impl_, "Embedding", "Embedding::weight_grad").core.grad("weight");
}
void* Embedding::cuda_stream() const {
  return detail::live(impl_, "Embedding", "Embedding::cuda_stream").core.user_stream();
}
void Embedding::set_cuda_stream(void* stream) {
  detail::live(impl_, "Embedding", "Embedding::set_cuda_stream").core.set_stream(stream);
}
void Embedding::synchronize() {
  detail::live(impl_, "Embedding", "Embedding::synchronize").core.synchronize();
}
void Embedding::zero_grad() {
  detail::live(impl_, "Embedding", "Embedding::zero_grad").core.zero_grad();
}

void Embedding::reset_parameters(std::uint64_t seed) {
  SplitMix rng(seed);
  const Impl& m = detail::live(impl_, "Embedding", "Embedding::reset_parameters");
  std::vector<double> w(static_cast<std::size_t>(m.vocab * m.dim));
  for (double& x : w) x = rng.normal();
  if (m.padding_idx != EmbeddingOptions::kNoPadding) {
    std::fill_n(w.begin() + m.padding_idx * m.dim, m.dim, 0.0);
  }
  fill_from(parameters(), w);
}

Tensor Embedding::forward(const TensorView& ids) {
  Impl& m = detail::live(impl_, "Embedding", "Embedding::forward");
  const std::int64_t n = m.check_ids("Embedding::forward", ids);
  Shape out_shape = ids.shape();
  out_shape.push_back(m.dim);
  Tensor out = Tensor::empty(out_shape, dtype(), device());
  if (n == 0) return out;
  detail::with_float_type(dtype(), [&](auto zero) {
    using T = decltype(zero);
    detail::OpsScope<T> scope(m.core.ops<T>());
    kernels::EmbeddingArgs<T> a = m.args<T>(ids);
    a.weight = parameters().data_as<T>();
    a.out = out.data_as<T>();
    if (device().is_cpu()) {
      cpu_loop<kernels::EmbeddingForward<T>>(a.rows * a.dim, a);
    } else {
      detail::require_cuda_backend("Embedding::forward")
          .embedding(false, a, nullptr, 0, m.core.stream());
    }
  });
  return out;
}

void Embedding::backward(const TensorView& ids, const TensorView& dy) {
  Impl& m = detail::live(impl_, "Embedding", "Embedding::backward");
  const char* where = "Embedding::backward";
  const std::int64_t n = m.check_ids(where, ids);
  check_tensor(where, "dy", dy, dtype(), device());
  Shape want = ids.shape();
  want.push_back(m.dim);
  if (dy.shape() != want) {
    throw Error(where, "dy", "shape " + to_string(want) + " (ids' shape + [embedding_dim])",
                "shape " + to_string(dy.shape()));
  }
  if (n == 0) return;
  detail::with_float_type(dtype(), [&](auto zero) {
    using T = decltype(zero);
    detail::OpsScope<T> scope(m.core.ops<T>());
    kernels::EmbeddingArgs<T> a = m.args<T>(ids);
    a.dy = dy.data_as<T>();
    a.dweight = gradients().data_as<T>();
    m.run_backward(a);
  });
}

Tensor Embedding::forward(const std::vector<std::int32_t>& ids, const Shape& shape) {
  const Tensor t =
      detail::live(impl_, "Embedding", "Embedding::forward").upload("forward", ids, shape);
  return forward(t.view());
}

void Embedding::backward(const std::vector<std::int32_t>& ids, const Shape& shape,
                         const TensorView& dy) {
  const Tensor t =
      detail::live(impl_, "Embedding", "Embedding::backward").upload("backward", ids, shape);
  backward(t.view(), dy);
}

// ---- Linear ----

namespace {

std::vector<ParamInfo> linear_infos(std::int64_t in, std::int64_t out, bool bias) {
  std::vector<ParamInfo> infos = {{"weight", {out, in}, 0}};
  if (bias) infos.push_back({"bias", {out}, out * in});
  return infos;
}

}  // namespace

struct Linear::Impl {
  Impl(std::int64_t i, std::int64_t o, bool b, DType dtype, Device device)
      : in(i),
        out(o),
        has_bias(b),
        core("Linear", linear_infos(i, o, b), detail::size_product("Linear", o, i, b ? o : 0),
             dtype, device) {}

  // x [..., in]; returns the number of rows.
  std::int64_t check_input(const std::string& where, const TensorView& x) const {
    check_tensor(where, "x", x, core.dtype(), core.device());
    if (x.dim() < 1 || x.shape().back() != in) {
      throw Error(where, "x", "shape [..., " + std::to_string(in) + "] (in_features last)",
                  "shape " + to_string(x.shape()));
    }
    return x.numel() / in;
  }

  std::int64_t in, out;
  bool has_bias;
  detail::ModuleCore core;
};

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, DType dtype,
               Device device, std::uint64_t seed) {
  if (in_features < 1) throw Error("Linear", "in_features", ">= 1", std::to_string(in_features));
  if (out_features < 1) {
    throw Error("Linear", "out_features", ">= 1", std::to_string(out_features));
  }
  impl_ = std::make_unique<Impl>(in_features, out_features, bias, dtype, device);
  reset_parameters(seed);
}

Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

std::int64_t Linear::in_features() const {
  return detail::live(impl_, "Linear", "Linear::in_features").in;
}
std::int64_t Linear::out_features() const {
  return detail::live(impl_, "Linear", "Linear::out_features").out;
}
bool Linear::has_bias() const { return detail::live(impl_, "Linear", "Linear::has_bias").has_bias; }
DType Linear::dtype() const { return detail::live(impl_, "Linear", "Linear::dtype").core.dtype(); }
Device Linear::device() const {
  return detail::live(impl_, "Linear", "Linear::device").core.device();
}
TensorView Linear::parameters() const {
  return detail::live(impl_, "Linear", "Linear::parameters").core.params();
}
TensorView Linear::gradients() const {
  return detail::live(impl_, "Linear", "Linear::gradients").core.grads();
}
const std::vector<ParamInfo>& Linear::parameter_info() const {
  return detail::live(impl_, "Linear", "Linear::parameter_info").core.infos();
}
TensorView Linear::parameter(const std::string& name) const {
  return detail::live(impl_, "Linear", "Linear::parameter").core.param(name);
}
TensorView Linear::gradient(const std::string& name) const {
  return detail::live(impl_, "Linear", "Linear::gradient").core.grad(name);
}
TensorView Linear::weight() const {
  return detail::live(impl_, "Linear", "Linear::weight").core.param("weight");
}
TensorView Linear::bias() const {
  const Impl& m = detail::live(impl_, "Linear", "Linear::bias");
  return m.has_bias ? m.core.param("bias") : TensorView();
}
TensorView Linear::weight_grad() const {
  return detail::live(impl_, "Linear", "Linear::weight_grad").core.grad("weight");
}
TensorView Linear::bias_grad() const {
  const Impl& m = detail::live(impl_, "Linear", "Linear::bias_grad");
  return m.has_bias ? m.core.grad("bias") : TensorView();
}
void* Linear::cuda_stream() const {
  return detail::live(impl_, "Linear", "Linear::cuda_stream").core.user_stream();
}
void Linear::set_cuda_stream(void* stream) {
  detail::live(impl_, "Linear", "Linear::set_cuda_stream").core.set_stream(stream);
}
void Linear::synchronize() {
  detail::live(impl_, "Linear", "Linear::synchronize").core.synchronize();
}
void Linear::zero_grad() { detail::live(impl_, "Linear", "Linear::zero_grad").core.zero_grad(); }

void Linear::reset_parameters(std::uint64_t seed) {
  SplitMix rng(seed);
  const double bound =
      1.0 /
      std::sqrt(static_cast<double>(detail::live(impl_, "Linear", "Linear::reset_parameters").in));
  std::vector<double> p(static_cast<std::size_t>(parameters().numel()));
  for (double& x : p) x = bound * (2.0 * rng.uniform() - 1.0);
  fill_from(parameters(), p);
}

Tensor Linear::forward(const TensorView& x) {
  Impl& m = detail::live(impl_, "Linear", "Linear::forward");
  const std::int64_t rows = m.check_input("Linear::forward", x);
  Shape shape = leading(x.shape());
  shape.push_back(m.out);
  Tensor y = Tensor::empty(shape, dtype(), device());
  if (rows == 0) return y;
  detail::with_float_type(dtype(), [&](auto zero) {
    using T = decltype(zero);
    Ops<T>& ops = m.core.ops<T>();
    detail::OpsScope<T> scope(ops);
    if (m.has_bias) {
      kernels::BiasArgs<T> b;
      b.rows = rows;
      b.cols = m.out;
      b.bias = bias().data_as<T>();
      b.y = y.data_as<T>();
      run_bias(device(), false, b, m.core.stream());
    }
    // Column-major: y (out x rows) = W^T (W stored in x out) * x (in x rows).
    ops.gemm(Gemm<T>::op(Trans::T, Trans::N)
                 .shape(m.out, rows, m.in)
                 .from(weight().data_as<T>(), m.in, x.data_as<T>(), m.in)
                 .into(y.data_as<T>(), m.out)
                 .accumulate(m.has_bias));
  });
  return y;
}

Tensor Linear::backward(const TensorView& x, const TensorView& dy) {
  Impl& m = detail::live(impl_, "Linear", "Linear::backward");
  const char* where = "Linear::backward";
  const std::int64_t rows = m.check_input(where, x);
  check_tensor(where, "dy", dy, dtype(), device());
  Shape want = leading(x.shape());
  want.push_back(m.out);
  if (dy.shape() != want) {
    throw Error(where, "dy", "shape " + to_string(want) + " (x's leading shape + [out_features])",
                "shape " + to_string(dy.shape()));
  }
  Tensor dx = Tensor::empty(x.shape(), dtype(), device());
  if (rows == 0) return dx;
  detail::with_float_type(dtype(), [&](auto zero) {
    using T = decltype(zero);
    Ops<T>& ops = m.core.ops<T>();
    detail::OpsScope<T> scope(ops);
    // dx (in x rows) = W (in x out) * dy (out x rows)
    ops.gemm(Gemm<T>::op(Trans::N, Trans::N)
                 .shape(m.in, rows, m.out)
                 .from(weight().data_as<T>(), m.in, dy.data_as<T>(), m.out)
                 .into(dx.data_as<T>(), m.in));
    // dW (in x out) += x (in x rows) * dy^T (rows x out)
    ops.gemm(Gemm<T>::op(Trans::N, Trans::T)
                 .shape(m.in, m.out, rows)
                 .from(x.data_as<T>(), m.in, dy.data_as<T>(), m.out)
                 .into(weight_grad().data_as<T>(), m.in)
                 .accumulate());
    if (m.has_bias) {
      kernels::BiasArgs<T> b;
      b.rows = rows;
      b.cols = m.out;
      b.dy = dy.data_as<T>();
      b.dbias = bias_grad().data_as<T>();
      run_bias(device(), true, b, m.core.stream());
    }
  });
  return dx;
}

// ---- SoftmaxCrossEntropy ----

struct SoftmaxCrossEntropy::Impl {
  CrossEntropyResult run(const char* where, const TensorView& logits, const TensorView& targets,
                         bool gradient);
  // Checks logits; returns their rows.
  std::int64_t check_logits(const char* where, const TensorView& logits) const;
  // Host targets, checked, in a tensor on the logits' device.
  Tensor upload(const char* where, const TensorView& logits,
                const std::vector<std::int32_t>& targets) const;
  CrossEntropyResult run_host(const char* where, const TensorView& logits,
                              const std::vector<std::int32_t>& targets, bool gradient) {
    const Tensor t = upload(where, logits, targets);
    return run(where, logits, t.view(), gradient);
  }
  std::string expected_targets(std::int64_t classes) const {
    return "classes in [0, " + std::to_string(classes) + ") or ignore_index " +
           std::to_string(options.ignore_index);
  }

  CrossEntropyOptions options;
  void* stream = nullptr;
  // Scratch kept between calls (freeing it under running kernels is not allowed): row_loss
  // [N] and the mean's chunk sums (kernels::cross_entropy_chunks).
  Tensor row_loss, partial;
};

SoftmaxCrossEntropy::SoftmaxCrossEntropy(const CrossEntropyOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}
SoftmaxCrossEntropy::~SoftmaxCrossEntropy() = default;
SoftmaxCrossEntropy::SoftmaxCrossEntropy(SoftmaxCrossEntropy&&) noexcept = default;
SoftmaxCrossEntropy& SoftmaxCrossEntropy::operator=(SoftmaxCrossEntropy&&) noexcept = default;

const CrossEntropyOptions& SoftmaxCrossEntropy::options() const {
  return detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::options").options;
}
void* SoftmaxCrossEntropy::cuda_stream() const {
  return detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::cuda_stream").stream;
}
void SoftmaxCrossEntropy::set_cuda_stream(void* stream) {
  detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::set_cuda_stream").stream =
      stream;
}

CrossEntropyResult SoftmaxCrossEntropy::forward_backward(const TensorView& logits,
                                                         const TensorView& targets) {
  return detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::forward_backward")
      .run("SoftmaxCrossEntropy::forward_backward", logits, targets, true);
}

CrossEntropyResult SoftmaxCrossEntropy::forward(const TensorView& logits,
                                                const TensorView& targets) {
  return detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::forward")
      .run("SoftmaxCrossEntropy::forward", logits, targets, false);
}

CrossEntropyResult SoftmaxCrossEntropy::forward_backward(const TensorView& logits,
                                                         const std::vector<std::int32_t>& targets) {
  return detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::forward_backward")
      .run_host("SoftmaxCrossEntropy::forward_backward", logits, targets, true);
}

CrossEntropyResult SoftmaxCrossEntropy::forward(const TensorView& logits,
                                                const std::vector<std::int32_t>& targets) {
  return detail::live(impl_, "SoftmaxCrossEntropy", "SoftmaxCrossEntropy::forward")
      .run_host("SoftmaxCrossEntropy::forward", logits, targets, false);
}

std::int64_t SoftmaxCrossEntropy::Impl::check_logits(const char* where,
                                                     const TensorView& logits) const {
  detail::expect_float_tensor(where, "logits", logits);
  if (logits.dim() < 1 || logits.shape().back() < 1) {
    throw Error(where, "logits", "shape [..., V] with V >= 1 classes",
                "shape " + to_string(logits.shape()));
  }
  check_device(where, logits.device());
  const std::int64_t rows = logits.numel() / logits.shape().back();
  if (rows > INT_MAX) {
    throw Error(where, "logits", "at most 2^31 - 1 rows", to_string(logits.shape()));
  }
  return rows;
}

Tensor SoftmaxCrossEntropy::Impl::upload(const char* where, const TensorView& logits,
                                         const std::vector<std::int32_t>& targets) const {
  const std::int64_t rows = check_logits(where, logits);
  if (static_cast<std::int64_t>(targets.size()) != rows) {
    throw Error(
        where, "targets",
        std::to_string(rows) + " targets (one per row of logits " + to_string(logits.shape()) + ")",
        std::to_string(targets.size()) + " targets");
  }
  Tensor host = Tensor::from_vector(targets, {rows});
  if (logits.device().is_cpu()) return host;  // run() checks host targets itself
  detail::check_index_range(where, "targets", host, 0, logits.shape().back(),
                            expected_targets(logits.shape().back()), &options.ignore_index);
  return host.to(logits.device());
}

CrossEntropyResult SoftmaxCrossEntropy::Impl::run(const char* where, const TensorView& logits,
                                                  const TensorView& targets, bool gradient) {
  const std::int64_t rows = check_logits(where, logits);
  const std::int64_t classes = logits.shape().back();
  const Device dev = logits.device();
  detail::expect_indices(where, "targets", targets);
  if (targets.device() != dev) {
    throw Error(where, "targets", "device " + dev.str() + " (the logits')",
                "device " + targets.device().str());
  }
  if (targets.numel() != rows) {
    throw Error(
        where, "targets",
        std::to_string(rows) + " targets (one per row of logits " + to_string(logits.shape()) + ")",
        std::to_string(targets.numel()) + " targets");
  }
  if (dev.is_cpu()) {
    detail::check_index_range(where, "targets", targets, 0, classes, expected_targets(classes),
                              &options.ignore_index);
  }

  CrossEntropyResult result;
  result.loss = Tensor::empty({1}, logits.dtype(), dev);
  result.count = Tensor::empty({1}, DType::Int64, dev);
  if (gradient) result.dlogits = Tensor::empty(logits.shape(), logits.dtype(), dev);
  keep_scratch(row_loss, logits.dtype(), dev, rows);
  keep_scratch(partial, DType::Float64, dev, kernels::cross_entropy_chunks(rows));
  detail::with_float_type(logits.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::CrossEntropyArgs<T> a;
    a.rows = rows;
    a.classes = classes;
    a.logits = logits.data_as<T>();
    a.targets = detail::index_array(targets);
    a.ignore_index = options.ignore_index;
    a.count = result.count.data_as<std::int64_t>();
    a.row_loss = row_loss.data_as<T>();
    a.partial = partial.data_as<double>();
    a.dlogits = gradient ? result.dlogits.data_as<T>() : nullptr;
    a.loss = result.loss.data_as<T>();
    run_cross_entropy(dev, a, stream);
  });
  return result;
}

}  // namespace recur
