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

Timeline Timeline::window(std::int64_t t0, std::int64_t t1) const {
  Timeline w;
  w.steps = t1 - t0;
  w.batch = batch;
  w.order = order;
  w.rank = rank;
  for (std::int64_t l : length) w.length.push_back(std::clamp<std::int64_t>(l - t0, 0, w.steps));
  w.active.assign(static_cast<std::size_t>(w.steps + 1), batch);
  w.offset.assign(static_cast<std::size_t>(w.steps + 1), 0);
  for (std::int64_t t = 0; t < w.steps; ++t) {
    w.active[static_cast<std::size_t>(t)] = active[static_cast<std::size_t>(t0 + t)];
    w.offset[static_cast<std::size_t>(t + 1)] =
        offset[static_cast<std::size_t>(t0 + t + 1)] - offset[static_cast<std::size_t>(t0)];
  }
  w.uniform = w.rows() == w.steps * batch;
  return w;
}

}  // namespace recur::detail
