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
// Gates per cell: 1 (vanilla), 4 (LSTM) or 3 (GRU). Inline, so that code that does not link
// recur (the benchmarks' oneDNN plugin) counts them the same way.
constexpr int gate_count(CellKind cell) {
  switch (cell) {
    case CellKind::Lstm: return 4;
    case CellKind::GruLinearBeforeReset:
    case CellKind::GruResetBeforeProduct: return 3;
    default: return 1;
  }
}
// True for cells with a cell state c (LSTM).
RECUR_API bool has_cell_state(CellKind cell);

// How layer l's output y_l (D*H features) and input u_l combine into the next layer's
// input u_{l+1}; u_0 = x.
enum class Connection {
  None,      // u_{l+1} = y_l
  Residual,  // u_{l+1} = y_l + u_l, wherever the widths agree (always for l >= 1;
             // at layer 0 only when input_size == D*H)
  Highway,   // g = sigmoid(W_g u_l + b_g); u_{l+1} = g*y_l + (1-g)*u_l, where the widths
             // agree (as Residual), with parameters highway_weight_l{l} [D*H, D*H] and
             // highway_bias_l{l} [D*H]
  Dense,     // u_{l+1} = concat(x, y_0, ..., y_l) along features
};

RECUR_API const char* to_string(Connection connection);

// The arithmetic of a float32 model's matrix products (docs/design.md, "Reduced
// precision"). Parameters, gradients, states and everything element-wise stay float32;
// every GEMM of the stack takes its two operands rounded to the format (round to nearest
// even) and accumulates in float32.
//   Fp32  exact float32 products (the default; float64 models have only this)
//   Tf32  operands rounded to TF32 (10 mantissa bits), as tensor cores take float32
//   Bf16  operands rounded to bfloat16 (7 mantissa bits)
//   Fp16  operands rounded to IEEE half (10 mantissa bits, 5 exponent bits); train with a
//         recur::LossScaler (recur/loss_scale.h), or small gradients round to zero
// On a GPU the rounded operands are multiplied on tensor cores (cuBLAS, float32
// accumulation). On the CPU every format is emulated (the operands are rounded, then
// multiplied in float32): a reference with the same rounding points, not a fast path.
enum class Math { Fp32, Tf32, Bf16, Fp16 };

RECUR_API const char* to_string(Math math);

// Sizes whose parameter count does not fit in int64, or whose parameters and gradients
// could not fit in the host's memory (a CPU model), are a recur::Error in Rnn's
// constructor, before anything is allocated.
struct RnnConfig {
  CellKind cell = CellKind::Lstm;
  std::int64_t input_size = 0;   // I, features of x
  std::int64_t hidden_size = 0;  // H, features of h
  bool bias = true;              // b_ih and b_hh present
  DType dtype = DType::Float32;
  std::int64_t num_layers = 1;  // L in [1, 65536]
  bool bidirectional = false;   // D = 2: a forward and a reverse pass per layer, outputs
                                // concatenated [forward, reverse] along features
  Connection connection = Connection::None;
  // The stack's output is u_L (D*H features) for None, Residual and Highway, and
  // y_{L-1} (D*H features) for Dense.
  double dropout = 0.0;      // p in [0, 1): in Mode::Training, each layer's output y_l except
                             // the last is multiplied by keep/(1-p) before anything uses it
                             // (PyTorch's `dropout`); masks come from Philox-4x32-10
  bool batch_first = false;  // x and y as [B, T, features] (PyTorch's flag); states stay
                             // [L*D, B, H]
  Math math = Math::Fp32;    // the products' arithmetic; anything but Fp32 needs Float32
  // Layer normalisation (Ba et al. 2016, as haste's LayerNormLSTM / LayerNormGRU): the
  // input and recurrent pre-activations W_ih x and W_hh h are each normalised over their
  // G*H features, with gains of their own and no shift (the biases follow), and the LSTM's
  // h = o*tanh(LN(c)) normalises c over H with a gain and a bias; epsilon 1e-5. The
  // reset-before-product GRU normalises its two recurrent products, W_h[r,z] h (2H) and
  // W_hn (r*h) (H), each on its own. For Lstm and both GRUs (an Error naming
  // config.layer_norm for the vanilla cells). Per layer and
  // direction the parameters layer_norm_ih_weight_l{k} [G*H] and layer_norm_hh_weight_l{k}
  // [G*H] (initialised to 1), and for the LSTM layer_norm_cell_weight_l{k} [H] (1) and
  // layer_norm_cell_bias_l{k} [H] (0), suffix _reverse as for PyTorch's names; they follow
  // every other parameter in the flat buffer. Equations: docs/design.md, "Layer
  // normalisation".
  bool layer_norm = false;
  // LSTM projection (PyTorch's proj_size), as in Sak et al. 2014's LSTMP and Jozefowicz et
  // al. 2016's big LSTM LMs: 0 for none, else P in (0, hidden_size). Each step computes
  // h_t = W_hr (o*tanh(c_t)) with weight_hr_l{k} [P, H] (after bias_hh_l{k} in each unit's
  // parameters, as PyTorch orders them), so h, y and h0/h_n have P features per direction
  // and weight_hh_l{k} is [4H, P]; c stays H wide. For the Lstm without layer_norm (an
  // Error naming config.proj_size otherwise).
  std::int64_t proj_size = 0;
};

}  // namespace recur
