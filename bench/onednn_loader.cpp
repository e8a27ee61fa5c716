// bench/onednn_loader.cpp: finds the oneDNN plugin (libbench_onednn.so, built from
// onednn_driver.cpp) beside the recur_bench executable and calls into it. Without the
// plugin, or without libdnnl, the oneDNN rows say why instead.
#include <dlfcn.h>
#include <unistd.h>

#include <string>

#include "result.h"

namespace bench {
namespace {

using RunFn = void (*)(const Problem&, const DriverOptions&, std::vector<Result>&);
using VersionFn = void (*)(std::string&);

struct Plugin {
  RunFn run = nullptr;
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
    p.run = reinterpret_cast<RunFn>(dlsym(lib, "recur_bench_onednn_run"));
    p.version = reinterpret_cast<VersionFn>(dlsym(lib, "recur_bench_onednn_version"));
    if (p.run == nullptr || p.version == nullptr) p.error = path + " lacks its entry points";
    return p;
  }();
  return loaded;
}

}  // namespace

std::vector<Result> run_onednn(const Problem& p, const DriverOptions& opt) {
  std::vector<Result> out;
  if (!plugin().error.empty()) {
    for (Mode m : opt.modes) out.push_back(note_result("onednn", "cpu", p, m, plugin().error));
    return out;
  }
  plugin().run(p, opt, out);
  return out;
}

std::string onednn_version() {
  if (!plugin().error.empty()) return "unavailable (" + plugin().error + ")";
  std::string v;
  plugin().version(v);
  return v;
}

}  // namespace bench
