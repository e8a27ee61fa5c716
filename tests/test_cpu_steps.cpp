// tests/test_cpu_steps.cpp: the CPU's vectorised, threaded step loops (src/cpu/cpu_steps.cpp)
// give what the functors give one element at a time, for every step kind and every shape of
// call: bias or none, training or inference, rows that start at this step, inactive rows,
// a strided h (bidirectional layout), H a multiple of the vector width or not, one thread
// or several. And CpuOps::transpose, copy, fill and the bias gradients' column sums.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"
#include "test_util.h"

namespace recur::test {
namespace {

using kernels::StepKind;

struct Variant {
  std::int64_t batch, hidden, ldh_factor;  // ldh = ldh_factor * hidden
  std::int64_t active, carried;
  bool bias, training, dy;
  std::string describe() const {
    return "B=" + std::to_string(batch) + " H=" + std::to_string(hidden) +
           " ldh=" + std::to_string(ldh_factor) + "H active=" + std::to_string(active) +
           " carried=" + std::to_string(carried) + (bias ? " bias" : " no-bias") +
           (training ? " training" : " inference") + (dy ? " dy" : " no-dy");
  }
};

// Every buffer a step reads or writes, filled with random values.
template <typename T>
struct Buffers {
  std::map<std::string, std::vector<T>> v;
  Buffers(const Variant& s, std::uint64_t seed) {
    Random rng(seed);
    const std::int64_t B = s.batch, H = s.hidden, G = 4, ldh = s.ldh_factor * H;
    for (const char* name : {"gx", "gh", "g0"}) v[name] = rng.vector<T>(B * G * H, -3, 3);
    for (const char* name : {"b_ih", "b_hh"}) v[name] = rng.vector<T>(G * H);
    for (const char* name : {"h_prev", "h0", "h", "dy"}) v[name] = rng.vector<T>(B * ldh);
    for (const char* name : {"c_prev", "c0", "c", "hp", "rh", "drh", "dh", "dc", "dproj"}) {
      v[name] = rng.vector<T>(B * H, -2, 2);
    }
    v["saved"] = rng.vector<T>(B * G * H, 0.05, 0.95);  // σ and tanh outputs
    for (const char* name : {"dgx", "dgh"}) v[name] = rng.vector<T>(B * G * H);
  }
  T* p(const char* name) { return v.at(name).data(); }

  kernels::StepForward<T> forward(const Variant& s, StepKind kind) {
    kernels::StepForward<T> a;
    a.batch = s.batch, a.hidden = s.hidden, a.ldh = s.ldh_factor * s.hidden;
    a.active = s.active, a.carried = s.carried;
    a.gx = p("gx"), a.gh = p("gh"), a.g0 = p("g0");
    if (s.bias) a.b_ih = p("b_ih"), a.b_hh = p("b_hh");
    a.h_prev = p("h_prev"), a.c_prev = p("c_prev"), a.h0 = p("h0"), a.c0 = p("c0");
    a.h = p("h"), a.c = p("c"), a.rh = p("rh");
    // The reset-before-product phases always pass `saved` (z lives there in inference too).
    const bool rbp = kind == StepKind::GruRbpGates || kind == StepKind::GruRbpOutput;
    if (s.training || rbp) a.saved = p("saved");
    if (s.training) a.hp = p("hp"), a.ldhp = s.hidden;
    return a;
  }
  kernels::StepBackward<T> backward(const Variant& s) {
    kernels::StepBackward<T> a;
    a.batch = s.batch, a.hidden = s.hidden, a.ldh = s.ldh_factor * s.hidden;
    a.active = s.active, a.carried = s.carried;
    if (s.dy) a.dy = p("dy");
    a.h = p("h"), a.h_prev = p("hp"), a.c = p("c"), a.c_prev = p("c_prev"), a.c0 = p("c0");
    a.saved = p("saved"), a.drh = p("drh"), a.dh = p("dh"), a.dc = p("dc");
    a.dgx = p("dgx"), a.dgh = p("dgh"), a.dproj = p("dproj");
    return a;
  }
};

// The reference: the functor called once per flat index, as a CUDA thread calls it.
template <typename T, class Args, class Dispatch>
void one_element_at_a_time(StepKind kind, const Args& a, Dispatch dispatch) {
  dispatch(kind, [&](auto functor) {
    if constexpr (kernels::is_per_row<decltype(functor)>) {
      kernels::SerialLanes lanes;  // kRowStepKinds: one row at a time
      for (std::int64_t b = 0; b < a.active; ++b) functor.row(b, a, lanes);
    } else {
      for (std::int64_t i = 0; i < a.batch * a.hidden; ++i) functor(i, a);
    }
  });
}

template <typename T>
void expect_same(Buffers<T>& got, Buffers<T>& want, const std::string& what) {
  // The vector copies may contract a*b+c into one rounding (FMA): a few roundings per
  // element differ, each bounded by eps (1 + |value|); no accumulation is involved.
  const Tolerance tol = tolerance_for_depth<T>(2);
  for (auto& [name, values] : want.v) {
    EXPECT_TRUE(all_close(got.v.at(name), values, tol)) << what << ", buffer " << name;
  }
}

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (std::int64_t H : {64, 67}) {
    for (bool bias : {true, false}) {
      for (bool training : {true, false}) {
        out.push_back({5, H, 1, 5, 5, bias, training, true});
        out.push_back({6, H, 2, 4, 2, bias, training, false});  // strided h, starts, idle rows
        out.push_back({3, H, 1, 3, 0, bias, training, true});   // every row starts here
        // Enough elements (over 2 x 4096) that a threaded call shares the rows out.
        out.push_back({80, H * 2, 2, 77, 40, bias, training, true});
      }
    }
  }
  return out;
}

template <typename T>
class CpuSteps : public ::testing::Test {};
using Precisions = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CpuSteps, Precisions, TypeIndexNames);

TYPED_TEST(CpuSteps, LoopsMatchTheFunctorsElementByElement) {
  using T = TypeParam;
  std::uint64_t seed = 1;
  for (const Variant& s : variants()) {
    for (StepKind kind : kernels::kStepKinds) {
      const bool threaded = seed % 4 == 1;  // half the calls (seed advances by 2)
      const std::string what = "kind " + std::to_string(static_cast<int>(kind)) + ", " +
                               s.describe() + (threaded ? ", threaded" : "");
      Buffers<T> fast(s, seed), slow(s, seed);
      const kernels::StepForward<T> ff = fast.forward(s, kind), fs = slow.forward(s, kind);
      detail::cpu_step_forward(kind, &ff, 1, threaded);
      one_element_at_a_time<T>(kind, fs,
                               [](StepKind k, auto fn) { kernels::dispatch_forward<T>(k, fn); });
      expect_same(fast, slow, "forward " + what);

      Buffers<T> fast_b(s, seed + 1), slow_b(s, seed + 1);
      const kernels::StepBackward<T> bf = fast_b.backward(s), bs = slow_b.backward(s);
      detail::cpu_step_backward(kind, &bf, 1, threaded);
      one_element_at_a_time<T>(kind, bs,
                               [](StepKind k, auto fn) { kernels::dispatch_backward<T>(k, fn); });
      expect_same(fast_b, slow_b, "backward " + what);
      seed += 2;
    }
  }
}

// Several units in one call (a wavefront or both directions), rows shared among threads:
// each unit gets exactly what it gets alone.
TYPED_TEST(CpuSteps, SeveralUnitsInOneThreadedCallMatchOneAtATime) {
  using T = TypeParam;
  const Variant s{40, 160, 1, 37, 20, true, true, true};
  for (StepKind kind : {StepKind::Lstm, StepKind::GruLinearBeforeReset}) {
    std::vector<Buffers<T>> together, alone;
    for (std::uint64_t u = 0; u < 3; ++u) {
      together.emplace_back(s, 100 + u);
      alone.emplace_back(s, 100 + u);
    }
    std::vector<kernels::StepForward<T>> units;
    for (Buffers<T>& b : together) units.push_back(b.forward(s, kind));
    detail::cpu_step_forward(kind, units.data(), 3, true);
    for (std::size_t u = 0; u < 3; ++u) {
      const kernels::StepForward<T> one = alone[u].forward(s, kind);
      detail::cpu_step_forward(kind, &one, 1, false);
      expect_same(together[u], alone[u], "unit " + std::to_string(u));
    }
  }
}

// The transpose that gives the forward pass W_hh^T: tiles with ragged edges, and a wide
// and a tall matrix.
TYPED_TEST(CpuSteps, TransposeMovesEveryElement) {
  using T = TypeParam;
  Random rng(7);
  for (auto [rows, cols] :
       {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 70}, {100, 33}, {1024, 256}}) {
    const std::vector<T> src = rng.vector<T>(rows * cols);
    std::vector<T> dst(src.size(), T(-7));
    detail::CpuOps<T> ops;
    ops.transpose({rows, cols, dst.data(), src.data()});
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(dst[c * rows + r], src[r * cols + c]) << rows << " x " << cols;
      }
    }
  }
}

// Copies and fills, which OpenMP's threads share from a megabyte on: every element once,
// slices meeting exactly, at sizes below, at and above the threshold, odd ones included.
TYPED_TEST(CpuSteps, CopyAndFillReachEveryElement) {
  using T = TypeParam;
  const std::int64_t threshold = (std::int64_t{1} << 20) / static_cast<std::int64_t>(sizeof(T));
  Random rng(8);
  for (std::int64_t n : {std::int64_t{1}, threshold - 1, threshold, 3 * threshold + 7}) {
    for (bool threaded : {false, true}) {
      const std::vector<T> src = rng.vector<T>(n);
      std::vector<T> dst(n + 2, T(-7));
      detail::cpu_copy(dst.data() + 1, src.data(), n, threaded);
      EXPECT_EQ(dst.front(), T(-7));
      EXPECT_EQ(dst.back(), T(-7));
      EXPECT_TRUE(std::equal(src.begin(), src.end(), dst.begin() + 1)) << n;
      detail::cpu_fill(dst.data() + 1, n, T(0.5), threaded);
      EXPECT_EQ(dst.front(), T(-7));
      EXPECT_EQ(dst.back(), T(-7));
      EXPECT_EQ(std::count(dst.begin(), dst.end(), T(0.5)), n) << n;
    }
  }
}

// Strided blocks copied or added in place (CpuOps::copy_rows: x beside h_{t-1}; add_rows: a
// fused weight gradient's blocks), small and past the threading threshold: every element of
// the block once, nothing beside it.
TYPED_TEST(CpuSteps, CopyRowsAndAddRowsTouchTheBlockOnly) {
  using T = TypeParam;
  const std::int64_t threshold = (std::int64_t{1} << 20) / static_cast<std::int64_t>(sizeof(T));
  Random rng(9);
  for (bool add : {false, true}) {
    for (std::int64_t rows : {std::int64_t{1}, std::int64_t{7}, threshold / 16 + 3}) {
      for (bool threaded : {false, true}) {
        const std::int64_t width = 24, ld_src = 40, ld_dst = 31;
        const std::vector<T> src = rng.vector<T>(rows * ld_src);
        const std::vector<T> before = rng.vector<T>(rows * ld_dst);
        std::vector<T> dst = before;
        if (add) {
          detail::cpu_add_rows(dst.data(), ld_dst, src.data() + 5, ld_src, rows, width, threaded);
        } else {
          detail::cpu_copy_rows(dst.data(), ld_dst, src.data() + 5, ld_src, rows, width, threaded);
        }
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t k = 0; k < ld_dst; ++k) {
            const T s = src[r * ld_src + 5 + k], b = before[r * ld_dst + k];
            const T want = k >= width ? b : add ? b + s : s;
            ASSERT_EQ(dst[r * ld_dst + k], want) << add << " " << rows << " " << r << " " << k;
          }
        }
      }
    }
  }
}

// Bias gradients as column sums (CpuOps::add_column_sums): dst += the sum of each column,
// into a second destination too; against a long-double sum, with the bound of summing in
// double and rounding twice to T; the same bits on a second threaded run.
TYPED_TEST(CpuSteps, ColumnSumsAddEachColumnIntoOneOrTwoDestinations) {
  using T = TypeParam;
  Random rng(9);
  for (auto [rows, cols] :
       {std::pair<std::int64_t, std::int64_t>{1, 1}, {7, 3}, {1000, 67}, {3000, 256}}) {
    const std::vector<T> src = rng.vector<T>(rows * cols);
    const std::vector<T> init = rng.vector<T>(cols), init2 = rng.vector<T>(cols);
    for (bool threaded : {false, true}) {
      SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(cols) +
                   (threaded ? " threaded" : ""));
      std::vector<T> dst = init, dst2 = init2, again = init, alone = init;
      detail::cpu_add_column_sums(src.data(), rows, cols, dst.data(), dst2.data(), threaded);
      detail::cpu_add_column_sums<T>(src.data(), rows, cols, again.data(), nullptr, threaded);
      detail::CpuOps<T>().add_column_sums(src.data(), rows, cols, alone.data(), nullptr, nullptr);
      EXPECT_EQ(dst, again);
      for (std::int64_t c = 0; c < cols; ++c) {
        long double sum = 0, magnitude = 0;
        for (std::int64_t r = 0; r < rows; ++r) {
          sum += src[r * cols + c];
          magnitude += std::fabs(static_cast<long double>(src[r * cols + c]));
        }
        const long double eps = std::numeric_limits<T>::epsilon();
        const long double bound = 2 * eps * (std::fabs(init[c]) + std::fabs(init2[c]) + magnitude) +
                                  rows * std::numeric_limits<double>::epsilon() * magnitude;
        EXPECT_LE(std::fabs(dst[c] - (init[c] + sum)), bound) << "column " << c;
        EXPECT_LE(std::fabs(dst2[c] - (init2[c] + sum)), bound) << "column " << c;
        EXPECT_LE(std::fabs(alone[c] - (init[c] + sum)), bound) << "column " << c;
      }
    }
  }
}

// RECUR_TEST_EXPECT_ISA names the copy a run must use: CTest runs this binary a second time
// under valgrind, whose CPU hides AVX-512, so that the AVX2 copy is checked too.
TEST(CpuSteps, ReportsTheInstructionSetItRuns) {
  const std::string isa = detail::cpu_step_isa();
  EXPECT_TRUE(isa == "x86-64-v4" || isa == "x86-64-v3" || isa == "baseline") << isa;
  if (const char* expected = std::getenv("RECUR_TEST_EXPECT_ISA")) {
    EXPECT_EQ(isa, expected);
  }
}

}  // namespace
}  // namespace recur::test
