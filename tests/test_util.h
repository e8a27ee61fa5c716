// tests/test_util.h: helpers shared by the tests: deterministic random data, derived
// tolerances, golden-file reading, and the GPU skip.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "recur/recur.h"
#include "rnn_access.h"

namespace recur::test {

// The CPU thread governor (src/cpu/thread_governor.h) takes threads away while other
// processes crowd the cores, and ctest runs tests side by side: tests that count threaded
// runs need the count they asked for, so the suite's models start with the governor off
// (its diagnostic switch, set before any model reads the environment's tuning;
// test_thread_governor.cpp turns it on for its model). A value the caller set stays.
inline const bool kThreadGovernorOff = (::setenv("RECUR_CPU_THREAD_GOVERNOR", "0", 0), true);

// Changes `rnn`'s tuning (src/tuning.h) from its next forward on: change(tuning).
template <class Change>
void tune(Rnn& rnn, Change&& change) {
  detail::Engine& engine = detail::RnnAccess::engine(rnn);
  detail::Tuning tuning = engine.tuning();
  change(tuning);
  engine.set_tuning(tuning);
}

// What `rnn`'s last forward and backward did (src/pass_statistics.h).
inline const detail::PassStatistics& forward_statistics(Rnn& rnn) {
  return detail::RnnAccess::engine(rnn).forward_statistics();
}
inline const detail::PassStatistics& backward_statistics(Rnn& rnn) {
  return detail::RnnAccess::engine(rnn).backward_statistics();
}

// TYPED_TEST_SUITE's name generator, given explicitly: gtest's own names (the type's
// index: Clip/0, Clip/1), and no variadic macro left without its optional argument, which
// clang's -Wpedantic warns about.
struct TypeIndexNames {
  template <typename T>
  static std::string GetName(int index) {
    return std::to_string(index);
  }
};

// Deterministic uniform numbers in [lo, hi) (splitmix64), the same on every platform.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  double uniform(double lo = -1.0, double hi = 1.0) {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * static_cast<double>(z >> 11) * 0x1.0p-53;
  }
  template <typename T>
  std::vector<T> vector(std::int64_t n, double lo = -1.0, double hi = 1.0) {
    std::vector<T> v(static_cast<std::size_t>(n));
    for (T& x : v) x = static_cast<T>(uniform(lo, hi));
    return v;
  }
  template <typename T>
  Tensor tensor(const Shape& shape, Device device = Device::cpu(), double lo = -1.0,
                double hi = 1.0) {
    return Tensor::from_vector(vector<T>(numel(shape), lo, hi), shape, device);
  }

 private:
  std::uint64_t state_;
};

template <typename T>
constexpr double epsilon() {
  return std::numeric_limits<T>::epsilon();
}

// A tolerance derived from the arithmetic, not tuned: each element may differ by
// eps * c * (1 + |ref|), where c grows with log2 of the accumulation depth (the longest
// chain of rounded operations feeding the result, e.g. K of a GEMM times T steps).
struct Tolerance {
  double eps = 0.0;     // unit roundoff of the compared precision
  double factor = 0.0;  // c
  double of(double ref) const { return eps * factor * (1.0 + std::fabs(ref)); }
};

template <typename T>
Tolerance tolerance_for_depth(double depth, double safety = 8.0) {
  return {epsilon<T>(), safety * std::log2(2.0 + depth)};
}

// Checks every element against its own budget, budget(i, ref[i]); reports the worst error
// as a fraction of its budget. NaN or Inf never passes.
template <typename A, typename B, typename Budget>
::testing::AssertionResult all_within(const std::vector<A>& got, const std::vector<B>& ref,
                                      Budget&& budget) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " vs reference " << ref.size();
  }
  if (got.empty()) return ::testing::AssertionFailure() << "nothing to compare";
  double worst = 0.0;
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    if (!std::isfinite(g) || !std::isfinite(r)) {
      return ::testing::AssertionFailure()
             << "non-finite value at " << i << ": got " << g << ", reference " << r;
    }
    const double frac = std::fabs(g - r) / budget(i, r);
    if (frac > worst) {
      worst = frac;
      worst_i = i;
    }
  }
  if (worst > 1.0) {
    return ::testing::AssertionFailure()
           << "element " << worst_i << ": got " << static_cast<double>(got[worst_i])
           << ", reference " << static_cast<double>(ref[worst_i]) << ", error is " << 100.0 * worst
           << "% of the budget " << budget(worst_i, static_cast<double>(ref[worst_i]));
  }
  return ::testing::AssertionSuccess() << "worst error " << 100.0 * worst << "% of budget";
}

// all_within, every element's budget tol.of(its reference).
template <typename A, typename B>
::testing::AssertionResult all_close(const std::vector<A>& got, const std::vector<B>& ref,
                                     const Tolerance& tol) {
  return all_within(got, ref, [&tol](std::size_t, double r) { return tol.of(r); });
}

// Golden files (written by tests/golden/gen_golden.py): lines
//   tensor <name> <rank> <d0> ... <dk>
//   <numel values>
// and '#' comments.
struct GoldenTensor {
  Shape shape;
  std::vector<double> values;
};
using Golden = std::map<std::string, GoldenTensor>;

// The folder of the golden files: $RECUR_TEST_DATA_DIR when set (a build run on another
// machine), else the source tree's tests/golden/data.
inline std::string golden_dir() {
  const char* env = std::getenv("RECUR_TEST_DATA_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(RECUR_TEST_DATA_DIR);
}

inline Golden read_golden(const std::string& file) {
  const std::string path = golden_dir() + "/" + file;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open golden file " + path);
  Golden out;
  std::string word;
  while (in >> word) {
    if (word[0] == '#') {
      std::getline(in, word);
      continue;
    }
    if (word != "tensor") throw std::runtime_error("bad golden file " + path + ": " + word);
    std::string name;
    std::size_t rank = 0;
    in >> name >> rank;
    GoldenTensor t;
    t.shape.resize(rank);
    for (auto& d : t.shape) in >> d;
    t.values.resize(static_cast<std::size_t>(numel(t.shape)));
    for (double& v : t.values) in >> v;
    if (!in) throw std::runtime_error("truncated golden file " + path + " at " + name);
    out[name] = std::move(t);
  }
  return out;
}

// True when a CUDA device can run this build's kernels.
inline bool gpu_available() { return cuda_device_count() > 0; }

}  // namespace recur::test

namespace recur::test {
// scripts/gpu_check.sh sets RECUR_TEST_REQUIRE_GPU=1: there, no GPU is a failure.
inline bool gpu_required() {
  const char* env = std::getenv("RECUR_TEST_REQUIRE_GPU");
  return env != nullptr && std::string(env) == "1";
}
// The bytes of a view, as a snapshot to compare with later (any dtype, any device).
inline std::vector<unsigned char> bytes_of_view(const TensorView& v) {
  std::vector<unsigned char> out(v.nbytes());
  if (!out.empty()) v.copy_to_host(out.data());
  return out;
}

// Runs `fn`, expects a recur::Error for `argument` (named in its message too) whose
// expected/got contain the given fragments, and checks that the model's parameters and
// gradients survived, bit for bit.
template <class Fn>
void expect_error_keeps_model(Rnn& rnn, Fn&& fn, const std::string& argument,
                              const std::string& expected, const std::string& got) {
  const std::vector<unsigned char> params = bytes_of_view(rnn.parameters());
  const std::vector<unsigned char> grads = bytes_of_view(rnn.gradients());
  try {
    fn();
    ADD_FAILURE() << "no error for " << argument;
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
    EXPECT_NE(e.expected().find(expected), std::string::npos) << e.what();
    EXPECT_NE(e.got().find(got), std::string::npos) << e.what();
    const std::string what = e.what();
    EXPECT_NE(what.find("'" + argument + "'"), std::string::npos) << what;
  }
  EXPECT_EQ(bytes_of_view(rnn.parameters()), params);
  EXPECT_EQ(bytes_of_view(rnn.gradients()), grads);
}

// The message of the recur::Error that fn() throws, or "no error".
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace recur::test

// Skips (never passes) a test that needs a GPU when there is none; fails instead where
// RECUR_TEST_REQUIRE_GPU=1 says a GPU must be there.
#define RECUR_REQUIRE_GPU()                                                 \
  do {                                                                      \
    if (!::recur::test::gpu_available()) {                                  \
      if (::recur::test::gpu_required()) FAIL() << "no usable CUDA device"; \
      GTEST_SKIP() << "no usable CUDA device";                              \
    }                                                                       \
  } while (0)

namespace recur::test {

// Central differences in float64: with step h the error is at most about
// rounding/h + h^2 * |J'''|/6. Rounding in evaluating J is bounded by eps * depth * Jabs,
// where Jabs = sum |terms of J|; J''' is of the order of Jabs for these smooth cells (the
// activations' derivatives are bounded by 1, weights by 1). h = cbrt(eps) balances the two.
struct FiniteDifference {
  static double step() { return std::cbrt(epsilon<double>()); }
  static double tolerance(double jabs, double depth) {
    const double h = step();
    return 8.0 * (epsilon<double>() * (2.0 + depth) * jabs / h + h * h * (1.0 + jabs));
  }
};

}  // namespace recur::test
