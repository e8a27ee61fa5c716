// examples/char_lm/train_char_lm.cpp: a character-level language model trained with recur.
//
//   embedding -> stacked LSTM (or GRU) with residual connections -> linear -> softmax CE
//
// in float32 or reduced-precision math (--math tf32|bf16|fp16; FP16 with dynamic loss
// scaling on the device), with one Adam over the three modules (a parameter group each), a
// learning-rate schedule (--warmup, --decay), global-norm clipping on the device, a
// self-describing checkpoint every N steps (--resume rebuilds the model from the file, no
// architecture flags needed), rollback to the last good checkpoint after K consecutive
// non-finite steps, a progress line, and sampled text at the end. It links the installed recur
// package (find_package(recur)) like any user's program. Run with --help for the options.
#include <recur/recur.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "corpus.h"

namespace {

struct Options {
  std::string text = "/usr/share/common-licenses";  // Debian's base-files: real English
  std::string device = "auto";                      // auto, cpu, cuda
  std::string cell = "lstm";                        // lstm, gru
  std::string connection = "residual";              // none, residual, highway, dense
  std::string math = "fp32";                        // fp32, tf32, bf16, fp16
  std::int64_t steps = 1500, layers = 2, hidden = 128, embed = 64, seq = 64, batch = 32;
  double lr = 3e-3, clip = 1.0, dropout = 0.2;
  std::int64_t warmup = 0;         // steps of linear learning-rate warmup
  std::string decay = "constant";  // constant, cosine
  std::int64_t checkpoint_every = 100, log_every = 25, sample = 400;
  std::string checkpoint = "char_lm.safetensors";
  std::string resume;
  int rollback_after = 3;  // consecutive non-finite steps before rolling back
  std::int64_t inject_nan_at = -1, inject_nan_count = 0;  // testing: poison gradients
  std::uint64_t seed = 1;
  bool distributed = false;  // data-parallel over the ranks of mpirun
};

const char* kUsage =
    "usage: train_char_lm [--text PATH] [--device auto|cpu|cuda] [--cell lstm|gru]\n"
    "  [--connection none|residual|highway|dense] [--math fp32|tf32|bf16|fp16]\n"
    "  [--steps N] [--layers N] [--hidden N]\n"
    "  [--embed N] [--seq N] [--batch N] [--lr X] [--warmup N] [--decay constant|cosine]\n"
    "  [--clip X] [--dropout X]\n"
    "  [--checkpoint FILE] [--checkpoint-every N] [--resume FILE] [--rollback-after K]\n"
    "  [--inject-nan STEP:COUNT] [--log-every N] [--sample N] [--seed N] [--smoke]\n"
    "  [--distributed]   (under mpirun: each rank a batch of its own, gradients averaged)\n";

Options parse(int argc, char** argv, bool gpu) {
  Options o;
  if (gpu) {  // a GPU trains a larger model in about the same time
    o.steps = 2000;
    o.layers = 3;
    o.hidden = 512;
    o.embed = 128;
    o.seq = 128;
    o.batch = 64;
    o.checkpoint_every = 250;
    o.log_every = 100;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    auto integer = [&] { return std::stoll(next()); };
    if (a == "--help") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (a == "--smoke") {  // seconds, for CI
      o.steps = 60;
      o.layers = 2;
      o.hidden = 32;
      o.embed = 16;
      o.seq = 16;
      o.batch = 8;
      o.checkpoint_every = 10;
      o.log_every = 10;
      o.sample = 60;
      o.lr = 1e-2;
    } else if (a == "--distributed") {
      o.distributed = true;
    } else if (a == "--text")
      o.text = next();
    else if (a == "--device")
      o.device = next();
    else if (a == "--cell")
      o.cell = next();
    else if (a == "--connection")
      o.connection = next();
    else if (a == "--math")
      o.math = next();
    else if (a == "--steps")
      o.steps = integer();
    else if (a == "--layers")
      o.layers = integer();
    else if (a == "--hidden")
      o.hidden = integer();
    else if (a == "--embed")
      o.embed = integer();
    else if (a == "--seq")
      o.seq = integer();
    else if (a == "--batch")
      o.batch = integer();
    else if (a == "--lr")
      o.lr = std::stod(next());
    else if (a == "--warmup")
      o.warmup = integer();
    else if (a == "--decay")
      o.decay = next();
    else if (a == "--clip")
      o.clip = std::stod(next());
    else if (a == "--dropout")
      o.dropout = std::stod(next());
    else if (a == "--checkpoint")
      o.checkpoint = next();
    else if (a == "--checkpoint-every")
      o.checkpoint_every = integer();
    else if (a == "--resume")
      o.resume = next();
    else if (a == "--rollback-after")
      o.rollback_after = static_cast<int>(integer());
    else if (a == "--log-every")
      o.log_every = integer();
    else if (a == "--sample")
      o.sample = integer();
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(integer());
    else if (a == "--inject-nan") {
      const std::string v = next();
      const std::size_t colon = v.find(':');
      o.inject_nan_at = std::stoll(v.substr(0, colon));
      o.inject_nan_count = colon == std::string::npos ? 1 : std::stoll(v.substr(colon + 1));
    } else {
      throw std::runtime_error("unknown option " + a + "\n" + kUsage);
    }
  }
  return o;
}

recur::Connection connection_of(const std::string& name) {
  if (name == "none") return recur::Connection::None;
  if (name == "residual") return recur::Connection::Residual;
  if (name == "highway") return recur::Connection::Highway;
  if (name == "dense") return recur::Connection::Dense;
  throw std::runtime_error("unknown connection " + name);
}

recur::Math math_of(const std::string& name) {
  if (name == "fp32") return recur::Math::Fp32;
  if (name == "tf32") return recur::Math::Tf32;
  if (name == "bf16") return recur::Math::Bf16;
  if (name == "fp16") return recur::Math::Fp16;
  throw std::runtime_error("unknown math " + name);
}

// Embedding -> Rnn -> Linear -> softmax cross-entropy under one Adam (a parameter group per
// module) and one learning-rate schedule; under FP16 math, a loss scaler for all three.
struct Model {
  recur::Embedding embed;
  recur::Rnn rnn;
  recur::Linear head;
  recur::SoftmaxCrossEntropy xent;
  recur::Adam opt;
  recur::LrSchedule schedule;
  bool scaled;  // FP16: the loss gradient is scaled, and every gradient unscaled
  recur::LossScaler scaler;

  static recur::RnnConfig config(const Options& o) {
    recur::RnnConfig c;
    c.cell = o.cell == "gru" ? recur::CellKind::GruLinearBeforeReset : recur::CellKind::Lstm;
    c.input_size = o.embed;
    c.hidden_size = o.hidden;
    c.num_layers = o.layers;
    c.connection = connection_of(o.connection);
    c.dropout = o.dropout;
    c.math = math_of(o.math);
    return c;
  }

  Model(const Options& o, std::int64_t vocab, recur::Device device)
      : embed(vocab, o.embed, recur::DType::Float32, device, o.seed),
        rnn(config(o), device, o.seed + 1),
        head(o.hidden, vocab, true, recur::DType::Float32, device, o.seed + 2),
        opt({{"rnn", rnn.parameters(), rnn.gradients()},
             {"embedding", embed.parameters(), embed.gradients()},
             {"head", head.parameters(), head.gradients()}},
            adam(o)),
        schedule(schedule_options(o), {&opt}),
        scaled(config(o).math == recur::Math::Fp16),
        scaler(device) {}

  static recur::AdamOptions adam(const Options& o) {
    recur::AdamOptions a;
    a.lr = o.lr;
    return a;
  }

  // --warmup steps of linear warmup, then --decay (constant or cosine down to lr / 10 at
  // the last step).
  static recur::LrScheduleOptions schedule_options(const Options& o) {
    recur::LrScheduleOptions s;
    s.base_lr = o.lr;
    s.warmup_steps = o.warmup;
    s.decay = o.decay == "cosine" ? recur::LrDecay::Cosine : recur::LrDecay::Constant;
    s.total_steps = std::max(o.steps, o.warmup + 1);
    s.min_lr = o.decay == "cosine" ? o.lr / 10 : 0.0;
    return s;
  }

  std::vector<recur::TensorView> gradients() const { return opt.gradients(); }

  recur::ModelParts parts() {
    return {{{"rnn", &rnn}}, {{"embedding", &embed}}, {{"head", &head}}};
  }

  // The whole model and its training state: a resumed run rebuilds itself from the file.
  void save(const std::string& path, std::int64_t step, std::int64_t skipped,
            std::int64_t rollbacks) {
    recur::TrainingParts t{&opt,
                           &schedule,
                           scaled ? &scaler : nullptr,
                           step,
                           {{"skipped", skipped}, {"rollbacks", rollbacks}}};
    recur::save_model_checkpoint(path, parts(), t);
  }
  // The step and the trainer's counters of the file, once everything is restored.
  recur::TrainingParts load(const std::string& path) {
    recur::TrainingParts t{&opt, &schedule, scaled ? &scaler : nullptr, 0, {}};
    recur::load_model_checkpoint(path, parts(), t);
    return t;
  }

  // Data-parallel training (--distributed): the gradients, in the order backward finishes
  // them, averaged over the ranks.
  enum Part { kHead, kRnn, kEmbedding };
  std::unique_ptr<recur::DataParallel> parallel;
  void distribute(recur::Communicator& comm) {
    parallel = std::make_unique<recur::DataParallel>(
        comm, std::vector<recur::TensorView>{head.gradients(), rnn.gradients(), embed.gradients()});
    parallel->broadcast({head.parameters(), rnn.parameters(), embed.parameters()});
  }
  void ready(Part p) {
    if (parallel != nullptr) parallel->ready(p);
  }

  // One training step; returns the loss (the host waits for it).
  double train_step(const std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& targets,
                    std::int64_t T, std::int64_t B, double clip, bool poison,
                    recur::GradNorm& norm) {
    opt.zero_grad();
    const recur::Tensor x = embed.forward(ids, {T, B});
    const recur::ForwardResult r = rnn.forward(x);
    const recur::Tensor logits = head.forward(r.y);
    recur::CrossEntropyResult ce = xent.forward_backward(logits, targets);
    void* stream = rnn.cuda_stream();
    if (scaled) scaler.scale_loss_gradient(ce.dlogits, stream);
    const recur::Tensor dy = head.backward(r.y, ce.dlogits);
    ready(kHead);  // its sum runs while the Rnn's backward does
    const recur::BackwardResult g = rnn.backward(dy);
    if (poison) {  // what a diverging step looks like: a NaN in one gradient
      const float nan = std::numeric_limits<float>::quiet_NaN();
      recur::TensorView first(rnn.gradients().data(), {1}, recur::DType::Float32, rnn.device());
      first.copy_from_host(&nan);
    }
    ready(kRnn);
    embed.backward(ids, {T, B}, g.dx);
    ready(kEmbedding);
    if (parallel != nullptr) parallel->finish();  // every rank: the same mean gradient
    if (scaled) scaler.unscale_gradients(gradients(), stream);
    recur::clip_grad_norm(gradients(), clip, norm, stream);
    // The optimizer reads the finite flag on the device and skips a non-finite step; so
    // does the scaler, which halves its scale then (an FP16 overflow).
    opt.step(&norm, stream);
    if (scaled) scaler.update(norm, stream);
    schedule.step();
    return ce.loss.to_vector<float>()[0];
  }

  double validation_loss(const Corpus& corpus, std::int64_t T, std::int64_t B, int batches) {
    double sum = 0;
    std::vector<std::int32_t> ids, targets;
    for (int k = 0; k < batches; ++k) {
      corpus.validation_batch(k, T, B, ids, targets);
      const recur::ForwardResult r =
          rnn.forward(embed.forward(ids, {T, B}), {}, {}, recur::Mode::Inference);
      sum += xent.forward(head.forward(r.y), targets).loss.to_vector<float>()[0];
    }
    return sum / batches;
  }

  // Samples `n` characters after `prompt`, one step at a time, carrying the states.
  std::string sample(const Corpus& corpus, const std::string& prompt, std::int64_t n,
                     double temperature, std::mt19937_64& rng) {
    recur::Tensor h, c;
    std::string out = prompt;
    std::vector<float> logits;
    int next = corpus.id(prompt.empty() ? ' ' : prompt[0]);
    for (std::size_t i = 0; i < prompt.size() + static_cast<std::size_t>(n); ++i) {
      if (i < prompt.size()) next = corpus.id(prompt[i]);
      const recur::Tensor x = embed.forward({next}, {1, 1});
      recur::ForwardResult r = rnn.forward(x, h, c, recur::Mode::Inference);
      h = std::move(r.h_n);
      c = std::move(r.c_n);
      if (i + 1 < prompt.size()) continue;
      logits = head.forward(r.y).to_vector<float>();
      double max = -1e30, total = 0;
      for (float l : logits) max = std::max(max, static_cast<double>(l));
      std::vector<double> p(logits.size());
      for (std::size_t k = 0; k < p.size(); ++k) {
        total += p[k] = std::exp((logits[k] - max) / temperature);
      }
      double u = std::uniform_real_distribution<double>(0, total)(rng);
      next = 0;
      while (next + 1 < static_cast<int>(p.size()) && (u -= p[next]) > 0) ++next;
      out += corpus.symbol(next);
    }
    return out;
  }
};

std::string duration(double seconds) {
  char buf[32];
  const long s = static_cast<long>(seconds + 0.5);
  std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

}  // namespace

int main(int argc, char** argv) try {
  const bool gpu = recur::cuda_device_count() > 0;
  Options o = parse(argc, argv, gpu);
  // --distributed: one rank of mpirun's; rank 0 prints and writes checkpoints. The MPI
  // communicator works in host memory, so the ranks train on the CPU.
  std::shared_ptr<recur::Communicator> comm;
  if (o.distributed) {
    comm = recur::mpi_communicator();
    if (o.device == "cuda") throw std::runtime_error("--distributed trains on the CPU for now");
    o.device = "cpu";
    if (comm->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) return 2;
  }
  const int rank = comm != nullptr ? comm->rank() : 0, ranks = comm != nullptr ? comm->size() : 1;
  const recur::Device device = o.device == "cpu" || (o.device == "auto" && !gpu)
                                   ? recur::Device::cpu()
                                   : recur::Device::cuda(0);
  const Corpus corpus(o.text);
  if (!o.resume.empty()) {
    // The architecture comes from the checkpoint, not from the flags.
    const recur::ModelCheckpointInfo saved = recur::read_model_checkpoint(o.resume);
    if (saved.rnns.size() != 1 || saved.embeddings.size() != 1) {
      throw std::runtime_error(o.resume + " is not a char_lm checkpoint");
    }
    const recur::RnnConfig& c = saved.rnns[0].second;
    o.cell = c.cell == recur::CellKind::Lstm ? "lstm" : "gru";
    o.connection = recur::to_string(c.connection);
    for (char& ch : o.connection) ch = static_cast<char>(std::tolower(ch));
    o.layers = c.num_layers;
    o.hidden = c.hidden_size;
    o.embed = c.input_size;
    o.dropout = c.dropout;
    o.math = recur::to_string(c.math);
    for (char& ch : o.math) ch = static_cast<char>(std::tolower(ch));
    if (saved.embeddings[0].second.num_embeddings != corpus.vocab_size()) {
      throw std::runtime_error(o.resume + " was trained on a text of another alphabet");
    }
  }
  std::printf(
      "recur %s on %s: %s, %lld layers of %lld, %s connections, %s math; text %s: %zu + %zu "
      "chars, %d symbols\n",
      recur::version(), device.str().c_str(), o.cell.c_str(), static_cast<long long>(o.layers),
      static_cast<long long>(o.hidden), o.connection.c_str(), o.math.c_str(), o.text.c_str(),
      corpus.train_size(), corpus.validation_size(), corpus.vocab_size());
  Model model(o, corpus.vocab_size(), device);
  if (comm != nullptr) {
    comm->expect_same("the model", o.cell + " " + o.connection + " " + o.math + " " +
                                       std::to_string(o.layers) + "x" + std::to_string(o.hidden));
    model.distribute(*comm);
    std::printf("data-parallel over %d ranks: a global batch of %lld sequences\n", ranks,
                static_cast<long long>(ranks * o.batch));
  }
  // Rank 0 writes; the others wait until the file is whole (they may read it next).
  auto save = [&](std::int64_t at, std::int64_t skipped_steps, std::int64_t rolled_back) {
    if (rank == 0) model.save(o.checkpoint, at, skipped_steps, rolled_back);
    if (comm != nullptr) comm->all_gather("");
  };

  std::int64_t step = 0, rollbacks = 0, skipped = 0;
  if (!o.resume.empty()) {
    const recur::TrainingParts resumed = model.load(o.resume);
    step = resumed.step;
    skipped = resumed.counters.count("skipped") ? resumed.counters.at("skipped") : 0;
    rollbacks = resumed.counters.count("rollbacks") ? resumed.counters.at("rollbacks") : 0;
    std::printf("resumed from %s at step %lld\n", o.resume.c_str(), static_cast<long long>(step));
  }
  // There is always a good checkpoint to roll back to.
  save(step, skipped, rollbacks);
  std::int64_t good_step = step;

  recur::GradNorm norm;
  std::vector<std::int32_t> ids, targets;
  double first_loss = -1, last_loss = 0, loss_sum = 0;
  std::int64_t loss_count = 0, poisoned = 0;
  int bad_in_a_row = 0;
  const std::int64_t start_step = step;
  const auto start = std::chrono::steady_clock::now();
  while (step < o.steps) {
    // The batch and the dropout masks depend only on (seed, step, rank), so a resumed or
    // rolled-back run sees the same data and masks as an uninterrupted one.
    const std::uint64_t step_seed = (o.seed * 1000003u + static_cast<std::uint64_t>(step)) ^
                                    (static_cast<std::uint64_t>(rank) * 0x9E3779B97F4A7C15u);
    std::mt19937_64 rng(step_seed);
    corpus.batch(rng, o.seq, o.batch, ids, targets);
    model.rnn.set_dropout_seed(step_seed);
    const bool poison = step >= o.inject_nan_at && poisoned < o.inject_nan_count;
    if (poison) ++poisoned;
    const double loss = model.train_step(ids, targets, o.seq, o.batch, o.clip, poison, norm);
    const bool finite = norm.finite() && std::isfinite(loss);
    ++step;
    if (!finite) {
      ++skipped;
      std::printf("step %lld: non-finite gradient (norm %g), step skipped on the device%s\n",
                  static_cast<long long>(step), norm.norm(),
                  model.scaled ? ", loss scale halved" : "");
      if (++bad_in_a_row >= o.rollback_after) {
        step = model.load(o.checkpoint).step;
        ++rollbacks;
        bad_in_a_row = 0;
        std::printf("%d non-finite steps in a row: rolled back to the checkpoint of step %lld\n",
                    o.rollback_after, static_cast<long long>(step));
      }
      continue;
    }
    bad_in_a_row = 0;
    if (first_loss < 0) first_loss = loss;
    last_loss = loss;
    loss_sum += loss;
    ++loss_count;
    if (step % o.checkpoint_every == 0 || step == o.steps) {
      save(step, skipped, rollbacks);
      good_step = step;
    }
    if (step % o.log_every == 0 || step == o.steps) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double done = static_cast<double>(step - start_step);
      const double tokens = done * static_cast<double>(o.seq * o.batch * ranks);
      std::printf("step %5lld/%lld  loss %.4f  %7.0f tok/s  |g| %7.3f%s  ckpt %lld  eta %s\n",
                  static_cast<long long>(step), static_cast<long long>(o.steps),
                  loss_sum / static_cast<double>(loss_count), tokens / elapsed, norm.norm(),
                  norm.scale() < 1.0 ? " clipped" : "        ", static_cast<long long>(good_step),
                  duration(elapsed / done * static_cast<double>(o.steps - step)).c_str());
      std::fflush(stdout);
      loss_sum = 0;
      loss_count = 0;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double val = model.validation_loss(corpus, o.seq, o.batch, 4);
  std::printf(
      "trained %lld steps in %s: loss %.4f -> %.4f, validation %.4f (%.3f bits/char); "
      "%lld skipped, %lld rollbacks\n",
      static_cast<long long>(step - start_step), duration(seconds).c_str(), first_loss, last_loss,
      val, val / std::log(2.0), static_cast<long long>(skipped), static_cast<long long>(rollbacks));
  if (model.scaled) {
    std::printf("loss scale %g after %lld overflows and %lld growths\n",
                model.scaler.current_scale(), static_cast<long long>(model.scaler.overflows()),
                static_cast<long long>(model.scaler.growths()));
  }
  std::mt19937_64 rng(o.seed);
  std::printf("--- sample ---\n%s\n--------------\n",
              model.sample(corpus, "The ", o.sample, 0.8, rng).c_str());
  return first_loss >= 0 && last_loss < first_loss ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_char_lm: %s\n", e.what());
  return 2;
}
