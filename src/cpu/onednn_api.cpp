// src/cpu/onednn_api.cpp: finds libdnnl.so.2 and its functions, once.
#include "onednn_api.h"

#include <dlfcn.h>

#include "../tuning.h"

namespace recur::detail {
namespace {

// The loaded library (never closed), or null when absent or turned off.
void* onednn_library() {
  static void* const lib = []() -> void* {
    if (environment_tuning().cpu_openblas_only) return nullptr;
    return dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
  }();
  return lib;
}

}  // namespace

OnednnSgemm onednn_sgemm() {
  static const OnednnSgemm fn = []() -> OnednnSgemm {
    void* lib = onednn_library();
    return lib != nullptr ? reinterpret_cast<OnednnSgemm>(dlsym(lib, "dnnl_sgemm")) : nullptr;
  }();
  return fn;
}

#if RECUR_HAS_ONEDNN_HEADER

const OnednnApi* onednn_api() {
  static const OnednnApi* const api = []() -> const OnednnApi* {
    static OnednnApi loaded;
    void* lib = onednn_library();
    if (lib == nullptr || onednn_sgemm() == nullptr) return nullptr;
    bool complete = true;
#define RECUR_ONEDNN_RESOLVE(name)                                      \
  loaded.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name)); \
  complete = complete && loaded.name != nullptr;
    RECUR_ONEDNN_FUNCTIONS(RECUR_ONEDNN_RESOLVE)
#undef RECUR_ONEDNN_RESOLVE
    if (!complete) return nullptr;
    if (loaded.dnnl_engine_create(&loaded.engine, dnnl_cpu, 0) != dnnl_success) return nullptr;
    return &loaded;
  }();
  return api;
}

#endif

}  // namespace recur::detail
