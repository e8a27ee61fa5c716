// kernels/connection.cuh: the element-wise part of the connections between layers.
//
//   residual: out = y + u
//   highway:  g = σ(z + b_g), out = g∘y + (1−g)∘u, with z = W_g u from a GEMM
// over `rows` = (steps in the range) * B rows of `width` = D*H features. y and u are read
// through their own row strides (u may be x, or another connection's output); out, z,
// gate and dz are contiguous [rows, width]. Backward accumulates (+=) into dy and du,
// since both also receive gradient from elsewhere.
#pragma once

#include <cstdint>

#include "activations.h"

namespace recur::kernels {

template <typename T>
struct ConnectionArgs {
  std::int64_t rows = 0, width = 0;
  const T* y = nullptr;  // [rows, ldy]
  std::int64_t ldy = 0;
  const T* u = nullptr;  // [rows, ldu]
  std::int64_t ldu = 0;
  T* out = nullptr;         // [rows, width] forward output
  T* gate = nullptr;        // [rows, width] highway: in z = W_g u, out g (in place)
  const T* bias = nullptr;  // [width] highway b_g
  const T* dout = nullptr;  // [rows, width] backward: dJ/d(out)
  T* dy = nullptr;          // [rows, ldy] backward: += dJ/dy
  T* du = nullptr;          // [rows, ldu] backward: += dJ/du through the skip path
  T* dz = nullptr;          // [rows, width] backward, highway: dJ/dz
};

template <typename T>
struct ResidualForward {
  RECUR_HD void operator()(std::int64_t idx, const ConnectionArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    a.out[idx] = a.y[r * a.ldy + k] + a.u[r * a.ldu + k];
  }
};

template <typename T>
struct ResidualBackward {
  RECUR_HD void operator()(std::int64_t idx, const ConnectionArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    a.dy[r * a.ldy + k] += a.dout[idx];
    a.du[r * a.ldu + k] += a.dout[idx];
  }
};

template <typename T, class Sig = Sigmoid>
struct HighwayForward {
  RECUR_HD void operator()(std::int64_t idx, const ConnectionArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    const T g = Sig::f(a.gate[idx] + a.bias[k]);
    a.gate[idx] = g;
    a.out[idx] = g * a.y[r * a.ldy + k] + (T(1) - g) * a.u[r * a.ldu + k];
  }
};

template <typename T, class Sig = Sigmoid>
struct HighwayBackward {
  RECUR_HD void operator()(std::int64_t idx, const ConnectionArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    const T g = a.gate[idx], d = a.dout[idx];
    const T y = a.y[r * a.ldy + k], u = a.u[r * a.ldu + k];
    a.dy[r * a.ldy + k] += g * d;
    a.du[r * a.ldu + k] += (T(1) - g) * d;
    a.dz[idx] = d * (y - u) * Sig::df(g);
  }
};

}  // namespace recur::kernels
