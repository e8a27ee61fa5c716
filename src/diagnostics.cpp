// src/diagnostics.cpp: gradient-flow diagnostics (include/recur/diagnostics.h).
//
// gradient_flow runs the model's own engine: a Mode::Training forward, then a backward
// pass with a flow buffer [L*D, T] of doubles on the device, into which every backward
// step writes ||dJ/dh_t||^2 of each unit (StackPass::record_flow); the weight gradients
// go to scratch memory. The singular values are power iterations whose products run
// through Ops<T>::gemm with n = 1 (cblas / cuBLAS).
#include "recur/diagnostics.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ops.h"
#include "recur/error.h"
#include "rnn_access.h"
#include "splitmix.h"
#include "validate.h"

namespace recur {
namespace {

using detail::Gemm;
using detail::Ops;
using detail::Trans;

template <class Fn>
auto with_type(DType dtype, Fn&& fn) {
  if (dtype == DType::Float32) return fn(float{});
  return fn(double{});
}

std::int64_t steps_of(const RnnConfig& c, const TensorView& x) {
  return c.batch_first ? x.size(1) : x.size(0);
}
std::int64_t batch_of(const RnnConfig& c, const TensorView& x) {
  return c.batch_first ? x.size(0) : x.size(1);
}

void check_x(const char* where, const Rnn& rnn, const TensorView& x) {
  const RnnConfig& c = rnn.config();
  detail::expect_tensor(where, "x", x, {-1, -1, c.input_size},
                        c.batch_first ? "[B, T, input_size] (batch_first)" : "[T, B, input_size]",
                        c.dtype, rnn.device());
}

// Forward, then a recording backward of dy; the flow's square roots, on the host.
GradientFlow run_flow(Rnn& rnn, const TensorView& x, const TensorView& dy) {
  const detail::Plan& plan = detail::RnnAccess::plan(rnn);
  detail::Engine& engine = detail::RnnAccess::engine(rnn);
  const RnnConfig& c = rnn.config();
  const std::int64_t T = steps_of(c, x), LD = c.num_layers * plan.directions;
  Tensor grads = Tensor::zeros({plan.total}, c.dtype, rnn.device());  // scratch dJ/dθ
  Tensor flow = Tensor::zeros({LD, T}, DType::Float64, rnn.device());
  std::unique_ptr<detail::SavedState> saved;  // its own: what the Rnn keeps stays
  engine.forward(x, {}, {}, {}, detail::RnnAccess::dropout_seed(rnn), rnn.dropout_step(),
                 rnn.parameters(), false, &saved);
  engine.backward(*saved, dy, {}, {}, rnn.parameters(), grads, flow.data_as<double>());
  engine.synchronize();
  GradientFlow out;
  out.steps = T;
  out.layers = c.num_layers;
  out.directions = plan.directions;
  out.norms = flow.to_vector<double>();
  for (double& v : out.norms) v = std::sqrt(v);
  return out;
}

template <typename T>
std::vector<T> host_dy_step(const TensorView& w, std::int64_t B, std::int64_t DH) {
  if (w.defined()) return w.to_vector<T>();
  return std::vector<T>(static_cast<std::size_t>(B * DH),
                        static_cast<T>(1.0 / std::sqrt(static_cast<double>(B * DH))));
}

// sigma_max of the column-major H x GH matrix w (PyTorch's row-major [GH, H] W_hh; H reads
// P where the LSTM projects), by power iteration on W^T W with products on `ops`' device.
template <typename T>
double power_iteration(Ops<T>& ops, const T* w, std::int64_t GH, std::int64_t H, Device device,
                       int iterations, double tol) {
  Tensor v = Tensor::empty({H}, dtype_of<T>(), device);
  Tensor u = Tensor::empty({GH}, dtype_of<T>(), device);
  Tensor z = Tensor::empty({H}, dtype_of<T>(), device);
  // A fixed start with no special direction: splitmix64 numbers in [-1, 1), normalised.
  std::vector<double> start(static_cast<std::size_t>(H));
  detail::SplitMix random(0x5EEDull);
  double norm = 0.0;
  for (double& s : start) {
    s = random.uniform(1.0);
    norm += s * s;
  }
  std::vector<T> host(static_cast<std::size_t>(H));
  for (std::size_t k = 0; k < host.size(); ++k)
    host[k] = static_cast<T>(start[k] / std::sqrt(norm));
  double sigma = 0.0;
  for (int it = 0; it < iterations; ++it) {
    v.view().copy_from_host(host.data());
    // u = W v: op(A) = A^T of the H x GH matrix.
    ops.gemm(Gemm<T>::op(Trans::T, Trans::N)
                 .shape(GH, 1, H)
                 .from(w, H, v.template data_as<T>(), H)
                 .into(u.template data_as<T>(), GH));
    // z = W^T u
    ops.gemm(Gemm<T>::op(Trans::N, Trans::N)
                 .shape(H, 1, GH)
                 .from(w, H, u.template data_as<T>(), GH)
                 .into(z.template data_as<T>(), H));
    ops.synchronize();
    z.view().copy_to_host(host.data());
    double zz = 0.0;
    for (T e : host) zz += static_cast<double>(e) * static_cast<double>(e);
    const double z_norm = std::sqrt(zz);  // -> sigma^2 as v converges
    const double next = std::sqrt(z_norm);
    if (z_norm == 0.0 || !std::isfinite(z_norm)) return next;
    for (T& e : host) e = static_cast<T>(static_cast<double>(e) / z_norm);
    const bool converged = std::fabs(next - sigma) <= tol * next;
    sigma = next;
    if (converged) break;
  }
  return sigma;
}

std::string unit_name(std::int64_t l, std::int64_t d) {
  return "weight_hh_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
}

void check_iterations(const char* where, int iterations, double tol) {
  if (iterations < 1) {
    throw Error(where, "iterations", "at least 1", std::to_string(iterations));
  }
  if (!(tol >= 0.0)) throw Error(where, "tol", "a number >= 0", std::to_string(tol));
}

}  // namespace

GradientFlow gradient_flow(Rnn& rnn, const TensorView& x, std::int64_t step,
                           const TensorView& dy_step) {
  const char* where = "gradient_flow";
  check_x(where, rnn, x);
  const RnnConfig& c = rnn.config();
  const std::int64_t T = steps_of(c, x), B = batch_of(c, x);
  const std::int64_t D = c.bidirectional ? 2 : 1, DH = D * detail::state_size_of(c);
  if (step < 0 || step >= T) {
    throw Error(where, "step", "a step in [0, T = " + std::to_string(T) + ")",
                std::to_string(step));
  }
  if (dy_step.defined()) {
    detail::expect_tensor(where, "dy_step", dy_step, {B, DH},
                          c.proj_size > 0 ? "[B, D*proj_size]" : "[B, D*hidden_size]", c.dtype,
                          rnn.device());
  }
  GradientFlow out = with_type(c.dtype, [&](auto zero) {
    using T_ = decltype(zero);
    const std::vector<T_> w = host_dy_step<T_>(dy_step, B, DH);
    std::vector<T_> dy(static_cast<std::size_t>(T * B * DH), T_(0));
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t row = c.batch_first ? b * T + step : step * B + b;
      for (std::int64_t k = 0; k < DH; ++k) dy[row * DH + k] = w[b * DH + k];
    }
    const Shape shape = c.batch_first ? Shape{B, T, DH} : Shape{T, B, DH};
    return run_flow(rnn, x, Tensor::from_vector(dy, shape, rnn.device()));
  });
  out.step = step;
  // J = <w, y_i> cannot depend on a forward state after i or a reverse state before i of
  // the top layer; below it, a bidirectional stack mixes both directions' futures.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::int64_t first = out.directions == 2 ? (out.layers - 1) * 2 : 0;
  for (std::int64_t u = first; u < out.layers * out.directions; ++u) {
    const bool reverse = u % out.directions == 1;
    for (std::int64_t j = 0; j < T; ++j) {
      if (reverse ? j < step : j > step) out.norms[static_cast<std::size_t>(u * T + j)] = nan;
    }
  }
  return out;
}

GradientFlow gradient_flow_full(Rnn& rnn, const TensorView& x, const TensorView& dy) {
  const char* where = "gradient_flow_full";
  check_x(where, rnn, x);
  const RnnConfig& c = rnn.config();
  const std::int64_t T = steps_of(c, x), B = batch_of(c, x);
  const std::int64_t DH = (c.bidirectional ? 2 : 1) * detail::state_size_of(c);
  detail::expect_tensor(where, "dy", dy, c.batch_first ? Shape{B, T, DH} : Shape{T, B, DH},
                        detail::output_shape_text(c).c_str(), c.dtype, rnn.device());
  return run_flow(rnn, x, dy);
}

std::vector<double> largest_singular_values(const Rnn& rnn, int iterations, double tol) {
  check_iterations("largest_singular_values", iterations, tol);
  const RnnConfig& c = rnn.config();
  const std::int64_t D = c.bidirectional ? 2 : 1;
  return with_type(c.dtype, [&](auto zero) {
    using T_ = decltype(zero);
    std::unique_ptr<Ops<T_>> ops = detail::make_ops<T_>(rnn.device());
    detail::OpsScope<T_> scope(*ops);
    if (rnn.device().is_cuda()) ops->set_stream(rnn.cuda_stream());
    std::vector<double> out;
    for (std::int64_t l = 0; l < c.num_layers; ++l) {
      for (std::int64_t d = 0; d < D; ++d) {
        const TensorView w = rnn.parameter(unit_name(l, d));
        out.push_back(power_iteration<T_>(*ops, w.data_as<T_>(), w.size(0), w.size(1), rnn.device(),
                                          iterations, tol));
      }
    }
    return out;
  });
}

std::vector<double> set_largest_singular_values(Rnn& rnn, double sigma, int iterations,
                                                double tol) {
  const char* where = "set_largest_singular_values";
  if (!(sigma > 0.0) || !std::isfinite(sigma)) {
    throw Error(where, "sigma", "a finite number > 0", std::to_string(sigma));
  }
  check_iterations(where, iterations, tol);
  const std::vector<double> before = largest_singular_values(rnn, iterations, tol);
  const RnnConfig& c = rnn.config();
  const std::int64_t D = c.bidirectional ? 2 : 1;
  for (std::size_t u = 0; u < before.size(); ++u) {
    if (!(before[u] > 0.0) || !std::isfinite(before[u])) {
      throw Error(where, "rnn", "every W_hh with a finite, non-zero largest singular value",
                  unit_name(static_cast<std::int64_t>(u) / D, static_cast<std::int64_t>(u) % D) +
                      " has " + std::to_string(before[u]));
    }
  }
  with_type(c.dtype, [&](auto zero) {
    using T_ = decltype(zero);
    for (std::size_t u = 0; u < before.size(); ++u) {
      const TensorView w = rnn.parameter(
          unit_name(static_cast<std::int64_t>(u) / D, static_cast<std::int64_t>(u) % D));
      std::vector<T_> host = w.to_vector<T_>();
      const double factor = sigma / before[u];
      for (T_& e : host) e = static_cast<T_>(static_cast<double>(e) * factor);
      w.copy_from_host(host.data());
    }
    return 0;
  });
  return before;
}

}  // namespace recur
