// bench/machine.h: what the numbers were measured on.
#pragma once

#include <string>

namespace bench {

struct MachineInfo {
  std::string cpu_model;  // /proc/cpuinfo "model name"
  int cpu_threads = 0;    // std::thread::hardware_concurrency()
  std::string gpu;        // CUDA device 0, "" without one
  std::string date_utc;   // ISO 8601
  std::string hostname;
  std::string recur_version, openblas, onednn, cudnn;  // "" when not built in
  std::string recur_cpu;                               // recur::cpu_backend_info()
  std::string load_start, load_end;                    // /proc/loadavg at start and end
  std::string command_line;
};

MachineInfo collect_machine_info();
std::string load_average();  // the first three fields of /proc/loadavg

}  // namespace bench
