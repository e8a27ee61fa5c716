// tests/test_cpu_gemm.cpp: CpuOps' GEMMs against a float64 reference, for every transpose
// pair and both shape classes (few and many columns), whichever library serves them:
// oneDNN's sgemm when libdnnl can be loaded, else OpenBLAS. CTest runs this binary twice,
// the second time with RECUR_CPU_GEMM=openblas.
#include "cpu/cpu_ops.h"
#include "test_util.h"

namespace recur::test {
namespace {

using detail::Gemm;
using detail::Trans;

template <typename T>
void check_gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T beta) {
  Random rng(static_cast<std::uint64_t>(m * 131 + n * 17 + k) + (ta == Trans::T) * 2 +
             (tb == Trans::T));
  const std::int64_t pad = 3;
  const std::int64_t lda = (ta == Trans::N ? m : k) + pad, ldb = (tb == Trans::N ? k : n) + pad;
  const std::int64_t ldc = m + pad;
  std::vector<T> a = rng.vector<T>(lda * (ta == Trans::N ? k : m));
  std::vector<T> b = rng.vector<T>(ldb * (tb == Trans::N ? n : k));
  std::vector<T> c = rng.vector<T>(ldc * n);
  std::vector<double> ref(c.begin(), c.end());
  const T alpha = T(1.25);
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
  Gemm<T> g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = alpha;
  g.a = a.data();
  g.lda = lda;
  g.b = b.data();
  g.ldb = ldb;
  g.beta = beta;
  g.c = c.data();
  g.ldc = ldc;
  detail::CpuOps<T>().gemm(g);
  EXPECT_TRUE(all_close(c, ref, tolerance_for_depth<T>(static_cast<double>(k))))
      << "trans " << int(ta) << int(tb) << " m " << m << " n " << n << " k " << k;
}

TEST(CpuGemm, EveryTransposeAndShapeMatchesFloat64) {
  RecordProperty("sgemm", detail::cpu_sgemm_library());
  std::printf("CpuOps<float> GEMMs use %s\n", detail::cpu_sgemm_library());
  for (Trans ta : {Trans::N, Trans::T}) {
    for (Trans tb : {Trans::N, Trans::T}) {
      for (std::int64_t n : {7, 300}) {  // the per-step and the all-steps column counts
        check_gemm<float>(ta, tb, 37, n, 29, 0.0f);
        check_gemm<float>(ta, tb, 37, n, 29, 1.0f);
        check_gemm<double>(ta, tb, 37, n, 29, 0.5);
      }
    }
  }
}

}  // namespace
}  // namespace recur::test
