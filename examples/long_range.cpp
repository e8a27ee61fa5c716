// examples/long_range.cpp: what vanishing and exploding gradients do to training.
//
// The adding problem (examples/adding.h): the first marker is at least T/2 steps before
// the end, so the distance the gradient must travel grows with T.
//
// Two experiments, each a table in DIR/long_range.md and curves in DIR/long_range_*.tsv:
//   1. distance: a tanh RNN, an LSTM and a GRU at several T (Adam, clipping at 1);
//   2. clipping: a ReLU RNN with W_hh scaled to a largest singular value of 4 and SGD
//      with momentum at a high learning rate, without clipping (the loss becomes Inf/NaN)
//      and with clip_grad_norm at 1 (it trains).
// Depth (stacks and the connections between their layers) is examples/depth.cpp.
//
//   long_range [--smoke] [--out DIR] [--only distance|clipping]
//
// --smoke: tiny sizes and a few steps, a few seconds in all (run by CTest).
#include <recur/recur.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "adding.h"

namespace {

using adding::Outcome;
using adding::Setup;
using adding::tail_mean;
using adding::train;

const char* cell_name(recur::CellKind c) {
  switch (c) {
    case recur::CellKind::RnnTanh: return "tanh RNN";
    case recur::CellKind::Lstm: return "LSTM";
    case recur::CellKind::GruLinearBeforeReset: return "GRU";
    default: return recur::to_string(c);
  }
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

class Report {
 public:
  Report(const std::string& dir, const std::string& name) : dir_(dir) {
    md_ = std::fopen((dir + "/" + name).c_str(), "w");
  }
  ~Report() {
    if (md_ != nullptr) std::fclose(md_);
  }
  bool ok() const { return md_ != nullptr; }
  void line(const std::string& s) {
    std::fprintf(md_, "%s\n", s.c_str());
    std::fflush(md_);
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }
  // One curve per run: step, loss, gradient norm.
  void curves(const std::string& file, const std::vector<std::string>& names,
              const std::vector<Outcome>& runs) {
    std::FILE* f = std::fopen((dir_ + "/" + file).c_str(), "w");
    if (f == nullptr) return;
    std::fprintf(f, "run\tstep\tloss\tgrad_norm\n");
    for (std::size_t r = 0; r < runs.size(); ++r) {
      for (std::size_t k = 0; k < runs[r].loss.size(); ++k) {
        std::fprintf(f, "%s\t%zu\t%.6g\t%.6g\n", names[r].c_str(), k, runs[r].loss[k],
                     runs[r].grad_norm[k]);
      }
    }
    std::fclose(f);
  }

 private:
  std::string dir_;
  std::FILE* md_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  bool smoke = false;
  std::string out_dir = ".", only;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--smoke") == 0) {
      smoke = true;
    } else if (std::strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
      out_dir = argv[++a];
    } else if (std::strcmp(argv[a], "--only") == 0 && a + 1 < argc) {
      only = argv[++a];
    } else {
      std::fprintf(stderr, "usage: %s [--smoke] [--out DIR] [--only distance|clipping]\n", argv[0]);
      return 2;
    }
  }
  const recur::Device device =
      recur::cuda_device_count() > 0 ? recur::Device::cuda(0) : recur::Device::cpu();
  Report report(out_dir, only.empty() ? "long_range.md" : "long_range_" + only + ".md");
  if (!report.ok()) {
    std::fprintf(stderr, "cannot write into %s\n", out_dir.c_str());
    return 1;
  }
  using recur::CellKind;
  int failures = 0;

  if (only.empty() || only == "distance") {
    const std::vector<std::int64_t> lengths =
        smoke ? std::vector<std::int64_t>{8} : std::vector<std::int64_t>{10, 50, 100};
    const std::vector<CellKind> cells = {CellKind::RnnTanh, CellKind::Lstm,
                                         CellKind::GruLinearBeforeReset};
    Setup base;
    base.H = smoke ? 8 : 32;
    base.B = smoke ? 8 : 32;
    base.steps = smoke ? 20 : 2000;
    base.lr = 1e-2;
    report.line("### Adding problem: accuracy against distance");
    report.line("");
    report.line(std::to_string(base.steps) + " Adam steps (lr " + fmt("%g", base.lr) + ", batch " +
                std::to_string(base.B) + ", H = " + std::to_string(base.H) +
                ", clipping at 1); accuracy = share of 1000 held-out sequences predicted within "
                "0.04; test MSE (predicting the mean: 0.167).");
    report.line("");
    report.line("| T | cell | accuracy | test MSE | train loss (last 100) | seconds |");
    report.line("| --- | --- | --- | --- | --- | --- |");
    std::vector<std::string> names;
    std::vector<Outcome> runs;
    for (std::int64_t T : lengths) {
      for (CellKind cell : cells) {
        Setup s = base;
        s.cell = cell;
        s.T = T;
        const Outcome o = train(s, device);
        report.line("| " + std::to_string(T) + " | " + cell_name(cell) + " | " +
                    fmt("%.1f%%", 100 * o.accuracy) + " | " + fmt("%.4f", o.test_mse) + " | " +
                    fmt("%.4f", tail_mean(o.loss, 100)) + " | " + fmt("%.0f", o.seconds) + " |");
        names.push_back(std::string(cell_name(cell)) + ", T=" + std::to_string(T));
        runs.push_back(o);
        if (!std::isfinite(o.test_mse)) ++failures;
      }
    }
    report.line("");
    report.curves("long_range_distance.tsv", names, runs);
  }

  if (only.empty() || only == "clipping") {
    Setup base;
    base.cell = CellKind::RnnRelu;
    base.T = 15;
    base.H = smoke ? 16 : 32;
    base.B = smoke ? 8 : 32;
    base.steps = smoke ? 20 : 1500;
    base.adam = false;
    base.lr = 0.03;
    base.momentum = 0.9;
    base.head_lr = 0.01;
    base.sigma = 4.0;
    report.line("### Exploding gradients: the same run without and with clipping");
    report.line("");
    report.line(
        "ReLU RNN, W_hh scaled to sigma_max = " + fmt("%g", base.sigma) +
        ", adding problem at T = " + std::to_string(base.T) + ", H = " + std::to_string(base.H) +
        ", SGD with momentum " + fmt("%g", base.momentum) + " at lr " + fmt("%g", base.lr) +
        " (the linear head at " + fmt("%g", base.head_lr) + "), " + std::to_string(base.steps) +
        " steps; the optimizer is not given the norm, so nothing skips a step.");
    report.line("");
    report.line(
        "| run | first non-finite step | largest gradient norm | train loss (last 50) | test MSE "
        "| accuracy |");
    report.line("| --- | --- | --- | --- | --- | --- |");
    std::vector<std::string> names;
    std::vector<Outcome> runs;
    for (double clip : {0.0, 1.0}) {
      Setup s = base;
      s.clip = clip;
      const Outcome o = train(s, device);
      double largest = 0;
      for (double g : o.grad_norm) {
        if (std::isfinite(g)) largest = std::max(largest, g);
      }
      const std::string name = clip > 0 ? "clip_grad_norm at 1" : "no clipping";
      report.line(
          "| " + name + " | " +
          (o.first_nonfinite < 0 ? std::string("none") : std::to_string(o.first_nonfinite)) +
          " | " + fmt("%.3g", largest) + " | " + fmt("%.4g", tail_mean(o.loss, 50)) + " | " +
          fmt("%.4g", o.test_mse) + " | " + fmt("%.1f%%", 100 * o.accuracy) + " |");
      names.push_back(name);
      runs.push_back(o);
    }
    report.line("");
    report.curves("long_range_clipping.tsv", names, runs);
  }

  return failures == 0 ? 0 : 1;
}
