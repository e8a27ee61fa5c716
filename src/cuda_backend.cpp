// src/cuda_backend.cpp: finds the CUDA backend (cuda_backend.h). A build whose tests link
// the backend's objects in (recur_static) gets it directly; the installed librecur.so
// loads librecur_cuda.so from its own directory at the first CUDA request, so that the same
// package runs on a machine without CUDA's libraries, on the CPU.
#include "cuda_backend.h"

#include <dlfcn.h>

#include <mutex>

#include "recur/error.h"
#include "recur/version.h"

// Defined when the backend's objects are linked into the same binary (the static library
// the tests link); null in librecur.so, which never links them.
extern "C" __attribute__((weak)) recur::detail::CudaBackend* recur_cuda_backend(int abi);

namespace recur::detail {
namespace {

struct Loaded {
  CudaBackend* backend = nullptr;
  std::string why;
};

#if RECUR_CUDA_BACKEND_BUILT
// The directory of the library this function is in ("" if unknown): librecur_cuda.so is
// installed beside librecur.so.
std::string own_directory() {
  Dl_info info;
  if (::dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  const std::string path = info.dli_fname;
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}
#endif

Loaded load() {
  Loaded out;
#if !RECUR_CUDA_BACKEND_BUILT
  out.why = "recur was built without its CUDA backend (configure with -DRECUR_CUDA=ON)";
  return out;
#else
  if (&recur_cuda_backend != nullptr) {
    out.backend = recur_cuda_backend(kCudaBackendAbi);
    if (out.backend == nullptr) out.why = "the linked CUDA backend is of another build";
    return out;
  }
  const std::string name = RECUR_CUDA_LIBRARY_NAME;
  std::string errors;
  for (const std::string& path : {own_directory() + name, name}) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = ::dlerror();
      errors += std::string(errors.empty() ? "" : "; ") + (e != nullptr ? e : path);
      continue;
    }
    // Kept loaded for the life of the process: its objects may outlive any scope here.
    using Entry = CudaBackend* (*)(int);
    const auto entry = reinterpret_cast<Entry>(::dlsym(handle, "recur_cuda_backend"));
    if (entry == nullptr) {
      out.why = path + " has no recur_cuda_backend entry";
      return out;
    }
    out.backend = entry(kCudaBackendAbi);
    if (out.backend == nullptr) {
      out.why = path + " is of another recur build than librecur " + std::string(version());
    }
    return out;
  }
  out.why = "its library could not be loaded (" + errors +
            "); it needs CUDA's runtime (libcudart) and cuBLAS installed";
  return out;
#endif
}

const Loaded& loaded() {
  static const Loaded once = load();
  return once;
}

}  // namespace

CudaBackend* cuda_backend(std::string* why) {
  const Loaded& l = loaded();
  if (l.backend == nullptr && why != nullptr) *why = l.why;
  return l.backend;
}

CudaBackend& require_cuda_backend(const std::string& where) {
  std::string why;
  CudaBackend* backend = cuda_backend(&why);
  if (backend == nullptr) {
    throw Error("recur: " + where +
                ": a CUDA device was asked for, but the CUDA backend is "
                "unavailable: " +
                why);
  }
  return *backend;
}

bool cuda_backend_built() { return RECUR_CUDA_BACKEND_BUILT != 0; }

CudaDeviceScope::CudaDeviceScope(int index)
    : backend_(require_cuda_backend("CUDA device scope")), previous_(backend_.set_device(index)) {}

CudaDeviceScope::~CudaDeviceScope() { backend_.restore_device(previous_); }

}  // namespace recur::detail
