// src/io/checkpoint.cpp: checkpoints and state dicts on top of the safetensors reader and
// writer. Loading stages every tensor in host memory and checks everything before the
// first byte of the model changes.
#include "recur/checkpoint.h"

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>

#include "../convert.h"
#include "../validate.h"
#include "checkpoint_loader.h"
#include "json_bounds.h"
#include "recur/error.h"
#include "recur/version.h"

namespace recur {
namespace {

using detail::config_to_json;
using detail::json;
using detail::Loader;
using detail::optimizer_key;
using detail::optimizer_to_json;
using detail::state_prefix;

constexpr const char* kFormat = "recur.checkpoint";

// Checks what save_checkpoint and load_checkpoint both take.
void check_arguments(const char* where, const Rnn& rnn, const Optimizer* optimizer,
                     const CheckpointExtras& extras) {
  if (optimizer != nullptr && optimizer->parameters().data() != rnn.parameters().data()) {
    throw Error(where, "optimizer", "an optimizer bound to rnn.parameters()",
                "one bound to other memory");
  }
  std::set<std::string> names;
  for (const ParamInfo& p : rnn.parameter_info()) names.insert(p.name);
  for (std::size_t i = 0; i < extras.tensors.size(); ++i) {
    const auto& [name, view] = extras.tensors[i];
    const std::string arg = "extras.tensors[" + std::to_string(i) + "]";
    if (name.empty() || name.rfind("optim.", 0) == 0 || name == "__metadata__") {
      throw Error(where, arg, "a non-empty name that does not start with \"optim.\"",
                  "\"" + name + "\"");
    }
    if (!names.insert(name).second) {
      throw Error(where, arg, "a name not used by the model or another extra tensor",
                  "\"" + name + "\"");
    }
    detail::expect_defined(where, arg, view);
  }
  std::set<std::string> optimizer_names;
  for (std::size_t i = 0; i < extras.optimizers.size(); ++i) {
    const auto& [name, opt] = extras.optimizers[i];
    const std::string arg = "extras.optimizers[" + std::to_string(i) + "]";
    if (name.empty() || name.find('.') != std::string::npos) {
      throw Error(where, arg, "a non-empty name without '.'", "\"" + name + "\"");
    }
    if (!optimizer_names.insert(name).second) {
      throw Error(where, arg, "a name not used by another optimizer", "\"" + name + "\"");
    }
    if (opt == nullptr) throw Error(where, arg, "an optimizer", "nullptr");
  }
}

void check_config(Loader& loader, const json& saved, const RnnConfig& model) {
  const json mine = config_to_json(model);
  for (const char* name : {"cell", "input_size", "hidden_size", "num_layers", "bidirectional",
                           "connection", "bias", "dtype", "layer_norm", "proj_size"}) {
    const auto it = saved.find(name);
    // Files written before layer_norm or proj_size existed have none: plain, unprojected.
    const std::string field = name;
    const bool old_file = it == saved.end() && (field == "layer_norm" || field == "proj_size");
    if (it == saved.end() && !old_file)
      loader.fail(std::string("metadata 'recur.config' has no '") + name + "'");
    const json value = !old_file ? *it : field == "layer_norm" ? json(false) : json(0);
    if (value != mine.at(name)) {
      loader.fail(std::string("config mismatch: the checkpoint's ") + name + " is " +
                  detail::quote_json(value) + ", the model's is " + mine.at(name).dump());
    }
  }
}

}  // namespace

NamedTensors state_dict(const Rnn& rnn) {
  NamedTensors out;
  for (const ParamInfo& p : rnn.parameter_info()) out.emplace_back(p.name, rnn.parameter(p.name));
  return out;
}

void save_checkpoint(const std::string& path, const Rnn& rnn, const Optimizer* optimizer,
                     std::int64_t step, const CheckpointExtras& extras) {
  const char* where = "save_checkpoint";
  check_arguments(where, rnn, optimizer, extras);
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : extras.metadata) {
    if (key == "format" || key.rfind("recur.", 0) == 0) {
      throw Error(where, "extras.metadata", "keys other than \"format\" and \"recur.*\"",
                  "\"" + key + "\"");
    }
    meta[key] = value;
  }
  meta["format"] = "pt";  // the convention of Python's safetensors.torch for torch tensors
  meta["recur.format"] = kFormat;
  meta["recur.version"] = version();
  meta["recur.step"] = std::to_string(step);
  meta["recur.config"] = config_to_json(rnn.config()).dump();

  NamedTensors tensors = state_dict(rnn);
  auto add_optimizer = [&](const std::string& name, const Optimizer& opt) {
    meta[optimizer_key(name)] = optimizer_to_json(opt).dump();
    for (const OptimizerState& s : opt.state()) {
      tensors.emplace_back(state_prefix(name) + s.name, s.view);
    }
  };
  if (optimizer != nullptr) add_optimizer("", *optimizer);
  for (const auto& [name, opt] : extras.optimizers) add_optimizer(name, *opt);
  for (const auto& t : extras.tensors) tensors.push_back(t);
  save_safetensors(path, tensors, meta);
}

CheckpointInfo load_checkpoint(const std::string& path, Rnn& rnn, Optimizer* optimizer,
                               const CheckpointExtras& extras) {
  check_arguments("load_checkpoint", rnn, optimizer, extras);
  const SafetensorsFile file = SafetensorsFile::open(path);
  Loader loader("load_checkpoint", file);

  const auto& meta = file.metadata();
  const auto format = meta.find("recur.format");
  if (format == meta.end() || format->second != kFormat) {
    loader.fail("not a recur checkpoint (metadata 'recur.format' is not \"" + std::string(kFormat) +
                "\"); a plain state dict loads with load_state_dict()");
  }
  check_config(loader, loader.metadata_json("recur.config"), rnn.config());

  CheckpointInfo info;
  info.metadata = meta;
  const auto step = meta.find("recur.step");
  if (step == meta.end()) loader.fail("no metadata 'recur.step'");
  try {
    std::size_t used = 0;
    info.step = std::stoll(step->second, &used);
    if (used != step->second.size()) throw std::invalid_argument("trailing characters");
  } catch (const std::exception&) {
    loader.fail("metadata 'recur.step' is not an integer: \"" + detail::quote_name(step->second) +
                "\"");
  }

  for (const ParamInfo& p : rnn.parameter_info()) {
    loader.stage(p.name, rnn.parameter(p.name), "the model's parameter");
  }
  if (optimizer != nullptr) loader.stage_optimizer("", *optimizer);
  for (const auto& [name, opt] : extras.optimizers) loader.stage_optimizer(name, *opt);
  for (const auto& [name, view] : extras.tensors) loader.stage(name, view, "the extra tensor");
  loader.check_unexpected("the model (or the extras)");
  loader.commit();
  return info;
}

void load_state_dict(Rnn& rnn, const SafetensorsFile& file, const StateDictOptions& options) {
  Loader loader("load_state_dict", file);
  std::set<std::string> params;
  for (const ParamInfo& p : rnn.parameter_info()) params.insert(p.name);
  for (const std::string& name : file.names()) {
    if (name.rfind(options.prefix, 0) != 0) continue;
    if (params.count(name.substr(options.prefix.size())) == 0) {
      loader.fail("unexpected tensor '" + detail::quote_name(name) +
                  "': the model has no parameter '" +
                  detail::quote_name(name.substr(options.prefix.size())) + "'");
    }
  }
  const DType dtype = rnn.config().dtype;
  std::vector<std::pair<TensorView, std::vector<unsigned char>>> staged;
  for (const ParamInfo& p : rnn.parameter_info()) {
    const std::string name = options.prefix + p.name;
    if (!file.contains(name)) loader.fail("missing tensor '" + name + "' (the model's parameter)");
    const SafetensorsEntry& e = file.info(name);
    DType stored = dtype;
    bool float_type = false;
    for (DType d : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
      if (e.dtype == safetensors_dtype(d)) {
        stored = d;
        float_type = true;
      }
    }
    if (!float_type || (!options.convert_dtype && stored != dtype)) {
      loader.fail(
          "tensor '" + name + "' has dtype " + e.dtype + ", but the model's parameter is " +
          safetensors_dtype(dtype) +
          (float_type ? " (StateDictOptions::convert_dtype converts F32, F64, BF16 and F16)" : ""));
    }
    if (e.shape != p.shape) {
      // A gate count that differs is the usual cause: name the cells, not just the sizes.
      std::string hint;
      const std::int64_t H = rnn.config().hidden_size;
      const bool gate_rows = p.name.rfind("weight_", 0) == 0 || p.name.rfind("bias_", 0) == 0;
      if (gate_rows && !e.shape.empty() && e.shape[0] % H == 0 && e.shape[0] != p.shape[0]) {
        const std::int64_t g = e.shape[0] / H;
        const char* cell = g == 4   ? "an LSTM"
                           : g == 3 ? "a GRU"
                           : g == 1 ? "a vanilla RNN"
                                    : nullptr;
        if (cell != nullptr) {
          hint = " (" + std::to_string(g) + " gates: " + cell + "'s weights; the model is " +
                 to_string(rnn.config().cell) + " with " +
                 std::to_string(gate_count(rnn.config().cell)) + ")";
        }
      }
      loader.fail("tensor '" + name + "' has shape " + to_string(e.shape) +
                  ", but the model's parameter has shape " + to_string(p.shape) + hint);
    }
    std::vector<unsigned char> bytes = file.read_bytes(name);
    if (stored != dtype) {
      const auto n = static_cast<std::size_t>(numel(p.shape));
      std::vector<unsigned char> out(n * dtype_size(dtype));
      detail::convert_host(bytes.data(), stored, out.data(), dtype, n);
      bytes.swap(out);
    }
    staged.emplace_back(rnn.parameter(p.name), std::move(bytes));
  }
  for (const auto& [dst, bytes] : staged) dst.copy_from_host(bytes.data());
}

}  // namespace recur
