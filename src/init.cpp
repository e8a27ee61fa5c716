// src/init.cpp: initialize(): every parameter drawn on the host, in double, from splitmix64
// streams keyed by the seed, then rounded to the model's dtype and copied once.
#include "recur/init.h"

#include <cmath>
#include <string>
#include <vector>

#include "float_dispatch.h"
#include "plan.h"
#include "recur/error.h"
#include "splitmix.h"

namespace recur {
namespace {

using detail::SplitMix;

// The stream of parameter `index`: its own, so that a group's draw does not depend on the
// others'.
SplitMix stream_for(std::uint64_t seed, std::size_t index) {
  return SplitMix(seed ^ (0xD1B54A32D192ED03ull * (static_cast<std::uint64_t>(index) + 1)));
}

// A rows x cols block (row-major, leading dimension ld) whose columns (rows >= cols) or
// rows (rows < cols) are orthonormal: Householder QR of a Gaussian matrix, Q's columns
// signed by R's diagonal so that the result is uniform over the orthogonal group.
void orthogonal_block(double* out, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                      SplitMix& s) {
  const bool tall = rows >= cols;
  const std::int64_t m = tall ? rows : cols, n = tall ? cols : rows;  // m >= n
  std::vector<double> a(static_cast<std::size_t>(m * n));             // column-major m x n
  for (double& v : a) v = s.normal();
  std::vector<double> householder(static_cast<std::size_t>(m * n), 0.0), sign(n, 1.0);
  auto at = [&](std::vector<double>& x, std::int64_t i, std::int64_t j) -> double& {
    return x[static_cast<std::size_t>(j * m + i)];
  };
  for (std::int64_t j = 0; j < n; ++j) {
    double norm = 0.0;
    for (std::int64_t i = j; i < m; ++i) norm += at(a, i, j) * at(a, i, j);
    norm = std::sqrt(norm);
    const double alpha = at(a, j, j) > 0 ? -norm : norm;  // R's diagonal entry
    sign[j] = alpha < 0 ? -1.0 : 1.0;
    // v = x - alpha e_j, normalised; H = I - 2 v v^T maps x to alpha e_j.
    for (std::int64_t i = j; i < m; ++i) at(householder, i, j) = at(a, i, j);
    at(householder, j, j) -= alpha;
    double vnorm = 0.0;
    for (std::int64_t i = j; i < m; ++i) vnorm += at(householder, i, j) * at(householder, i, j);
    vnorm = std::sqrt(vnorm);
    if (vnorm == 0.0) continue;  // already alpha e_j (probability zero)
    for (std::int64_t i = j; i < m; ++i) at(householder, i, j) /= vnorm;
    for (std::int64_t c = j; c < n; ++c) {
      double d = 0.0;
      for (std::int64_t i = j; i < m; ++i) d += at(householder, i, j) * at(a, i, c);
      for (std::int64_t i = j; i < m; ++i) at(a, i, c) -= 2.0 * d * at(householder, i, j);
    }
  }
  // Q's first n columns: H_0 ... H_{n-1} applied to the identity's, then signed.
  std::vector<double> q(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t j = 0; j < n; ++j) at(q, j, j) = 1.0;
  for (std::int64_t j = n - 1; j >= 0; --j) {
    for (std::int64_t c = 0; c < n; ++c) {
      double d = 0.0;
      for (std::int64_t i = j; i < m; ++i) d += at(householder, i, j) * at(q, i, c);
      for (std::int64_t i = j; i < m; ++i) at(q, i, c) -= 2.0 * d * at(householder, i, j);
    }
  }
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      const double v = at(q, i, j) * sign[j];
      if (tall) {
        out[i * ld + j] = v;
      } else {
        out[j * ld + i] = v;
      }
    }
  }
}

enum class Group { Input, Recurrent, Bias, HighwayBias, LayerNorm };

Group group_of(const std::string& name) {
  if (detail::is_layer_norm_param(name)) return Group::LayerNorm;
  if (name.rfind("weight_hh", 0) == 0) return Group::Recurrent;
  if (name.rfind("highway_bias", 0) == 0) return Group::HighwayBias;
  if (name.rfind("bias", 0) == 0) return Group::Bias;
  return Group::Input;  // weight_ih, weight_hr (projection), highway_weight
}

// Draws one weight [rows, cols] (row-major, at w) by `rule`; `gates` blocks of rows for
// Orthogonal.
void draw_weight(double* w, std::int64_t rows, std::int64_t cols, std::int64_t gates,
                 WeightInit rule, double pytorch_bound, SplitMix& s) {
  switch (rule) {
    case WeightInit::PyTorchDefault:
      for (double* v = w; v < w + rows * cols; ++v) *v = s.uniform(pytorch_bound);
      return;
    case WeightInit::XavierUniform: {
      const double a = std::sqrt(6.0 / static_cast<double>(rows + cols));
      for (double* v = w; v < w + rows * cols; ++v) *v = s.uniform(a);
      return;
    }
    case WeightInit::XavierNormal: {
      const double sd = std::sqrt(2.0 / static_cast<double>(rows + cols));
      for (double* v = w; v < w + rows * cols; ++v) *v = sd * s.normal();
      return;
    }
    case WeightInit::Orthogonal: {
      const std::int64_t block = rows / gates;
      for (std::int64_t g = 0; g < gates; ++g)
        orthogonal_block(w + g * block * cols, block, cols, cols, s);
      return;
    }
  }
}

void check_rule(const char* name, WeightInit rule) {
  switch (rule) {
    case WeightInit::PyTorchDefault:
    case WeightInit::XavierUniform:
    case WeightInit::XavierNormal:
    case WeightInit::Orthogonal: return;
  }
  throw Error("initialize", name, "a WeightInit", std::to_string(static_cast<int>(rule)));
}

void check_finite(const char* name, const std::optional<double>& v) {
  if (v && !std::isfinite(*v)) {
    throw Error("initialize", name, "a finite number", detail::exact_number(*v));
  }
}

}  // namespace

const char* to_string(WeightInit init) {
  switch (init) {
    case WeightInit::PyTorchDefault: return "PyTorchDefault";
    case WeightInit::XavierUniform: return "XavierUniform";
    case WeightInit::XavierNormal: return "XavierNormal";
    case WeightInit::Orthogonal: return "Orthogonal";
  }
  return "unknown";
}

void initialize(Rnn& rnn, const InitOptions& options, std::uint64_t seed) {
  const RnnConfig& c = rnn.config();
  check_rule("options.input", options.input);
  check_rule("options.recurrent", options.recurrent);
  check_finite("options.gate_bias", options.gate_bias);
  check_finite("options.highway_gate_bias", options.highway_gate_bias);
  const bool gated = c.cell == CellKind::Lstm || c.cell == CellKind::GruLinearBeforeReset ||
                     c.cell == CellKind::GruResetBeforeProduct;
  if (options.gate_bias && !gated) {
    throw Error("initialize", "options.gate_bias", "a gated cell (LSTM or GRU)",
                std::string("cell ") + to_string(c.cell));
  }
  if (options.gate_bias && !c.bias) {
    throw Error("initialize", "options.gate_bias", "a model with biases (config.bias)",
                "config.bias = false");
  }
  if (options.highway_gate_bias && c.connection != Connection::Highway) {
    throw Error("initialize", "options.highway_gate_bias", "a model with Highway connections",
                std::string("connection ") + to_string(c.connection));
  }
  const std::int64_t H = c.hidden_size, G = gate_count(c.cell);
  const double bound = 1.0 / std::sqrt(static_cast<double>(H));
  const std::vector<ParamInfo>& info = rnn.parameter_info();
  std::vector<double> values(static_cast<std::size_t>(rnn.parameters().numel()), 0.0);
  for (std::size_t p = 0; p < info.size(); ++p) {
    const ParamInfo& pi = info[p];
    double* w = values.data() + pi.offset;
    SplitMix s = stream_for(seed, p);
    const std::int64_t rows = pi.shape[0], cols = pi.shape.size() > 1 ? pi.shape[1] : 1;
    switch (group_of(pi.name)) {
      case Group::Input: {
        // A highway weight [D*H, D*H] is one gate; W_ih has G blocks of H rows.
        const std::int64_t gates = pi.name.rfind("weight_ih", 0) == 0 ? G : 1;
        draw_weight(w, rows, cols, gates, options.input, bound, s);
        break;
      }
      case Group::Recurrent: draw_weight(w, rows, cols, G, options.recurrent, bound, s); break;
      case Group::Bias:
        if (!options.zero_biases) {
          for (double* v = w; v < w + rows; ++v) *v = s.uniform(bound);
        }
        if (options.gate_bias) {
          const bool ih = pi.name.rfind("bias_ih", 0) == 0;
          for (std::int64_t r = H; r < 2 * H; ++r) w[r] = ih ? *options.gate_bias : 0.0;
        }
        break;
      case Group::LayerNorm:  // gains 1, the cell's bias 0, whatever the options
        for (std::int64_t r = 0; r < rows; ++r)
          w[r] = detail::is_layer_norm_bias(pi.name) ? 0.0 : 1.0;
        break;
      case Group::HighwayBias:
        for (std::int64_t r = 0; r < rows; ++r) {
          w[r] = options.highway_gate_bias ? *options.highway_gate_bias
                 : options.zero_biases     ? 0.0
                                           : s.uniform(bound);
        }
        break;
    }
  }
  detail::with_float_type(c.dtype, [&](auto zero) {
    using T = decltype(zero);
    std::vector<T> host(values.begin(), values.end());
    rnn.parameters().copy_from_host(host.data());
  });
}

}  // namespace recur
