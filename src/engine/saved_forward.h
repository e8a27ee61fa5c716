// src/engine/saved_forward.h: what a forward keeps for its backward: the row maps between
// the caller's layout and the timeline's rows, and the forward's state (Saved).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../engine.h"
#include "../pass/buffers.h"
#include "../pass/pass_plan.h"
#include "../timeline.h"
#include "workspace.h"

namespace recur::detail {

// Row maps between the caller's layout and the timeline's packed rows, in one table that
// is staged once per pass.
struct RowMaps {
  std::vector<std::int64_t> table;
  std::size_t to_packed = 0;     // [R]: packed row <- caller's row
  std::size_t to_caller = 0;     // [T*B]: caller's row <- packed row, or -1 (padding)
  std::size_t state_in = 0;      // [L*D*B]: sorted state row <- caller's state row
  std::size_t state_out = 0;     // [L*D*B]: caller's state row <- sorted state row
  std::size_t last[2] = {0, 0};  // [B] per direction: Y_l row of the final state, by caller's b

  RowMaps() = default;
  RowMaps(const Timeline& tl, std::int64_t caller_steps, bool batch_first, std::int64_t units) {
    const std::int64_t B = tl.batch;
    auto caller_row = [&](std::int64_t t, std::int64_t b) {
      return batch_first ? b * caller_steps + t : t * B + b;
    };
    to_packed = table.size();
    for (std::int64_t t = 0; t < tl.steps; ++t) {
      for (std::int64_t s = 0; s < tl.active[t]; ++s) table.push_back(caller_row(t, tl.order[s]));
    }
    to_caller = table.size();
    table.resize(table.size() + static_cast<std::size_t>(caller_steps * B), -1);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t t = 0; t < tl.length[b]; ++t) {
        table[to_caller + caller_row(t, b)] = tl.offset[t] + tl.rank[b];
      }
    }
    state_in = table.size();
    for (std::int64_t u = 0; u < units; ++u) {
      for (std::int64_t s = 0; s < B; ++s) table.push_back(u * B + tl.order[s]);
    }
    state_out = table.size();
    for (std::int64_t u = 0; u < units; ++u) {
      for (std::int64_t b = 0; b < B; ++b) table.push_back(u * B + tl.rank[b]);
    }
    // Final states: forward after the sequence's last step, reverse after step 0.
    last[0] = table.size();
    for (std::int64_t b = 0; b < B; ++b)
      table.push_back(B + tl.offset[tl.length[b] - 1] + tl.rank[b]);
    last[1] = table.size();
    for (std::int64_t b = 0; b < B; ++b) table.push_back(B + tl.rank[b]);
  }
};

// One forward's state, kept for its backward: the workspace its buffers point into, the
// buffers, timeline, pass plan, row maps and its own copy of the staged row indices (a
// later forward stages others into the backend's one staging buffer). An inference pass
// builds one too, and drops it at its end.
template <typename T>
struct Saved final : SavedState {
  std::shared_ptr<WorkspacePool<T>> pool;
  Tensor storage;  // from pool, given back on destruction
  StackBuffers<T> buffers;
  Timeline timeline;
  PassPlan pass;
  RowMaps maps;
  const std::int64_t* rows = nullptr;  // maps.table where the backend reads it
  // The caller's x and y rows are the timeline's rows as they are (time-major, no
  // lengths): no gathers in or out.
  bool rows_as_given = true;
  // A recomputed forward's (forward_recomputed): its segments' steps, and in `storage` x in
  // timeline rows [R, I] and the states at each segment's start in sorted order:
  // [segments][L*D, B, O] for h, and [segments][L*D, B, H] for an LSTM's c.
  std::int64_t segment = 0;
  T* xs = nullptr;
  T* starts_h = nullptr;
  T* starts_c = nullptr;

  Saved() = default;
  Saved(const Saved&) = delete;
  Saved& operator=(const Saved&) = delete;
  ~Saved() override {
    if (pool != nullptr) pool->give(std::move(storage));
  }
};

}  // namespace recur::detail
