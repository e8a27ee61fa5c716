// src/io/checkpoint_loader.h: what checkpoints (checkpoint.cpp) and model checkpoints
// (model_checkpoint.cpp) share: the JSON of configs and optimizers, and the Loader that
// reads and checks every tensor and field before anything changes.
#pragma once

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "json_bounds.h"
#include "recur/checkpoint.h"
#include "recur/error.h"

namespace recur::detail {

using nlohmann::json;

// The fields of RnnConfig that decide the parameter layout; they must match on load.
inline json config_to_json(const RnnConfig& c) {
  return {{"cell", to_string(c.cell)},
          {"input_size", c.input_size},
          {"hidden_size", c.hidden_size},
          {"num_layers", c.num_layers},
          {"bidirectional", c.bidirectional},
          {"connection", to_string(c.connection)},
          {"bias", c.bias},
          {"dtype", safetensors_dtype(c.dtype)},
          {"layer_norm", c.layer_norm},
          {"proj_size", c.proj_size},
          // Informational: they do not change the parameters, and are not checked.
          {"dropout", c.dropout},
          {"batch_first", c.batch_first},
          {"math", to_string(c.math)}};
}

inline json optimizer_to_json(const Optimizer& opt) {
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

inline const char* optimizer_type(const Optimizer& opt) {
  if (dynamic_cast<const Sgd*>(&opt) != nullptr) return "Sgd";
  if (dynamic_cast<const Adam*>(&opt) != nullptr) return "Adam";
  return "unknown";
}

inline std::string optimizer_key(const std::string& name) {
  return name.empty() ? "recur.optimizer" : "recur.optimizer." + name;
}
inline std::string state_prefix(const std::string& name) {
  return name.empty() ? "optim." : "optim." + name + ".";
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
    if (!parse_bounded_json(it->second, &j, &error)) {
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
      if (!fits) fail(what + " must be an integer in int64's range, not " + quote_json(*it));
    } else if constexpr (std::is_same_v<V, double>) {
      if (!it->is_number()) fail(what + " must be a number, not " + quote_json(*it));
    } else if constexpr (std::is_same_v<V, bool>) {
      if (!it->is_boolean()) fail(what + " must be true or false, not " + quote_json(*it));
    } else {
      static_assert(std::is_same_v<V, std::string>,
                    "a field is an integer, number, bool or string");
      if (!it->is_string()) fail(what + " must be a string, not " + quote_json(*it));
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
           quote_name(type));
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
      fail("unexpected tensor '" + quote_name(name) + "': " + what_takes_them +
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

}  // namespace recur::detail
