// src/plan.cpp: parameter layout and config validation.
#include "plan.h"

#include <string>

#include "recur/error.h"
#include "validate.h"

namespace recur {

const char* to_string(CellKind cell) {
  switch (cell) {
    case CellKind::RnnTanh: return "RnnTanh";
    case CellKind::RnnRelu: return "RnnRelu";
    case CellKind::RnnSigmoid: return "RnnSigmoid";
    case CellKind::Lstm: return "Lstm";
    case CellKind::GruLinearBeforeReset: return "GruLinearBeforeReset";
    case CellKind::GruResetBeforeProduct: return "GruResetBeforeProduct";
  }
  return "unknown";
}

bool has_cell_state(CellKind cell) { return cell == CellKind::Lstm; }

const char* to_string(Math math) {
  switch (math) {
    case Math::Fp32: return "Fp32";
    case Math::Tf32: return "Tf32";
    case Math::Bf16: return "Bf16";
    case Math::Fp16: return "Fp16";
  }
  return "unknown";
}

const char* to_string(Connection connection) {
  switch (connection) {
    case Connection::None: return "None";
    case Connection::Residual: return "Residual";
    case Connection::Highway: return "Highway";
    case Connection::Dense: return "Dense";
  }
  return "unknown";
}

}  // namespace recur

namespace recur::detail {
namespace {

// a * b + c for the parameter layout; a recur::Error naming the config when it does not
// fit in int64 (huge sizes would otherwise wrap into a small, wrong buffer).
std::int64_t checked(const RnnConfig& c, std::int64_t a, std::int64_t b, std::int64_t add = 0) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out) || __builtin_add_overflow(out, add, &out)) {
    throw Error("Rnn", "config", "sizes whose parameter count fits in int64",
                "input_size " + std::to_string(c.input_size) + ", hidden_size " +
                    std::to_string(c.hidden_size) + ", num_layers " + std::to_string(c.num_layers));
  }
  return out;
}

int saved_slots_of(CellKind cell, bool layer_norm) {
  if (layer_norm) {
    // the gates, then the centred W_ih x and W_hh h (kernels/layer_norm.cuh)
    // (the reset-before-product GRU: its two recurrent products' centred values)
    switch (cell) {
      case CellKind::Lstm: return 12;
      case CellKind::GruLinearBeforeReset: return 10;
      default: return 9;
    }
  }
  switch (cell) {
    case CellKind::Lstm: return 4;                   // i, f, g, o
    case CellKind::GruLinearBeforeReset: return 4;   // r, z, n, W_hn h + b_hn
    case CellKind::GruResetBeforeProduct: return 3;  // r, z, n
    default: return 0;                               // h_t is enough
  }
}

}  // namespace

void validate_config(const RnnConfig& c) {
  const char* where = "Rnn";
  const int cell = static_cast<int>(c.cell);
  if (cell < 0 || cell > static_cast<int>(CellKind::GruResetBeforeProduct)) {
    throw Error(where, "config.cell", "a CellKind", "value " + std::to_string(cell));
  }
  if (c.input_size <= 0) {
    throw Error(where, "config.input_size", "> 0", std::to_string(c.input_size));
  }
  if (c.hidden_size <= 0) {
    throw Error(where, "config.hidden_size", "> 0", std::to_string(c.hidden_size));
  }
  detail::expect_compute_dtype(where, "config.dtype", c.dtype);
  const int math = static_cast<int>(c.math);
  if (math < 0 || math > static_cast<int>(Math::Fp16)) {
    throw Error(where, "config.math", "a Math", "value " + std::to_string(math));
  }
  if (c.math != Math::Fp32 && c.dtype != DType::Float32) {
    throw Error(where, "config.math", "Fp32 for a Float64 model (reduced math is for Float32)",
                std::string(to_string(c.math)) + " with dtype " + to_string(c.dtype));
  }
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    throw Error(where, "config.dropout", "a probability in [0, 1)", std::to_string(c.dropout));
  }
  if (c.num_layers < 1) {
    throw Error(where, "config.num_layers", ">= 1", std::to_string(c.num_layers));
  }
  if (c.num_layers > kMaxLayers) {
    throw Error(where, "config.num_layers", "<= " + std::to_string(kMaxLayers),
                std::to_string(c.num_layers));
  }
  const int conn = static_cast<int>(c.connection);
  if (conn < 0 || conn > static_cast<int>(Connection::Dense)) {
    throw Error(where, "config.connection", "a Connection", "value " + std::to_string(conn));
  }
  if (c.layer_norm && gate_count(c.cell) == 1) {
    throw Error(where, "config.layer_norm",
                "a gated cell (Lstm, GruLinearBeforeReset or GruResetBeforeProduct)",
                std::string("cell ") + to_string(c.cell));
  }
  if (c.proj_size < 0 || (c.proj_size > 0 && c.proj_size >= c.hidden_size)) {
    throw Error(where, "config.proj_size",
                "0 (none) or in (0, hidden_size = " + std::to_string(c.hidden_size) + ")",
                std::to_string(c.proj_size));
  }
  if (c.proj_size > 0 && (c.cell != CellKind::Lstm || c.layer_norm)) {
    throw Error(where, "config.proj_size", "0 unless the cell is Lstm without layer_norm",
                std::to_string(c.proj_size) + " with cell " + to_string(c.cell) +
                    (c.layer_norm ? " and layer_norm" : ""));
  }
  const std::int64_t dh = (c.bidirectional ? 2 : 1) * state_size_of(c);
  if ((c.connection == Connection::Residual || c.connection == Connection::Highway) &&
      c.num_layers == 1 && c.input_size != dh) {
    throw Error(
        where, "config.connection",
        std::string(to_string(c.connection)) +
            " with num_layers == 1 only when input_size == D*hidden_size = " + std::to_string(dh) +
            " (the widths of x and y must agree)",
        std::string(to_string(c.connection)) + " with input_size " + std::to_string(c.input_size));
  }
}

Plan Plan::make(const RnnConfig& config) {
  validate_config(config);
  Plan p;
  p.config = config;
  p.gates = gate_count(config.cell);
  p.saved_slots = saved_slots_of(config.cell, config.layer_norm);
  p.directions = config.bidirectional ? 2 : 1;
  const std::int64_t H = config.hidden_size, O = p.state_size(), GH = checked(config, p.gates, H),
                     DH = checked(config, p.directions, O);
  auto add = [&](const std::string& name, Shape shape) {
    const std::int64_t offset = p.total;
    std::int64_t n = 1;
    for (std::int64_t d : shape) n = checked(config, n, d);
    p.total = checked(config, 1, n, p.total);
    p.params.push_back({name, std::move(shape), offset});
    return offset;
  };
  auto new_activation = [&](std::int64_t width) {
    p.activations.push_back({width});
    return static_cast<int>(p.activations.size() - 1);
  };

  // Activations and connections, layer by layer.
  new_activation(config.input_size);  // x
  std::vector<Segment> inputs = {{0, 0}};
  std::int64_t in_width = config.input_size;
  for (std::int64_t l = 0; l < config.num_layers; ++l) {
    LayerPlan layer;
    layer.input_size = in_width;
    layer.inputs = inputs;
    layer.output = new_activation(DH);
    const bool dropped = config.dropout > 0.0 && l + 1 < config.num_layers;
    layer.next_input = dropped ? new_activation(DH) : layer.output;
    Join& j = layer.join;
    j.y = j.out = layer.next_input;
    const bool widths_agree = inputs.size() == 1 && in_width == DH;
    switch (config.connection) {
      case Connection::Residual:
      case Connection::Highway:
        if (widths_agree) {
          j.kind = config.connection;
          j.u = inputs[0].act;
          j.out = new_activation(DH);
        }
        inputs = {{j.out, 0}};
        in_width = DH;
        break;
      case Connection::Dense:
        inputs.push_back({layer.next_input, in_width});
        in_width = checked(config, 1, in_width, DH);
        break;
      case Connection::None:
        inputs = {{layer.next_input, 0}};
        in_width = DH;
        break;
    }
    p.layers.push_back(layer);
  }
  p.output =
      config.connection == Connection::Dense ? p.layers.back().output : p.layers.back().join.out;

  // Parameters: PyTorch's names and order, then highway parameters.
  for (std::int64_t l = 0; l < config.num_layers; ++l) {
    for (int d = 0; d < p.directions; ++d) {
      const std::string sfx = std::to_string(l) + (d == 1 ? "_reverse" : "");
      UnitOffsets u;
      u.layer = static_cast<int>(l);
      u.dir = d;
      u.w_ih = add("weight_ih_l" + sfx, {GH, p.layers[l].input_size});
      u.w_hh = add("weight_hh_l" + sfx, {GH, O});
      if (config.bias) {
        u.b_ih = add("bias_ih_l" + sfx, {GH});
        u.b_hh = add("bias_hh_l" + sfx, {GH});
      }
      if (p.projects()) u.w_hr = add("weight_hr_l" + sfx, {config.proj_size, H});
      p.units.push_back(u);
    }
  }
  for (std::int64_t l = 0; l < config.num_layers; ++l) {
    Join& j = p.layers[l].join;
    if (j.kind == Connection::Highway) {
      j.w_g = add("highway_weight_l" + std::to_string(l), {DH, DH});
      j.b_g = add("highway_bias_l" + std::to_string(l), {DH});
    }
  }
  if (config.layer_norm) {
    const bool lstm = config.cell == CellKind::Lstm;
    for (UnitOffsets& u : p.units) {
      const std::string sfx = std::to_string(u.layer) + (u.dir == 1 ? "_reverse" : "");
      u.ln = add("layer_norm_ih_weight_l" + sfx, {GH});
      add("layer_norm_hh_weight_l" + sfx, {GH});
      if (lstm) {
        add("layer_norm_cell_weight_l" + sfx, {H});
        add("layer_norm_cell_bias_l" + sfx, {H});
      }
    }
    p.ln_width = 2 * GH + (lstm ? 2 * H : 0);
  }
  return p;
}

const ParamInfo* Plan::find(const std::string& name) const {
  for (const ParamInfo& info : params) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

}  // namespace recur::detail
