// recur/init.h: parameter initialisers for an Rnn, deterministic from a seed: the same
// seed gives the same bits on every platform, on the CPU and on a GPU.
//
//   recur::InitOptions init;
//   init.recurrent = recur::WeightInit::Orthogonal;   // each gate's W_hh block orthogonal
//   init.input = recur::WeightInit::XavierUniform;
//   init.gate_bias = 1.0;                              // LSTM forget gate / GRU update gate
//   recur::initialize(rnn, init, /*seed*/ 7);
//
// The parameters are grouped by PyTorch's names (recur/rnn.h):
//   input weights      weight_ih_l{l}[_reverse] and highway_weight_l{l}
//   recurrent weights  weight_hh_l{l}[_reverse]
//   biases             bias_ih_l{l}[_reverse], bias_hh_l{l}[_reverse], highway_bias_l{l}
// and each group is drawn by its rule; the layer-norm parameters (config.layer_norm) are
// set to their identity, gains 1 and the cell's bias 0, whatever the options:
//   PyTorchDefault  U(-1/sqrt(H), 1/sqrt(H)), what nn.LSTM / nn.GRU / nn.RNN draw
//   XavierUniform   U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)
//   XavierNormal    N(0, 2 / (fan_in + fan_out))
//   Orthogonal      each gate's [H, H] block (or [H, in] for input weights) a random
//                   orthogonal matrix (Saxe et al. 2014): Householder QR of a Gaussian
//                   matrix, signs fixed by R's diagonal, as torch.nn.init.orthogonal_ does
//                   per block; rectangular blocks have orthonormal rows or columns
// with fan_in and fan_out the columns and rows of a PyTorch weight's shape ([G*H, in]: in
// and G*H). Then, where set:
//   gate_bias          the bias of the gate that keeps memory: an LSTM's forget gate (rows
//                      [H, 2H) of bias_ih, with bias_hh's rows set to 0 so that the sum is
//                      gate_bias; Jozefowicz et al. 2015 found 1 the best) or a GRU's
//                      update gate z (rows [H, 2H); h' = (1-z) n + z h, so a positive bias
//                      carries h). Vanilla cells have no gate: an Error.
//   highway_gate_bias  every highway_bias_l{l} (the gate g of u_{l+1} = g y_l + (1-g) u_l;
//                      negative: the layer starts close to the identity, docs/gradients.md)
//   zero_biases        every bias 0 before gate_bias and highway_gate_bias apply.
// Orthogonal blocks cost O(rows * cols * min(rows, cols)) each on the host, in double.
//
// Validates everything first (a non-finite bias is an Error naming it); on an error the
// parameters are unchanged. On a GPU the values are drawn on the host and copied once.
#pragma once

#include <cstdint>
#include <optional>

#include "recur/export.h"
#include "recur/rnn.h"

namespace recur {

enum class WeightInit { PyTorchDefault, XavierUniform, XavierNormal, Orthogonal };

RECUR_API const char* to_string(WeightInit init);

struct InitOptions {
  WeightInit input = WeightInit::PyTorchDefault;      // weight_ih and highway_weight
  WeightInit recurrent = WeightInit::PyTorchDefault;  // weight_hh
  bool zero_biases = false;         // false: biases drawn as PyTorch does, U(-1/sqrt(H), 1/sqrt(H))
  std::optional<double> gate_bias;  // LSTM forget gate, GRU update gate
  std::optional<double> highway_gate_bias;  // every highway_bias_l{l}
};

// Re-draws every parameter of `rnn` by `options`, from `seed`.
RECUR_API void initialize(Rnn& rnn, const InitOptions& options, std::uint64_t seed);

}  // namespace recur
