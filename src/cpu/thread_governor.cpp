// src/cpu/thread_governor.cpp: the CPU pass's thread count under load (thread_governor.h).
#include "thread_governor.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace recur::detail {
namespace {

// A share of run-queue waiting above this means the cores are oversubscribed: on a quiet
// machine a thread waits well under 1% of the time.
constexpr double kCrowded = 0.10;
// How often the machine is looked at: two small /proc reads, about 10 us, per look.
constexpr std::chrono::milliseconds kLookEvery{20};

// The start of a small file (a /proc entry), at most size - 1 bytes, NUL-terminated in
// `text`; false when it cannot be read or is empty.
bool read_start(const char* path, char* text, std::size_t size) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t got = ::read(fd, text, size - 1);
  ::close(fd);
  if (got <= 0) return false;
  text[got] = '\0';
  return true;
}

// The first number after skipping `skip` whitespace-separated fields of a small file;
// -1 when it cannot be read.
long long read_field(const char* path, int skip, char stop = ' ') {
  char text[256];
  if (!read_start(path, text, sizeof(text))) return -1;
  const char* p = text;
  for (int i = 0; i < skip; ++i) {
    while (*p != '\0' && *p != ' ') ++p;
    while (*p == ' ') ++p;
  }
  char* end = nullptr;
  const long long value = std::strtoll(p, &end, 10);
  if (end == p || (*end != stop && *end != '\n' && *end != '\0')) return -1;
  return value;
}

int cpus_of_this_process() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

// One calling thread's view: each thread that runs passes keeps its own, so no lock.
struct ThreadView {
  bool started = false, blind = false;  // blind: no schedstat here
  int threads = 0;
  std::chrono::steady_clock::time_point last_look;
  long long last_wait_ns = 0;
};

}  // namespace

int next_thread_count(int current, int most, const CpuLoadSample& s) {
  current = std::clamp(current, 1, std::max(1, most));
  if (s.waiting_share > kCrowded) return std::max(1, current - 1);
  // Runnable threads that are not ours. Ours may be runnable without working: OpenMP's
  // workers spin a while after each parallel region, also after a GEMM library's regions
  // of the full team while the pass itself runs fewer threads. Counted as others, they
  // would keep a pass at one thread for good after one crowded moment (a oneDNN call in
  // the same process, say); so they are counted where /proc tells them apart.
  const int ours = s.own_runnable > 0 ? s.own_runnable : current;
  const int others = std::max(0, s.runnable - ours);
  if (current < most && others + current + 1 <= s.cpus) return current + 1;
  return current;
}

int runnable_threads_of_this_process() {
  constexpr int kMostRead = 64;  // beyond this many threads a look would cost too much
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  int runnable = 0, read = 0;
  bool known = true;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (++read > kMostRead) {
      known = false;
      break;
    }
    const std::string path = std::string("/proc/self/task/") + e->d_name + "/stat";
    char text[512];
    if (!read_start(path.c_str(), text, sizeof(text))) continue;  // the thread has ended
    // "tid (comm) S ...": the name may hold spaces and parentheses; the state follows
    // the last ')'.
    const char* close = std::strrchr(text, ')');
    if (close != nullptr && close[1] == ' ' && close[2] == 'R') ++runnable;
  }
  ::closedir(dir);
  return known ? runnable : 0;
}

int governed_thread_count(int most) {
  if (most <= 1) return std::max(1, most);
  thread_local ThreadView view;
  const auto now = std::chrono::steady_clock::now();
  if (view.blind) return most;
  if (!view.started) {
    view.last_wait_ns = read_field("/proc/thread-self/schedstat", 1);
    view.blind = view.last_wait_ns < 0;
    view.started = true;
    view.threads = most;
    view.last_look = now;
    return most;
  }
  view.threads = std::min(view.threads, most);
  const auto elapsed = now - view.last_look;
  if (elapsed < kLookEvery) return view.threads;
  const long long wait_ns = read_field("/proc/thread-self/schedstat", 1);
  // /proc/loadavg: "0.50 0.40 0.30 3/250 12345": the runnable count ends at the '/'.
  const long long runnable = read_field("/proc/loadavg", 3, '/');
  if (wait_ns < 0 || runnable < 0) {
    view.blind = true;
    return most;
  }
  CpuLoadSample sample;
  sample.waiting_share =
      static_cast<double>(wait_ns - view.last_wait_ns) /
      static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
  sample.runnable = static_cast<int>(runnable);
  sample.cpus = cpus_of_this_process();
  // Only a thread count below the most can grow, so only then are ours told apart.
  if (view.threads < most) sample.own_runnable = runnable_threads_of_this_process();
  view.threads = next_thread_count(view.threads, most, sample);
  view.last_wait_ns = wait_ns;
  view.last_look = now;
  return view.threads;
}

}  // namespace recur::detail
