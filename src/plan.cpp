// src/plan.cpp: parameter layout and config validation.
#include "plan.h"

#include <string>

#include "recur/error.h"

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

int gate_count(CellKind cell) {
  switch (cell) {
    case CellKind::Lstm: return 4;
    case CellKind::GruLinearBeforeReset:
    case CellKind::GruResetBeforeProduct: return 3;
    default: return 1;
  }
}

bool has_cell_state(CellKind cell) { return cell == CellKind::Lstm; }

}  // namespace recur

namespace recur::detail {
namespace {

int saved_slots_of(CellKind cell) {
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
  if (c.dtype != DType::Float32 && c.dtype != DType::Float64) {
    throw Error(where, "config.dtype", "Float32 or Float64",
                "value " + std::to_string(static_cast<int>(c.dtype)));
  }
}

Plan Plan::make(const RnnConfig& config) {
  validate_config(config);
  Plan p;
  p.config = config;
  p.gates = gate_count(config.cell);
  p.saved_slots = saved_slots_of(config.cell);
  const std::int64_t gh = p.gates * config.hidden_size;
  auto add = [&](const std::string& name, Shape shape) {
    const std::int64_t offset = p.total;
    p.total += numel(shape);
    p.params.push_back({name, std::move(shape), offset});
    return offset;
  };
  p.layer.input_size = config.input_size;
  p.layer.w_ih = add("weight_ih_l0", {gh, config.input_size});
  p.layer.w_hh = add("weight_hh_l0", {gh, config.hidden_size});
  if (config.bias) {
    p.layer.b_ih = add("bias_ih_l0", {gh});
    p.layer.b_hh = add("bias_hh_l0", {gh});
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
