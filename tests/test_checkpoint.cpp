// tests/test_checkpoint.cpp: checkpoints (round trip; every corrupt or mismatching file
// is rejected with a clear message and changes nothing; a save killed at any moment leaves
// the previous checkpoint loadable) and PyTorch state dicts written by Python.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "io_test_util.h"
#include "recur/checkpoint.h"
#include "recur/modules.h"

namespace recur::test {
namespace {

using nlohmann::ordered_json;

RnnConfig deep_config(DType dtype) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 12;
  c.hidden_size = 6;
  c.num_layers = 3;
  c.bidirectional = true;
  c.connection = Connection::Highway;  // highway at every layer (input_size == 2 * hidden)
  c.dtype = dtype;
  return c;
}

// One training step, so that gradients and the optimizer's state are not zero.
template <typename T>
void train_step(Rnn& rnn, Optimizer& opt, std::uint64_t seed) {
  Random rng(seed);
  const RnnConfig& c = rnn.config();
  const std::int64_t out = (c.bidirectional ? 2 : 1) * c.hidden_size;
  rnn.zero_grad();
  rnn.forward(rng.tensor<T>({4, 2, c.input_size}));
  rnn.backward(rng.tensor<T>({4, 2, out}));
  opt.step(rnn.gradients());
}

// Everything a failed load must leave as it was.
struct Snapshot {
  std::vector<std::vector<unsigned char>> buffers;
  std::vector<std::int64_t> counters;
  std::vector<double> rates;

  static Snapshot of(const Rnn& rnn, const std::vector<const Optimizer*>& opts,
                     const std::vector<TensorView>& extra = {}) {
    Snapshot s;
    s.buffers.push_back(bytes_of(rnn.parameters()));
    s.buffers.push_back(bytes_of(rnn.gradients()));
    for (const Optimizer* o : opts) {
      for (const OptimizerState& st : o->state()) s.buffers.push_back(bytes_of(st.view));
      s.counters.push_back(o->step_count());
      s.counters.push_back(o->skipped_steps());
      s.rates.push_back(o->learning_rate());
    }
    for (const TensorView& t : extra) s.buffers.push_back(bytes_of(t));
    return s;
  }
  bool operator==(const Snapshot& o) const {
    return buffers == o.buffers && counters == o.counters && rates == o.rates;
  }
};

template <typename T>
void round_trip() {
  TempDir dir;
  const DType dtype = dtype_of<T>();
  const std::string path = dir.file("ckpt.safetensors");

  // What a language-model trainer has: an embedding, the stack, a head, an optimizer each.
  Rnn rnn(deep_config(dtype), Device::cpu(), 1);
  Adam adam(rnn.parameters(), {2e-3, 0.8, 0.99, 1e-7, 0.01, true});
  Embedding embed(11, 12, dtype, Device::cpu(), 2);
  Linear head(12, 11, true, dtype, Device::cpu(), 3);
  Sgd head_opt(head.parameters(), {0.1, 0.9, 0.0});
  for (std::uint64_t s = 0; s < 3; ++s) train_step<T>(rnn, adam, 10 + s);
  adam.set_learning_rate(1.5e-3);
  Random rng(4);
  head.gradients().copy_from(rng.tensor<T>({head.gradients().numel()}));
  head_opt.step(head.gradients());
  head_opt.step(head.gradients());

  CheckpointExtras extras;
  extras.tensors = {{"embedding.weight", embed.weight()},
                    {"head.weight", head.weight()},
                    {"head.bias", head.bias()}};
  extras.optimizers = {{"head", &head_opt}};
  extras.metadata = {{"note", "round trip"}};
  save_checkpoint(path, rnn, &adam, 1234567890123, extras);

  // PyTorch's names, flat optimizer state, and the metadata.
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.contains("weight_ih_l0"));
  EXPECT_TRUE(f.contains("weight_hh_l2_reverse"));
  EXPECT_TRUE(f.contains("highway_weight_l1"));
  EXPECT_EQ(f.info("optim.exp_avg").shape, (Shape{rnn.parameters().numel()}));
  EXPECT_TRUE(f.contains("optim.exp_avg_sq"));
  EXPECT_TRUE(f.contains("optim.head.momentum_buffer"));
  EXPECT_EQ(f.info("bias_ih_l0").dtype, dtype == DType::Float32 ? "F32" : "F64");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("recur.format"), "recur.checkpoint");
  EXPECT_EQ(f.metadata().at("recur.step"), "1234567890123");
  const auto config = ordered_json::parse(f.metadata().at("recur.config"));
  EXPECT_EQ(config.at("cell"), "Lstm");
  EXPECT_EQ(config.at("connection"), "Highway");
  EXPECT_EQ(config.at("num_layers"), 3);
  const auto opt_meta = ordered_json::parse(f.metadata().at("recur.optimizer"));
  EXPECT_EQ(opt_meta.at("type"), "Adam");
  EXPECT_EQ(opt_meta.at("step_count"), 3);
  EXPECT_EQ(opt_meta.at("beta1"), 0.8);
  EXPECT_EQ(opt_meta.at("decoupled_weight_decay"), true);
  EXPECT_EQ(ordered_json::parse(f.metadata().at("recur.optimizer.head")).at("type"), "Sgd");

  // Into fresh objects with other weights.
  Rnn rnn2(deep_config(dtype), Device::cpu(), 99);
  Adam adam2(rnn2.parameters(), {2e-3, 0.8, 0.99, 1e-7, 0.01, true});
  Embedding embed2(11, 12, dtype, Device::cpu(), 98);
  Linear head2(12, 11, true, dtype, Device::cpu(), 97);
  Sgd head_opt2(head2.parameters(), {0.1, 0.9, 0.0});
  CheckpointExtras extras2;
  extras2.tensors = {{"embedding.weight", embed2.weight()},
                     {"head.weight", head2.weight()},
                     {"head.bias", head2.bias()}};
  extras2.optimizers = {{"head", &head_opt2}};
  const std::vector<unsigned char> grads_before = bytes_of(rnn2.gradients());
  const CheckpointInfo info = load_checkpoint(path, rnn2, &adam2, extras2);

  EXPECT_EQ(info.step, 1234567890123);
  EXPECT_EQ(info.metadata.at("note"), "round trip");
  EXPECT_EQ(bytes_of(rnn2.parameters()), bytes_of(rnn.parameters()));  // bit for bit
  EXPECT_EQ(bytes_of(rnn2.gradients()), grads_before);                 // not saved, not touched
  EXPECT_EQ(bytes_of(adam2.exp_avg()), bytes_of(adam.exp_avg()));
  EXPECT_EQ(bytes_of(adam2.exp_avg_sq()), bytes_of(adam.exp_avg_sq()));
  EXPECT_EQ(adam2.step_count(), 3);
  EXPECT_EQ(adam2.learning_rate(), 1.5e-3);
  EXPECT_EQ(bytes_of(embed2.parameters()), bytes_of(embed.parameters()));
  EXPECT_EQ(bytes_of(head2.parameters()), bytes_of(head.parameters()));
  EXPECT_EQ(bytes_of(head_opt2.momentum_buffer()), bytes_of(head_opt.momentum_buffer()));
  EXPECT_EQ(head_opt2.step_count(), 2);

  // Training continues identically from the restored state.
  train_step<T>(rnn, adam, 77);
  train_step<T>(rnn2, adam2, 77);
  EXPECT_EQ(bytes_of(rnn2.parameters()), bytes_of(rnn.parameters()));

  // Without an optimizer (inference), the optimizer's state is skipped.
  Rnn rnn3(deep_config(dtype), Device::cpu(), 5);
  load_checkpoint(path, rnn3, nullptr, extras2);
}

TEST(Checkpoint, RoundTripFloat32) { round_trip<float>(); }
TEST(Checkpoint, RoundTripFloat64) { round_trip<double>(); }

// ---- a load that fails changes nothing ----

class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("ckpt.safetensors");
    Rnn source(deep_config(DType::Float32), Device::cpu(), 1);
    Adam source_opt(source.parameters());
    train_step<float>(source, source_opt, 3);
    save_checkpoint(path_, source, &source_opt, 7);
    good_ = read_file(path_);
    raw_ = RawSafetensors::parse(good_);

    train_step<float>(rnn_, adam_, 4);  // the target has gradients and state of its own
    before_ = Snapshot::of(rnn_, {&adam_});
  }

  // Loading `bytes` fails with all of `parts` in the message, and changes nothing.
  ::testing::AssertionResult rejects(const std::vector<unsigned char>& bytes,
                                     const std::vector<std::string>& parts) {
    write_file(path_, bytes);
    ::testing::AssertionResult r =
        throws_error([&] { load_checkpoint(path_, rnn_, &adam_); }, parts);
    if (!r) return r;
    if (!(Snapshot::of(rnn_, {&adam_}) == before_)) {
      return ::testing::AssertionFailure() << "the failed load changed the model or optimizer";
    }
    return r;
  }
  ::testing::AssertionResult rejects_json(const ordered_json& j,
                                          const std::vector<std::string>& parts) {
    RawSafetensors r = raw_;
    r.set_json(j);
    return rejects(r.bytes(), parts);
  }
  // The good file re-written through save_safetensors with `edit` applied to its tensors
  // (host copies) and metadata.
  template <class Edit>
  std::vector<unsigned char> rewritten(Edit&& edit) {
    const std::string source = dir_.file("source.safetensors");
    write_file(source, good_);
    const SafetensorsFile f = SafetensorsFile::open(source);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& name : f.names()) tensors.emplace_back(name, f.read(name));
    std::map<std::string, std::string> meta = f.metadata();
    edit(tensors, meta);
    NamedTensors views;
    for (const auto& [name, t] : tensors) views.emplace_back(name, t.view());
    const std::string other = dir_.file("edited.safetensors");
    save_safetensors(other, views, meta);
    return read_file(other);
  }

  TempDir dir_;
  std::string path_;
  std::vector<unsigned char> good_;
  RawSafetensors raw_;
  Rnn rnn_{deep_config(DType::Float32), Device::cpu(), 2};
  Adam adam_{rnn_.parameters()};
  Snapshot before_;
};

TEST_F(BadCheckpoint, TheGoodFileLoads) {
  write_file(path_, good_);
  EXPECT_EQ(load_checkpoint(path_, rnn_, &adam_).step, 7);
  EXPECT_FALSE(Snapshot::of(rnn_, {&adam_}) == before_);  // so the checks below can see a change
}

TEST_F(BadCheckpoint, Truncated) {
  const std::size_t header_end = 8 + raw_.header.size();
  for (std::size_t cut : {std::size_t(0), std::size_t(7), header_end / 2, header_end,
                          header_end + 1000, good_.size() / 2, good_.size() - 1}) {
    EXPECT_TRUE(rejects({good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(cut)},
                        {"SafetensorsFile::open", path_, "truncated"}))
        << "cut at " << cut << " of " << good_.size();
  }
}

TEST_F(BadCheckpoint, BadHeaderJson) {
  RawSafetensors r = raw_;
  r.header[r.header.find("\"dtype\"") + 3] = '"';
  EXPECT_TRUE(rejects(r.bytes(), {"not valid JSON"}));
}

TEST_F(BadCheckpoint, HeaderLengthLargerThanTheFile) {
  EXPECT_TRUE(
      rejects(raw_.bytes(static_cast<std::int64_t>(good_.size())), {"header length", "exceeds"}));
}

TEST_F(BadCheckpoint, OffsetsOutOfRange) {
  ordered_json j = raw_.json();
  auto& offsets = j["optim.exp_avg_sq"]["data_offsets"];  // the last tensor
  offsets[0] = offsets[0].get<std::uint64_t>() + 4;
  offsets[1] = offsets[1].get<std::uint64_t>() + 4;
  EXPECT_TRUE(rejects_json(j, {"'optim.exp_avg_sq'", "reaches past the end"}));
}

TEST_F(BadCheckpoint, OverlappingOffsets) {
  ordered_json j = raw_.json();
  auto& offsets = j["weight_hh_l0"]["data_offsets"];
  offsets[0] = offsets[0].get<std::uint64_t>() - 4;
  offsets[1] = offsets[1].get<std::uint64_t>() - 4;
  EXPECT_TRUE(rejects_json(j, {"and 'weight_hh_l0'", "overlap"}));
}

TEST_F(BadCheckpoint, SizeDoesNotMatchTheShape) {
  ordered_json j = raw_.json();
  j["bias_ih_l1"]["shape"] = {25};
  EXPECT_TRUE(rejects_json(j, {"tensor 'bias_ih_l1'", "span 96 bytes", "need 100"}));
}

TEST_F(BadCheckpoint, WrongShapeForTheModel) {
  // A consistent file whose tensor has another shape than the model's parameter.
  const auto bytes = rewritten([](auto& tensors, auto&) {
    for (auto& [name, t] : tensors) {
      if (name == "weight_hh_l1") t = Tensor::zeros({12, 12}, DType::Float32);
    }
  });
  EXPECT_TRUE(rejects(bytes, {"tensor 'weight_hh_l1' has shape [12, 12]", "has shape [24, 6]"}));
}

TEST_F(BadCheckpoint, WrongDtype) {
  const auto bytes = rewritten([](auto& tensors, auto&) {
    for (auto& [name, t] : tensors) {
      if (name == "optim.exp_avg") t = Tensor::zeros(t.shape(), DType::Float64);
    }
  });
  EXPECT_TRUE(rejects(
      bytes, {"tensor 'optim.exp_avg' has dtype F64", "the optimizer's state 'exp_avg' is F32"}));
}

TEST_F(BadCheckpoint, MissingTensor) {
  const auto bytes = rewritten([](auto& tensors, auto&) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].first == "bias_hh_l2_reverse") tensors.erase(tensors.begin() + i);
    }
  });
  EXPECT_TRUE(rejects(bytes, {"missing tensor 'bias_hh_l2_reverse' (the model's parameter)"}));
  const auto no_state = rewritten([](auto& tensors, auto&) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].first == "optim.exp_avg_sq") tensors.erase(tensors.begin() + i);
    }
  });
  EXPECT_TRUE(rejects(no_state, {"missing tensor 'optim.exp_avg_sq'"}));
}

TEST_F(BadCheckpoint, UnexpectedTensor) {
  const auto bytes = rewritten([](auto& tensors, auto&) {
    tensors.emplace_back("weight_ih_l3", Tensor::zeros({2}, DType::Float32));
  });
  EXPECT_TRUE(rejects(bytes, {"unexpected tensor 'weight_ih_l3'"}));
}

TEST_F(BadCheckpoint, ConfigMismatch) {
  // A pair, not a structured binding: C++17 lambdas cannot capture one (clang refuses).
  for (const auto& change :
       std::vector<std::pair<std::string, ordered_json>>{{"hidden_size", 7},
                                                         {"cell", "GruLinearBeforeReset"},
                                                         {"num_layers", 2},
                                                         {"bidirectional", false},
                                                         {"connection", "Residual"},
                                                         {"bias", false},
                                                         {"dtype", "F64"},
                                                         {"proj_size", 2}}) {
    const auto bytes = rewritten([&](auto&, auto& meta) {
      ordered_json c = ordered_json::parse(meta.at("recur.config"));
      c[change.first] = change.second;
      meta["recur.config"] = c.dump();
    });
    EXPECT_TRUE(rejects(
        bytes, {"config mismatch: the checkpoint's " + change.first + " is " + change.second.dump(),
                "the model's is"}))
        << change.first;
  }
}

TEST_F(BadCheckpoint, MetadataProblems) {
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) { meta.erase("recur.format"); }),
                      {"not a recur checkpoint", "load_state_dict"}));
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) { meta["recur.config"] = "{cell"; }),
                      {"metadata 'recur.config' is not valid JSON"}));
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) { meta["recur.step"] = "12x"; }),
                      {"metadata 'recur.step' is not an integer"}));
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) { meta.erase("recur.optimizer"); }),
                      {"no state for the optimizer"}));
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) {
                        ordered_json o = ordered_json::parse(meta.at("recur.optimizer"));
                        o["type"] = "Sgd";
                        meta["recur.optimizer"] = o.dump();
                      }),
                      {"the optimizer is Adam, but the checkpoint holds the state of Sgd"}));
}

TEST_F(BadCheckpoint, HostileMetadata) {
  // Integer fields given as numbers no int64 holds: converting them would be undefined.
  for (const char* value : {"1e+300", "-1e+300", "2.5", "18446744073709551615", "1e+19"}) {
    SCOPED_TRACE(value);
    for (const char* field : {"step_count", "skipped_steps"}) {
      EXPECT_TRUE(rejects(
          rewritten([&](auto&, auto& meta) {
            std::string o = meta.at("recur.optimizer");
            const std::string key = std::string("\"") + field + "\":";
            const std::size_t at = o.find(key) + key.size();
            o.replace(at, o.find_first_of(",}", at) - at, value);
            meta["recur.optimizer"] = o;
          }),
          {std::string("field '") + field + "' must be an integer in int64's range", value}));
    }
  }
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) {
                        ordered_json o = ordered_json::parse(meta.at("recur.optimizer"));
                        o["lr"] = "fast";
                        meta["recur.optimizer"] = o.dump();
                      }),
                      {"field 'lr' must be a number, not \"fast\""}));
  // The config and the optimizer's metadata nested 10^5 levels deep.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(rejects(rewritten([&](auto&, auto& meta) { meta["recur.config"] = deep; }),
                      {"metadata 'recur.config' nests deeper than 64 levels"}));
  EXPECT_TRUE(rejects(
      rewritten([&](auto&, auto& meta) { meta["recur.optimizer"] = "{\"type\":" + deep + "}"; }),
      {"metadata 'recur.optimizer' nests deeper than 64 levels"}));
  // A config field with a huge value: named, and quoted only in part.
  EXPECT_TRUE(rejects(rewritten([](auto&, auto& meta) {
                        ordered_json c = ordered_json::parse(meta.at("recur.config"));
                        c["hidden_size"] = std::vector<int>(100000, 1);
                        meta["recur.config"] = c.dump();
                      }),
                      {"config mismatch: the checkpoint's hidden_size is [1,1,", "..."}));
}

TEST_F(BadCheckpoint, ArgumentErrors) {
  write_file(path_, good_);
  Sgd other(rnn_.gradients());  // bound to the wrong buffer
  EXPECT_TRUE(throws_error([&] { load_checkpoint(path_, rnn_, &other); },
                           {"load_checkpoint", "'optimizer'", "rnn.parameters()"}));
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path_, rnn_, &other, 1); },
                           {"save_checkpoint", "'optimizer'"}));
  CheckpointExtras extras;
  extras.tensors = {{"weight_ih_l0", rnn_.gradient("weight_ih_l0")}};
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path_, rnn_, nullptr, 1, extras); },
                           {"'extras.tensors[0]'", "not used by the model"}));
  extras.tensors = {{"optim.x", rnn_.gradient("weight_ih_l0")}};
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path_, rnn_, nullptr, 1, extras); },
                           {"does not start with \"optim.\""}));
  extras.tensors.clear();
  extras.metadata = {{"recur.step", "1"}};
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path_, rnn_, nullptr, 1, extras); },
                           {"'extras.metadata'"}));
  extras.metadata.clear();
  extras.optimizers = {{"a.b", &adam_}};
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path_, rnn_, nullptr, 1, extras); },
                           {"'extras.optimizers[0]'", "without '.'"}));
  // An extra tensor the file lacks.
  extras.optimizers.clear();
  Tensor extra = Tensor::zeros({3}, DType::Float32);
  extras.tensors = {{"head.weight", extra}};
  EXPECT_TRUE(throws_error([&] { load_checkpoint(path_, rnn_, &adam_, extras); },
                           {"missing tensor 'head.weight' (the extra tensor)"}));
  EXPECT_TRUE(Snapshot::of(rnn_, {&adam_}) == before_);
  EXPECT_EQ(read_file(path_), good_);  // no failed save touched the file
}

// ---- a save killed at any moment ----

// Fills every parameter and state element with a pattern that identifies `k`.
void fill_pattern(Rnn& rnn, Adam& adam, std::int64_t k) {
  const std::int64_t n = rnn.parameters().numel();
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(k) + 0.25f * static_cast<float>(i % 97);
  rnn.parameters().copy_from_host(v.data());
  adam.exp_avg().copy_from_host(v.data());
  adam.exp_avg_sq().copy_from_host(v.data());
}

// True when the model and optimizer hold the pattern of step k, exactly.
bool holds_pattern(const Rnn& rnn, const Adam& adam, std::int64_t k) {
  const std::vector<float> p = rnn.parameters().to_vector<float>();
  const std::vector<float> m = adam.exp_avg().to_vector<float>();
  const std::vector<float> v = adam.exp_avg_sq().to_vector<float>();
  for (std::size_t i = 0; i < p.size(); ++i) {
    const float want = static_cast<float>(k) + 0.25f * static_cast<float>(i % 97);
    if (p[i] != want || m[i] != want || v[i] != want) return false;
  }
  return true;
}

// One int shared with the children forked after it (an anonymous shared mapping).
class SharedFlag {
 public:
  SharedFlag()
      : flag_(static_cast<std::atomic<int>*>(::mmap(nullptr, sizeof(std::atomic<int>),
                                                    PROT_READ | PROT_WRITE,
                                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0))) {
    if (flag_ == MAP_FAILED) throw std::runtime_error("mmap failed");
    new (flag_) std::atomic<int>(0);
  }
  ~SharedFlag() { ::munmap(flag_, sizeof(std::atomic<int>)); }
  SharedFlag(const SharedFlag&) = delete;
  SharedFlag& operator=(const SharedFlag&) = delete;
  std::atomic<int>& operator*() const { return *flag_; }

 private:
  std::atomic<int>* flag_;
};

// Whether the file system under `dir` takes unnamed files that can be named later
// (O_TMPFILE, then a link through /proc), which save_safetensors writes into where it can.
bool takes_unnamed_files(const std::string& dir) {
#ifdef O_TMPFILE
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const std::string self = "/proc/self/fd/" + std::to_string(fd), probe = dir + "/probe";
  const bool linked =
      ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, probe.c_str(), AT_SYMLINK_FOLLOW) == 0;
  ::close(fd);
  if (linked) ::unlink(probe.c_str());
  return linked;
#else
  (void)dir;
  return false;
#endif
}

// Kills and reaps a child process on scope exit, unless it was reaped already.
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

TEST(CheckpointKill, AKilledSaveLeavesThePreviousCheckpointLoadable) {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 64;
  c.hidden_size = 256;
  c.num_layers = 2;  // about 0.85 M parameters: 10 MB per checkpoint with Adam's state
  Rnn rnn(c, Device::cpu(), 1);
  Adam adam(rnn.parameters());
  fill_pattern(rnn, adam, 0);
  save_checkpoint(path, rnn, &adam, 0);

  Rnn probe(c, Device::cpu(), 2);
  Adam probe_opt(probe.parameters());
  const bool unnamed = takes_unnamed_files(dir.path());
  const SharedFlag saving;  // 1 while the child is inside save_checkpoint
  std::int64_t last = 0;
  int killed_mid_save = 0, left_behind = 0, loads_while_writing = 0;
  std::uint64_t seed = 12345;
  for (int round = 0; round < 8; ++round) {
    const std::int64_t first = 1000 * (round + 1);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    ChildGuard guard;
    if (child > 0) guard.pid = child;
    if (child == 0) {
      // The child saves new checkpoints back to back until it is killed.
      try {
        for (std::int64_t k = first;; ++k) {
          fill_pattern(rnn, adam, k);
          *saving = 1;
          save_checkpoint(path, rnn, &adam, k);
          *saving = 0;
        }
      } catch (...) {
        ::_exit(3);
      }
    }
    // Meanwhile, every load of the real path sees a whole checkpoint.
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(20 + static_cast<int>((seed >> 33) % 300));
    while (std::chrono::steady_clock::now() < deadline) {
      const CheckpointInfo info = load_checkpoint(path, probe, &probe_opt);
      ASSERT_TRUE(holds_pattern(probe, probe_opt, info.step)) << "step " << info.step;
      ++loads_while_writing;
    }
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    guard.pid = -1;
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped by itself, status " << status;
    killed_mid_save += *saving;
    *saving = 0;

    const std::string tmp = path + ".tmp." + std::to_string(child);
    if (std::filesystem::exists(tmp)) {
      ++left_behind;
      std::filesystem::remove(tmp);  // what a trainer's cleanup would do
    }
    const CheckpointInfo info = load_checkpoint(path, probe, &probe_opt);
    EXPECT_TRUE(holds_pattern(probe, probe_opt, info.step)) << "step " << info.step;
    EXPECT_TRUE(info.step == last || info.step >= first) << info.step;
    last = info.step;
  }
  RecordProperty("loads_while_writing", loads_while_writing);
  RecordProperty("killed_mid_save", killed_mid_save);
  RecordProperty("temporary_files_left", left_behind);
  RecordProperty("last_step", std::to_string(last));
  EXPECT_GT(loads_while_writing, 0);
  // The kills landed inside a save at least once (the child spends most of its time
  // saving), so the test did exercise an interrupted save.
  EXPECT_GT(killed_mid_save, 0);
  // Writing into an unnamed file, a kill leaves a temporary file only in the microseconds
  // between naming it and the rename (AWriteCutShortLeavesNoFile checks that exactly).
  if (unnamed) {
    EXPECT_LE(left_behind, 1);
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"ckpt.safetensors"});
}

// A save that dies while it writes (here: the child's file size limit, 1 MB, cuts the
// 10 MB checkpoint short, and SIGXFSZ kills it inside write()) leaves the previous
// checkpoint whole and nothing else: the bytes went to an unnamed file. Before
// 2026-11-26 the temporary file stayed, 1 MB of it.
TEST(CheckpointKill, AWriteCutShortLeavesNoFile) {
  TempDir dir;
  if (!takes_unnamed_files(dir.path())) {
    GTEST_SKIP() << "the temporary folder's file system has no unnamed files (O_TMPFILE)";
  }
  const std::string path = dir.file("ckpt.safetensors");
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 64;
  c.hidden_size = 256;
  c.num_layers = 2;
  Rnn rnn(c, Device::cpu(), 1);
  Adam adam(rnn.parameters());
  fill_pattern(rnn, adam, 0);
  save_checkpoint(path, rnn, &adam, 0);
  ASSERT_GT(std::filesystem::file_size(path), 2u << 20);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  ChildGuard guard;
  if (child == 0) {
    const rlimit no_core{0, 0}, one_megabyte{1u << 20, 1u << 20};
    ::setrlimit(RLIMIT_CORE, &no_core);
    if (::setrlimit(RLIMIT_FSIZE, &one_megabyte) != 0) ::_exit(4);
    try {
      fill_pattern(rnn, adam, 1);
      save_checkpoint(path, rnn, &adam, 1);
    } catch (...) {
      ::_exit(3);  // write() failed with EFBIG instead: SIGXFSZ was ignored
    }
    ::_exit(0);
  }
  guard.pid = child;
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  guard.pid = -1;
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGXFSZ);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"ckpt.safetensors"});
  Rnn probe(c, Device::cpu(), 2);
  Adam probe_opt(probe.parameters());
  const CheckpointInfo info = load_checkpoint(path, probe, &probe_opt);
  EXPECT_EQ(info.step, 0);
  EXPECT_TRUE(holds_pattern(probe, probe_opt, 0));
}

// ---- PyTorch state dicts (tests/golden/gen_safetensors.py) ----

struct Expected {
  SafetensorsFile file;
  explicit Expected(const std::string& name)
      : file(SafetensorsFile::open(golden_dir() + "/" + name + ".expected.safetensors")) {}
  Tensor input(const std::string& name, DType dtype) const {
    Tensor t = Tensor::empty(file.info(name).shape, dtype);
    file.read_converted(name, t);
    return t;
  }
  std::vector<double> ref(const std::string& name) const {
    return file.read(name).to_vector<double>();
  }
};

template <typename T>
std::vector<double> as_double(const Tensor& t) {
  const std::vector<T> v = t.to_vector<T>();
  return {v.begin(), v.end()};
}

template <typename T>
void lstm_state_dict(bool convert) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 5;
  c.hidden_size = 4;
  c.num_layers = 2;
  c.bidirectional = true;
  c.dtype = dtype_of<T>();
  Rnn rnn(c);
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/lstm_l2_bi.safetensors");
  StateDictOptions options;
  options.convert_dtype = convert;
  load_state_dict(rnn, f, options);
  const Expected e("lstm_l2_bi");
  ForwardResult r = rnn.forward(e.input("x", c.dtype), e.input("h0", c.dtype),
                                e.input("c0", c.dtype), Mode::Inference);
  // The weights are float32 values, so a float64 model reproduces the float64 reference
  // to float64 rounding.
  const double depth = 6.0 * (8 + 4) * 2;  // T * widest K * layers
  const Tolerance tol = tolerance_for_depth<T>(depth);
  EXPECT_TRUE(all_close(as_double<T>(r.y), e.ref("y"), tol));
  EXPECT_TRUE(all_close(as_double<T>(r.h_n), e.ref("h_n"), tol));
  EXPECT_TRUE(all_close(as_double<T>(r.c_n), e.ref("c_n"), tol));
}

TEST(StateDict, PyTorchLstmFloat32) { lstm_state_dict<float>(false); }
TEST(StateDict, PyTorchLstmIntoFloat64Converted) { lstm_state_dict<double>(true); }

TEST(StateDict, PyTorchBf16AndF16LstmsIntoFloat32Converted) {
  // tests/golden/gen_safetensors.py lstm_half: lstm_l2_bi's model in bfloat16 and
  // float16. Converted, the weights are the float32 ones rounded by recur's rules (which
  // are PyTorch's), then widened exactly.
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 5;
  c.hidden_size = 4;
  c.num_layers = 2;
  c.bidirectional = true;
  const SafetensorsFile f32 = SafetensorsFile::open(golden_dir() + "/lstm_l2_bi.safetensors");
  for (const auto& [suffix, reduced] :
       {std::pair<const char*, DType>{"bf16", DType::BFloat16}, {"f16", DType::Float16}}) {
    SCOPED_TRACE(suffix);
    const SafetensorsFile f =
        SafetensorsFile::open(golden_dir() + "/lstm_l2_bi." + suffix + ".safetensors");
    Rnn rnn(c);
    const std::vector<unsigned char> before = bytes_of(rnn.parameters());
    EXPECT_TRUE(throws_error([&] { load_state_dict(rnn, f); },
                             {"has dtype " + std::string(safetensors_dtype(reduced)), "is F32",
                              "convert_dtype converts F32, F64, BF16 and F16"}));
    EXPECT_EQ(bytes_of(rnn.parameters()), before);
    StateDictOptions convert;
    convert.convert_dtype = true;
    load_state_dict(rnn, f, convert);
    for (const ParamInfo& p : rnn.parameter_info()) {
      EXPECT_EQ(bytes_of(rnn.parameter(p.name)),
                bytes_of(f32.read(p.name).to(reduced).to(DType::Float32)))
          << p.name;
    }
  }
}

TEST(StateDict, PyTorchGruWithPrefixAndLinearHead) {
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = 5;
  c.hidden_size = 4;
  Rnn rnn(c);
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/gru_head.safetensors");
  StateDictOptions options;
  options.prefix = "rnn.";
  load_state_dict(rnn, f, options);
  Linear head(4, 7);
  f.read_into("head.weight", head.weight());
  f.read_into("head.bias", head.bias());

  const Expected e("gru_head");
  ForwardResult r =
      rnn.forward(e.input("x", DType::Float32), e.input("h0", DType::Float32), {}, Mode::Inference);
  const Tolerance tol = tolerance_for_depth<float>(5.0 * (5 + 4));
  EXPECT_TRUE(all_close(as_double<float>(r.y), e.ref("y"), tol));
  EXPECT_TRUE(all_close(as_double<float>(r.h_n), e.ref("h_n"), tol));
  Tensor logits = head.forward(r.y);
  EXPECT_TRUE(all_close(as_double<float>(logits), e.ref("logits"),
                        tolerance_for_depth<float>(5.0 * (5 + 4) + 4)));
}

TEST(StateDict, ErrorsLeaveTheModelUnchanged) {
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = 5;
  c.hidden_size = 4;
  Rnn rnn(c);
  const std::vector<unsigned char> before = bytes_of(rnn.parameters());
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/gru_head.safetensors");
  // Without the prefix every key is unexpected.
  EXPECT_TRUE(throws_error([&] { load_state_dict(rnn, f); },
                           {"load_state_dict", "unexpected tensor 'head.bias'",
                            "the model has no parameter 'head.bias'"}));
  StateDictOptions options;
  options.prefix = "head.";
  EXPECT_TRUE(
      throws_error([&] { load_state_dict(rnn, f, options); }, {"unexpected tensor 'head.bias'"}));

  // Missing, wrong shape, wrong dtype.
  TempDir dir;
  const std::string path = dir.file("sd.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const char* name : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0"}) {
    tensors.emplace_back(name, f.read(std::string("rnn.") + name));
  }
  auto save = [&] {
    NamedTensors views;
    for (const auto& [name, t] : tensors) views.emplace_back(name, t.view());
    save_safetensors(path, views);
    return SafetensorsFile::open(path);
  };
  EXPECT_TRUE(throws_error([&] { load_state_dict(rnn, save()); },
                           {"missing tensor 'bias_hh_l0' (the model's parameter)"}));
  tensors.emplace_back("bias_hh_l0", Tensor::zeros({13}, DType::Float32));
  EXPECT_TRUE(throws_error([&] { load_state_dict(rnn, save()); },
                           {"tensor 'bias_hh_l0' has shape [13]", "has shape [12]"}));
  tensors.back().second = Tensor::zeros({12}, DType::Float64);
  EXPECT_TRUE(throws_error([&] { load_state_dict(rnn, save()); },
                           {"tensor 'bias_hh_l0' has dtype F64", "is F32", "convert_dtype"}));
  EXPECT_EQ(bytes_of(rnn.parameters()), before);
  // And the same file loads when asked to convert.
  StateDictOptions convert;
  convert.convert_dtype = true;
  load_state_dict(rnn, save(), convert);
  EXPECT_EQ(rnn.parameter("bias_hh_l0").to_vector<float>(), std::vector<float>(12, 0.0f));
}

TEST(StateDict, WrongCellIsNamed) {
  // PyTorch's 2-layer bidirectional LSTM file into a GRU of the same sizes.
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/lstm_l2_bi.safetensors");
  const SafetensorsEntry& w = f.info("weight_hh_l0");
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.hidden_size = w.shape[1];
  c.input_size = f.info("weight_ih_l0").shape[1];
  c.num_layers = 2;
  c.bidirectional = true;
  Rnn rnn(c);
  const std::vector<float> before = rnn.parameters().to_vector<float>();
  EXPECT_TRUE(
      throws_error([&] { load_state_dict(rnn, f); },
                   {"tensor 'weight_ih_l0' has shape",
                    "4 gates: an LSTM's weights; the model is GruLinearBeforeReset with 3"}));
  EXPECT_EQ(rnn.parameters().to_vector<float>(), before);
}

TEST(StateDict, StateDictNamesAreThePyTorchNames) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 3;
  c.hidden_size = 2;
  c.bidirectional = true;
  Rnn rnn(c);
  const NamedTensors sd = state_dict(rnn);
  std::vector<std::string> names;
  for (const auto& [name, view] : sd) names.push_back(name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                      "weight_ih_l0_reverse", "weight_hh_l0_reverse",
                                      "bias_ih_l0_reverse", "bias_hh_l0_reverse"}));
  TempDir dir;
  save_safetensors(dir.file("sd.safetensors"), sd);
  Rnn other(c, Device::cpu(), 5);
  load_state_dict(other, SafetensorsFile::open(dir.file("sd.safetensors")));
  EXPECT_EQ(bytes_of(other.parameters()), bytes_of(rnn.parameters()));
}

}  // namespace
}  // namespace recur::test
