// src/dist/gpu_assignment.h: which GPU each rank takes, and the setups where that cannot
// work: two ranks of a machine that would take one GPU. A pure function of what the ranks
// report, so every rank reaches the same verdict (none goes on into NCCL's setup while
// another stops) and tests can give it any machines.
#pragma once

#include <string>
#include <vector>

namespace recur::detail {

// What one rank reports: its machine's name and the GPUs it sees, in device order, each
// by an identity that is the same whichever process sees it (its UUID; "" where it could
// not be read, and then its device index stands for it).
struct RankMachine {
  std::string host;
  std::vector<std::string> gpus;
};

// The local rank of `rank` (its index among the ranks of its machine, in rank order).
inline int local_index(const std::vector<RankMachine>& ranks, std::size_t rank) {
  int local = 0;
  for (std::size_t r = 0; r < rank; ++r) local += ranks[r].host == ranks[rank].host ? 1 : 0;
  return local;
}

// The device `rank` takes: its local rank's, modulo the GPUs it sees. Where every rank sees
// all of the machine's GPUs that is cuda:local_rank; where each is given one (a launcher
// setting CUDA_VISIBLE_DEVICES per rank) it is cuda:0, a different GPU for each.
inline int local_device(const std::vector<RankMachine>& ranks, std::size_t rank) {
  const int seen = static_cast<int>(ranks[rank].gpus.size());
  return seen > 0 ? local_index(ranks, rank) % seen : 0;
}

// The identity of the GPU `rank` takes.
inline std::string gpu_taken(const std::vector<RankMachine>& ranks, std::size_t rank) {
  const int device = local_device(ranks, rank);
  const std::string& id = ranks[rank].gpus[static_cast<std::size_t>(device)];
  return id.empty() ? "cuda:" + std::to_string(device) : id;
}

// Empty when every rank can take a GPU of its own; else what is wrong, naming the first
// rank that would take a GPU another rank of its machine already has.
inline std::string gpu_sharing_problem(const std::vector<RankMachine>& ranks) {
  std::vector<std::string> taken;  // each rank's GPU, found once
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    if (ranks[r].gpus.empty()) {
      return "rank " + std::to_string(r) + " on " + ranks[r].host + " sees no GPU";
    }
    taken.push_back(gpu_taken(ranks, r));
    for (std::size_t first = 0; first < r; ++first) {
      if (ranks[first].host != ranks[r].host || taken[first] != taken[r]) continue;
      const std::string device = "cuda:" + std::to_string(local_device(ranks, r));
      return "rank " + std::to_string(r) + " would take " + device +
             (taken[r] != device ? " (" + taken[r] + ")" : "") + " of " + ranks[r].host +
             ", which rank " + std::to_string(first) + " has already (rank " + std::to_string(r) +
             " sees " + std::to_string(ranks[r].gpus.size()) + " GPUs, and is local rank " +
             std::to_string(local_index(ranks, r)) + ")";
    }
  }
  return "";
}

}  // namespace recur::detail
