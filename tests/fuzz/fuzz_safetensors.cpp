// tests/fuzz/fuzz_safetensors.cpp: libFuzzer target over the safetensors reader.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    return recur::fuzz::fuzz_safetensors(data, size);
  } catch (const std::exception& e) {
    // Not a recur::Error: a finding. abort() makes libFuzzer keep the input as a crash.
    std::fprintf(stderr, "fuzz_safetensors: %s escaped: %s\n", typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz_safetensors: an exception of a non-std type escaped\n");
    std::abort();
  }
}
