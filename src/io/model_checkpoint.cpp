// src/io/model_checkpoint.cpp: model checkpoints (recur/model_checkpoint.h): every config
// field as a metadata entry of its own, parsed strictly on the way back, and the same Loader
// as checkpoint.cpp, so that nothing changes until everything is checked.
#include "recur/model_checkpoint.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../float_dispatch.h"
#include "checkpoint_loader.h"
#include "recur/error.h"
#include "recur/safetensors.h"
#include "recur/version.h"

namespace recur {
namespace {

using detail::Loader;

constexpr const char* kFormat = "recur.model";
constexpr const char* kScheduleTensor = "lr_schedule.state";
constexpr const char* kScalerTensor = "loss_scale.state";

using Fields = std::vector<std::pair<std::string, std::string>>;

const char* boolean(bool b) { return b ? "true" : "false"; }

// What checkpoints written before these fields existed mean by their absence.
const std::string kAbsentLayerNorm = "false";
const std::string kNoPadding = "none";
const std::string kAbsentProjection = "0";

Fields rnn_fields(const RnnConfig& c) {
  return {{"cell", to_string(c.cell)},
          {"input_size", std::to_string(c.input_size)},
          {"hidden_size", std::to_string(c.hidden_size)},
          {"num_layers", std::to_string(c.num_layers)},
          {"bidirectional", boolean(c.bidirectional)},
          {"connection", to_string(c.connection)},
          {"bias", boolean(c.bias)},
          {"dropout", detail::exact_number(c.dropout)},
          {"batch_first", boolean(c.batch_first)},
          {"dtype", safetensors_dtype(c.dtype)},
          {"math", to_string(c.math)},
          {"layer_norm", boolean(c.layer_norm)},
          {"proj_size", std::to_string(c.proj_size)}};
}

Fields embedding_fields(const Embedding& e) {
  const std::int64_t padding = e.padding_idx();
  return {{"num_embeddings", std::to_string(e.num_embeddings())},
          {"embedding_dim", std::to_string(e.embedding_dim())},
          {"padding_idx",
           padding == EmbeddingOptions::kNoPadding ? kNoPadding : std::to_string(padding)},
          {"dtype", safetensors_dtype(e.dtype())}};
}

// Fields that checkpoints of earlier versions lack, and what their absence meant (null for
// a field every checkpoint has).
const std::string* absent_meaning(const std::string& field) {
  if (field == "padding_idx") return &kNoPadding;
  if (field == "layer_norm") return &kAbsentLayerNorm;
  if (field == "proj_size") return &kAbsentProjection;
  return nullptr;
}

Fields linear_fields(const Linear& l) {
  return {{"in_features", std::to_string(l.in_features())},
          {"out_features", std::to_string(l.out_features())},
          {"bias", boolean(l.has_bias())},
          {"dtype", safetensors_dtype(l.dtype())}};
}

// One module of the model: its name, kind, config fields and parameters.
struct Part {
  std::string name;
  const char* kind;
  Fields fields;
  std::vector<std::pair<std::string, TensorView>> parameters;  // PyTorch's names
};

template <class Module>
std::vector<std::pair<std::string, TensorView>> parameters_of(const Module& m) {
  std::vector<std::pair<std::string, TensorView>> out;
  for (const ParamInfo& p : m.parameter_info()) out.emplace_back(p.name, m.parameter(p.name));
  return out;
}

bool plain_name(const std::string& name) {
  if (name.empty()) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_';
    if (!ok) return false;
  }
  return true;
}

// The model's parts in saving order, every name and pointer checked.
std::vector<Part> parts_of(const char* where, const ModelParts& model) {
  std::vector<Part> parts;
  std::set<std::string> names;
  auto check = [&](const std::string& arg, const std::string& name, const void* module) {
    if (!plain_name(name) || name == "optim" || name == "lr_schedule" || name == "loss_scale") {
      throw Error(where, arg,
                  "a name of letters, digits and '_', not \"optim\", \"lr_schedule\" nor "
                  "\"loss_scale\"",
                  "\"" + name + "\"");
    }
    if (!names.insert(name).second) {
      throw Error(where, arg, "a name no other module has", "\"" + name + "\"");
    }
    if (module == nullptr) throw Error(where, arg, "a module", "nullptr");
  };
  for (std::size_t i = 0; i < model.rnns.size(); ++i) {
    const auto& [name, rnn] = model.rnns[i];
    check("model.rnns[" + std::to_string(i) + "]", name, rnn);
    parts.push_back({name, "Rnn", rnn_fields(rnn->config()), parameters_of(*rnn)});
  }
  for (std::size_t i = 0; i < model.embeddings.size(); ++i) {
    const auto& [name, e] = model.embeddings[i];
    check("model.embeddings[" + std::to_string(i) + "]", name, e);
    parts.push_back({name, "Embedding", embedding_fields(*e), parameters_of(*e)});
  }
  for (std::size_t i = 0; i < model.linears.size(); ++i) {
    const auto& [name, l] = model.linears[i];
    check("model.linears[" + std::to_string(i) + "]", name, l);
    parts.push_back({name, "Linear", linear_fields(*l), parameters_of(*l)});
  }
  return parts;
}

void check_counters(const char* where, const std::map<std::string, std::int64_t>& counters) {
  for (const auto& counter : counters) {
    if (!plain_name(counter.first)) {
      throw Error(where, "training.counters", "names of letters, digits and '_'",
                  "\"" + counter.first + "\"");
    }
  }
}

std::string module_key(const std::string& module, const std::string& field) {
  return "recur.module." + module + "." + field;
}

// ---- reading: every field strictly ----

class Reader {
 public:
  explicit Reader(const SafetensorsFile& file)
      : file_(file), loader_("load_model_checkpoint", file) {}

  [[noreturn]] void fail(const std::string& what) const { loader_.fail(what); }

  const std::string& text(const std::string& key) const {
    const auto& meta = file_.metadata();
    const auto it = meta.find(key);
    if (it == meta.end()) fail("no metadata '" + key + "'");
    return it->second;
  }

  std::int64_t integer(const std::string& key, std::int64_t lo = 0,
                       const std::string* absent = nullptr) const {
    const std::string& s = absent != nullptr ? text_or(key, *absent) : text(key);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || v < lo || s[0] == '+' || s[0] == ' ') {
      fail("metadata '" + key + "' is not an integer >= " + std::to_string(lo) + ": \"" +
           detail::quote_name(s) + "\"");
    }
    return v;
  }

  // A field files written before it existed lack: `absent` stands in for it there.
  const std::string& text_or(const std::string& key, const std::string& absent) const {
    const auto& meta = file_.metadata();
    const auto it = meta.find(key);
    return it == meta.end() ? absent : it->second;
  }

  bool boolean(const std::string& key, const std::string* absent = nullptr) const {
    const std::string& s = absent != nullptr ? text_or(key, *absent) : text(key);
    if (s != "true" && s != "false") {
      fail("metadata '" + key + "' is not true or false: \"" + detail::quote_name(s) + "\"");
    }
    return s == "true";
  }

  double number(const std::string& key) const {
    const std::string& s = text(key);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) {
      fail("metadata '" + key + "' is not a finite number: \"" + detail::quote_name(s) + "\"");
    }
    return v;
  }

  // The value of `key` among `values`, by its name (to_string or safetensors_dtype).
  template <typename E, std::size_t N>
  E choice(const std::string& key, const E (&values)[N], const char* (*name)(E)) const {
    const std::string& s = text(key);
    for (E v : values) {
      if (s == name(v)) return v;
    }
    fail("metadata '" + key + "' names no known value: \"" + detail::quote_name(s) + "\"");
  }

  Loader& loader() { return loader_; }

 private:
  const SafetensorsFile& file_;
  Loader loader_;
};

const char* dtype_name(DType d) { return safetensors_dtype(d); }

ModelCheckpointInfo read_info(const SafetensorsFile& file, Reader& r) {
  const auto& meta = file.metadata();
  const auto format = meta.find("recur.format");
  if (format == meta.end() || format->second != kFormat) {
    r.fail("not a recur model checkpoint (metadata 'recur.format' is not \"" +
           std::string(kFormat) + "\")");
  }
  static constexpr CellKind kCells[] = {CellKind::RnnTanh,
                                        CellKind::RnnRelu,
                                        CellKind::RnnSigmoid,
                                        CellKind::Lstm,
                                        CellKind::GruLinearBeforeReset,
                                        CellKind::GruResetBeforeProduct};
  static constexpr Connection kConnections[] = {Connection::None, Connection::Residual,
                                                Connection::Highway, Connection::Dense};
  static constexpr Math kMaths[] = {Math::Fp32, Math::Tf32, Math::Bf16, Math::Fp16};
  static constexpr DType kDTypes[] = {DType::Float32, DType::Float64, DType::BFloat16,
                                      DType::Float16};
  ModelCheckpointInfo info;
  info.metadata = meta;
  std::string names = r.text("recur.modules");
  std::size_t at = 0;
  while (!names.empty() && at <= names.size()) {
    const std::size_t comma = std::min(names.find(',', at), names.size());
    const std::string name = names.substr(at, comma - at);
    at = comma + 1;
    if (!plain_name(name))
      r.fail("metadata 'recur.modules' holds a bad name: \"" + detail::quote_name(name) + "\"");
    auto key = [&](const char* field) { return module_key(name, field); };
    const std::string& kind = r.text(key("kind"));
    if (kind == "Rnn") {
      RnnConfig c;
      c.cell = r.choice(key("cell"), kCells, to_string);
      c.input_size = r.integer(key("input_size"), 1);
      c.hidden_size = r.integer(key("hidden_size"), 1);
      c.num_layers = r.integer(key("num_layers"), 1);
      c.bidirectional = r.boolean(key("bidirectional"));
      c.connection = r.choice(key("connection"), kConnections, to_string);
      c.bias = r.boolean(key("bias"));
      c.dropout = r.number(key("dropout"));
      c.batch_first = r.boolean(key("batch_first"));
      c.dtype = r.choice(key("dtype"), kDTypes, dtype_name);
      c.math = r.choice(key("math"), kMaths, to_string);
      c.layer_norm = r.boolean(key("layer_norm"), &kAbsentLayerNorm);
      c.proj_size = r.integer(key("proj_size"), 0, &kAbsentProjection);
      info.rnns.emplace_back(name, c);
    } else if (kind == "Embedding") {
      ModelCheckpointInfo::EmbeddingConfig e;
      e.num_embeddings = r.integer(key("num_embeddings"), 1);
      e.embedding_dim = r.integer(key("embedding_dim"), 1);
      if (r.text_or(key("padding_idx"), kNoPadding) != kNoPadding) {
        e.padding_idx = r.integer(key("padding_idx"), 0);
        if (e.padding_idx >= e.num_embeddings) {
          r.fail("metadata '" + key("padding_idx") + "' is not below num_embeddings " +
                 std::to_string(e.num_embeddings));
        }
      }
      e.dtype = r.choice(key("dtype"), kDTypes, dtype_name);
      info.embeddings.emplace_back(name, e);
    } else if (kind == "Linear") {
      ModelCheckpointInfo::LinearConfig l;
      l.in_features = r.integer(key("in_features"), 1);
      l.out_features = r.integer(key("out_features"), 1);
      l.bias = r.boolean(key("bias"));
      l.dtype = r.choice(key("dtype"), kDTypes, dtype_name);
      info.linears.emplace_back(name, l);
    } else {
      r.fail("module '" + name + "' is of no known kind: \"" + detail::quote_name(kind) + "\"");
    }
  }
  info.step = r.integer("recur.step");
  const std::string counter_prefix = "recur.counter.";
  for (const auto& entry : meta) {
    const std::string& k = entry.first;
    if (k.rfind(counter_prefix, 0) != 0) continue;
    info.counters[k.substr(counter_prefix.size())] = r.integer(k, INT64_MIN);
  }
  if (meta.count("recur.optimizer") != 0) {
    info.optimizer = r.loader().field<std::string>(r.loader().metadata_json("recur.optimizer"),
                                                   "recur.optimizer", "type");
  }
  info.schedule = file.contains(kScheduleTensor);
  info.loss_scaler = file.contains(kScalerTensor);
  return info;
}

}  // namespace

void save_model_checkpoint(const std::string& path, const ModelParts& model,
                           const TrainingParts& training) {
  const char* where = "save_model_checkpoint";
  const std::vector<Part> parts = parts_of(where, model);
  check_counters(where, training.counters);
  if (training.step < 0) {
    throw Error(where, "training.step", "a count >= 0", std::to_string(training.step));
  }
  std::map<std::string, std::string> meta;
  meta["format"] = "pt";
  meta["recur.format"] = kFormat;
  meta["recur.version"] = version();
  meta["recur.step"] = std::to_string(training.step);
  std::string names;
  NamedTensors tensors;
  for (const Part& p : parts) {
    names += (names.empty() ? "" : ",") + p.name;
    meta[module_key(p.name, "kind")] = p.kind;
    for (const auto& [field, value] : p.fields) meta[module_key(p.name, field)] = value;
    for (const auto& [param, view] : p.parameters) tensors.emplace_back(p.name + "." + param, view);
  }
  meta["recur.modules"] = names;
  for (const auto& [name, value] : training.counters) {
    meta["recur.counter." + name] = std::to_string(value);
  }
  if (training.optimizer != nullptr) {
    meta[detail::optimizer_key("")] = detail::optimizer_to_json(*training.optimizer).dump();
    for (const OptimizerState& s : training.optimizer->state()) {
      tensors.emplace_back(detail::state_prefix("") + s.name, s.view);
    }
  }
  if (training.schedule != nullptr)
    tensors.emplace_back(kScheduleTensor, training.schedule->state());
  if (training.loss_scaler != nullptr) {
    tensors.emplace_back(kScalerTensor, training.loss_scaler->state());
  }
  save_safetensors(path, tensors, meta);
}

ModelCheckpointInfo read_model_checkpoint(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  Reader r(file);
  return read_info(file, r);
}

ModelCheckpointInfo load_model_checkpoint(const std::string& path, const ModelParts& model,
                                          TrainingParts& training) {
  const char* where = "load_model_checkpoint";
  const std::vector<Part> parts = parts_of(where, model);
  const SafetensorsFile file = SafetensorsFile::open(path);
  Reader r(file);
  ModelCheckpointInfo info = read_info(file, r);
  // The same modules, in the same order, each config field equal.
  const std::string& names = r.text("recur.modules");
  std::string mine;
  for (const Part& p : parts) mine += (mine.empty() ? "" : ",") + p.name;
  if (names != mine) {
    r.fail("the checkpoint's modules are \"" + detail::quote_name(names) + "\", the model's \"" +
           mine + "\"");
  }
  for (const Part& p : parts) {
    const std::string& kind = r.text(module_key(p.name, "kind"));
    if (kind != p.kind) {
      r.fail("module '" + p.name + "' is " + p.kind + " in the model, " + detail::quote_name(kind) +
             " in the checkpoint");
    }
    for (const auto& [field, value] : p.fields) {
      const std::string* absent = absent_meaning(field);
      const std::string& saved = absent != nullptr ? r.text_or(module_key(p.name, field), *absent)
                                                   : r.text(module_key(p.name, field));
      if (saved != value) {
        r.fail("module '" + p.name + "': " + field + " is " + detail::quote_name(saved) +
               " in the checkpoint, " + value + " in the model");
      }
    }
  }
  Loader& loader = r.loader();
  for (const Part& p : parts) {
    for (const auto& [param, view] : p.parameters) {
      loader.stage(p.name + "." + param, view, "module '" + p.name + "''s parameter");
    }
  }
  if ((training.optimizer != nullptr) != !info.optimizer.empty()) {
    r.fail(training.optimizer != nullptr ? "the checkpoint holds no optimizer"
                                         : "the checkpoint holds an optimizer; pass one");
  }
  if (training.optimizer != nullptr) loader.stage_optimizer("", *training.optimizer);
  auto stage_state = [&](const char* tensor, bool given, const TensorView& view, const char* what) {
    if (given != file.contains(tensor)) {
      r.fail(given ? std::string("the checkpoint holds no ") + what
                   : std::string("the checkpoint holds a ") + what + "; pass one");
    }
    if (given) loader.stage(tensor, view, std::string("the ") + what + "'s state");
  };
  stage_state(kScheduleTensor, training.schedule != nullptr,
              training.schedule != nullptr ? training.schedule->state() : TensorView(),
              "learning-rate schedule");
  stage_state(kScalerTensor, training.loss_scaler != nullptr,
              training.loss_scaler != nullptr ? training.loss_scaler->state() : TensorView(),
              "loss scaler");
  loader.check_unexpected("the model");
  loader.commit();
  training.step = info.step;
  training.counters = info.counters;
  return info;
}

}  // namespace recur
