// src/cpu/thread_governor.h: how many of OpenMP's threads a CPU pass uses, so that the CPU
// backend slows down gracefully, not sharply, when other processes share the cores.
//
// OpenMP threads that wait at a barrier spin by default (libgomp's OMP_WAIT_POLICY is
// read once, when the library loads, so recur cannot change it). With more runnable
// threads than cores, a spinning waiter takes the core from the thread whose work it is
// waiting for, and two threads beside a busy neighbour run slower than one (docs/
// benchmarks.md, "Beside a busy neighbour"). So each pass
// asks the governor first: a thread that spent a large share of its recent time waiting
// on a run queue (Linux's schedstat) drops one OpenMP thread; one that finds a core idle
// again takes one back.
#pragma once

#include <cstdint>

namespace recur::detail {

// What the governor saw since its last look, for next_thread_count.
struct CpuLoadSample {
  double waiting_share = 0.0;  // of the wall time, the calling thread waited on a run queue
  int runnable = 0;            // threads runnable on the whole machine now (/proc/loadavg),
                               // the calling one included
  int cpus = 1;                // CPUs this process may run on
  int own_runnable = 0;        // threads of this process runnable now, the calling one
                               // included (an OpenMP worker spinning after a library's
                               // parallel region among them); 0: not known
};

// The policy, as a pure function: from `current` threads (of at most `most`), the count
// for the next passes.
int next_thread_count(int current, int most, const CpuLoadSample& sample);

// This process's threads that are runnable now (state R in /proc/self/task), the caller
// included; 0 when they cannot be read or are too many to read cheaply.
int runnable_threads_of_this_process();

// The OpenMP thread count the calling thread's next CPU pass should use, at most `most`
// (the caller's omp_get_max_threads()). Looks at the machine at most every 20 ms; `most`
// itself when the kernel offers no schedstat. CpuOps asks only where its tuning has the
// governor on (Tuning::cpu_thread_governor).
int governed_thread_count(int most);

}  // namespace recur::detail
