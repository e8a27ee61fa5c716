// src/cuda/graph_cache.h: the CUDA graphs one CudaOps recorded, keyed by the signature of
// the call list each replays, and the signatures seen once and not yet recorded.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

#include "../ops.h"
#include "handles.h"

namespace recur::detail {

// The bytes of a call list that decide what its graph does: every kernel's arguments,
// every GEMM's shape, scalars and pointers (the host tables' contents included). Two lists
// with the same signature launch the same work on the same memory.
template <typename T>
std::string graph_signature(const std::vector<StepCall<T>>& calls) {
  std::string key;
  auto put = [&key](const void* p, std::size_t n) { key.append(static_cast<const char*>(p), n); };
  auto put_value = [&put](const auto& v) { put(&v, sizeof v); };
  for (const StepCall<T>& c : calls) {
    put_value(c.kind);
    put_value(c.step);
    switch (c.kind) {
      case StepCall<T>::Kind::Forward:
        put_value(c.forward.size());
        put(c.forward.data(), c.forward.size() * sizeof(StepForward<T>));
        break;
      case StepCall<T>::Kind::Backward:
        put_value(c.backward.size());
        put(c.backward.data(), c.backward.size() * sizeof(StepBackward<T>));
        break;
      case StepCall<T>::Kind::Gemms: {
        const GemmBatch<T>& g = c.gemms;
        for (auto v : {static_cast<std::int64_t>(g.trans_a), static_cast<std::int64_t>(g.trans_b),
                       g.m, g.n, g.k, g.lda, g.ldb, g.ldc, static_cast<std::int64_t>(g.count)}) {
          put_value(v);
        }
        put_value(g.alpha);
        put_value(g.beta);
        for (const void* p : {static_cast<const void*>(g.a), static_cast<const void*>(g.b),
                              static_cast<const void*>(g.c)}) {
          put_value(p);
        }
        const std::size_t n = static_cast<std::size_t>(g.count) * sizeof(void*);
        for (const void* table :
             {static_cast<const void*>(g.host_a), static_cast<const void*>(g.host_b),
              static_cast<const void*>(g.host_c)}) {
          put_value(table != nullptr);
          if (table != nullptr) put(table, n);
        }
        break;
      }
    }
  }
  return key;
}

class GraphCache {
 public:
  // A training step of an L-layer bidirectional stack records 2L lists and its inference
  // L more, recomputation by layers 4L, and each forward in flight its own: keep those of a
  // training loop with evaluation between steps for stacks up to 32 layers, or for a few
  // shapes or workspaces, dropping the one used longest ago (a dropped list that comes
  // again is recorded again, its second time).
  static constexpr std::size_t kMaxGraphs = 128;
  // Signatures seen once and not yet recorded (seen_before), oldest first.
  static constexpr std::size_t kMaxSeen = kMaxGraphs;

  // The executable recorded for `key`, or null; a graph found is the last to be dropped.
  cudaGraphExec_t find(const std::string& key);
  // Keeps `exec` for `key`, with `memory` it reads and nothing else owns (dropping the
  // oldest beyond kMaxGraphs); returns it.
  cudaGraphExec_t add(std::string key, GraphExec exec, std::vector<DeviceMemory> memory = {});
  // Whether a list with this signature came before without being recorded; remembers it
  // if not. Hashes only: a collision at worst records a list one call early.
  bool seen_before(const std::string& key);
  // Whether the next add() drops the oldest graph.
  bool full() const { return graphs_.size() == kMaxGraphs; }
  void clear() noexcept;

 private:
  struct Recorded {
    std::string key;
    GraphExec exec;
    std::vector<DeviceMemory> memory;  // freed with the graph
  };
  std::vector<Recorded> graphs_;   // the one used longest ago first
  std::vector<std::size_t> seen_;  // hashes, oldest first
};

}  // namespace recur::detail
