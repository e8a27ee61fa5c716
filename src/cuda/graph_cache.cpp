// src/cuda/graph_cache.cpp: GraphCache (graph_cache.h).
#include "graph_cache.h"

#include <algorithm>
#include <functional>
#include <utility>

namespace recur::detail {

cudaGraphExec_t GraphCache::find(const std::string& key) {
  const auto at =
      std::find_if(graphs_.begin(), graphs_.end(), [&](const Recorded& g) { return g.key == key; });
  if (at == graphs_.end()) return nullptr;
  std::rotate(at, at + 1, graphs_.end());  // now the last used
  return graphs_.back().exec.get();
}

cudaGraphExec_t GraphCache::add(std::string key, GraphExec exec, std::vector<DeviceMemory> memory) {
  if (graphs_.size() == kMaxGraphs) graphs_.erase(graphs_.begin());
  graphs_.push_back({std::move(key), std::move(exec), std::move(memory)});
  return graphs_.back().exec.get();
}

bool GraphCache::seen_before(const std::string& key) {
  const std::size_t hash = std::hash<std::string>{}(key);
  const auto at = std::find(seen_.begin(), seen_.end(), hash);
  if (at != seen_.end()) {
    seen_.erase(at);
    return true;
  }
  if (seen_.size() == kMaxSeen) seen_.erase(seen_.begin());
  seen_.push_back(hash);
  return false;
}

void GraphCache::clear() noexcept {
  graphs_.clear();
  seen_.clear();
}

}  // namespace recur::detail
