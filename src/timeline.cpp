// src/timeline.cpp: step counts and offsets of a (possibly packed) batch.
#include "timeline.h"

#include <algorithm>
#include <numeric>

namespace recur::detail {

Timeline Timeline::full(std::int64_t steps, std::int64_t batch) {
  return packed(std::vector<std::int64_t>(static_cast<std::size_t>(batch), steps));
}

Timeline Timeline::packed(const std::vector<std::int64_t>& lengths) {
  Timeline tl;
  tl.batch = static_cast<std::int64_t>(lengths.size());
  tl.length = lengths;
  tl.order.resize(lengths.size());
  std::iota(tl.order.begin(), tl.order.end(), 0);
  std::stable_sort(tl.order.begin(), tl.order.end(), [&](std::int64_t a, std::int64_t b) {
    return lengths[static_cast<std::size_t>(a)] > lengths[static_cast<std::size_t>(b)];
  });
  tl.rank.resize(lengths.size());
  for (std::size_t s = 0; s < tl.order.size(); ++s) {
    tl.rank[static_cast<std::size_t>(tl.order[s])] = static_cast<std::int64_t>(s);
  }
  tl.steps = lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  tl.uniform =
      std::all_of(lengths.begin(), lengths.end(), [&](std::int64_t l) { return l == tl.steps; });
  tl.active.assign(static_cast<std::size_t>(tl.steps + 1), 0);
  tl.offset.assign(static_cast<std::size_t>(tl.steps + 1), 0);
  for (std::int64_t t = 0; t < tl.steps; ++t) {
    std::int64_t n = 0;
    for (std::int64_t l : lengths) n += l > t ? 1 : 0;
    tl.active[static_cast<std::size_t>(t)] = n;
    tl.offset[static_cast<std::size_t>(t + 1)] = tl.offset[static_cast<std::size_t>(t)] + n;
  }
  tl.active[static_cast<std::size_t>(tl.steps)] = tl.batch;
  return tl;
}

}  // namespace recur::detail
