// src/plan.h: everything derived from an RnnConfig alone: the flat parameter layout, the
// activations that flow between layers, and which connection joins them.
//
// Parameter order and names follow PyTorch's nn.RNN / nn.LSTM / nn.GRU, so that a state
// dict maps onto the buffer one to one: for each layer l, for each direction (suffix ""
// then "_reverse"): weight_ih_l{l} [G*H, in_l], weight_hh_l{l} [G*H, H],
// bias_ih_l{l} [G*H], bias_hh_l{l} [G*H]. Highway parameters (recur's own) follow all of
// them: highway_weight_l{l} [D*H, D*H], highway_bias_l{l} [D*H]. With layer_norm, each
// unit's layer-norm parameters (recur's own) come last, contiguous per unit in unit
// order: layer_norm_ih_weight_l{l} [G*H], layer_norm_hh_weight_l{l} [G*H], and for the
// LSTM layer_norm_cell_weight_l{l} [H], layer_norm_cell_bias_l{l} [H]; the layout of
// kernels/layer_norm.cuh's `ln`. With proj_size P, each unit's weight_hr_l{l} [P, H]
// follows its biases (PyTorch's order), weight_hh_l{l} is [G*H, P], and every width D*H
// above is D*P.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/dispatch.h"
#include "recur/config.h"
#include "recur/rnn.h"

namespace recur::detail {

// O: the features of h, h0/h_n and each direction's part of y_l: proj_size where the LSTM
// projects, else hidden_size.
inline std::int64_t state_size_of(const RnnConfig& c) {
  return c.proj_size > 0 ? c.proj_size : c.hidden_size;
}

// One layer-direction ("unit"): its parameters' offsets in the flat buffer (elements);
// b_ih = b_hh = -1 when the model has no bias.
struct UnitOffsets {
  int layer = 0, dir = 0;
  std::int64_t w_ih = 0, w_hh = 0, b_ih = -1, b_hh = -1;
  std::int64_t ln = -1;    // the layer-norm parameters (layer_norm), else -1
  std::int64_t w_hr = -1;  // the projection weight_hr [P, H] (proj_size), else -1
};

// A tensor of T*B rows that flows through the stack: x, a layer's output y_l, or a
// connection's output u_{l+1}.
struct ActivationInfo {
  std::int64_t width = 0;
};

// Part of a layer's input: activation `act` occupies columns [col, col + width) of
// weight_ih. Dense layers have several; every other layer has one.
struct Segment {
  int act = 0;
  std::int64_t col = 0;
};

// What joins layer l to layer l+1.
struct Join {
  Connection kind = Connection::None;  // None when the connection does not apply here
  int u = 0;                           // u_l (the layer's input, single segment)
  int y = 0;                           // y_l
  int out = 0;                         // u_{l+1}; equals y when kind is None
  std::int64_t w_g = -1, b_g = -1;     // highway parameters
};

struct LayerPlan {
  std::int64_t input_size = 0;  // in_l: columns of weight_ih_l{l}
  std::vector<Segment> inputs;  // u_l, as segments of activations
  int output = 0;               // activation of y_l
  int next_input = 0;           // what later layers and the join read of y_l: y_l itself,
                                // or with dropout its dropped copy
  Join join;
};

struct Plan {
  RnnConfig config;
  int gates = 0;              // G
  int saved_slots = 0;        // S: [B, S*H] saved per step for backward
  std::int64_t ln_width = 0;  // layer-norm parameters per unit (0 without layer_norm)
  int directions = 1;         // D
  std::int64_t total = 0;     // elements of the flat buffer
  std::vector<ParamInfo> params;
  std::vector<UnitOffsets> units;  // index layer * D + dir
  std::vector<LayerPlan> layers;
  std::vector<ActivationInfo> activations;  // [0] is x
  int output = 0;                           // the stack's output activation

  static Plan make(const RnnConfig& config);
  const ParamInfo* find(const std::string& name) const;
  std::int64_t state_size() const { return state_size_of(config); }  // O
  bool projects() const { return config.proj_size > 0; }
  // The elements of one unit's per-step recurrent weights: W_hh [G*H, O], and the
  // projection's W_hr [P, H].
  std::int64_t step_weight_elements() const {
    return gates * config.hidden_size * state_size() +
           (projects() ? config.proj_size * config.hidden_size : 0);
  }
  std::int64_t output_size() const { return directions * state_size(); }
  int unit_count() const { return static_cast<int>(units.size()); }
};

// The deepest stack a config may ask for: far beyond any that trains, and small enough
// that the plan's per-layer bookkeeping never becomes the allocation that fails.
constexpr std::int64_t kMaxLayers = 1 << 16;

// Names of the layer-norm parameters (layer_norm_*), and of their one bias kind
// (layer_norm_cell_bias_*, initialised to 0 where the gains are 1).
inline bool is_layer_norm_param(const std::string& name) {
  return name.rfind("layer_norm_", 0) == 0;
}
inline bool is_layer_norm_bias(const std::string& name) {
  return name.rfind("layer_norm_cell_bias", 0) == 0;
}

// Throws recur::Error for a config that cannot be built (sizes, unknown enums, a
// connection that can apply nowhere).
void validate_config(const RnnConfig& config);

}  // namespace recur::detail
