// src/timeline.h: which rows are active at each step.
//
// recur sorts a batch by length (longest first) and packs it: step t holds only the
// active[t] sequences still running, rows offset[t] .. offset[t] + active[t] of every
// [rows, features] buffer, PyTorch's PackedSequence layout. Because the batch is sorted,
// the sequences active at step t are the first active[t] of step t-1, so a forward step's
// h_{t-1} is a prefix of the previous block. With equal lengths this is the plain
// time-major layout: active[t] = B and offset[t] = t*B.
#pragma once

#include <cstdint>
#include <vector>

namespace recur::detail {

struct Timeline {
  std::int64_t steps = 0;            // T: the longest sequence; steps past it are not computed
  std::int64_t batch = 0;            // B
  bool uniform = true;               // every sequence runs all T steps
  std::vector<std::int64_t> active;  // [T + 1]; active[T] = B (see reverse_carried)
  std::vector<std::int64_t> offset;  // [T + 1]; offset[T] = rows()
  std::vector<std::int64_t> order;   // [B] sorted position -> original sequence
  std::vector<std::int64_t> rank;    // [B] original sequence -> sorted position
  std::vector<std::int64_t> length;  // [B] per original sequence

  std::int64_t rows() const { return offset[steps]; }

  // Every sequence runs `steps` steps.
  static Timeline full(std::int64_t steps, std::int64_t batch);
  // Per-sequence lengths, each in 1..max; stable sort, longest first.
  static Timeline packed(const std::vector<std::int64_t>& lengths);
  // Steps [t0, t1) of this timeline as a timeline of their own (a recomputed segment's):
  // the same sorted batch, its rows numbered from 0, lengths cut to the window.
  Timeline window(std::int64_t t0, std::int64_t t1) const;
};

}  // namespace recur::detail
