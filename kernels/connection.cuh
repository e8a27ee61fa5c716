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
#include "philox.cuh"

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
  // Dropout: out = y * keep / (1 - p), keep = philox_uniform(seed, stream, index) >= p with
  // index = (row0 + r) * width + k, so a range's masks do not depend on how it is split.
  T p = T(0);
  std::uint64_t seed = 0, stream = 0;
  std::int64_t row0 = 0;  // the first row's index in the whole tensor
};

// Whether dropout keeps element (r, k) of a range whose first row is a.row0.
template <typename T>
RECUR_HD bool dropout_keeps(const ConnectionArgs<T>& a, std::int64_t r, std::int64_t k) {
  const std::uint64_t index = static_cast<std::uint64_t>((a.row0 + r) * a.width + k);
  return static_cast<T>(philox_uniform(a.seed, a.stream, index)) >= a.p;
}

// out = y * mask / (1 - p): inverted dropout, so inference needs no scaling.
template <typename T>
struct DropoutForward {
  RECUR_HD void operator()(std::int64_t idx, const ConnectionArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    a.out[idx] = dropout_keeps(a, r, k) ? a.y[r * a.ldy + k] / (T(1) - a.p) : T(0);
  }
};

// dy += dout * mask / (1 - p), with the mask regenerated from the same counters.
template <typename T>
struct DropoutBackward {
  RECUR_HD void operator()(std::int64_t idx, const ConnectionArgs<T>& a) const {
    const std::int64_t r = idx / a.width, k = idx % a.width;
    if (dropout_keeps(a, r, k)) a.dy[r * a.ldy + k] += a.dout[idx] / (T(1) - a.p);
  }
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
