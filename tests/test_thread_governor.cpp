// tests/test_thread_governor.cpp: the CPU thread governor's policy, and that a pass under
// it leaves the caller's OpenMP settings as they were.
#include <dirent.h>
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cpu/cpu_ops.h"
#include "cpu/thread_governor.h"
#include "test_util.h"

namespace recur::test {
namespace {

using detail::CpuLoadSample;
using detail::next_thread_count;

CpuLoadSample sample(double waiting, int runnable, int cpus) {
  CpuLoadSample s;
  s.waiting_share = waiting;
  s.runnable = runnable;
  s.cpus = cpus;
  return s;
}

TEST(ThreadGovernor, PolicyDropsAThreadWhenCrowdedAndTakesItBackWhenACoreIsFree) {
  // 2 cores, one busy neighbour: 2 threads wait a third of the time -> 1 thread.
  EXPECT_EQ(next_thread_count(2, 2, sample(0.33, 3, 2)), 1);
  // At 1 thread the neighbour and we fill both cores: stay.
  EXPECT_EQ(next_thread_count(1, 2, sample(0.0, 2, 2)), 1);
  // The neighbour has gone: back to 2.
  EXPECT_EQ(next_thread_count(1, 2, sample(0.0, 1, 2)), 2);
  // Two runnable, but both ours (the caller and an OpenMP worker spinning after a GEMM
  // library's region): no neighbour, back to 2; with one of them ours, stay.
  CpuLoadSample spinning = sample(0.0, 2, 2);
  spinning.own_runnable = 2;
  EXPECT_EQ(next_thread_count(1, 2, spinning), 2);
  spinning.own_runnable = 1;
  EXPECT_EQ(next_thread_count(1, 2, spinning), 1);
  // Quiet, at the most: stay; never more than `most`, never fewer than 1.
  EXPECT_EQ(next_thread_count(2, 2, sample(0.01, 2, 2)), 2);
  EXPECT_EQ(next_thread_count(1, 1, sample(0.9, 9, 2)), 1);
  EXPECT_EQ(next_thread_count(8, 4, sample(0.0, 1, 16)), 4);
  // 16 cores, 8 of our threads and 12 others runnable: no free core for a ninth.
  EXPECT_EQ(next_thread_count(8, 16, sample(0.02, 20, 16)), 8);
  EXPECT_EQ(next_thread_count(8, 16, sample(0.02, 10, 16)), 9);
  // Heavily crowded: one thread at a time, down to one.
  int threads = 16;
  for (int i = 0; i < 20; ++i) threads = next_thread_count(threads, 16, sample(0.5, 48, 16));
  EXPECT_EQ(threads, 1);
}

TEST(ThreadGovernor, CountsThisProcesssRunnableThreads) {
  if (::access("/proc/self/task", R_OK) != 0) GTEST_SKIP() << "no /proc/self/task here";
  // The caller is running while it counts; a thread that sleeps is not runnable.
  std::thread sleeper([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int runnable = detail::runnable_threads_of_this_process();
  int threads = 0;  // of this process, the sleeper included, which is not runnable
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(dir)) threads += e->d_name[0] != '.';
    ::closedir(dir);
  }
  sleeper.join();
  EXPECT_GE(runnable, 1);
  EXPECT_LT(runnable, threads);
}

TEST(ThreadGovernor, OffOrOneThreadMeansTheCallersCount) {
  EXPECT_EQ(detail::governed_thread_count(1), 1);
  EXPECT_GE(detail::governed_thread_count(4), 1);
  EXPECT_LE(detail::governed_thread_count(4), 4);
  // With the governor off, a pass leaves the caller's count as it is.
  detail::CpuOps<float> ops;
  detail::Tuning off;
  off.cpu_thread_governor = false;
  ops.set_tuning(off);
  omp_set_num_threads(2);
  EXPECT_EQ(ops.make_current(), -1);
  EXPECT_EQ(omp_get_max_threads(), 2);
}

// Processes that keep every core busy until they are killed.
class BusyNeighbours {
 public:
  explicit BusyNeighbours(int count) {
    for (int i = 0; i < count; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        volatile unsigned long spin = 0;
        for (;;) spin = spin + 1;
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~BusyNeighbours() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }
  BusyNeighbours(const BusyNeighbours&) = delete;
  BusyNeighbours& operator=(const BusyNeighbours&) = delete;

 private:
  std::vector<pid_t> pids_;
};

TEST(ThreadGovernor, CrowdedCoresTakeThreadsAwayAndThePassRestoresTheCallersCount) {
  if (!detail::cpu_float_loops_threaded()) GTEST_SKIP() << "the float loops run on one thread";
  if (::access("/proc/thread-self/schedstat", R_OK) != 0) GTEST_SKIP() << "no schedstat here";
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  omp_set_num_threads(2);
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 16;
  c.hidden_size = 64;
  Rnn rnn(c);
  tune(rnn, [](detail::Tuning& t) { t.cpu_thread_governor = true; });
  Random rng(5);
  Tensor x = rng.tensor<float>({20, 8, 16});
  int fewest = 2;
  {
    // Twice as many busy processes as cores: our thread waits on a run queue about half
    // the time, whatever else runs beside this test.
    BusyNeighbours load(std::min(2 * cpus, 32));
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < end && fewest > 1) {
      rnn.forward(x, {}, {}, Mode::Inference);
      fewest = std::min(fewest, detail::governed_thread_count(2));
      EXPECT_EQ(omp_get_max_threads(), 2) << "a pass left the caller's thread count changed";
    }
  }
  EXPECT_EQ(fewest, 1) << "the governor kept 2 threads on crowded cores";
}

}  // namespace
}  // namespace recur::test
