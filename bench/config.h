// bench/config.h: what one benchmark measures (a Problem), how many FLOPs it is worth,
// and the grids the driver runs (quick, full CPU, full GPU, DeepBench).
//
// FLOPs are the GEMM work only (the element-wise gate math is ignored). Per layer and
// direction, with G gates (1 vanilla, 4 LSTM, 3 GRU) and layer input size I_l (I for layer
// 0, D*H above it):
//   forward        = 2 * G*H * (I_l + H) * T * B   (1 GEMM over T*B columns + T of B columns)
//   training step  = 3 * forward                   (backward: dh per step, dW_ih, dW_hh, dx)
// A problem's FLOPs are the sum over its layers and directions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recur/config.h"

namespace bench {

enum class Cell {
  RnnTanh,
  RnnRelu,
  Lstm,
  Gru,     // linear-before-reset: PyTorch's and cuDNN's GRU, oneDNN's lbr_gru
  GruRbp,  // reset-before-product (Cho et al.): oneDNN's gru; cuDNN has none
};

enum class Mode { Inference, Training };

struct Problem {
  Cell cell = Cell::Lstm;
  std::int64_t T = 0, B = 0, I = 0, H = 0;
  int layers = 1;
  bool bidirectional = false;
  std::string source;  // where it came from: "quick", "target", "grid", "deepbench:training"

  int directions() const { return bidirectional ? 2 : 1; }
  std::int64_t layer_input(int layer) const { return layer == 0 ? I : directions() * H; }
};

recur::CellKind cell_kind(Cell cell);
int gate_count(Cell cell);         // recur::gate_count, the one definition
const char* cell_name(Cell cell);  // "lstm", "gru", "gru_rbp", "rnn_tanh", "rnn_relu"
bool parse_cell(const std::string& text, Cell* cell);
const char* mode_name(Mode mode);  // "inference", "training"

// "lstm T=100 B=32 I=256 H=256 L=1 uni"
std::string describe(const Problem& p);
// The inverse of describe(), for --problem: a cell name, then any of T=, B=, I=, H=, L= and
// "bi" or "uni", separated by spaces or commas ("gru T=50 B=64 H=512"); I defaults to H,
// L to 1. Source "cli". False, with `why`, when the text is not such a problem.
bool parse_problem(const std::string& text, Problem* p, std::string* why);
double forward_flops(const Problem& p);
double flops(const Problem& p, Mode mode);

// ~1 minute on a 2-core CPU: LSTM, GRU and a tanh RNN at T=50, B=32, I=H=256, plus one
// 2-layer bidirectional LSTM (anchors only until recur has stacks).
std::vector<Problem> quick_grid();
// The CPU grid: the quick one, the three target shapes for LSTM and GRU, vanilla
// cells, the reset-before-product GRU, and stacked/bidirectional LSTM and GRU.
std::vector<Problem> cpu_grid();
// The GPU grid: the targets and H in {512, 1024, 2048} at larger batches, stacks included.
std::vector<Problem> gpu_grid();

// DeepBench's RNN problems (set,hidden,batch,timesteps,cell; I = H, one layer, one
// direction) from `path`, keeping rows of `set` ("training", "inference_server",
// "inference_device" or "all") with hidden <= max_hidden. Throws std::runtime_error when
// the file cannot be read or a row is malformed.
std::vector<Problem> read_deepbench(const std::string& path, const std::string& set,
                                    std::int64_t max_hidden);
// The first readable of: the source tree's ../shared/bench (fixed at configure time), then
// shared/bench and ../shared/bench from the working directory; "" when none is.
std::string default_deepbench_path();

}  // namespace bench
