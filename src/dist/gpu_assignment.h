// src/dist/gpu_assignment.h: which GPU each rank takes (its local rank's), and the setups
// where that cannot work: more ranks on a machine than it has GPUs, so that two would take
// one GPU. A pure function of what the ranks report, so every rank reaches the same verdict
// (none goes on into NCCL's setup while another stops) and tests can give it any machines.
#pragma once

#include <string>
#include <vector>

namespace recur::detail {

// What one rank reports: its machine's name and how many GPUs it sees.
struct RankMachine {
  std::string host;
  int gpus = 0;
};

// The local rank of `rank` (its index among the ranks of its machine, in rank order).
inline int local_index(const std::vector<RankMachine>& ranks, std::size_t rank) {
  int local = 0;
  for (std::size_t r = 0; r < rank; ++r) local += ranks[r].host == ranks[rank].host ? 1 : 0;
  return local;
}

// Empty when every rank can take a GPU of its own; else what is wrong, naming the first
// rank that would take a GPU another rank of its machine already has.
inline std::string gpu_sharing_problem(const std::vector<RankMachine>& ranks) {
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    const int local = local_index(ranks, r);
    if (ranks[r].gpus <= 0) {
      return "rank " + std::to_string(r) + " on " + ranks[r].host + " sees no GPU";
    }
    if (local >= ranks[r].gpus) {
      std::size_t first = 0;  // the rank that has this GPU already
      for (int seen = 0; first < r; ++first) {
        if (ranks[first].host == ranks[r].host && seen++ == local % ranks[r].gpus) break;
      }
      return "rank " + std::to_string(r) +
             " would take cuda:" + std::to_string(local % ranks[r].gpus) + " of " + ranks[r].host +
             ", which rank " + std::to_string(first) + " has already (" + ranks[r].host + " has " +
             std::to_string(ranks[r].gpus) + " GPUs for more ranks)";
    }
  }
  return "";
}

}  // namespace recur::detail
