// tests/test_cpu_gemm.cpp: CpuOps' GEMMs against a float64 reference, for every transpose
// pair and both shape classes (few and many columns), whichever library serves them:
// oneDNN's sgemm when libdnnl can be loaded, else OpenBLAS. CTest runs this binary twice,
// the second time with RECUR_CPU_GEMM=openblas. Then GEMMs on held (packed) weights.
#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"
#include "cpu/onednn_matmul.h"
#include "test_util.h"

namespace recur::test {
namespace {

using detail::Gemm;
using detail::Trans;

// How check_gemm calls CpuOps: every leading dimension `pad` past the matrix's rows; with
// `held`, A is held (packed) first and the GEMM must run on the packed copy; `split`: a
// float GEMM must run with its columns split among the threads (Tuning::cpu_split_columns
// in `tuning`, the CpuOps' tuning) where it can be (oneDNN's sgemm and two threads), and no
// GEMM may without it; `split_rows` likewise with its rows split (Tuning::cpu_split_rows). A and B
// are uniform in [-range, range]: deep products (large k) keep C of order one with a smaller range,
// the regime tolerance_for_depth's budget is derived for.
struct GemmSetup {
  float alpha = 1.25f;
  std::int64_t pad = 3;
  bool held = false;
  bool split = false;
  double range = 1.0;
  bool split_rows = false;
  detail::Tuning tuning = {};
};

// The setup with the column or the row split on or off (`split` expects it where on).
GemmSetup column_split(bool split, double range = 1.0) {
  GemmSetup s{1.25f, 3, false, split, range};
  s.tuning.cpu_split_columns = split;
  return s;
}
GemmSetup row_split(bool split) {
  GemmSetup s{1.25f, 3, false, false, 1.0, split};
  s.tuning.cpu_split_rows = split;
  return s;
}

template <typename T>
void check_gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T beta,
                const GemmSetup& setup = {}) {
  Random rng(static_cast<std::uint64_t>(m * 131 + n * 17 + k) + (ta == Trans::T) * 2 +
             (tb == Trans::T));
  const std::int64_t pad = setup.pad;
  const std::int64_t lda = (ta == Trans::N ? m : k) + pad, ldb = (tb == Trans::N ? k : n) + pad;
  const std::int64_t ldc = m + pad;
  const double lo = -setup.range, hi = setup.range;
  std::vector<T> a = rng.vector<T>(lda * (ta == Trans::N ? k : m), lo, hi);
  std::vector<T> b = rng.vector<T>(ldb * (tb == Trans::N ? n : k), lo, hi);
  std::vector<T> c = rng.vector<T>(ldc * n);
  std::vector<double> ref(c.begin(), c.end());
  const T alpha = T(setup.alpha);
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t i = 0; i < m; ++i) {
      double acc = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double av = ta == Trans::N ? a[i + p * lda] : a[p + i * lda];
        const double bv = tb == Trans::N ? b[p + j * ldb] : b[j + p * ldb];
        acc += av * bv;
      }
      ref[i + j * ldc] = alpha * acc + beta * ref[i + j * ldc];
    }
  }
  const Gemm<T> g = Gemm<T>::op(ta, tb)
                        .shape(m, n, k)
                        .from(a.data(), lda, b.data(), ldb)
                        .into(c.data(), ldc)
                        .scale(alpha, beta);
  detail::CpuOps<T> ops;
  ops.set_tuning(setup.tuning);
  if (setup.held) {
    ASSERT_TRUE(ops.hold_weights(a.data(), ta, m, k, lda, n));
  }
  ops.gemm(g);
  EXPECT_EQ(ops.statistics().packed_gemms, setup.held ? 1 : 0);
  const bool can_split = std::is_same_v<T, float> && detail::cpu_float_loops_threaded() &&
                         detail::cpu_step_threads() >= 2;
  EXPECT_EQ(ops.statistics().column_split_gemms,
            setup.split && can_split && setup.tuning.cpu_split_columns ? 1 : 0)
      << "trans " << int(ta) << int(tb) << " m " << m << " n " << n << " k " << k;
  EXPECT_EQ(ops.statistics().row_split_gemms,
            setup.split_rows && can_split && setup.tuning.cpu_split_rows ? 1 : 0)
      << "trans " << int(ta) << int(tb) << " m " << m << " n " << n << " k " << k;
  EXPECT_TRUE(all_close(c, ref, tolerance_for_depth<T>(static_cast<double>(k))))
      << "trans " << int(ta) << int(tb) << " m " << m << " n " << n << " k " << k << " beta "
      << beta << " pad " << pad << (setup.held ? " held" : "");
}

TEST(CpuGemm, EveryTransposeAndShapeMatchesFloat64) {
  RecordProperty("sgemm", detail::cpu_sgemm_library());
  std::printf("CpuOps<float> GEMMs use %s\n", detail::cpu_sgemm_library());
  for (Trans ta : {Trans::N, Trans::T}) {
    for (Trans tb : {Trans::N, Trans::T}) {
      for (std::int64_t n : {7, 300}) {  // the per-step and the all-steps column counts
        // 37 rows of C: narrow, so 300 columns split among the threads (split_of in cpu_ops.cpp).
        const GemmSetup setup{1.25f, 3, false, n == 300};
        check_gemm<float>(ta, tb, 37, n, 29, 0.0f, setup);
        check_gemm<float>(ta, tb, 37, n, 29, 1.0f, setup);
        check_gemm<double>(ta, tb, 37, n, 29, 0.5);
      }
    }
  }
}

// k = 0: C = beta C, as BLAS defines it (C scaled, nothing added; beta 0 writes zeros).
TEST(CpuGemm, AnEmptyInnerDimensionScalesC) {
  for (Trans ta : {Trans::N, Trans::T}) {
    for (Trans tb : {Trans::N, Trans::T}) {
      for (float beta : {0.0f, 0.5f, 1.0f}) {
        check_gemm<float>(ta, tb, 5, 7, 0, beta);
        check_gemm<double>(ta, tb, 5, 7, 0, static_cast<double>(beta));
      }
    }
  }
}

// A GEMM whose inner dimension is the longest (the weight gradients' shape) or whose C is
// narrow (at most 768 rows) runs with each thread on its own slab of C's columns, for
// every transpose pair, slabs of whole vectors or not (n = 256, 300), overwriting or
// accumulating; switched off, it runs whole.
TEST(CpuGemm, LongInnerDimensionOrNarrowCSplitsColumnsAmongThreads) {
  if (!detail::cpu_float_loops_threaded() || detail::cpu_step_threads() < 2) {
    GTEST_SKIP() << "needs oneDNN's sgemm and two OpenMP threads";
  }
  for (bool split : {true, false}) {
    for (Trans tb : {Trans::N, Trans::T}) {
      for (float beta : {0.0f, 1.0f}) {
        for (Trans ta : {Trans::N, Trans::T}) {
          for (std::int64_t n : {256, 300}) {  // narrow C
            check_gemm<float>(ta, tb, 40, n, 30, beta, column_split(split));
          }
        }
        // C of 770 rows, k = 770: split only for its long inner dimension.
        check_gemm<float>(Trans::N, tb, 770, 300, 770, beta, column_split(split, 0.25));
      }
    }
  }
  // Too few columns for two slabs (and too few rows for two row slabs), or C neither
  // narrow nor of a long inner dimension, nor short (row split, below): whole.
  check_gemm<float>(Trans::N, Trans::T, 40, 200, 400, 1.0f);
  check_gemm<float>(Trans::N, Trans::T, 770, 1100, 299, 1.0f,
                    GemmSetup{1.25f, 3, false, false, 0.25});
}

// A GEMM with a short C (16 to 1023 columns: an input projection over few timeline rows)
// that the column split does not take runs with each thread on its own slab of C's rows,
// for every transpose pair, slabs on a 16-row boundary or not (m = 256, 300, 770), few or
// some columns, overwriting or accumulating; switched off, it runs whole. A short C the
// column split takes (narrow, 300 columns) is not split twice.
TEST(CpuGemm, ShortCSplitsRowsAmongThreads) {
  if (!detail::cpu_float_loops_threaded() || detail::cpu_step_threads() < 2) {
    GTEST_SKIP() << "needs oneDNN's sgemm and two OpenMP threads";
  }
  for (bool split : {true, false}) {
    for (Trans ta : {Trans::N, Trans::T}) {
      for (Trans tb : {Trans::N, Trans::T}) {
        for (float beta : {0.0f, 1.0f}) {
          for (std::int64_t m : {256, 300, 770}) {
            for (std::int64_t n : {16, 100}) {
              check_gemm<float>(ta, tb, m, n, 24, beta, row_split(split));
            }
          }
          // 15 columns (a per-step product of a small batch) or 1024: whole.
          check_gemm<float>(ta, tb, 300, 15, 24, beta);
          check_gemm<float>(ta, tb, 770, 1024, 24, beta);
          // 127 rows: too few for two slabs of 128.
          check_gemm<float>(ta, tb, 127, 100, 24, beta);
          // Narrow and 300 columns: the column split's.
          check_gemm<float>(ta, tb, 300, 300, 24, beta, GemmSetup{1.25f, 3, false, true});
        }
      }
    }
  }
}

// A held matrix: every GEMM on it runs on oneDNN's matmul with the packed copy, with dense
// rows or, through scratch copies, strided ones (a bidirectional layer's h, the
// reset-before-product GRU's gate blocks), for the widest and for fewer columns.
TEST(CpuGemm, HeldWeightsMatchFloat64) {
  if (!detail::PackedGemms::available()) GTEST_SKIP() << "oneDNN's C API is not loaded";
  for (Trans ta : {Trans::N, Trans::T}) {
    for (std::int64_t pad : {0, 3}) {
      for (std::int64_t n : {16, 5}) {
        for (float beta : {0.0f, 1.0f}) {
          check_gemm<float>(ta, Trans::N, 40, n, 24, beta, GemmSetup{1.0f, pad, true});
        }
      }
    }
  }
}

// GEMMs that are not exactly on a held matrix run as usual: alpha other than 1, op(B)
// transposed, another A, and any GEMM once the weights are released.
TEST(CpuGemm, HeldWeightsServeOnlyTheirOwnGemms) {
  if (!detail::PackedGemms::available()) GTEST_SKIP() << "oneDNN's C API is not loaded";
  detail::CpuOps<float> ops;
  ASSERT_TRUE(ops.packs_weights());
  EXPECT_FALSE(detail::CpuOps<double>().packs_weights());
  Random rng(3);
  const std::int64_t m = 24, n = 8, k = 16;
  const std::vector<float> a = rng.vector<float>(m * k), other = a, b = rng.vector<float>(k * n);
  std::vector<float> c(m * n), expected(m * n);
  ASSERT_TRUE(ops.hold_weights(a.data(), Trans::N, m, k, m, n));
  auto gemm = [&](const float* a_ptr, float alpha, Trans tb, std::vector<float>& out) {
    Gemm<float> g = Gemm<float>::op(Trans::N, tb)
                        .shape(m, n, k)
                        .from(a_ptr, m, b.data(), tb == Trans::N ? k : n)
                        .into(out.data(), m);
    g.alpha = alpha;
    const std::int64_t before = ops.statistics().packed_gemms;
    ops.gemm(g);
    return ops.statistics().packed_gemms - before;
  };
  EXPECT_EQ(gemm(a.data(), 1.0f, Trans::N, c), 1);
  EXPECT_EQ(gemm(other.data(), 1.0f, Trans::N, expected), 0);
  EXPECT_TRUE(all_close(c, expected, tolerance_for_depth<float>(k)));
  EXPECT_EQ(gemm(a.data(), 2.0f, Trans::N, c), 0);
  EXPECT_EQ(gemm(a.data(), 1.0f, Trans::T, c), 0);
  ops.release_weights();
  EXPECT_EQ(gemm(a.data(), 1.0f, Trans::N, c), 0);
  EXPECT_TRUE(all_close(c, expected, tolerance_for_depth<float>(k)));
}

}  // namespace
}  // namespace recur::test
