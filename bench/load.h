// bench/load.h: a competing load for --beside-load: processes that keep cores busy while
// a problem is timed, as a neighbour on a shared machine would.
#pragma once

#include <sys/types.h>

#include <vector>

namespace bench {

// `processes` children, each spinning on one core, until destruction kills and reaps
// them. They die with the benchmark if it is killed (PR_SET_PDEATHSIG).
class CompetingLoad {
 public:
  explicit CompetingLoad(int processes);
  ~CompetingLoad();
  CompetingLoad(const CompetingLoad&) = delete;
  CompetingLoad& operator=(const CompetingLoad&) = delete;

 private:
  std::vector<pid_t> pids_;
};

}  // namespace bench
