// src/dist/data_parallel.cpp: DataParallel (recur/distributed.h): gradient buffers cut into
// buckets, each bucket's sum started when its buffer is ready, then the mean; and
// Communicator::expect_same.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "../cuda_backend.h"
#include "../float_dispatch.h"
#include "../nn/functor_loop.h"
#include "../validate.h"
#include "recur/distributed.h"
#include "recur/error.h"

namespace recur {

void Communicator::expect_same(const std::string& what, const std::string& text) {
  const std::vector<std::string> texts = all_gather(text);
  for (std::size_t r = 1; r < texts.size(); ++r) {
    if (texts[r] != texts[0]) {
      throw Error("Communicator::expect_same", what,
                  "the same on every rank: rank 0 has \"" + texts[0] + "\"",
                  "rank " + std::to_string(r) + " has \"" + texts[r] + "\"");
    }
  }
}

struct DataParallel::Impl {
  struct Bucket {
    TensorView view;
    std::unique_ptr<PendingSum> pending;
  };

  Communicator& comm;
  std::vector<TensorView> gradients;
  std::vector<Bucket> buckets;
  std::vector<std::pair<std::size_t, std::size_t>> of_gradient;  // [first, last) bucket
  std::vector<bool> started;

  void start(std::size_t i) {
    for (std::size_t b = of_gradient[i].first; b < of_gradient[i].second; ++b) {
      buckets[b].pending = comm.all_reduce_sum_async(buckets[b].view);
    }
    started[i] = true;
  }
};

DataParallel::DataParallel(Communicator& comm, std::vector<TensorView> gradients,
                           std::size_t bucket_bytes) {
  const char* where = "DataParallel";
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    const std::string name = "gradients[" + std::to_string(i) + "]";
    const TensorView& g = gradients[i];
    detail::expect_float_tensor(where, name, g);
    if (g.device() != comm.device()) {
      throw Error(where, name, "device " + comm.device().str() + " (the communicator's)",
                  "device " + g.device().str());
    }
  }
  if (bucket_bytes < sizeof(double)) {
    throw Error(where, "bucket_bytes", ">= 8", std::to_string(bucket_bytes));
  }
  impl_ = std::unique_ptr<Impl>(new Impl{comm, std::move(gradients), {}, {}, {}});
  for (const TensorView& g : impl_->gradients) {
    const std::size_t first = impl_->buckets.size();
    const auto size = static_cast<std::int64_t>(dtype_size(g.dtype()));
    const std::int64_t per = static_cast<std::int64_t>(bucket_bytes) / size;
    auto* base = static_cast<unsigned char*>(g.data());
    for (std::int64_t at = 0; at < g.numel(); at += per) {
      const std::int64_t n = std::min(per, g.numel() - at);
      impl_->buckets.push_back({TensorView(base + at * size, {n}, g.dtype(), g.device()), {}});
    }
    impl_->of_gradient.emplace_back(first, impl_->buckets.size());
  }
  impl_->started.assign(impl_->gradients.size(), false);
}

DataParallel::~DataParallel() = default;

void DataParallel::ready(std::size_t i) {
  Impl& m = *impl_;
  if (i >= m.gradients.size()) {
    throw Error("DataParallel::ready", "i",
                "a gradient index in [0, " + std::to_string(m.gradients.size()) + ")",
                std::to_string(i));
  }
  if (m.started[i]) {
    throw Error("DataParallel::ready", "i", "a gradient not yet ready in this step",
                std::to_string(i) + ", ready already (finish() ends a step)");
  }
  m.start(i);
}

void DataParallel::finish() {
  Impl& m = *impl_;
  for (std::size_t i = 0; i < m.gradients.size(); ++i) {
    if (!m.started[i]) m.start(i);
  }
  const double inverse = 1.0 / static_cast<double>(m.comm.size());
  for (Impl::Bucket& b : m.buckets) {
    if (b.pending != nullptr) b.pending->wait();
    b.pending.reset();
    // The same sum on every rank times the same factor: the same mean everywhere.
    detail::with_float_type(b.view.dtype(), [&](auto zero) {
      using T = decltype(zero);
      kernels::MultiplyArgs<T> a;
      a.n = b.view.numel();
      a.x = b.view.data_as<T>();
      a.factor = static_cast<T>(inverse);
      a.y = b.view.data_as<T>();
      if (b.view.device().is_cpu()) {
        detail::cpu_loop<kernels::Multiply<T>>(a.n, a);
      } else {  // after the sum, on the stream the NCCL communicator queues on
        detail::CudaDeviceScope scope(b.view.device().index);
        detail::CudaBackend& cuda = detail::require_cuda_backend("DataParallel::finish");
        cuda.multiply(a, cuda.legacy_default_stream());
      }
    });
  }
  m.started.assign(m.gradients.size(), false);
}

void DataParallel::broadcast(const std::vector<TensorView>& tensors) {
  Impl& m = *impl_;
  for (const TensorView& t : tensors) m.comm.broadcast(t, 0);
}

std::size_t DataParallel::buckets() const { return impl_->buckets.size(); }

Communicator& DataParallel::communicator() const { return impl_->comm; }

}  // namespace recur
