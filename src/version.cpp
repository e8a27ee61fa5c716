// src/version.cpp: recur::version(), from the project version CMake passes in, and
// recur::cpu_backend_info().
#include "recur/version.h"

#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"

namespace recur {

const char* version() { return RECUR_VERSION_STRING; }

std::string cpu_backend_info() {
  const int threads = detail::cpu_step_threads();
  const detail::Tuning& tuning = detail::environment_tuning();
  const bool packs = tuning.cpu_pack_weights && detail::PackedGemms::available();
  const char* bf16 = !detail::cpu_native_bf16(tuning)                               ? "emulated"
                     : detail::cpu_bf16_kernel(tuning) == detail::Bf16Kernel::Tiles ? "AMX tiles"
                                                                                    : "AVX512_BF16";
  return std::string("float GEMMs: ") + detail::cpu_sgemm_library() + " sgemm" +
         (packs ? ", oneDNN matmul on packed per-step weights" : "") +
         "; step loops: " + detail::cpu_step_isa() + ", " + std::to_string(threads) +
         (threads == 1 ? " thread" : " OpenMP threads") + "; BF16 products: " + bf16;
}

}  // namespace recur
