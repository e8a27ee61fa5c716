// src/nn/functor_loop.h: the CPU side of the module and join functors (kernels/nn.cuh,
// kernels/joins.cuh): f(i, args) for i in [0, n), in order, as a GPU runs one index per
// thread.
#pragma once

#include <cstdint>

namespace recur::detail {

template <class F, class Args>
void cpu_loop(std::int64_t n, const Args& args) {
  const F f{};
  for (std::int64_t i = 0; i < n; ++i) f(i, args);
}

}  // namespace recur::detail
