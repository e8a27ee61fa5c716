// examples/depth.cpp: which connections between layers let a deep RNN stack train.
//
// tanh RNN and LSTM stacks of 2, 4, 8 and 16 layers with each connection (None, Residual,
// Highway, Dense; include/recur/config.h) learn the adding problem (examples/adding.h),
// where the loss reads the top layer at the last step only: every layer the stack adds is
// one more Jacobian between the loss and the input, on top of the T steps back to the
// markers. One layer of the same cell is the reference; the task needs no more.
//
// Each (cell, connection, depth) is trained at every learning rate of a small sweep, and
// Highway also at every start of its transform-gate bias b_g (g = sigmoid(W_g u + b_g),
// u_{l+1} = g*y_l + (1-g)*u_l; b_g < 0 starts in carry, Srivastava et al. 2015). The
// setting with the lowest validation MSE is kept and its test MSE reported (validation
// and test are separate held-out sets). At 16 layers each connection runs once, at the
// setting that won at 8 layers, which keeps the whole run in minutes.
//
// For each kept run, recur::gradient_flow gives ||dJ/dh_j|| in every layer for
// J = <w, y_{T-1}> (w uniform, ||w|| = 1) on a fixed probe batch, before and after
// training: how much of a unit gradient at the output reaches the first layer. For
// Highway the mean gate g of every layer is measured too (by the same stack cut after
// l layers, whose output is u_l, and W_g, b_g of layer l).
//
//   depth [--smoke] [--out DIR]
//
// Writes DIR/depth.md (tables), DIR/depth_runs.tsv (every run), DIR/depth_curves.tsv
// (training curves), DIR/depth_flow.tsv (gradient norms per layer and step),
// DIR/depth_gates.tsv (highway gates per layer); examples/plot_gradients.py plots them.
// --smoke: tiny sizes and a few steps, a few seconds in all (run by CTest).
#include <recur/recur.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "adding.h"

namespace {

using recur::CellKind;
using recur::Connection;

const char* cell_name(CellKind c) { return c == CellKind::RnnTanh ? "tanh RNN" : "LSTM"; }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// One training run and what was measured on it.
struct Run {
  adding::Setup setup;
  adding::Outcome outcome;
  adding::Score val, test;
  recur::GradientFlow flow_init, flow_trained;
  std::vector<double> gates_init, gates_trained;  // mean g per layer (NaN: no highway there)
  bool kept = false;
};

// NaN (a run that diverged) sorts last.
double rank(double mse) { return std::isfinite(mse) ? mse : std::numeric_limits<double>::max(); }

// The mean transform gate of every layer on the probe input: layer l's gate reads u_l,
// the output of the stack's first l layers, so a copy of those layers computes it.
std::vector<double> highway_gates(const adding::Model& m, const recur::TensorView& x) {
  const recur::RnnConfig& full = m.rnn.config();
  const std::int64_t L = full.num_layers, H = full.hidden_size;
  std::vector<double> gates(static_cast<std::size_t>(L), std::nan(""));
  for (std::int64_t l = 1; l < L; ++l) {
    const std::string w = "highway_weight_l" + std::to_string(l);
    const std::string b = "highway_bias_l" + std::to_string(l);
    recur::RnnConfig config = full;
    config.num_layers = l;
    // One layer has no highway (its input is x, of another width), and recur refuses one.
    if (l == 1) config.connection = recur::Connection::None;
    recur::Rnn lower(config, m.rnn.device());
    for (const recur::ParamInfo& info : lower.parameter_info()) {
      lower.parameter(info.name).copy_from(m.rnn.parameter(info.name));
    }
    const recur::ForwardResult f = lower.forward(x, {}, {}, recur::Mode::Inference);
    recur::Linear gate(H, H, true, recur::DType::Float32, m.rnn.device());
    gate.weight().copy_from(m.rnn.parameter(w));
    gate.bias().copy_from(m.rnn.parameter(b));
    const std::vector<float> z = gate.forward(f.y).to_vector<float>();
    double sum = 0;
    for (float v : z) sum += 1.0 / (1.0 + std::exp(-static_cast<double>(v)));
    gates[static_cast<std::size_t>(l)] = sum / static_cast<double>(z.size());
  }
  return gates;
}

class Experiment {
 public:
  Experiment(std::int64_t T, std::int64_t B, std::int64_t H, int steps, recur::Device device)
      : T_(T), B_(B), H_(H), steps_(steps), device_(device) {
    adding::Random rng(99);
    probe_ = adding::make_batch(T, 32, rng).x;
  }

  // Trains one setting and measures it; prints one progress line.
  Run run(CellKind cell, Connection connection, std::int64_t layers, double lr, double bias) {
    Run r;
    adding::Setup& s = r.setup;
    s.cell = cell;
    s.connection = connection;
    s.layers = layers;
    s.lr = lr;
    s.gate_bias = bias;
    s.T = T_;
    s.B = B_;
    s.H = H_;
    s.steps = steps_;
    s.adam = true;
    s.clip = 1.0;
    adding::Model m = adding::make_model(s, device_);
    const recur::Tensor x = recur::Tensor::from_vector(probe_, {T_, 32, 2}, device_);
    r.flow_init = recur::gradient_flow(m.rnn, x, T_ - 1);
    if (connection == Connection::Highway) r.gates_init = highway_gates(m, x);
    adding::fit(m, s, r.outcome);
    r.val = adding::evaluate(m, T_, 500, 777777 + static_cast<std::uint64_t>(T_));
    r.test = adding::evaluate(m, T_, 1000, adding::test_seed(T_));
    r.flow_trained = recur::gradient_flow(m.rnn, x, T_ - 1);
    if (connection == Connection::Highway) r.gates_trained = highway_gates(m, x);
    std::printf("  %-8s %-8s L=%-2lld lr=%-6g b_g=%-3g  val %.4f  test %.4f  (%.1f s)\n",
                cell_name(cell), recur::to_string(connection), static_cast<long long>(layers), lr,
                bias, r.val.mse, r.test.mse, r.outcome.seconds);
    std::fflush(stdout);
    return r;
  }

  std::int64_t T() const { return T_; }

 private:
  std::int64_t T_, B_, H_;
  int steps_;
  recur::Device device_;
  std::vector<float> probe_;
};

// The run with the lowest validation MSE among runs[first, last).
std::size_t best(const std::vector<Run>& runs, std::size_t first, std::size_t last) {
  std::size_t k = first;
  for (std::size_t r = first; r < last; ++r) {
    if (rank(runs[r].val.mse) < rank(runs[k].val.mse)) k = r;
  }
  return k;
}

// The first step at which the mean train MSE of the last 50 steps is below `level`, -1 if
// none: when the run left the plateau at the mean (1/6), where every run starts.
int left_plateau(const std::vector<double>& loss, double level) {
  double sum = 0;
  for (std::size_t s = 0; s < loss.size(); ++s) {
    sum += loss[s];
    if (s >= 50) sum -= loss[s - 50];
    if (s >= 49 && sum / 50 < level) return static_cast<int>(s);
  }
  return -1;
}

std::string setting(const Run& r) {
  std::string s = "lr " + fmt("%g", r.setup.lr);
  if (r.setup.connection == Connection::Highway) s += ", b_g " + fmt("%g", r.setup.gate_bias);
  return s;
}

// Layer 0's ||dJ/dh_j|| at step j (the gradient that crossed the depth and i - j steps).
double first_layer(const recur::GradientFlow& f, std::int64_t j) { return f.norm(0, 0, j); }

// The mean ||dJ/dh_j|| over layers 1..L-1: what the layers above the first receive.
double upper_layers(const recur::GradientFlow& f, std::int64_t j) {
  double sum = 0;
  for (std::int64_t l = 1; l < f.layers; ++l) sum += f.norm(l, 0, j);
  return f.layers > 1 ? sum / static_cast<double>(f.layers - 1) : std::nan("");
}

std::string run_key(const Run& r) {
  return std::string(cell_name(r.setup.cell)) + "\t" + recur::to_string(r.setup.connection) + "\t" +
         std::to_string(r.setup.layers) + "\t" + fmt("%g", r.setup.lr) + "\t" +
         fmt("%g", r.setup.gate_bias);
}

}  // namespace

int main(int argc, char** argv) {
  bool smoke = false;
  std::string out_dir = ".", only;
  std::int64_t T = 10;
  int steps = 1500;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--smoke") == 0) {
      smoke = true;
    } else if (std::strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
      out_dir = argv[++a];
    } else if (std::strcmp(argv[a], "--cell") == 0 && a + 1 < argc) {
      only = argv[++a];
    } else if (std::strcmp(argv[a], "--T") == 0 && a + 1 < argc) {
      T = std::max(2L, std::strtol(argv[++a], nullptr, 10));
    } else if (std::strcmp(argv[a], "--steps") == 0 && a + 1 < argc) {
      steps = std::max(1, std::atoi(argv[++a]));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--smoke] [--out DIR] [--cell tanh|lstm] [--T N] [--steps N]\n",
                   argv[0]);
      return 2;
    }
  }
  const recur::Device device =
      recur::cuda_device_count() > 0 ? recur::Device::cuda(0) : recur::Device::cpu();
  if (smoke) T = 6, steps = 10;
  const std::int64_t B = smoke ? 8 : 32, H = smoke ? 8 : 32;
  const std::vector<std::int64_t> depths =
      smoke ? std::vector<std::int64_t>{2, 3} : std::vector<std::int64_t>{2, 4, 8, 16};
  // The depth the notes promise ("up to 8 layers") gets the closer look.
  const std::int64_t focus = smoke ? 2 : 8;
  // Adam's learning rate, per cell: the tanh RNN leaves its plateau at the mean with
  // smaller steps than the LSTM takes, and two points of each keep the run in minutes.
  auto lrs_of = [&](CellKind cell) {
    if (smoke) return std::vector<double>{1e-2};
    return cell == CellKind::RnnTanh ? std::vector<double>{1e-3, 3e-3}
                                     : std::vector<double>{3e-3, 1e-2};
  };
  const std::vector<double> biases =
      smoke ? std::vector<double>{0, -2} : std::vector<double>{0, -1, -2, -4};
  std::vector<CellKind> cells;
  if (only.empty() || only == "tanh") cells.push_back(CellKind::RnnTanh);
  if (only.empty() || only == "lstm") cells.push_back(CellKind::Lstm);
  if (cells.empty()) {
    std::fprintf(stderr, "--cell: tanh or lstm, not %s\n", only.c_str());
    return 2;
  }
  const std::vector<Connection> connections = {Connection::None, Connection::Residual,
                                               Connection::Highway, Connection::Dense};

  const std::string md_path = out_dir + "/depth.md";
  std::FILE* md = std::fopen(md_path.c_str(), "w");
  if (md == nullptr) {
    std::fprintf(stderr, "cannot write %s\n", md_path.c_str());
    return 1;
  }
  auto line = [&](const std::string& s) { std::fprintf(md, "%s\n", s.c_str()); };
  std::printf("depth on %s: adding problem at T = %lld, H = %lld, batch %lld, %d Adam steps\n",
              device.str().c_str(), static_cast<long long>(T), static_cast<long long>(H),
              static_cast<long long>(B), steps);

  const auto start = std::chrono::steady_clock::now();
  Experiment experiment(T, B, H, steps, device);
  std::vector<Run> runs;
  // kept[cell][connection][depth index]: index 0 is the one-layer reference (the same run
  // for every connection), then one per entry of `depths`.
  std::vector<std::int64_t> all_depths = {1};
  all_depths.insert(all_depths.end(), depths.begin(), depths.end());
  std::vector<std::vector<std::vector<std::size_t>>> kept(
      cells.size(), std::vector<std::vector<std::size_t>>(
                        connections.size(), std::vector<std::size_t>(all_depths.size())));
  std::size_t focus_index = 0;
  for (std::size_t d = 0; d < all_depths.size(); ++d) {
    if (all_depths[d] == focus) focus_index = d;
  }
  int failures = 0;
  for (std::size_t c = 0; c < cells.size(); ++c) {
    const std::vector<double> lrs = lrs_of(cells[c]);
    std::size_t first = runs.size();
    for (double lr : lrs) runs.push_back(experiment.run(cells[c], Connection::None, 1, lr, 0));
    const std::size_t one = best(runs, first, runs.size());
    runs[one].kept = true;
    for (std::size_t k = 0; k < connections.size(); ++k) kept[c][k][0] = one;
    for (std::size_t d = 1; d < all_depths.size(); ++d) {
      for (std::size_t k = 0; k < connections.size(); ++k) {
        first = runs.size();
        for (double lr : lrs) {
          if (connections[k] != Connection::Highway) {
            runs.push_back(experiment.run(cells[c], connections[k], all_depths[d], lr, 0));
            continue;
          }
          for (double b : biases) {
            runs.push_back(experiment.run(cells[c], connections[k], all_depths[d], lr, b));
          }
        }
        kept[c][k][d] = best(runs, first, runs.size());
        runs[kept[c][k][d]].kept = true;
      }
    }
  }
  for (const Run& r : runs) {
    if (r.kept && !std::isfinite(r.test.mse)) ++failures;
  }

  // Tables. A stack counts as trained when its MSE is below a tenth of the mean predictor's
  // (1/60): it has left the plateau at the mean, where a failed run stays.
  const double trained = 1.0 / 60.0;
  const std::string depth_list = [&] {
    std::string s;
    for (std::size_t d = 1; d < all_depths.size(); ++d) {
      s += (d > 1 ? (d + 1 == all_depths.size() ? " and " : ", ") : "") +
           std::to_string(all_depths[d]);
    }
    return s;
  }();
  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ", ") + fmt("%g", x);
    return s;
  };
  const std::string bias_list = list(biases);
  line("Adding problem at T = " + std::to_string(T) + ", H = " + std::to_string(H) + ", batch " +
       std::to_string(B) + ", " + std::to_string(steps) +
       " Adam steps, clipping at 1, float32; stacks of " + depth_list +
       " layers. Every (cell, connection, depth) is trained at each Adam learning rate of its "
       "cell (tanh RNN: " +
       list(lrs_of(CellKind::RnnTanh)) + "; LSTM: " + list(lrs_of(CellKind::Lstm)) +
       "), Highway also at every transform-gate bias b_g in {" + bias_list +
       "}; the setting with the lowest MSE on 500 validation sequences is kept (shown), and its "
       "MSE on 1000 other test sequences is reported (predicting the mean: 0.167). One seed "
       "per setting. Layer 0 reads the 2 input features, so the residual and highway "
       "connections start at layer 1 (a skip needs equal widths); Dense feeds every layer "
       "x and all outputs below it. The one-layer stack (its best lr) is the reference.");
  line("");
  for (std::size_t c = 0; c < cells.size(); ++c) {
    line("#### " + std::string(cell_name(cells[c])) +
         ": test MSE (in brackets: the step where the mean train MSE of 50 steps first fell "
         "below 1/60; the kept setting)");
    line("");
    std::string header = "| connection | 1 layer |", rule = "| --- | --- |";
    for (std::size_t d = 1; d < all_depths.size(); ++d) {
      header += " " + std::to_string(all_depths[d]) + " layers |";
      rule += " --- |";
    }
    line(header);
    line(rule);
    for (std::size_t k = 0; k < connections.size(); ++k) {
      std::string row = std::string("| ") + recur::to_string(connections[k]) + " |";
      for (std::size_t d = 0; d < all_depths.size(); ++d) {
        const Run& r = runs[kept[c][k][d]];
        const int at = left_plateau(r.outcome.loss, trained);
        row += " " + fmt("%.4f", r.test.mse) + " (" + (at < 0 ? "never" : std::to_string(at)) +
               "; " + setting(r) + ") |";
      }
      line(row);
    }
    line("");
  }

  line("#### Gradient reaching the first layer");
  line("");
  line(
      "‖∂J/∂h⁽⁰⁾_j‖ for J = ⟨w, y_{T−1}⟩ (‖w‖ = 1, on a fixed probe batch of 32): at j = T−1 "
      "it has crossed the depth only, at j = 0 the depth and T−1 steps. Before training "
      "(the kept setting's initialisation) → after.");
  line("");
  for (std::size_t c = 0; c < cells.size(); ++c) {
    std::string header = "| " + std::string(cell_name(cells[c])) + " | j |", rule = "| --- | --- |";
    for (std::size_t d = 0; d < all_depths.size(); ++d) {
      header += " " + std::to_string(all_depths[d]) + " |";
      rule += " --- |";
    }
    line(header);
    line(rule);
    for (std::size_t k = 0; k < connections.size(); ++k) {
      for (std::int64_t j : {T - 1, std::int64_t{0}}) {
        std::string row = std::string("| ") + recur::to_string(connections[k]) + " | " +
                          (j == 0 ? "0" : "T−1") + " |";
        for (std::size_t d = 0; d < all_depths.size(); ++d) {
          const Run& r = runs[kept[c][k][d]];
          row += " " + fmt("%.2g", first_layer(r.flow_init, j)) + " → " +
                 fmt("%.2g", first_layer(r.flow_trained, j)) + " |";
        }
        line(row);
      }
    }
    line("");
  }

  const std::int64_t deepest = depths.back();
  for (std::int64_t at_depth : {focus, deepest}) {
    line("#### Highway at " + std::to_string(at_depth) + " layers: the sweep and the gates");
    line("");
    line(
        "Validation MSE at each start of b_g and lr; then, for each b_g at its best lr, the mean "
        "transform gate g over layers 1.." +
        std::to_string(at_depth - 1) +
        " (probe batch) before → after training, its test MSE, and the gradient "
        "‖∂J/∂h⁽ˡ⁾_{T−1}‖ (as above) that reaches layer 0 and, on average, layers 1.." +
        std::to_string(at_depth - 1) + ", before → after training.");
    line("");
    for (std::size_t c = 0; c < cells.size(); ++c) {
      std::string header = "| " + std::string(cell_name(cells[c])) + ", b_g |", rule = "| --- |";
      for (double lr : lrs_of(cells[c])) {
        header += " lr " + fmt("%g", lr) + " |";
        rule += " --- |";
      }
      header += " mean g (best lr) | test MSE (best lr) | gradient at layer 0 | at layers ≥ 1 |";
      rule += " --- | --- | --- | --- |";
      line(header);
      line(rule);
      for (double b : biases) {
        std::string row = "| " + fmt("%g", b) + " |";
        std::size_t at = runs.size();
        for (std::size_t r = 0; r < runs.size(); ++r) {
          const Run& x = runs[r];
          if (x.setup.cell != cells[c] || x.setup.connection != Connection::Highway ||
              x.setup.layers != at_depth || x.setup.gate_bias != b) {
            continue;
          }
          row += " " + fmt("%.4f", x.val.mse) + " |";
          if (at == runs.size() || rank(x.val.mse) < rank(runs[at].val.mse)) at = r;
        }
        if (at == runs.size()) continue;
        const Run& x = runs[at];
        auto mean_gate = [](const std::vector<double>& g) {
          double s = 0;
          int n = 0;
          for (double v : g) {
            if (std::isfinite(v)) s += v, ++n;
          }
          return n > 0 ? s / n : std::nan("");
        };
        row += " " + fmt("%.3f", mean_gate(x.gates_init)) + " → " +
               fmt("%.3f", mean_gate(x.gates_trained)) + " | " + fmt("%.4f", x.test.mse) + " | " +
               fmt("%.2g", first_layer(x.flow_init, T - 1)) + " → " +
               fmt("%.2g", first_layer(x.flow_trained, T - 1)) + " | " +
               fmt("%.2g", upper_layers(x.flow_init, T - 1)) + " → " +
               fmt("%.2g", upper_layers(x.flow_trained, T - 1)) + " |";
        line(row);
      }
      line("");
    }
  }

  // What the tables say at the focus depth and the deepest, in numbers.
  line("#### Which connections let " + std::to_string(focus) + " and " +
       std::to_string(depths.back()) + " layers train");
  line("");
  line("Trained means a test MSE below a tenth of the mean predictor's (below " +
       fmt("%.4f", trained) +
       "); in brackets, the test MSE over the one-layer stack's (below 1: depth helped).");
  line("");
  for (std::size_t d : {focus_index, all_depths.size() - 1}) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const double ref = runs[kept[c][0][0]].test.mse;
      std::string yes, no;
      for (std::size_t k = 0; k < connections.size(); ++k) {
        const double v = runs[kept[c][k][d]].test.mse;
        std::string& to = std::isfinite(v) && v < trained ? yes : no;
        to += std::string(to.empty() ? "" : ", ") + recur::to_string(connections[k]) + " " +
              fmt("%.4f", v) +
              (std::isfinite(v) && v < trained ? " (" + fmt("%.2g", v / ref) + ")" : "");
      }
      std::string verdict = yes.empty() ? "no connection trains it" : "trains with " + yes;
      if (!no.empty()) verdict += "; fails with " + no;
      line("- " + std::to_string(all_depths[d]) + " layers, " + cell_name(cells[c]) +
           " (one layer: " + fmt("%.4f", ref) + "): " + verdict + ".");
    }
  }
  line("");
  std::fclose(md);

  // Data for the plots.
  std::FILE* f = std::fopen((out_dir + "/depth_runs.tsv").c_str(), "w");
  std::FILE* cv = std::fopen((out_dir + "/depth_curves.tsv").c_str(), "w");
  std::FILE* fl = std::fopen((out_dir + "/depth_flow.tsv").c_str(), "w");
  std::FILE* gt = std::fopen((out_dir + "/depth_gates.tsv").c_str(), "w");
  if (f == nullptr || cv == nullptr || fl == nullptr || gt == nullptr) {
    std::fprintf(stderr, "cannot write into %s\n", out_dir.c_str());
    return 1;
  }
  const std::string key = "cell\tconnection\tlayers\tlr\tgate_bias";
  std::fprintf(f, "%s\tkept\tval_mse\ttest_mse\taccuracy\tseconds\tfirst_nonfinite\n", key.c_str());
  std::fprintf(cv, "%s\tkept\tstep\tloss\tgrad_norm\n", key.c_str());
  std::fprintf(fl, "%s\tkept\twhen\tlayer\tj\tnorm\n", key.c_str());
  std::fprintf(gt, "%s\tkept\twhen\tlayer\tgate\n", key.c_str());
  for (const Run& r : runs) {
    const std::string k = run_key(r);
    std::fprintf(f, "%s\t%d\t%.6g\t%.6g\t%.4f\t%.2f\t%d\n", k.c_str(), r.kept ? 1 : 0, r.val.mse,
                 r.test.mse, r.test.accuracy, r.outcome.seconds, r.outcome.first_nonfinite);
    // Curves and gradients of the kept runs, and of every highway run at the focus depth.
    const bool highway = r.setup.connection == Connection::Highway;
    if (!r.kept && !(highway && r.setup.layers == focus)) continue;
    for (std::size_t s = 0; s < r.outcome.loss.size(); ++s) {
      std::fprintf(cv, "%s\t%d\t%zu\t%.6g\t%.6g\n", k.c_str(), r.kept ? 1 : 0, s, r.outcome.loss[s],
                   r.outcome.grad_norm[s]);
    }
    for (int when = 0; when < 2; ++when) {
      const recur::GradientFlow& g = when == 0 ? r.flow_init : r.flow_trained;
      for (std::int64_t l = 0; l < g.layers; ++l) {
        for (std::int64_t j = 0; j < g.steps; ++j) {
          std::fprintf(fl, "%s\t%d\t%s\t%lld\t%lld\t%.6e\n", k.c_str(), r.kept ? 1 : 0,
                       when == 0 ? "init" : "trained", static_cast<long long>(l),
                       static_cast<long long>(j), g.norm(l, 0, j));
        }
      }
      const std::vector<double>& gates = when == 0 ? r.gates_init : r.gates_trained;
      for (std::size_t l = 0; l < gates.size(); ++l) {
        if (!std::isfinite(gates[l])) continue;
        std::fprintf(gt, "%s\t%d\t%s\t%zu\t%.6g\n", k.c_str(), r.kept ? 1 : 0,
                     when == 0 ? "init" : "trained", l, gates[l]);
      }
    }
  }
  std::fclose(f);
  std::fclose(cv);
  std::fclose(fl);
  std::fclose(gt);
  std::printf("wrote %s and depth_{runs,curves,flow,gates}.tsv in %.0f s\n", md_path.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return failures == 0 ? 0 : 1;
}
