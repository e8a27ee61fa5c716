// recur/version.h: the library's version, and what its CPU backend runs on.
#pragma once

#include <string>

#include "recur/export.h"

namespace recur {

// The version of the loaded library, "MAJOR.MINOR.PATCH".
RECUR_API const char* version();

// How the CPU backend computes on this machine, for logs and benchmark reports, e.g.
// "float GEMMs: oneDNN sgemm, oneDNN matmul on packed per-step weights; step loops:
// x86-64-v4, 2 OpenMP threads; BF16 products: AMX tiles". The float GEMM library is
// oneDNN's sgemm when libdnnl.so.2 loads and RECUR_CPU_GEMM is not "openblas", else
// OpenBLAS; with oneDNN, the per-step GEMMs of a pass run on its matmul primitive with the
// weights packed once, unless RECUR_CPU_PACK_WEIGHTS=0. float64 always uses OpenBLAS. A
// Math::Bf16 model's products run on "AMX tiles" or "AVX512_BF16" where the CPU has them
// and they pay (measured once), else they are "emulated" on float32 copies.
RECUR_API std::string cpu_backend_info();

}  // namespace recur
