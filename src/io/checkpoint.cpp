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
#include "json_bounds.h"
#include "recur/error.h"
#include "recur/version.h"

namespace recur {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "recur.checkpoint";

// The fields of RnnConfig that decide the parameter layout; they must match on load.
json config_to_json(const RnnConfig& c) {
  return {{"cell", to_string(c.cell)},
          {"input_size", c.input_size},
          {"hidden_size", c.hidden_size},
          {"num_layers", c.num_layers},
          {"bidirectional", c.bidirectional},
          {"connection", to_string(c.connection)},
          {"bias", c.bias},
          {"dtype", safetensors_dtype(c.dtype)},
          // Informational: they do not change the parameters, and are not checked.
          {"dropout", c.dropout},
          {"batch_first", c.batch_first},
          {"math", to_string(c.math)}};
}

json optimizer_to_json(const Optimizer& opt) {
  json j;
  if (const auto* sgd = dynamic_cast<const Sgd*>(&opt)) {
    const SgdOptions& o = sgd->options();
    j = {{"type", "Sgd"},
         {"lr", opt.learning_rate()},
         {"momentum", o.momentum},
         {"weight_decay", o.weight_decay}};
  } else if (const auto* adam = dynamic_cast<const Adam*>(&opt)) {
    const AdamOptions& o = adam->options();
    j = {{"type", "Adam"},
         {"lr", opt.learning_rate()},
         {"beta1", o.beta1},
         {"beta2", o.beta2},
         {"eps", o.eps},
         {"weight_decay", o.weight_decay},
         {"decoupled_weight_decay", o.decoupled_weight_decay}};
  } else {
    throw Error("recur: save_checkpoint: an optimizer of a type recur does not know");
  }
  j["step_count"] = opt.step_count();
  j["skipped_steps"] = opt.skipped_steps();
  if (!opt.gradients().empty()) {  // ParamGroups: each group's own settings
    json groups = json::array();
    for (const ParamGroup& g : opt.groups()) {
      groups.push_back({{"name", g.name},
                        {"lr_scale", g.lr_scale},
                        {"weight_decay", g.weight_decay.value_or(0.0)}});
    }
    j["groups"] = groups;
  }
  return j;
}

const char* optimizer_type(const Optimizer& opt) {
  if (dynamic_cast<const Sgd*>(&opt) != nullptr) return "Sgd";
  if (dynamic_cast<const Adam*>(&opt) != nullptr) return "Adam";
  return "unknown";
}

std::string optimizer_key(const std::string& name) {
  return name.empty() ? "recur.optimizer" : "recur.optimizer." + name;
}
std::string state_prefix(const std::string& name) {
  return name.empty() ? "optim." : "optim." + name + ".";
}

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
    if (!view.defined()) throw Error(where, arg, "a defined tensor", "an undefined view");
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

// A tensor to be restored: where it goes and its bytes, read and checked.
struct Staged {
  std::string name;
  TensorView dst;
  std::vector<unsigned char> bytes;
};

// Settings and counters of an optimizer, read from the file.
struct StagedOptimizer {
  Optimizer* optimizer = nullptr;
  double lr = 0.0;
  std::int64_t step_count = 0, skipped_steps = 0;
};

class Loader {
 public:
  Loader(const std::string& where, const SafetensorsFile& file) : where_(where), file_(file) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("recur: " + where_ + ": " + file_.path() + ": " + what);
  }

  json metadata_json(const std::string& key) const {
    const auto& meta = file_.metadata();
    const auto it = meta.find(key);
    if (it == meta.end()) fail("no metadata '" + key + "'");
    json j;
    std::string error;
    if (!detail::parse_bounded_json(it->second, &j, &error)) {
      fail("metadata '" + key + "' " + error);
    }
    if (!j.is_object()) fail("metadata '" + key + "' is not a JSON object");
    return j;
  }

  // Field `name` of metadata `key`, of exactly type V: an integer field takes only
  // integers that fit V (1e300 or 2.5 would be an undefined conversion), a double any
  // number.
  template <typename V>
  V field(const json& j, const std::string& key, const std::string& name) const {
    const auto it = j.find(name);
    const std::string what = "metadata '" + key + "': field '" + name + "'";
    if (it == j.end()) fail(what + " is missing");
    if constexpr (std::is_same_v<V, std::int64_t>) {
      const bool fits = it->is_number_unsigned()
                            ? it->template get<std::uint64_t>() <=
                                  static_cast<std::uint64_t>(std::numeric_limits<V>::max())
                            : it->is_number_integer();
      if (!fits)
        fail(what + " must be an integer in int64's range, not " + detail::quote_json(*it));
    } else if constexpr (std::is_same_v<V, double>) {
      if (!it->is_number()) fail(what + " must be a number, not " + detail::quote_json(*it));
    } else if constexpr (std::is_same_v<V, bool>) {
      if (!it->is_boolean()) fail(what + " must be true or false, not " + detail::quote_json(*it));
    } else {
      static_assert(std::is_same_v<V, std::string>,
                    "a field is an integer, number, bool or string");
      if (!it->is_string()) fail(what + " must be a string, not " + detail::quote_json(*it));
    }
    return it->template get<V>();
  }

  // Reads tensor `name` into host memory after checking that it fits `dst` exactly.
  void stage(const std::string& name, const TensorView& dst, const std::string& role) {
    if (!file_.contains(name)) fail("missing tensor '" + name + "' (" + role + ")");
    const SafetensorsEntry& e = file_.info(name);
    if (e.dtype != safetensors_dtype(dst.dtype())) {
      fail("tensor '" + name + "' has dtype " + e.dtype + ", but " + role + " is " +
           safetensors_dtype(dst.dtype()));
    }
    if (e.shape != dst.shape()) {
      fail("tensor '" + name + "' has shape " + to_string(e.shape) + ", but " + role +
           " has shape " + to_string(dst.shape()));
    }
    staged_.push_back({name, dst, file_.read_bytes(name)});
    claimed_.insert(name);
  }

  void stage_optimizer(const std::string& name, Optimizer& opt) {
    const std::string key = optimizer_key(name);
    const std::string label = name.empty() ? "the optimizer" : "optimizer '" + name + "'";
    if (file_.metadata().count(key) == 0) {
      fail("no state for " + label + " (metadata '" + key + "' is missing)");
    }
    const json j = metadata_json(key);
    const auto type = field<std::string>(j, key, "type");
    if (type != optimizer_type(opt)) {
      fail(label + " is " + optimizer_type(opt) + ", but the checkpoint holds the state of " +
           detail::quote_name(type));
    }
    StagedOptimizer s;
    s.optimizer = &opt;
    s.lr = field<double>(j, key, "lr");
    s.step_count = field<std::int64_t>(j, key, "step_count");
    s.skipped_steps = field<std::int64_t>(j, key, "skipped_steps");
    if (!(s.lr >= 0.0) || s.step_count < 0 || s.skipped_steps < 0) {
      fail("metadata '" + key + "' holds a negative learning rate or counter");
    }
    for (const OptimizerState& st : opt.state()) {
      stage(state_prefix(name) + st.name, st.view, label + "'s state '" + st.name + "'");
    }
    optimizers_.push_back(s);
    requested_owners_.insert(name);
  }

  // Every tensor of the file must have been claimed, except the state of optimizers the
  // caller did not pass.
  void check_unexpected(const std::string& what_takes_them) const {
    for (const std::string& name : file_.names()) {
      if (claimed_.count(name) != 0) continue;
      if (name.rfind("optim.", 0) == 0) {
        const std::string rest = name.substr(6);
        const std::size_t dot = rest.find('.');
        const std::string owner = dot == std::string::npos ? "" : rest.substr(0, dot);
        if (requested_owners_.count(owner) == 0) continue;
      }
      fail("unexpected tensor '" + detail::quote_name(name) + "': " + what_takes_them +
           " has nothing of that name");
    }
  }

  void commit() {
    for (const Staged& s : staged_) s.dst.copy_from_host(s.bytes.data());
    for (const StagedOptimizer& s : optimizers_) {
      s.optimizer->set_step_count(s.step_count, s.skipped_steps);
      s.optimizer->set_learning_rate(s.lr);
    }
  }

 private:
  std::string where_;
  const SafetensorsFile& file_;
  std::vector<Staged> staged_;
  std::vector<StagedOptimizer> optimizers_;
  std::set<std::string> claimed_;
  std::set<std::string> requested_owners_;
};

void check_config(Loader& loader, const json& saved, const RnnConfig& model) {
  const json mine = config_to_json(model);
  for (const char* name : {"cell", "input_size", "hidden_size", "num_layers", "bidirectional",
                           "connection", "bias", "dtype"}) {
    const auto it = saved.find(name);
    if (it == saved.end())
      loader.fail(std::string("metadata 'recur.config' has no '") + name + "'");
    if (*it != mine.at(name)) {
      loader.fail(std::string("config mismatch: the checkpoint's ") + name + " is " +
                  detail::quote_json(*it) + ", the model's is " + mine.at(name).dump());
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
