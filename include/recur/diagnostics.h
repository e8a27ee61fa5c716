// recur/diagnostics.h: vanishing and exploding gradients, made visible on your own model.
//
//   recur::GradientFlow flow = recur::gradient_flow(rnn, x, /*step i*/ 99);
//   for (std::int64_t j = 0; j <= 99; ++j)
//     std::printf("%lld %g\n", 99 - j, flow.norm(/*layer*/ 0, /*dir*/ 0, j));
//   std::vector<double> sigma = recur::largest_singular_values(rnn);  // per W_hh
//
// gradient_flow() runs a forward and a backward pass of the model (on its device, CPU or
// GPU) for a loss J that depends on one step i only, J = <w, y_i> (w [B, D*H], the
// gradient handed to the stack's output at step i; zero at every other step), and the
// backward pass itself records, for every layer l, direction d and step j, the norm
//   || dJ/dh_j ||   (Frobenius over the batch and the H units of that layer-direction),
// where dJ/dh_j is the total gradient reaching the hidden state h_j of (l, d): from the
// future through h_{j+1} and from above through y_j. For the vanilla RNN this is
// || w^T prod_{k=j+1..i} diag(act'(.)) W_hh || composed with the layers above: it shrinks
// or grows geometrically in i - j when the largest singular value of W_hh is below or
// above 1 / max|act'| (Pascanu et al. 2013).
//
// The recording costs one small reduction per unit and step, only in these calls: an
// ordinary forward()/backward() records nothing and is unchanged.
//
// Semantics and limits:
//   - Full-length batches only (no `lengths`): every sequence runs all T steps.
//   - The pass is the model's own: with dropout > 0 it draws the masks of the next
//     Mode::Training forward (the dropout step is not advanced).
//   - Neither parameters() nor gradients() change (the weight gradients go to scratch
//     memory). What a Mode::Training forward() kept for backward() stays as it was (the
//     recording pass has a saved state of its own).
//   - Bad arguments throw recur::Error naming them; the model is left as it was.
#pragma once

#include <cstdint>
#include <vector>

#include "recur/export.h"
#include "recur/rnn.h"
#include "recur/tensor.h"

namespace recur {

struct GradientFlow {
  std::int64_t steps = 0;  // T
  std::int64_t step = -1;  // i, the step the loss reads; -1 when a full dy was given
  std::int64_t layers = 0, directions = 0;
  // norms[(l*directions + d) * steps + j] = ||dJ/dh_j|| of layer l, direction d. Steps J
  // cannot depend on are NaN: j > i in every layer of a unidirectional stack; in a
  // bidirectional one, j > i (forward) and j < i (reverse) of the top layer (a lower
  // layer's state at any j reaches y_i through the other direction above it).
  std::vector<double> norms;

  double norm(std::int64_t layer, std::int64_t dir, std::int64_t j) const {
    return norms[static_cast<std::size_t>((layer * directions + dir) * steps + j)];
  }
};

// x [T, B, I] ([B, T, I] when batch_first), step i in [0, T), w = dy_step [B, D*H] or
// undefined (then every element is 1/sqrt(B*D*H), so ||w|| = 1). x and w have the
// model's dtype and device. With proj_size P, H reads P here and below (h's features).
RECUR_API GradientFlow gradient_flow(Rnn& rnn, const TensorView& x, std::int64_t step,
                                     const TensorView& dy_step = {});

// The same for J = <dy, y> with a full dy [T, B, D*H] ([B, T, D*H] when batch_first):
// no step is NaN (GradientFlow::step = -1).
RECUR_API GradientFlow gradient_flow_full(Rnn& rnn, const TensorView& x, const TensorView& dy);

// The largest singular value of each W_hh [G*H, H] (weight_hh_l{l}[_reverse]), one per
// layer and direction in state order (l*D + d), by power iteration on W_hh^T W_hh: each
// iteration is two matrix-vector products on the model's device (BLAS or cuBLAS) and a
// host read-back of an H-vector, which is normalised; it stops after `iterations`, or
// once the estimate changes by at most tol * estimate between two iterations. The start
// vector is fixed (deterministic). A zero matrix gives 0.
RECUR_API std::vector<double> largest_singular_values(const Rnn& rnn, int iterations = 1000,
                                                      double tol = 1e-7);

// Scales every W_hh so that its largest singular value (as above) becomes `sigma` (> 0);
// returns the values before. W_ih, biases and other parameters are unchanged. Throws for
// a W_hh that is zero.
RECUR_API std::vector<double> set_largest_singular_values(Rnn& rnn, double sigma,
                                                          int iterations = 1000, double tol = 1e-7);

}  // namespace recur
