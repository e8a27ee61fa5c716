// bench/machine.cpp: machine and library description for the report header.
#include "machine.h"

#include <recur/recur.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "result.h"

namespace bench {

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

MachineInfo collect_machine_info() {
  MachineInfo m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      m.cpu_model = line.substr(line.find(':') + 2);
      break;
    }
  }
  m.cpu_threads = static_cast<int>(std::thread::hardware_concurrency());
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) m.hostname = host;
  const std::time_t now = std::time(nullptr);
  char date[32] = {};
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  m.date_utc = date;
  m.recur_version = recur::version();
  m.recur_cpu = recur::cpu_backend_info();
  m.openblas = openblas_info();
#ifdef RECUR_BENCH_ONEDNN
  m.onednn = onednn_version();
#endif
#ifdef RECUR_BENCH_CUDA
  m.gpu = cuda_device_name();
#endif
#ifdef RECUR_BENCH_CUDNN
  if (!m.gpu.empty()) m.cudnn = cudnn_version();
#endif
  m.load_start = load_average();
  return m;
}

}  // namespace bench
