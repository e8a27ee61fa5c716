// src/plan.h: the flat parameter buffer's layout, derived from an RnnConfig.
//
// Order and names follow PyTorch's nn.RNN / nn.LSTM / nn.GRU, so that a state dict maps
// onto the buffer one to one: weight_ih_l0 [G*H, I], weight_hh_l0 [G*H, H],
// bias_ih_l0 [G*H], bias_hh_l0 [G*H], each row-major and contiguous.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/dispatch.h"
#include "recur/config.h"
#include "recur/rnn.h"

namespace recur::detail {

// Offsets (in elements) of one layer-direction's parameters in the flat buffer;
// b_ih = b_hh = -1 when the model has no bias.
struct LayerOffsets {
  std::int64_t w_ih = 0, w_hh = 0, b_ih = -1, b_hh = -1;
  std::int64_t input_size = 0;  // columns of weight_ih
};

struct Plan {
  RnnConfig config;
  int gates = 0;           // G
  int saved_slots = 0;     // S: [B, S*H] saved per step for backward
  std::int64_t total = 0;  // elements of the flat buffer
  std::vector<ParamInfo> params;
  LayerOffsets layer;

  static Plan make(const RnnConfig& config);
  const ParamInfo* find(const std::string& name) const;
};

// Throws recur::Error for a config that cannot be built (sizes, unknown enums).
void validate_config(const RnnConfig& config);

}  // namespace recur::detail
