// recur/config.h: what an Rnn is.
#pragma once

#include <cstdint>
#include <string>

#include "recur/device.h"
#include "recur/export.h"

namespace recur {

// The recurrent cell. Equations and gate order follow PyTorch (see docs/design.md).
enum class CellKind {
  RnnTanh,                // h = tanh(W_ih x + b_ih + W_hh h + b_hh)
  RnnRelu,                // h = relu(...)
  RnnSigmoid,             // h = sigmoid(...), the classic textbook RNN
  Lstm,                   // gates i, f, g, o
  GruLinearBeforeReset,   // PyTorch / cuDNN GRU: n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
  GruResetBeforeProduct,  // Cho et al. 2014:     n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)
};

RECUR_API const char* to_string(CellKind cell);
// Gates per cell: 1 (vanilla), 4 (LSTM) or 3 (GRU).
RECUR_API int gate_count(CellKind cell);
// True for cells with a cell state c (LSTM).
RECUR_API bool has_cell_state(CellKind cell);

struct RnnConfig {
  CellKind cell = CellKind::Lstm;
  std::int64_t input_size = 0;   // I, features of x
  std::int64_t hidden_size = 0;  // H, features of h
  bool bias = true;              // b_ih and b_hh present
  DType dtype = DType::Float32;
};

}  // namespace recur
