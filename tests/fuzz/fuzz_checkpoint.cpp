// tests/fuzz/fuzz_checkpoint.cpp: libFuzzer target over load_checkpoint and load_state_dict.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    return recur::fuzz::fuzz_checkpoint(data, size);
  } catch (const std::exception& e) {
    // Not a recur::Error: a finding. abort() makes libFuzzer keep the input as a crash.
    std::fprintf(stderr, "fuzz_checkpoint: %s escaped: %s\n", typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz_checkpoint: an exception of a non-std type escaped\n");
    std::abort();
  }
}
