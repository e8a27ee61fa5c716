// src/engine/workspace.h: the memory an engine's passes work in: buffers laid out in one
// allocation (Carver), backward's storage that only grows (Arena), and the forward
// workspaces a pool reuses by size (WorkspacePool).
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "recur/tensor.h"

namespace recur::detail {

// Lays buffers out in one allocation. Run a layout once with no storage to measure it,
// then again on storage of that size to get the pointers. Each buffer starts on a
// 256-byte boundary.
template <typename T>
class Carver {
 public:
  explicit Carver(T* base) : base_(base) {}
  T* take(std::int64_t n) {
    if (n <= 0) return nullptr;
    T* p = base_ != nullptr ? base_ + used_ : nullptr;
    constexpr std::int64_t kAlign = 256 / static_cast<std::int64_t>(sizeof(T));
    used_ += (n + kAlign - 1) / kAlign * kAlign;
    return p;
  }
  std::int64_t used() const { return used_; }

 private:
  T* base_;
  std::int64_t used_ = 0;
};

// Storage that only grows: a loop over batches of one shape allocates nothing after the
// first.
template <typename T>
class Arena {
 public:
  template <class Layout>
  void carve(Device device, Layout&& layout) {
    Carver<T> measure(nullptr);
    layout(measure);
    if (storage_.numel() < measure.used()) {
      storage_ = Tensor();  // free first: the old and new arena need not coexist
      storage_ = Tensor::empty({measure.used()}, dtype_of<T>(), device);
    }
    Carver<T> real(measure.used() > 0 ? storage_.template data_as<T>() : nullptr);
    layout(real);
  }

 private:
  Tensor storage_;
};

// Forward workspaces, reused by size: a pass takes the smallest spare one that fits, or
// allocates one; a workspace comes back when its SavedState is destroyed (or, for an
// inference pass, at its end). Where none fits, the largest spare one is freed first, so
// the pool never holds more workspaces than were ever in use at once, and a loop over
// batches of one shape allocates nothing after its first round. Shared with the
// SavedStates, which may outlive the engine; locked, since they may die on any thread.
template <typename T>
class WorkspacePool {
 public:
  explicit WorkspacePool(Device device) : device_(device) {}

  Tensor take(std::int64_t n) {
    if (n <= 0) return Tensor();
    std::lock_guard<std::mutex> lock(mutex_);
    auto fits = spare_.end();
    for (auto it = spare_.begin(); it != spare_.end(); ++it) {
      if (it->numel() >= n && (fits == spare_.end() || it->numel() < fits->numel())) fits = it;
    }
    Tensor out;
    if (fits != spare_.end()) {
      out = std::move(*fits);
      spare_.erase(fits);
    } else {
      if (!spare_.empty()) {  // free first: the old and new workspace need not coexist
        spare_.erase(std::max_element(
            spare_.begin(), spare_.end(),
            [](const Tensor& a, const Tensor& b) { return a.numel() < b.numel(); }));
      }
      out = Tensor::empty({n}, dtype_of<T>(), device_);
      ++allocations_;
    }
    ++held_;
    return out;
  }

  void give(Tensor t) noexcept {
    if (!t.defined()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    --held_;
    try {
      spare_.push_back(std::move(t));
    } catch (...) {  // no room to keep it: t frees it
    }
  }

  WorkspaceCounts counts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    WorkspaceCounts c;
    c.held = held_;
    c.spare = static_cast<std::int64_t>(spare_.size());
    c.allocations = allocations_;
    return c;
  }

 private:
  Device device_;
  mutable std::mutex mutex_;
  std::vector<Tensor> spare_;
  std::int64_t held_ = 0, allocations_ = 0;
};

// Lays a layout out in a workspace from `pool` (see Carver); returns the workspace.
template <typename T, class Layout>
Tensor carve(WorkspacePool<T>& pool, Layout&& layout) {
  Carver<T> measure(nullptr);
  layout(measure);
  Tensor storage = pool.take(measure.used());
  Carver<T> real(measure.used() > 0 ? storage.template data_as<T>() : nullptr);
  layout(real);
  return storage;
}

}  // namespace recur::detail
