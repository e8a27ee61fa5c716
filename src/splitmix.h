// src/splitmix.h: the library's one deterministic generator (splitmix64), so that the same
// seed gives the same weights and probes on every platform and device (std::
// distributions are implementation-defined). Parameter initialisation (Rnn, the modules,
// initialize()) and the diagnostics' power iteration draw from it.
#pragma once

#include <cmath>
#include <cstdint>

namespace recur::detail {

class SplitMix {
 public:
  explicit SplitMix(std::uint64_t seed) : state_(seed) {}
  double uniform() {  // [0, 1)
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }
  double uniform(double bound) { return (2.0 * uniform() - 1.0) * bound; }  // [-bound, bound)
  double normal() {  // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

}  // namespace recur::detail
