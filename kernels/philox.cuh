// kernels/philox.cuh: the Philox-4x32-10 counter-based generator (Salmon et al., SC'11),
// identical on the host and the device: the same (key, counter) gives the same bits on the
// CPU and the GPU, and nothing needs to be stored between forward and backward.
#pragma once

#include <cstdint>

#include "hd.h"

namespace recur::kernels {

struct Philox4x32 {
  std::uint32_t v[4];
};

RECUR_HD std::uint32_t mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

// Ten rounds of Philox-4x32 on `counter` under `key`.
RECUR_HD Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0, std::uint32_t key1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo(kM0, counter.v[0], &hi0);
    const std::uint32_t lo1 = mulhilo(kM1, counter.v[2], &hi1);
    counter = {{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kW0;
    key1 += kW1;
  }
  return counter;
}

// A uniform number in [0, 1) for element `index` of stream (`seed`, `stream`): 24 bits of
// the first output word.
RECUR_HD float philox_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const Philox4x32 c = {{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                         static_cast<std::uint32_t>(stream),
                         static_cast<std::uint32_t>(stream >> 32)}};
  const Philox4x32 r =
      philox4x32_10(c, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  return static_cast<float>(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace recur::kernels
