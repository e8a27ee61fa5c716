// examples/seq_classify/seq_classify.cpp: a sequence classifier on the trainer API, CPU or GPU,
// no host loop between modules: Embedding (padding_idx 0) -> bidirectional GRU over
// variable lengths -> both directions' final states -> Linear -> cross-entropy. Task: which of
// tokens 1-3 occurs most often among noise tokens 4-9. --smoke fails unless it learns.
#include <recur/recur.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace recur;

namespace {

constexpr std::int64_t kVocab = 10, kEmbed = 16;

struct Batch {
  Tensor ids, labels;                 // [T, B] and [B], int32, on the model's device
  std::vector<std::int64_t> lengths;  // [B], for the Rnn
};

Batch make_batch(std::mt19937_64& rng, std::int64_t batch, Device device) {
  Batch b;
  std::vector<std::vector<std::int32_t>> seqs;
  std::vector<std::int32_t> labels;
  while (static_cast<std::int64_t>(seqs.size()) < batch) {
    std::vector<std::int32_t> s(4 + rng() % 21);
    int n[kVocab] = {};
    for (std::int32_t& t : s) ++n[t = static_cast<std::int32_t>(1 + rng() % (kVocab - 1))];
    if (n[1] == n[2] || n[2] == n[3] || n[1] == n[3]) continue;  // no ties
    labels.push_back(static_cast<std::int32_t>(std::max_element(n + 1, n + 4) - (n + 1)));
    b.lengths.push_back(static_cast<std::int64_t>(s.size()));
    seqs.push_back(std::move(s));
  }
  const std::int64_t steps = *std::max_element(b.lengths.begin(), b.lengths.end());
  std::vector<std::int32_t> ids(static_cast<std::size_t>(steps * batch), 0);  // 0 pads
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    for (std::size_t t = 0; t < seqs[i].size(); ++t) ids[t * seqs.size() + i] = seqs[i][t];
  }
  b.ids = Tensor::from_vector(ids, {steps, batch}, device);
  b.labels = Tensor::from_vector(labels, {batch}, device);
  return b;
}

// The last layer's final states [forward | reverse], [B, 2H], from h_n [L*2, B, H]; and back.
Tensor features(const Tensor& h_n) {
  const std::int64_t l2 = h_n.size(0), b = h_n.size(1), h = h_n.size(2);
  return concat(
      {reshape(narrow(h_n, 0, l2 - 2, 1), {b, h}), reshape(narrow(h_n, 0, l2 - 1, 1), {b, h})}, 1);
}
Tensor features_backward(const Tensor& d, const Shape& h_n) {
  const std::int64_t b = h_n[1], h = h_n[2];
  std::vector<Tensor> dirs = split(d, {h, h}, 1);
  const Tensor last = concat({reshape(dirs[0], {1, b, h}), reshape(dirs[1], {1, b, h})}, 0);
  return narrow_backward(last, h_n, 0, h_n[0] - 2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::map<std::string, std::string> o = {
      {"--device", "auto"}, {"--steps", "1500"}, {"--batch", "64"},
      {"--hidden", "64"},   {"--layers", "1"},   {"--checkpoint", ""},
      {"--resume", ""},     {"--smoke", ""},     {"--activations", "store"}};
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--smoke") {  // seconds, in CTest
      o["--smoke"] = "1", o["--steps"] = "400", o["--batch"] = "32", o["--hidden"] = "32";
    } else if (o.count(argv[i]) == 0 || i + 1 >= argc) {
      std::fprintf(stderr, "usage: seq_classify [--OPTION VALUE]... [--smoke]; options:");
      for (const auto& [k, v] : o) std::fprintf(stderr, " %s (%s)", k.c_str(), v.c_str());
      return std::fprintf(stderr, "\n"), 2;
    } else {
      o[argv[i]] = argv[i + 1], ++i;
    }
  }
  // recompute: the training forwards keep what flows between the layers and the backward
  // rebuilds each layer's steps (a bidirectional stack of at least 2 layers).
  if (o["--activations"] != "store" && o["--activations"] != "recompute") {
    return std::fprintf(stderr, "--activations: store or recompute\n"), 2;
  }
  const bool gpu = o["--device"] == "cuda" || (o["--device"] == "auto" && cuda_device_count() > 0);
  const Device d = gpu ? Device::cuda(0) : Device::cpu();
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = kEmbed;
  c.hidden_size = std::stoll(o["--hidden"]);
  c.num_layers = std::stoll(o["--layers"]);
  c.bidirectional = true;
  if (!o["--resume"].empty()) c = read_model_checkpoint(o["--resume"]).rnns.at(0).second;
  EmbeddingOptions eo;
  eo.device = d;
  eo.padding_idx = 0;
  Embedding embed(kVocab, kEmbed, eo);
  Rnn rnn(c, d, 2);
  Linear head(2 * c.hidden_size, 3, true, DType::Float32, d, 3);
  Adam opt({{"embed", embed.parameters(), embed.gradients()},
            {"rnn", rnn.parameters(), rnn.gradients()},
            {"head", head.parameters(), head.gradients()}},
           {3e-3});
  const ModelParts parts{{{"rnn", &rnn}}, {{"embed", &embed}}, {{"head", &head}}};
  TrainingParts training;
  training.optimizer = &opt;
  if (!o["--resume"].empty()) load_model_checkpoint(o["--resume"], parts, training);

  ForwardResult r;  // the last forward's, for its backward
  Tensor feat;
  auto logits = [&](const Batch& b, Mode mode) {
    ForwardOptions fo;
    fo.mode = mode;
    fo.lengths = b.lengths;
    if (mode == Mode::Training && o["--activations"] == "recompute") {
      fo.activations = ActivationMemory::Recompute;
    }
    r = rnn.forward(embed.forward(b.ids), fo);
    feat = features(r.h_n);
    return head.forward(feat);
  };
  SoftmaxCrossEntropy xent;
  std::mt19937_64 rng(42 + static_cast<std::uint64_t>(training.step)), held_out(7);
  for (std::int64_t s = 1, steps = std::stoll(o["--steps"]); s <= steps; ++s, ++training.step) {
    const Batch b = make_batch(rng, std::stoll(o["--batch"]), d);
    opt.zero_grad();
    CrossEntropyResult ce = xent.forward_backward(logits(b, Mode::Training), b.labels);
    const Tensor dh_n = features_backward(head.backward(feat, ce.dlogits), r.h_n.shape());
    BackwardOptions bo;
    bo.dh_n = dh_n;
    embed.backward(b.ids, rnn.backward(TensorView(), bo).dx);  // dy: zeros, only h_n is used
    GradNorm norm;
    clip_grad_norm(opt.gradients(), 1.0, norm);
    opt.step(&norm);
    if (s % 100 == 0) std::printf("loss %.4f\n", ce.loss.to_vector<float>()[0]);  // a host read
  }
  Tensor totals = Tensor::zeros({2}, DType::Int64, d);  // correct, counted: on the device
  for (int i = 0; i < 20; ++i) {
    const Batch b = make_batch(held_out, 50, d);
    count_correct(logits(b, Mode::Inference), b.labels, totals);
  }
  const std::vector<std::int64_t> t = totals.to_vector<std::int64_t>();  // the one read
  const double accuracy = static_cast<double>(t[0]) / static_cast<double>(t[1]);
  std::printf("held-out accuracy %.3f on %s\n", accuracy, d.str().c_str());
  if (!o["--checkpoint"].empty()) save_model_checkpoint(o["--checkpoint"], parts, training);
  return !o["--smoke"].empty() && accuracy < 0.6 ? 1 : 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "seq_classify: %s\n", e.what());
  return 1;
}
