// tests/test_model_checkpoint.cpp: self-describing model checkpoints
// (recur/model_checkpoint.h): a whole model and its training state through a file, the
// model rebuilt from the file alone, config mismatches named by module and field, hostile
// metadata, and the all-or-nothing load.
#include <cstdio>
#include <string>
#include <vector>

#include "test_util.h"

namespace recur::test {
namespace {

RnnConfig rnn_config() {
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = 6;
  c.hidden_size = 5;
  c.num_layers = 2;
  c.bidirectional = true;
  c.connection = Connection::Residual;
  c.dropout = 0.2;
  c.batch_first = true;
  c.math = Math::Bf16;
  return c;
}

// A small model and its training state, built from configs (as a resumed run would).
struct Trainer {
  Rnn rnn;
  Embedding embed;
  Linear head;
  Adam opt;
  LrSchedule schedule;
  LossScaler scaler;

  Trainer(const RnnConfig& c, std::int64_t vocab, std::uint64_t seed)
      : rnn(c, Device::cpu(), seed),
        embed(vocab, c.input_size, DType::Float32, Device::cpu(), seed + 1),
        head(2 * c.hidden_size, vocab, true, DType::Float32, Device::cpu(), seed + 2),
        opt({{"rnn", rnn.parameters(), rnn.gradients()},
             {"embedding", embed.parameters(), embed.gradients(), 2.0},
             {"head", head.parameters(), head.gradients()}},
            {1e-2}),
        schedule(schedule_options(), {&opt}) {}

  static LrScheduleOptions schedule_options() {
    LrScheduleOptions o;
    o.base_lr = 1e-2;
    o.warmup_steps = 3;
    o.decay = LrDecay::Cosine;
    o.total_steps = 50;
    return o;
  }

  ModelParts parts() { return {{{"rnn", &rnn}}, {{"embedding", &embed}}, {{"head", &head}}}; }

  void train_step(std::uint64_t seed) {
    Random rng(seed);
    rnn.set_dropout_seed(seed);  // masks keyed by the step, as a trainer does
    opt.zero_grad();
    const Tensor x = rng.tensor<float>({2, 3, rnn.config().input_size});  // batch first
    const ForwardResult r = rnn.forward(x);
    rnn.backward(rng.tensor<float>({2, 3, 2 * rnn.config().hidden_size}));
    head.backward(r.y, rng.tensor<float>({2, 3, head.out_features()}));
    GradNorm norm;
    clip_grad_norm(opt.gradients(), 1.0, norm);
    opt.step(&norm);
    scaler.update(norm);
    schedule.step();
  }
};

std::string temp_path(const char* name) { return ::testing::TempDir() + name; }

TEST(ModelCheckpoint, AWholeModelRebuildsFromTheFileAlone) {
  Trainer a(rnn_config(), 11, 1);
  for (int s = 0; s < 4; ++s) a.train_step(100 + s);
  const std::string path = temp_path("recur_model.safetensors");
  TrainingParts saved{&a.opt, &a.schedule, &a.scaler, 4, {{"rollbacks", 2}, {"offset", -7}}};
  save_model_checkpoint(path, a.parts(), saved);

  // A new process knows only the path.
  const ModelCheckpointInfo info = read_model_checkpoint(path);
  ASSERT_EQ(info.rnns.size(), 1u);
  const RnnConfig& c = info.rnns[0].second;
  EXPECT_EQ(info.rnns[0].first, "rnn");
  EXPECT_EQ(c.cell, CellKind::GruLinearBeforeReset);
  EXPECT_EQ(c.hidden_size, 5);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_TRUE(c.bidirectional && c.batch_first);
  EXPECT_EQ(c.connection, Connection::Residual);
  EXPECT_EQ(c.dropout, 0.2);
  EXPECT_EQ(c.math, Math::Bf16);
  ASSERT_EQ(info.embeddings.size(), 1u);
  EXPECT_EQ(info.embeddings[0].second.num_embeddings, 11);
  ASSERT_EQ(info.linears.size(), 1u);
  EXPECT_EQ(info.linears[0].second.in_features, 10);
  EXPECT_EQ(info.optimizer, "Adam");
  EXPECT_TRUE(info.schedule && info.loss_scaler);
  EXPECT_EQ(info.step, 4);
  EXPECT_EQ(info.counters.at("offset"), -7);

  Trainer b(c, info.embeddings[0].second.num_embeddings, 99);
  TrainingParts loaded;
  loaded.optimizer = &b.opt;
  loaded.schedule = &b.schedule;
  loaded.loss_scaler = &b.scaler;
  load_model_checkpoint(path, b.parts(), loaded);
  EXPECT_EQ(loaded.step, 4);
  EXPECT_EQ(loaded.counters, saved.counters);
  EXPECT_EQ(b.rnn.parameters().to_vector<float>(), a.rnn.parameters().to_vector<float>());
  EXPECT_EQ(b.embed.parameters().to_vector<float>(), a.embed.parameters().to_vector<float>());
  EXPECT_EQ(b.head.parameters().to_vector<float>(), a.head.parameters().to_vector<float>());
  EXPECT_EQ(b.schedule.steps(), 4);
  EXPECT_EQ(b.opt.step_count(), a.opt.step_count());
  EXPECT_EQ(b.scaler.good_steps(), a.scaler.good_steps());
  // Both continue alike.
  a.train_step(200);
  b.train_step(200);
  EXPECT_EQ(b.rnn.parameters().to_vector<float>(), a.rnn.parameters().to_vector<float>());
  std::remove(path.c_str());
}

TEST(ModelCheckpoint, AConfigThatDiffersIsNamedAndNothingChanges) {
  Trainer a(rnn_config(), 11, 1);
  const std::string path = temp_path("recur_model_mismatch.safetensors");
  TrainingParts t{&a.opt, nullptr, nullptr, 0, {}};
  save_model_checkpoint(path, a.parts(), t);
  RnnConfig other = rnn_config();
  other.dropout = 0.1;
  Trainer b(other, 11, 2);
  const std::vector<float> before = b.rnn.parameters().to_vector<float>();
  TrainingParts into{&b.opt, nullptr, nullptr, 0, {}};
  EXPECT_EQ(error_of([&] { load_model_checkpoint(path, b.parts(), into); }),
            "recur: load_model_checkpoint: " + path +
                ": module 'rnn': dropout is 0.20000000000000001 in the checkpoint, "
                "0.10000000000000001 in the model");
  Trainer c(rnn_config(), 12, 3);
  TrainingParts into_c{&c.opt, nullptr, nullptr, 0, {}};
  EXPECT_EQ(error_of([&] { load_model_checkpoint(path, c.parts(), into_c); }),
            "recur: load_model_checkpoint: " + path +
                ": module 'embedding': num_embeddings is 11 in the checkpoint, 12 in the model");
  TrainingParts with_schedule{&c.opt, &c.schedule, nullptr, 0, {}};
  Trainer d(rnn_config(), 11, 4);
  with_schedule.optimizer = &d.opt;
  with_schedule.schedule = &d.schedule;
  EXPECT_EQ(
      error_of([&] { load_model_checkpoint(path, d.parts(), with_schedule); }),
      "recur: load_model_checkpoint: " + path + ": the checkpoint holds no learning-rate schedule");
  ModelParts fewer{{{"rnn", &d.rnn}}, {}, {{"head", &d.head}}};
  TrainingParts none;
  EXPECT_EQ(error_of([&] { load_model_checkpoint(path, fewer, none); }),
            "recur: load_model_checkpoint: " + path +
                ": the checkpoint's modules are \"rnn,embedding,head\", the model's \"rnn,head\"");
  EXPECT_EQ(b.rnn.parameters().to_vector<float>(), before);
  EXPECT_EQ(d.schedule.steps(), 0);
  std::remove(path.c_str());
}

// The file at `path` with `text` cut out of its JSON header.
void cut_from_header(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<unsigned char> bytes;
  for (int ch = std::fgetc(f); ch != EOF; ch = std::fgetc(f))
    bytes.push_back(static_cast<unsigned char>(ch));
  std::fclose(f);
  std::uint64_t n = 0;
  for (int b = 7; b >= 0; --b) n = (n << 8) | bytes.at(static_cast<std::size_t>(b));
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const std::size_t at = header.find(text);
  ASSERT_NE(at, std::string::npos) << header;
  header.erase(at, text.size());
  std::vector<unsigned char> out(8);
  for (int b = 0; b < 8; ++b)
    out[static_cast<std::size_t>(b)] = static_cast<unsigned char>(header.size() >> (8 * b));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(out.data(), 1, out.size(), f);
  std::fclose(f);
}

TEST(ModelCheckpoint, PaddingIdxIsAFieldAndItsAbsenceMeansNone) {
  EmbeddingOptions o;
  o.padding_idx = 2;
  Embedding padded(9, 4, o), plain(9, 4);
  const std::string path = temp_path("recur_model_padding.safetensors");
  save_model_checkpoint(path, {{}, {{"embed", &padded}}, {}}, {});
  EXPECT_EQ(read_model_checkpoint(path).embeddings.at(0).second.padding_idx, 2);
  TrainingParts none;
  EXPECT_EQ(error_of([&] {
              load_model_checkpoint(path, {{}, {{"embed", &plain}}, {}}, none);
            }),
            "recur: load_model_checkpoint: " + path +
                ": module 'embed': padding_idx is 2 in the checkpoint, none in the model");
  save_model_checkpoint(path, {{}, {{"embed", &plain}}, {}}, {});
  EXPECT_EQ(read_model_checkpoint(path).embeddings.at(0).second.padding_idx,
            EmbeddingOptions::kNoPadding);
  // A file of an earlier version, without the field, loads into an Embedding without padding.
  cut_from_header(path, "\"recur.module.embed.padding_idx\":\"none\",");
  EXPECT_EQ(read_model_checkpoint(path).embeddings.at(0).second.padding_idx,
            EmbeddingOptions::kNoPadding);
  load_model_checkpoint(path, {{}, {{"embed", &plain}}, {}}, none);
  EXPECT_NE(error_of([&] {
              load_model_checkpoint(path, {{}, {{"embed", &padded}}, {}}, none);
            }),
            "");
  std::remove(path.c_str());
}

TEST(ModelCheckpoint, HostileMetadataIsNamed) {
  Trainer a(rnn_config(), 11, 1);
  const std::string path = temp_path("recur_model_hostile.safetensors");
  TrainingParts t;
  save_model_checkpoint(path, a.parts(), t);
  const SafetensorsFile good = SafetensorsFile::open(path);
  struct Case {
    const char* key;
    const char* value;
    const char* message;
  } cases[] = {
      {"recur.module.rnn.hidden_size", "5x",
       "metadata 'recur.module.rnn.hidden_size' is not an integer >= 1: \"5x\""},
      {"recur.module.rnn.num_layers", "99999999999999999999",
       "metadata 'recur.module.rnn.num_layers' is not an integer >= 1: \"99999999999999999999\""},
      {"recur.module.rnn.cell", "Transformer",
       "metadata 'recur.module.rnn.cell' names no known value: \"Transformer\""},
      {"recur.module.rnn.dropout", "nan",
       "metadata 'recur.module.rnn.dropout' is not a finite "
       "number: \"nan\""},
      {"recur.module.head.kind", "Conv", "module 'head' is of no known kind: \"Conv\""},
      {"recur.modules", "rnn,,head", "metadata 'recur.modules' holds a bad name: \"\""},
      {"recur.step", "-1", "metadata 'recur.step' is not an integer >= 0: \"-1\""},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.key);
    std::map<std::string, std::string> meta = good.metadata();
    meta[k.key] = k.value;
    NamedTensors tensors;
    std::vector<Tensor> keep;
    for (const std::string& name : good.names()) {
      keep.push_back(good.read(name));
      tensors.emplace_back(name, keep.back().view());
    }
    const std::string bad = temp_path("recur_model_bad.safetensors");
    save_safetensors(bad, tensors, meta);
    EXPECT_EQ(error_of([&] { read_model_checkpoint(bad); }),
              "recur: load_model_checkpoint: " + bad + ": " + k.message);
    std::remove(bad.c_str());
  }
  std::remove(path.c_str());
}

TEST(ModelCheckpoint, BadPartsAreNamed) {
  Trainer a(rnn_config(), 11, 1);
  const std::string path = temp_path("recur_model_parts.safetensors");
  TrainingParts t;
  ModelParts dup{{{"m", &a.rnn}}, {{"m", &a.embed}}, {}};
  EXPECT_EQ(error_of([&] { save_model_checkpoint(path, dup, t); }),
            "recur: save_model_checkpoint: argument 'model.embeddings[0]': expected a name no "
            "other module has, got \"m\"");
  ModelParts dotted{{{"a.b", &a.rnn}}, {}, {}};
  EXPECT_EQ(error_of([&] { save_model_checkpoint(path, dotted, t); }),
            "recur: save_model_checkpoint: argument 'model.rnns[0]': expected a name of letters, "
            "digits and '_', not \"optim\", \"lr_schedule\" nor \"loss_scale\", got \"a.b\"");
  ModelParts null{{}, {}, {{"head", nullptr}}};
  EXPECT_EQ(error_of([&] { save_model_checkpoint(path, null, t); }),
            "recur: save_model_checkpoint: argument 'model.linears[0]': expected a module, got "
            "nullptr");
  TrainingParts bad_counter;
  bad_counter.counters = {{"a b", 1}};
  EXPECT_EQ(error_of([&] { save_model_checkpoint(path, a.parts(), bad_counter); }),
            "recur: save_model_checkpoint: argument 'training.counters': expected names of "
            "letters, digits and '_', got \"a b\"");
  EXPECT_EQ(std::fopen(path.c_str(), "rb"), nullptr) << "a failed save wrote a file";
}

}  // namespace
}  // namespace recur::test
