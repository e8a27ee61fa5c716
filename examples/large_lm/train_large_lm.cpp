// examples/large_lm/train_large_lm.cpp: a token-level LSTM language model built from a
// config, trained for throughput: tokens/s, model FLOP utilisation (MFU) and peak memory.
//
//   Embedding(V, E) -> L-layer LSTM (H) -> Linear(H, V) -> softmax cross-entropy
//   one Adam over the three modules, global-norm clipping on the device, FP16 loss scaling
//
// Presets (--config): tiny (CTest, seconds on a CPU), small (the CPU side-by-side with
// PyTorch, bench/torch_large_lm.py), 1b (8 x LSTM-4096, vocabulary 8192: 1.14 B
// parameters, for one GPU). Flags override a preset. Data: the bytes of a local file
// (--text, V = 256) or a synthetic stream (a noisy permutation of the previous token,
// which a model can learn). Steps after --warmup are timed; the loss is read back only
// every --log-every steps. Model FLOPs per token: 3 x (2 x 4H(I_l + H) per layer + 2HV),
// the products of forward and backward; MFU divides by --peak-tflops (on a GPU, the
// card's dense peak of the chosen math; on a CPU none unless given).
#include <recur/recur.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace recur;

namespace {

struct Config {
  std::int64_t layers, hidden, embed, vocab, seq, batch, steps, warmup, log_every;
  std::int64_t proj = 0;  // LSTM projection (BIG LSTM's), 0 for none
};

const std::map<std::string, Config> kPresets = {
    {"tiny", {2, 64, 64, 256, 32, 16, 60, 2, 20}},
    {"small", {2, 512, 512, 1024, 64, 32, 30, 3, 10}},
    {"1b", {8, 4096, 4096, 8192, 128, 64, 50, 5, 10}},
};

// The training stream: a file's bytes, or tokens x_t = (37 x_{t-1} + 11) mod V with one
// in eight replaced by noise (about 1 nat per token to learn away from log V).
std::vector<std::int32_t> token_stream(const std::string& text, std::int64_t* vocab) {
  std::vector<std::int32_t> out;
  if (!text.empty()) {
    std::ifstream f(text, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + text);
    for (std::istreambuf_iterator<char> it(f), end; it != end; ++it) {
      out.push_back(static_cast<unsigned char>(*it));
    }
    *vocab = 256;
    return out;
  }
  std::mt19937_64 rng(1);
  out = {1};
  for (int i = 1; i < 1 << 22; ++i) {
    const std::int64_t next = (37 * out[i - 1] + 11) % *vocab;
    out.push_back(static_cast<std::int32_t>(rng() % 8 == 0 ? rng() % *vocab : next));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  std::map<std::string, std::string> o = {
      {"--config", "tiny"},  {"--device", "auto"},      {"--math", "fp32"},    {"--text", ""},
      {"--lr", "3e-3"},      {"--clip", "1.0"},         {"--peak-tflops", ""}, {"--json", ""},
      {"--distributed", ""}, {"--activations", "store"}};
  const char* kNumbers[] = {"--layers", "--hidden", "--embed",  "--vocab",     "--seq",
                            "--batch",  "--steps",  "--warmup", "--log-every", "--proj"};
  for (const char* k : kNumbers) o[k] = "";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (o.count(a) == 0 || i + 1 >= argc) {
      std::fprintf(stderr,
                   "usage: train_large_lm [--config tiny|small|1b] [--device auto|cpu|cuda]\n"
                   "  [--math fp32|tf32|bf16|fp16] [--text FILE] [--layers N] [--hidden N]\n"
                   "  [--embed N] [--vocab N] [--seq N] [--batch N] [--steps N] [--warmup N]\n"
                   "  [--log-every N] [--proj P] [--lr X] [--clip X] [--peak-tflops X]\n"
                   "  [--json FILE]   (--proj: h = W_hr (o*tanh c) of P features)\n"
                   "  [--distributed mpi|nccl]   (under mpirun: CPU ranks, or a GPU each)\n"
                   "  [--activations store|recompute]   (recompute: sqrt(T)-step segments)\n");
      return 2;
    }
    o[a] = argv[++i];
  }
  if (kPresets.count(o["--config"]) == 0) throw std::runtime_error("unknown --config");
  Config c = kPresets.at(o["--config"]);
  std::int64_t* fields[] = {&c.layers, &c.hidden, &c.embed,  &c.vocab,     &c.seq,
                            &c.batch,  &c.steps,  &c.warmup, &c.log_every, &c.proj};
  for (int k = 0; k < 10; ++k) {
    if (!o[kNumbers[k]].empty()) *fields[k] = std::stoll(o[kNumbers[k]]);
  }
  // --distributed: each rank a batch of its own, the gradients averaged over the ranks (MPI
  // on CPU ranks, NCCL on one GPU per local rank); rank 0 reports the whole job's tokens/s.
  std::shared_ptr<Communicator> mpi, comm;
  if (!o["--distributed"].empty()) {
    mpi = mpi_communicator();
    comm = o["--distributed"] == "nccl" ? nccl_communicator(*mpi) : mpi;
    if (comm->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) return 2;
  }
  const int rank = comm != nullptr ? comm->rank() : 0, ranks = comm != nullptr ? comm->size() : 1;
  const bool gpu = comm != nullptr ? comm->device().is_cuda()
                                   : o["--device"] == "cuda" ||
                                         (o["--device"] == "auto" && cuda_device_count() > 0);
  const Device d = comm != nullptr ? comm->device() : gpu ? Device::cuda(0) : Device::cpu();
  const std::map<std::string, Math> maths = {
      {"fp32", Math::Fp32}, {"tf32", Math::Tf32}, {"bf16", Math::Bf16}, {"fp16", Math::Fp16}};
  const Math math = maths.at(o["--math"]);
  const std::vector<std::int32_t> stream = token_stream(o["--text"], &c.vocab);

  RnnConfig rc;
  rc.cell = CellKind::Lstm;
  rc.input_size = c.embed;
  rc.hidden_size = c.hidden;
  rc.num_layers = c.layers;
  rc.proj_size = c.proj;
  rc.math = math;
  const std::int64_t out = c.proj > 0 ? c.proj : c.hidden;  // h's features
  EmbeddingOptions eo;
  eo.device = d;
  Embedding embed(c.vocab, c.embed, eo);
  Rnn rnn(rc, d, 2);
  Linear head(out, c.vocab, true, DType::Float32, d, 3);
  Adam opt({{"embed", embed.parameters(), embed.gradients()},
            {"rnn", rnn.parameters(), rnn.gradients()},
            {"head", head.parameters(), head.gradients()}},
           {std::stod(o["--lr"])});
  LossScaler scaler(d);
  const bool scaled = math == Math::Fp16;
  SoftmaxCrossEntropy xent;
  GradNorm norm;
  const std::int64_t params =
      embed.parameters().numel() + rnn.parameters().numel() + head.parameters().numel();

  ForwardOptions rnn_options;
  if (o["--activations"] == "recompute") {
    rnn_options.activations = ActivationMemory::Recompute;
  } else if (o["--activations"] != "store") {
    throw std::runtime_error("unknown --activations");
  }
  // The RNN's share of a step, told before any step runs (Adam's two slots).
  const StepMemory need = rnn.step_memory(c.seq, c.batch, rnn_options);
  auto gib = [](std::int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); };
  std::printf(
      "rnn step memory %.2f GiB: parameters and gradients %.2f, Adam %.2f, activations %.2f, "
      "workspace %.2f, outputs %.2f, weight copies %.2f\n",
      gib(need.total()), gib(need.parameters + need.gradients), gib(need.optimizer_state),
      gib(need.activations), gib(need.workspace), gib(need.outputs), gib(need.weight_copies));

  std::unique_ptr<DataParallel> dp;
  if (comm != nullptr) {
    dp = std::make_unique<DataParallel>(
        *comm, std::vector<TensorView>{head.gradients(), rnn.gradients(), embed.gradients()});
    dp->broadcast({head.parameters(), rnn.parameters(), embed.parameters()});
  }
  auto ready = [&](std::size_t part) {
    if (dp != nullptr) dp->ready(part);  // its sums run while the next backward does
  };
  std::mt19937_64 rng(3 + static_cast<std::uint64_t>(rank));
  auto batch_of = [&](std::vector<std::int32_t>& ids, std::vector<std::int32_t>& targets) {
    ids.resize(static_cast<std::size_t>(c.seq * c.batch));
    targets.resize(ids.size());
    for (std::int64_t b = 0; b < c.batch; ++b) {
      const std::size_t start = rng() % (stream.size() - static_cast<std::size_t>(c.seq) - 1);
      for (std::int64_t t = 0; t < c.seq; ++t) {
        ids[static_cast<std::size_t>(t * c.batch + b)] = stream[start + t];
        targets[static_cast<std::size_t>(t * c.batch + b)] = stream[start + t + 1];
      }
    }
  };
  std::vector<std::int32_t> ids, targets;
  double first_loss = 0, last_loss = 0;
  auto clock = std::chrono::steady_clock::now();
  for (std::int64_t s = 1; s <= c.warmup + c.steps; ++s) {
    if (s == c.warmup + 1) {
      rnn.synchronize();
      clock = std::chrono::steady_clock::now();
    }
    batch_of(ids, targets);
    const Tensor id = Tensor::from_vector(ids, {c.seq, c.batch}, d);
    const Tensor target = Tensor::from_vector(targets, {c.seq * c.batch}, d);
    opt.zero_grad();
    const Tensor x = embed.forward(id);
    const ForwardResult r = rnn.forward(x, rnn_options);
    CrossEntropyResult ce = xent.forward_backward(head.forward(r.y), target);
    if (scaled) scaler.scale_loss_gradient(ce.dlogits);
    const Tensor dy = head.backward(r.y, ce.dlogits);
    ready(0);
    const BackwardResult g = rnn.backward(dy);
    ready(1);
    embed.backward(id, g.dx);
    ready(2);
    if (dp != nullptr) dp->finish();
    if (scaled) scaler.unscale_gradients(opt.gradients());
    clip_grad_norm(opt.gradients(), std::stod(o["--clip"]), norm);
    opt.step(&norm);
    if (scaled) scaler.update(norm);
    if (s == 1 || s % c.log_every == 0 || s == c.warmup + c.steps) {
      last_loss = ce.loss.to_vector<float>()[0];  // the only host read
      if (s == 1) first_loss = last_loss;
      std::printf("step %lld  loss %.4f\n", static_cast<long long>(s), last_loss);
    }
  }
  rnn.synchronize();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - clock).count();
  const double tokens_per_s = static_cast<double>(c.seq * c.batch * c.steps * ranks) / seconds;
  double flops_per_token = 2.0 * static_cast<double>(out * c.vocab);
  for (std::int64_t l = 0; l < c.layers; ++l) {
    flops_per_token += 2.0 * 4 * c.hidden * ((l == 0 ? c.embed : out) + out);
    if (c.proj > 0) flops_per_token += 2.0 * c.proj * c.hidden;  // W_hr m_t
  }
  flops_per_token *= 3;  // forward, and backward's two products per forward product
  const double default_peak = !gpu                 ? 0.0
                              : math == Math::Fp32 ? 67.0
                              : math == Math::Tf32 ? 494.7
                                                   : 989.4;  // H100/H200 SXM, dense
  const double peak = o["--peak-tflops"].empty() ? default_peak : std::stod(o["--peak-tflops"]);
  const double mfu = peak > 0 ? flops_per_token * tokens_per_s / (peak * 1e12 * ranks) : 0.0;
  const double peak_gib = static_cast<double>(memory_stats(d).peak_bytes) / (1 << 30);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const std::int64_t rss = static_cast<std::int64_t>(usage.ru_maxrss) * 1024;  // process peak
  std::printf(
      "%s: %lld parameters, %s %s, %.0f tokens/s, MFU %.1f%%, peak memory %.2f GiB "
      "(process rss %.2f GiB), loss %.3f -> %.3f\n",
      o["--config"].c_str(), static_cast<long long>(params), d.str().c_str(), o["--math"].c_str(),
      tokens_per_s, 100 * mfu, peak_gib, static_cast<double>(rss) / (1 << 30), first_loss,
      last_loss);
  if (!o["--json"].empty()) {
    std::ofstream j(o["--json"]);
    j << "{\"impl\": \"recur\", \"config\": \"" << o["--config"] << "\", \"ranks\": " << ranks
      << ", \"device\": \"" << d.str() << "\", \"math\": \"" << o["--math"]
      << "\", \"parameters\": " << params << ", \"tokens_per_s\": " << tokens_per_s
      << ", \"mfu\": " << mfu << ", \"peak_bytes\": " << memory_stats(d).peak_bytes
      << ", \"rnn_step_bytes\": " << need.total() << ", \"peak_rss\": " << rss
      << ", \"first_loss\": " << first_loss << ", \"last_loss\": " << last_loss << "}\n";
  }
  return last_loss < first_loss ? 0 : 1;  // it must learn something
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_large_lm: %s\n", e.what());
  return 1;
}
