// bench/onednn_loader.cpp: finds the oneDNN plugin (libbench_onednn.so, built from
// onednn_driver.cpp) beside the recur_bench executable and has it prepare oneDNN's calls. Without
// the plugin, or without libdnnl, the oneDNN rows say why instead.
#include <dlfcn.h>
#include <unistd.h>

#include <string>

#include "result.h"

namespace bench {
namespace {

using PrepareFn = void (*)(const Problem&, Mode, recur::Math, Prepared&);
using VersionFn = void (*)(std::string&);

struct Plugin {
  PrepareFn prepare = nullptr;
  VersionFn version = nullptr;
  std::string error;  // empty when loaded
};

std::string executable_dir() {
  char path[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  const std::string exe(path, static_cast<std::size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

const Plugin& plugin() {
  static const Plugin loaded = [] {
    Plugin p;
    const std::string path = executable_dir() + "/libbench_onednn.so";
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = dlerror();
      p.error = "oneDNN plugin not loaded: " + std::string(why != nullptr ? why : path);
      return p;
    }
    p.prepare = reinterpret_cast<PrepareFn>(dlsym(lib, "recur_bench_onednn_prepare"));
    p.version = reinterpret_cast<VersionFn>(dlsym(lib, "recur_bench_onednn_version"));
    if (p.prepare == nullptr || p.version == nullptr) p.error = path + " lacks its entry points";
    return p;
  }();
  return loaded;
}

}  // namespace

Prepared prepare_onednn(const Problem& p, Mode mode, recur::Math math) {
  Prepared out;
  if (!plugin().error.empty()) {
    out.result = note_result("onednn", math, "cpu", p, mode, plugin().error);
    return out;
  }
  plugin().prepare(p, mode, math, out);
  return out;
}

std::string onednn_version() {
  if (!plugin().error.empty()) return "unavailable (" + plugin().error + ")";
  std::string v;
  plugin().version(v);
  return v;
}

}  // namespace bench
