// bench/config.cpp: problem names, FLOP counts, grids and the DeepBench reader.
#include "config.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace bench {

recur::CellKind cell_kind(Cell cell) {
  switch (cell) {
    case Cell::RnnTanh: return recur::CellKind::RnnTanh;
    case Cell::RnnRelu: return recur::CellKind::RnnRelu;
    case Cell::Lstm: return recur::CellKind::Lstm;
    case Cell::Gru: return recur::CellKind::GruLinearBeforeReset;
    case Cell::GruRbp: return recur::CellKind::GruResetBeforeProduct;
  }
  return recur::CellKind::Lstm;
}

int gate_count(Cell cell) { return recur::gate_count(cell_kind(cell)); }

const char* cell_name(Cell cell) {
  switch (cell) {
    case Cell::RnnTanh: return "rnn_tanh";
    case Cell::RnnRelu: return "rnn_relu";
    case Cell::Lstm: return "lstm";
    case Cell::Gru: return "gru";
    case Cell::GruRbp: return "gru_rbp";
  }
  return "?";
}

bool parse_cell(const std::string& text, Cell* cell) {
  for (Cell c : {Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru, Cell::GruRbp}) {
    if (text == cell_name(c)) {
      *cell = c;
      return true;
    }
  }
  // DeepBench's names: "vanilla" is the tanh RNN.
  if (text == "vanilla") {
    *cell = Cell::RnnTanh;
    return true;
  }
  return false;
}

const char* mode_name(Mode mode) { return mode == Mode::Inference ? "inference" : "training"; }

std::string describe(const Problem& p) {
  std::ostringstream s;
  s << cell_name(p.cell) << " T=" << p.T << " B=" << p.B << " I=" << p.I << " H=" << p.H
    << " L=" << p.layers << (p.bidirectional ? " bi" : " uni");
  return s.str();
}

bool parse_problem(const std::string& text, Problem* p, std::string* why) {
  std::string spaced = text;
  for (char& c : spaced) c = c == ',' ? ' ' : c;
  std::istringstream in(spaced);
  std::string word;
  Problem q;
  q.source = "cli";
  if (!(in >> word) || !parse_cell(word, &q.cell)) {
    *why = "expected a cell name first (lstm, gru, gru_rbp, rnn_tanh, rnn_relu)";
    return false;
  }
  while (in >> word) {
    if (word == "bi" || word == "uni") {
      q.bidirectional = word == "bi";
      continue;
    }
    const std::size_t eq = word.find('=');
    long long v = 0;
    std::size_t used = 0;
    try {
      v = eq == std::string::npos ? 0 : std::stoll(word.substr(eq + 1), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    const std::string key = word.substr(0, eq);
    if (eq == std::string::npos || used == 0 || used != word.size() - eq - 1 || v < 1 ||
        (key != "T" && key != "B" && key != "I" && key != "H" && key != "L")) {
      *why = "'" + word + "': expected T=, B=, I=, H= or L= with a positive integer, bi or uni";
      return false;
    }
    std::int64_t& field = key == "T" ? q.T : key == "B" ? q.B : key == "I" ? q.I : q.H;
    if (key == "L") {
      q.layers = static_cast<int>(v);
    } else {
      field = v;
    }
  }
  if (q.T == 0 || q.B == 0 || q.H == 0) {
    *why = "T=, B= and H= are needed";
    return false;
  }
  if (q.I == 0) q.I = q.H;
  *p = q;
  return true;
}

double forward_flops(const Problem& p) {
  double total = 0;
  const double G = gate_count(p.cell);
  for (int l = 0; l < p.layers; ++l) {
    total += p.directions() * 2.0 * G * double(p.H) * double(p.layer_input(l) + p.H) * double(p.T) *
             double(p.B);
  }
  return total;
}

double flops(const Problem& p, Mode mode) {
  return mode == Mode::Inference ? forward_flops(p) : 3.0 * forward_flops(p);
}

namespace {

Problem make(Cell cell, std::int64_t T, std::int64_t B, std::int64_t H, const char* source,
             int layers = 1, bool bi = false) {
  Problem p;
  p.cell = cell;
  p.T = T;
  p.B = B;
  p.I = H;
  p.H = H;
  p.layers = layers;
  p.bidirectional = bi;
  p.source = source;
  return p;
}

void append(std::vector<Problem>& to, const std::vector<Problem>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// The CPU targets: recur must at least match oneDNN on these training steps.
std::vector<Problem> targets() {
  std::vector<Problem> out;
  for (Cell c : {Cell::Lstm, Cell::Gru}) {
    out.push_back(make(c, 100, 32, 256, "target"));
    out.push_back(make(c, 100, 64, 512, "target"));
    out.push_back(make(c, 50, 64, 1024, "target"));
  }
  return out;
}

}  // namespace

std::vector<Problem> quick_grid() {
  return {make(Cell::Lstm, 50, 32, 256, "quick"), make(Cell::Gru, 50, 32, 256, "quick"),
          make(Cell::RnnTanh, 50, 32, 256, "quick"),
          make(Cell::Lstm, 50, 32, 256, "quick", 2, true)};
}

std::vector<Problem> cpu_grid() {
  std::vector<Problem> out = quick_grid();
  append(out, targets());
  append(out, {make(Cell::RnnTanh, 100, 64, 512, "grid"), make(Cell::RnnRelu, 100, 64, 512, "grid"),
               make(Cell::GruRbp, 100, 32, 256, "grid"), make(Cell::Lstm, 100, 1, 512, "grid"),
               make(Cell::Lstm, 100, 32, 256, "grid", 2, false),
               make(Cell::Lstm, 100, 64, 512, "grid", 2, false),
               make(Cell::Gru, 100, 32, 256, "grid", 2, true)});
  return out;
}

std::vector<Problem> gpu_grid() {
  std::vector<Problem> out = targets();
  for (Cell c : {Cell::Lstm, Cell::Gru}) {
    for (std::int64_t H : {512, 1024, 2048}) out.push_back(make(c, 100, 128, H, "grid"));
    out.push_back(make(c, 100, 64, 512, "grid", 4, false));
    out.push_back(make(c, 100, 64, 512, "grid", 2, true));
  }
  out.push_back(make(Cell::RnnTanh, 100, 64, 1024, "grid"));
  out.push_back(make(Cell::Lstm, 100, 1, 1024, "grid"));
  // Unidirectional stacks of other depths and widths: how a wavefront's batches of 3, 7
  // and 15 GEMMs run (CudaOps::gemm_batched).
  out.push_back(make(Cell::Lstm, 100, 64, 512, "stacks", 2, false));
  out.push_back(make(Cell::Lstm, 100, 64, 512, "stacks", 8, false));
  out.push_back(make(Cell::Lstm, 100, 32, 256, "stacks", 4, false));
  out.push_back(make(Cell::Lstm, 50, 64, 1024, "stacks", 4, false));
  return out;
}

std::vector<Problem> read_deepbench(const std::string& path, const std::string& set,
                                    std::int64_t max_hidden) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read DeepBench problems from '" + path + "'");
  std::vector<Problem> out;
  std::string line;
  int row = 0;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty() || line.rfind("set,", 0) == 0) continue;  // header
    std::istringstream fields(line);
    std::string name, hidden, batch, steps, cell;
    std::getline(fields, name, ',');
    std::getline(fields, hidden, ',');
    std::getline(fields, batch, ',');
    std::getline(fields, steps, ',');
    std::getline(fields, cell, ',');
    if (!cell.empty() && cell.back() == '\r') cell.pop_back();
    Problem p;
    try {
      p.H = p.I = std::stoll(hidden);
      p.B = std::stoll(batch);
      p.T = std::stoll(steps);
    } catch (const std::exception&) {
      throw std::runtime_error(path + ":" + std::to_string(row) + ": malformed row '" + line + "'");
    }
    if (!parse_cell(cell, &p.cell)) {
      throw std::runtime_error(path + ":" + std::to_string(row) + ": unknown cell '" + cell + "'");
    }
    if (set != "all" && name != set) continue;
    if (p.H > max_hidden) continue;
    p.source = "deepbench:" + name;
    out.push_back(p);
  }
  return out;
}

std::string default_deepbench_path() {
  std::vector<std::string> candidates;
#ifdef RECUR_BENCH_DEEPBENCH_CSV
  candidates.push_back(RECUR_BENCH_DEEPBENCH_CSV);  // the source tree's ../shared/bench
#endif
  // Run from a repository root (scripts/gpu_check.sh) that holds shared/ or sits beside it.
  candidates.push_back("shared/bench/deepbench_rnn_problems.csv");
  candidates.push_back("../shared/bench/deepbench_rnn_problems.csv");
  for (const std::string& c : candidates) {
    if (std::ifstream(c).good()) return c;
  }
  return "";
}

}  // namespace bench
