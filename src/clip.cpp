// src/clip.cpp: global_norm and clip_grad_norm: validation, then the CPU loops
// (cpu/cpu_grad.cpp) or the GPU reduction (a NormWorkspace of the CUDA backend).
#include "recur/clip.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "../kernels/reduce.h"
#include "cpu/cpu_grad.h"
#include "cuda_backend.h"
#include "float_dispatch.h"
#include "grad_internal.h"
#include "recur/error.h"
#include "validate.h"

namespace recur {

struct GradNorm::Impl {
  bool has_value = false;
  Device device = Device::cpu();
  kernels::NormState host;                      // the result of a CPU call
  std::unique_ptr<detail::NormWorkspace> cuda;  // kept across calls on one GPU

  kernels::NormState result() const {
    if (has_value && device.is_cuda()) return cuda->result();
    return host;
  }
};

GradNorm::GradNorm() : impl_(std::make_unique<Impl>()) {}
GradNorm::~GradNorm() = default;
GradNorm::GradNorm(GradNorm&&) noexcept = default;
GradNorm& GradNorm::operator=(GradNorm&&) noexcept = default;

bool GradNorm::has_value() const { return impl_ != nullptr && impl_->has_value; }
Device GradNorm::device() const { return impl_ != nullptr ? impl_->device : Device::cpu(); }
double GradNorm::norm() const { return impl_ != nullptr ? impl_->result().norm : 0.0; }
bool GradNorm::finite() const { return impl_ == nullptr || impl_->result().finite != 0; }
double GradNorm::scale() const { return impl_ != nullptr ? impl_->result().scale : 1.0; }

namespace detail {

const int* GradNormAccess::finite_flag(const GradNorm& norm, void* stream) {
  const GradNorm::Impl& impl = *norm.impl_;
  if (impl.device.is_cuda()) {
    impl.cuda->order_after(stream);
    return impl.cuda->finite_flag();
  }
  return &impl.host.finite;
}

void GradNormAccess::flag_read(const GradNorm& norm, void* stream) {
  const GradNorm::Impl& impl = *norm.impl_;
  if (impl.device.is_cuda()) impl.cuda->read_by(stream);
}

// A span given twice, or two that share memory, would count those elements twice in the
// norm and scale them twice.
void check_disjoint_spans(const char* where, const char* argument,
                          const std::vector<TensorView>& spans) {
  struct Range {
    std::uintptr_t begin, end;
    std::size_t index;
  };
  std::vector<Range> ranges;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].numel() == 0) continue;
    const auto begin = reinterpret_cast<std::uintptr_t>(spans[i].data());
    ranges.push_back({begin, begin + spans[i].nbytes(), i});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t r = 1; r < ranges.size(); ++r) {
    if (ranges[r].begin < ranges[r - 1].end) {
      const std::size_t first = std::min(ranges[r].index, ranges[r - 1].index);
      const std::size_t second = std::max(ranges[r].index, ranges[r - 1].index);
      throw Error(
          where, std::string(argument) + "[" + std::to_string(second) + "]",
          "memory that no other span covers",
          "memory that overlaps " + std::string(argument) + "[" + std::to_string(first) + "]");
    }
  }
}

}  // namespace detail

namespace {

// The validated spans of one call.
struct SpanTable {
  std::vector<kernels::SpanEntry> entries;  // the non-empty spans, in order
  std::int64_t total = 0;
  DType dtype = DType::Float32;
  Device device = Device::cpu();
};

std::string describe(Device device, DType dtype) {
  return std::string("device ") + device.str() + ", dtype " + to_string(dtype);
}

SpanTable collect(const char* where, const std::vector<TensorView>& spans) {
  SpanTable t;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const TensorView& s = spans[i];
    const std::string name = "spans[" + std::to_string(i) + "]";
    detail::expect_defined(where, name, s);
    if (i == 0) {
      detail::expect_float_tensor(where, name, s);
      t.device = s.device();
      t.dtype = s.dtype();
    } else if (s.device() != t.device || s.dtype() != t.dtype) {
      throw Error(where, name, describe(t.device, t.dtype) + " (those of spans[0])",
                  describe(s.device(), s.dtype()));
    }
    if (s.numel() > 0) {
      t.entries.push_back({s.data(), t.total, s.numel()});
      t.total += s.numel();
    }
  }
  detail::check_disjoint_spans(where, "spans", spans);
  if (t.device.is_cuda() && !cuda_built()) {
    throw Error(where, "spans", "tensors on the CPU (recur was built without CUDA)",
                "tensors on " + t.device.str());
  }
  return t;
}

}  // namespace

void detail::GradNormAccess::compute(const char* where, const std::vector<TensorView>& spans,
                                     double max_norm, GradNorm& result, void* stream) {
  const SpanTable t = collect(where, spans);
  if (result.impl_ == nullptr) result.impl_ = std::make_unique<GradNorm::Impl>();  // moved-from
  GradNorm::Impl& impl = *result.impl_;
  if (t.device.is_cpu()) {
    const double sum = t.dtype == DType::Float32 ? detail::cpu_sum_squares<float>(t.entries)
                                                 : detail::cpu_sum_squares<double>(t.entries);
    const kernels::NormState state = kernels::make_norm_state(sum, max_norm);
    if (state.scale < 1.0) {
      if (t.dtype == DType::Float32) {
        detail::cpu_scale<float>(t.entries, state.scale);
      } else {
        detail::cpu_scale<double>(t.entries, state.scale);
      }
    }
    impl.host = state;
    impl.device = t.device;
    impl.has_value = true;
    return;
  }
  if (impl.cuda == nullptr || impl.cuda->device() != t.device.index) {
    // A workspace for the new device, kept only once it has run: if making or running it
    // fails, `impl` still holds the last result, on its device.
    auto workspace = detail::require_cuda_backend(where).make_norm_workspace(t.device.index);
    workspace->run(t.entries, t.total, t.dtype, max_norm, stream);
    impl.cuda = std::move(workspace);
  } else {
    impl.cuda->run(t.entries, t.total, t.dtype, max_norm, stream);
  }
  impl.device = t.device;
  impl.has_value = true;
}

void global_norm(const std::vector<TensorView>& spans, GradNorm& result, void* stream) {
  detail::GradNormAccess::compute("global_norm", spans, -1.0, result, stream);
}

GradNorm global_norm(const std::vector<TensorView>& spans, void* stream) {
  GradNorm result;
  global_norm(spans, result, stream);
  return result;
}

void clip_grad_norm(const std::vector<TensorView>& spans, double max_norm, GradNorm& result,
                    void* stream) {
  if (!(max_norm >= 0.0)) {
    throw Error("clip_grad_norm", "max_norm", "a number >= 0 (or +inf)",
                detail::exact_number(max_norm));
  }
  detail::GradNormAccess::compute("clip_grad_norm", spans, max_norm, result, stream);
}

GradNorm clip_grad_norm(const std::vector<TensorView>& spans, double max_norm, void* stream) {
  GradNorm result;
  clip_grad_norm(spans, max_norm, result, stream);
  return result;
}

}  // namespace recur
