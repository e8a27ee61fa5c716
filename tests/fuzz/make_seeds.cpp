// tests/fuzz/make_seeds.cpp: writes the fuzz seed corpus and the hostile regression inputs.
//
//   build-fuzz/tests/fuzz/fuzz_make_seeds tests/fuzz
//
// writes corpus/{safetensors,checkpoint}/ (real saves by recur plus small hand-made edge
// cases, where the fuzzer starts from) and regressions/{safetensors,checkpoint}/ (inputs
// that once crashed or were undefined behaviour, replayed by tests/test_fuzz_regressions.cpp
// in every build). The output is deterministic and committed; rerun this after a change
// of the file format and commit what changed.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fuzz_inputs.h"
#include "recur/checkpoint.h"
#include "recur/model_checkpoint.h"
#include "recur/optim.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"
#include "recur/tensor.h"

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

namespace {

Bytes read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// A safetensors file from its header text (stored as given: no padding added, so that
// hand-made cases say exactly what they test) and its byte buffer.
Bytes safetensors(const std::string& header, const Bytes& buffer = {}) {
  Bytes out(8);
  std::uint64_t n = header.size();
  for (int b = 0; b < 8; ++b)
    out[static_cast<std::size_t>(b)] = static_cast<unsigned char>(n >> (8 * b));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

// A file split into its header (parsed) and byte buffer.
struct Split {
  nlohmann::json header;
  Bytes buffer;
};

Split split(const Bytes& file) {
  std::uint64_t n = 0;
  for (int b = 7; b >= 0; --b) n = (n << 8) | file.at(static_cast<std::size_t>(b));
  Split s;
  s.header =
      nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  s.buffer.assign(file.begin() + 8 + static_cast<std::ptrdiff_t>(n), file.end());
  return s;
}

// The header text padded with spaces to a multiple of 8, as save_safetensors writes it.
Bytes join(const Split& s) {
  std::string text = s.header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return safetensors(text, s.buffer);
}

// `file` with metadata key `key` (a JSON object stored as a string) edited by `edit`.
template <class Edit>
Bytes edit_json_metadata(const Bytes& file, const std::string& key, Edit edit) {
  Split s = split(file);
  nlohmann::json value =
      nlohmann::json::parse(s.header.at("__metadata__").at(key).get<std::string>());
  edit(value);
  s.header["__metadata__"][key] = value.dump();
  return join(s);
}

Bytes floats(std::size_t count) {
  Bytes out;
  for (std::size_t i = 0; i < count; ++i) {
    const float v = 0.25f * static_cast<float>(i) - 1.0f;
    const auto* p = reinterpret_cast<const unsigned char*>(&v);
    out.insert(out.end(), p, p + sizeof v);
  }
  return out;
}

// The model fuzz_checkpoint loads into.
recur::RnnConfig fuzz_model() { return recur::fuzz::fuzz_rnn_config(); }

class Writer {
 public:
  explicit Writer(fs::path root) : root_(std::move(root)) {}
  void put(const std::string& folder, const std::string& name, const Bytes& bytes) {
    const fs::path dir = root_ / folder;
    fs::create_directories(dir);
    write_all(dir / name, bytes);
    total_ += bytes.size();
    ++files_;
  }
  // Saves through `save` into a scratch file and keeps its bytes.
  template <class Save>
  Bytes saved(Save save) {
    const fs::path tmp = fs::temp_directory_path() / "recur_make_seeds.safetensors";
    save(tmp.string());
    Bytes bytes = read_all(tmp);
    fs::remove(tmp);
    return bytes;
  }
  void report() const {
    std::printf("wrote %d files, %zu bytes, under %s\n", files_, total_, root_.c_str());
  }

 private:
  fs::path root_;
  std::size_t total_ = 0;
  int files_ = 0;
};

void safetensors_seeds(Writer& w) {
  const std::string dir = "corpus/safetensors";
  recur::Tensor a = recur::Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  recur::Tensor b = recur::Tensor::from_vector(std::vector<double>{0.5, -0.5}, {2});
  recur::Tensor c = recur::Tensor::from_vector(std::vector<float>{7}, {1, 1, 1});
  w.put(dir, "two_dtypes", w.saved([&](const std::string& p) {
    recur::save_safetensors(p, {{"weight", a.view()}, {"bias", b.view()}}, {{"note", "seed"}});
  }));
  w.put(dir, "three_tensors", w.saved([&](const std::string& p) {
    recur::save_safetensors(p, {{"x", c.view()}, {"weight", a.view()}, {"b", b.view()}});
  }));
  w.put(dir, "no_tensors", w.saved([&](const std::string& p) {
    recur::save_safetensors(p, {}, {{"format", "pt"}, {"k", "v"}});
  }));
  recur::Rnn rnn(fuzz_model());
  w.put(dir, "state_dict",
        w.saved([&](const std::string& p) { recur::save_safetensors(p, recur::state_dict(rnn)); }));
  // Hand-made: what Python writes that recur does not (other dtypes, a scalar, padding).
  w.put(dir, "empty_object", safetensors("{}"));
  w.put(dir, "bf16_i64_scalar",
        safetensors(R"({"h":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                    R"("i":{"dtype":"I64","shape":[1],"data_offsets":[4,12]},)"
                    R"("s":{"dtype":"F32","shape":[],"data_offsets":[12,16]}})",
                    floats(4)));
  w.put(dir, "metadata_only", safetensors(R"({"__metadata__":{"format":"pt"}}        )"));
  w.put(dir, "zero_elements",
        safetensors(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                    R"("f":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                    floats(2)));
  // Broken in small ways: the reader's errors, each one edit away from a valid file.
  w.put(dir, "header_past_end", Bytes{0xff, 0, 0, 0, 0, 0, 0, 0, '{', '}'});
  w.put(dir, "overlap",
        safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    floats(3)));
  w.put(dir, "size_mismatch",
        safetensors(R"({"a":{"dtype":"F64","shape":[3],"data_offsets":[0,8]}})", floats(2)));
}

void checkpoint_seeds(Writer& w) {
  const std::string dir = "corpus/checkpoint";
  recur::Rnn rnn(fuzz_model());
  recur::Adam adam(rnn.parameters());
  recur::Sgd sgd(rnn.parameters(), {0.1, 0.9});
  w.put(dir, "adam",
        w.saved([&](const std::string& p) { recur::save_checkpoint(p, rnn, &adam, 7); }));
  w.put(dir, "sgd",
        w.saved([&](const std::string& p) { recur::save_checkpoint(p, rnn, &sgd, 3); }));
  w.put(dir, "no_optimizer",
        w.saved([&](const std::string& p) { recur::save_checkpoint(p, rnn, nullptr, 0); }));
  w.put(dir, "state_dict",
        w.saved([&](const std::string& p) { recur::save_safetensors(p, recur::state_dict(rnn)); }));
  // Models that differ from the fuzzed one in one field each: the config check's errors.
  recur::RnnConfig gru = fuzz_model();
  gru.cell = recur::CellKind::GruLinearBeforeReset;
  gru.num_layers = 1;
  recur::Rnn gru_rnn(gru);
  w.put(dir, "gru",
        w.saved([&](const std::string& p) { recur::save_checkpoint(p, gru_rnn, nullptr, 1); }));
  recur::RnnConfig f64 = fuzz_model();
  f64.dtype = recur::DType::Float64;
  recur::Rnn f64_rnn(f64);
  recur::Adam f64_adam(f64_rnn.parameters());
  w.put(dir, "float64",
        w.saved([&](const std::string& p) { recur::save_checkpoint(p, f64_rnn, &f64_adam, 2); }));
  // A model checkpoint of exactly the model fuzz_checkpoint loads it into.
  recur::fuzz::FuzzModel model;
  w.put(dir, "model", w.saved([&](const std::string& p) {
    recur::TrainingParts training = model.training();
    training.step = 5;
    training.counters = {{"rollbacks", 1}};
    recur::save_model_checkpoint(p, model.parts(), training);
  }));
}

void regressions(Writer& w) {
  // (a) A tensor entry nested 90,000 levels deep: a recursive parser, printer or
  // destructor runs out of stack.
  {
    const int depth = 90000;
    w.put("regressions/safetensors", "nested_entry_90000",
          safetensors("{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}"));
  }
  // (d) An F64 tensor with no elements but a non-zero first dimension.
  w.put("regressions/safetensors", "f64_shape_4x0",
        safetensors(R"({"t":{"dtype":"F64","shape":[4,0],"data_offsets":[0,0]}})"));
  // (e) Shapes whose element count, or byte count, wraps around 2^64 to a size that
  // matches the offsets.
  w.put("regressions/safetensors", "shape_product_wraps_to_0",
        safetensors(
            R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})"));
  w.put(
      "regressions/safetensors", "shape_product_wraps_to_4",
      safetensors(R"({"t":{"dtype":"F32","shape":[4611686018427387905,4],"data_offsets":[0,16]}})",
                  floats(4)));
  w.put("regressions/safetensors", "shape_bytes_wrap_to_0",
        safetensors(R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})"));
  w.put(
      "regressions/safetensors", "shape_above_int64",
      safetensors(R"({"t":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})"));
  w.put("regressions/safetensors", "shape_negative",
        safetensors(R"({"t":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}})", floats(4)));

  recur::Rnn rnn(fuzz_model());
  recur::Adam adam(rnn.parameters());
  const Bytes adam_file =
      w.saved([&](const std::string& p) { recur::save_checkpoint(p, rnn, &adam, 7); });
  // (b) "recur.config" holds a JSON string nested 100,000 deep.
  {
    Split s = split(adam_file);
    const int depth = 100000;
    s.header["__metadata__"]["recur.config"] = std::string(depth, '[') + std::string(depth, ']');
    w.put("regressions/checkpoint", "config_nested_100000", join(s));
  }
  // (c) Optimizer counters no integer type holds, and other out-of-range numbers.
  const std::map<std::string, nlohmann::json> counters = {
      {"step_count_1e300", {{"step_count", 1e300}}},
      {"step_count_negative", {{"step_count", -1}}},
      {"step_count_fraction", {{"step_count", 2.5}}},
      {"step_count_2p63", {{"step_count", 9223372036854775808.0}}},
      {"skipped_steps_1e300", {{"skipped_steps", 1e300}}},
      {"lr_1e308_squared", {{"lr", 1e308}, {"eps", 1e-320}}},
  };
  for (const auto& counter : counters) {
    const nlohmann::json& fields = counter.second;
    w.put("regressions/checkpoint", counter.first,
          edit_json_metadata(adam_file, "recur.optimizer", [&](nlohmann::json& o) {
            for (const auto& field : fields.items()) o[field.key()] = field.value();
          }));
  }
  {
    Split s = split(adam_file);
    s.header["__metadata__"]["recur.step"] = "99999999999999999999999";
    w.put("regressions/checkpoint", "step_above_int64", join(s));
  }
  w.put("regressions/checkpoint", "hidden_size_1e300",
        edit_json_metadata(adam_file, "recur.config",
                           [](nlohmann::json& c) { c["hidden_size"] = 1e300; }));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds <tests/fuzz folder>\n";
    return 2;
  }
  try {
    Writer w(argv[1]);
    safetensors_seeds(w);
    checkpoint_seeds(w);
    regressions(w);
    w.report();
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
