// tests/test_bench_timer.cpp: the benchmark's side-by-side timer (bench/timer.h): the order
// of calls within each round, paired samples, early stops and calls that fail.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "timer.h"

namespace {

// Calls that log their index and report fixed times: call i takes ms[i].
std::vector<bench::TimedCall> logging_calls(std::vector<int>& log, const std::vector<double>& ms) {
  std::vector<bench::TimedCall> calls;
  for (std::size_t i = 0; i < ms.size(); ++i) {
    calls.push_back([&log, i, t = ms[i]] {
      log.push_back(static_cast<int>(i));
      return t;
    });
  }
  return calls;
}

bench::TimingOptions rounds(int warmup, int reps, double max_seconds) {
  bench::TimingOptions opt;
  opt.warmup = warmup;
  opt.reps = reps;
  opt.min_reps = 3;
  opt.max_seconds = max_seconds;
  return opt;
}

TEST(BenchTimer, EveryRoundRunsEachCallOnceInRotatingOrder) {
  std::vector<int> log;
  const bench::SideBySide s =
      bench::time_side_by_side(logging_calls(log, {1, 2, 3}), rounds(1, 4, 1e9));
  // Round r (warm-up included) starts at call r mod 3.
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2, 1, 2, 0}));
  ASSERT_EQ(s.ms.size(), 3u);
  EXPECT_EQ(s.ms[0], (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(s.ms[2], (std::vector<double>{3, 3, 3, 3}));
  EXPECT_EQ(s.errors, (std::vector<std::string>{"", "", ""}));
}

TEST(BenchTimer, StopsAfterMaxSecondsPerCallOnceMinRepsAreDone) {
  std::vector<int> log;
  // Two calls at 0.5 s each: 1 s of rounds; each round takes 0.6 s.
  const bench::SideBySide s =
      bench::time_side_by_side(logging_calls(log, {300, 300}), rounds(0, 100, 0.5));
  EXPECT_EQ(s.ms[0].size(), 3u);  // 1.2 s after two rounds, but three are the minimum
  EXPECT_EQ(s.ms[1].size(), 3u);
}

TEST(BenchTimer, ACallThatThrowsIsLeftOutAndTheOthersGoOn) {
  int calls_of_second = 0;
  std::vector<bench::TimedCall> calls = {[] { return 2.0; },
                                         [&] {
                                           if (++calls_of_second == 3)
                                             throw std::runtime_error("out of memory");
                                           return 1.0;
                                         }};
  const bench::SideBySide s = bench::time_side_by_side(calls, rounds(1, 5, 1e9));
  EXPECT_EQ(s.ms[0].size(), 5u);
  EXPECT_EQ(s.ms[1].size(), 1u);  // timed once, then it threw in the second timed round
  EXPECT_EQ(s.errors[0], "");
  EXPECT_EQ(s.errors[1], "out of memory");
  EXPECT_EQ(calls_of_second, 3);
}

TEST(BenchTimer, PairedRatioDividesRoundByRound) {
  // Round by round 2/1, 3/2, 8/4 (the medians' ratio, 3/2, would differ).
  const bench::Stats r = bench::paired_ratio({2, 3, 8}, {1, 2, 4});
  EXPECT_EQ(r.reps, 3);
  EXPECT_DOUBLE_EQ(r.median_ms, 2.0);
  EXPECT_DOUBLE_EQ(r.min_ms, 1.5);
  EXPECT_DOUBLE_EQ(r.max_ms, 2.0);
  // Only the rounds both have.
  EXPECT_EQ(bench::paired_ratio({1, 1, 1}, {1}).reps, 1);
}

TEST(BenchTimer, HostTimedMeasuresTheCall) {
  int ran = 0;
  const bench::TimedCall call = bench::host_timed([&] { ++ran; });
  const double ms = call();
  EXPECT_EQ(ran, 1);
  EXPECT_GE(ms, 0.0);
  EXPECT_LT(ms, 1e3);
}

}  // namespace
