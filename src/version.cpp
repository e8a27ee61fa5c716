// src/version.cpp: recur::version(), from the project version CMake passes in, and
// recur::cpu_backend_info().
#include "recur/version.h"

#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"

namespace recur {

const char* version() { return RECUR_VERSION_STRING; }

std::string cpu_backend_info() {
  const int threads = detail::cpu_step_threads();
  const bool packs =
      detail::environment_tuning().cpu_pack_weights && detail::PackedGemms::available();
  return std::string("float GEMMs: ") + detail::cpu_sgemm_library() + " sgemm" +
         (packs ? ", oneDNN matmul on packed per-step weights" : "") +
         "; step loops: " + detail::cpu_step_isa() + ", " + std::to_string(threads) +
         (threads == 1 ? " thread" : " OpenMP threads");
}

}  // namespace recur
