// src/pass_statistics.h: what one pass did, counted as it ran: the ways the pass plan and
// the backend chose, so that tests can check that a way they compare was taken.
#pragma once

#include <cstdint>

namespace recur::detail {

struct PassStatistics {
  bool wavefront = false;               // the pass ran as a wavefront
  int layers_projecting_in_steps = 0;   // layers whose steps projected their own input
  std::int64_t fused_wave_gemms = 0;    // input GEMMs fused into a wave's batch
  std::int64_t packed_gemms = 0;        // CPU: GEMMs run on packed (held) weights
  std::int64_t row_parallel_runs = 0;   // CPU: step lists run row-parallel
  std::int64_t column_split_gemms = 0;  // CPU: GEMMs split by columns among the threads
  std::int64_t row_split_gemms = 0;     // CPU: GEMMs split by rows
  std::int64_t graph_captures = 0;      // CUDA: step lists recorded as graphs
  std::int64_t graph_replays = 0;       // CUDA: recorded graphs replayed
  std::int64_t branched_batches = 0;    // CUDA: batches recorded as parallel branches
};

}  // namespace recur::detail
