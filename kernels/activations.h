// kernels/activations.h: activation functions as policies.
//
// Each policy has f(x) and df(y), the derivative written in terms of the output
// y = f(x), so backward needs only what forward saved. Cells take their activations as
// template parameters so tests can swap in Identity: saturated tanh and sigmoid outputs
// hide indexing mistakes that a linear cell exposes.
#pragma once

#include "hd.h"

namespace recur::kernels {

struct Sigmoid {
  template <typename T>
  static RECUR_HD T f(T x) {
    return sigmoid_(x);
  }
  template <typename T>
  static RECUR_HD T df(T y) {
    return y * (T(1) - y);
  }
};

struct Tanh {
  template <typename T>
  static RECUR_HD T f(T x) {
    return tanh_(x);
  }
  template <typename T>
  static RECUR_HD T df(T y) {
    return T(1) - y * y;
  }
};

struct Relu {
  template <typename T>
  static RECUR_HD T f(T x) {
    return x > T(0) ? x : T(0);
  }
  template <typename T>
  static RECUR_HD T df(T y) {
    return y > T(0) ? T(1) : T(0);
  }
};

struct Identity {
  template <typename T>
  static RECUR_HD T f(T x) {
    return x;
  }
  template <typename T>
  static RECUR_HD T df(T) {
    return T(1);
  }
};

}  // namespace recur::kernels
