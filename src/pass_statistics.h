// src/pass_statistics.h: what one pass did, counted as it ran: the ways the pass plan and
// the backend chose, so that tests can check that a way they compare was taken.
#pragma once

#include <cstdint>

namespace recur::detail {

struct PassStatistics {
  bool wavefront = false;               // the pass ran as a wavefront
  int layers_projecting_in_steps = 0;   // layers whose steps projected their own input
  std::int64_t fused_wave_gemms = 0;    // input GEMMs fused into a wave's batch
  std::int64_t packed_gemms = 0;        // CPU: GEMMs on held weights (reduced: rounded once)
  std::int64_t row_parallel_runs = 0;   // CPU: step lists run row-parallel
  std::int64_t column_split_gemms = 0;  // CPU: GEMMs split by columns among the threads
  std::int64_t row_split_gemms = 0;     // CPU: GEMMs split by rows
  std::int64_t native_bf16_gemms = 0;   // CPU: BF16 GEMMs run on AVX512_BF16
  std::int64_t bf16_tile_gemms = 0;     // CPU: of those, on AMX tiles
  std::int64_t graph_captures = 0;      // CUDA: step lists recorded as graphs
  std::int64_t graph_replays = 0;       // CUDA: recorded graphs replayed
  std::int64_t branched_batches = 0;    // CUDA: batches recorded as parallel branches
};

// Two passes' statistics together: ran as a wavefront if either did, every count summed.
inline PassStatistics& operator+=(PassStatistics& sum, const PassStatistics& p) {
  sum.wavefront = sum.wavefront || p.wavefront;
  sum.layers_projecting_in_steps += p.layers_projecting_in_steps;
  sum.fused_wave_gemms += p.fused_wave_gemms;
  sum.packed_gemms += p.packed_gemms;
  sum.row_parallel_runs += p.row_parallel_runs;
  sum.column_split_gemms += p.column_split_gemms;
  sum.row_split_gemms += p.row_split_gemms;
  sum.native_bf16_gemms += p.native_bf16_gemms;
  sum.bf16_tile_gemms += p.bf16_tile_gemms;
  sum.graph_captures += p.graph_captures;
  sum.graph_replays += p.graph_replays;
  sum.branched_batches += p.branched_batches;
  return sum;
}

}  // namespace recur::detail
