// tests/test_math.cpp: reduced-precision products on the CPU (recur/config.h's Math): the
// rounding points (every GEMM's two operands rounded to the format, float32 accumulation),
// closeness to float32 within the format's unit roundoff, and the bad combinations.
#include <cmath>
#include <string>
#include <vector>

#include "cpu/bf16_gemm.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_steps.h"
#include "math_format.h"
#include "test_util.h"

namespace recur::test {
namespace {

using detail::unit_roundoff;

std::vector<float> rounded(Math math, std::vector<float> v) {
  for (float& x : v) x = detail::rounded_to(math, x);
  return v;
}

RnnConfig lstm(std::int64_t input, std::int64_t hidden, Math math) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = input;
  c.hidden_size = hidden;
  c.math = math;
  return c;
}

const Math kReduced[] = {Math::Tf32, Math::Bf16, Math::Fp16};

// The native BF16 kernels this CPU runs (cpu/bf16_gemm.h): the AVX512_BF16 one, and the AMX
// one where it has AMX too.
std::vector<detail::Bf16Kernel> native_kernels() {
  std::vector<detail::Bf16Kernel> kernels;
  for (detail::Bf16Kernel k : {detail::Bf16Kernel::Dot, detail::Bf16Kernel::Tiles}) {
    if (detail::bf16_kernel_available(k)) kernels.push_back(k);
  }
  return kernels;
}

const char* name_of(detail::Bf16Kernel kernel) {
  return kernel == detail::Bf16Kernel::Tiles ? "AMX tiles" : "VDPBF16PS";
}

// Native BF16 forced on (NativeBf16::Always, where the rule might emulate: this CPU's bf16
// dot products may not pay), on `kernel`.
void force_native(detail::Tuning& t, detail::Bf16Kernel kernel) {
  t.cpu_native_bf16 = detail::NativeBf16::Always;
  t.cpu_bf16_tiles = kernel == detail::Bf16Kernel::Tiles;
}

// One training step of `a` and of `b` on the same x and dy, compared bit for bit: y, h_n, an
// LSTM's c_n, dx and the gradients.
void expect_same_step_bits(Rnn& a, Rnn& b, const Tensor& x, const Tensor& dy) {
  const ForwardResult fa = a.forward(x), fb = b.forward(x);
  const BackwardResult ba = a.backward(dy), bb = b.backward(dy);
  EXPECT_EQ(fa.y.to_vector<float>(), fb.y.to_vector<float>());
  EXPECT_EQ(fa.h_n.to_vector<float>(), fb.h_n.to_vector<float>());
  EXPECT_EQ(fa.c_n.defined(), fb.c_n.defined());
  if (fa.c_n.defined()) {
    EXPECT_EQ(fa.c_n.to_vector<float>(), fb.c_n.to_vector<float>());
  }
  EXPECT_EQ(ba.dx.to_vector<float>(), bb.dx.to_vector<float>());
  EXPECT_EQ(a.gradients().to_vector<float>(), b.gradients().to_vector<float>());
}

// What a native pass on `kernel` counted: native GEMMs, and on tiles exactly where asked.
void expect_ran_on(const detail::PassStatistics& s, detail::Bf16Kernel kernel) {
  EXPECT_GT(s.native_bf16_gemms, 0);
  if (kernel == detail::Bf16Kernel::Tiles) {
    EXPECT_EQ(s.bf16_tile_gemms, s.native_bf16_gemms);
  } else {
    EXPECT_EQ(s.bf16_tile_gemms, 0);
  }
}

// One step from h0 = 0: y is the gate math of W_ih x + b, so a reduced-math model must give
// exactly what a float32 model gives with W_ih and x rounded to the format beforehand (the
// biases are not a product's operands and stay as they are). BF16 emulated here: the
// native products (NativeBf16...) sum in another order.
TEST(Math, OneStepIsTheFloat32StepOfRoundedOperands) {
  const std::int64_t I = 24, H = 16, B = 5;
  for (Math math : kReduced) {
    SCOPED_TRACE(to_string(math));
    Rnn reduced(lstm(I, H, math), Device::cpu(), 3);
    tune(reduced, [](detail::Tuning& t) { t.cpu_native_bf16 = detail::NativeBf16::Off; });
    Rnn exact(lstm(I, H, Math::Fp32), Device::cpu(), 3);
    const TensorView w_ih = reduced.parameter("weight_ih_l0");
    exact.parameter("weight_ih_l0")
        .copy_from(
            Tensor::from_vector(rounded(math, w_ih.to_vector<float>()), w_ih.shape()).view());
    Random rng(4);
    const std::vector<float> x = rng.vector<float>(B * I);
    const std::vector<float> y_reduced =
        reduced.forward(Tensor::from_vector(x, {1, B, I}), {}, {}, Mode::Inference)
            .y.to_vector<float>();
    const std::vector<float> y_exact =
        exact.forward(Tensor::from_vector(rounded(math, x), {1, B, I}), {}, {}, Mode::Inference)
            .y.to_vector<float>();
    EXPECT_EQ(y_reduced, y_exact);
  }
}

// A stack trained in reduced math stays within the format's roundoff of float32 (times the
// accumulation depth's log, as every tolerance here), and is not float32 in disguise.
TEST(Math, TrainingStaysWithinTheFormatsRoundoffOfFloat32) {
  const std::int64_t T = 12, B = 20, I = 24, H = 32, L = 2;
  for (Math math : kReduced) {
    for (CellKind cell : {CellKind::Lstm, CellKind::GruLinearBeforeReset,
                          CellKind::GruResetBeforeProduct, CellKind::RnnTanh}) {
      SCOPED_TRACE(std::string(to_string(math)) + " " + to_string(cell));
      RnnConfig c = lstm(I, H, math);
      c.cell = cell;
      c.num_layers = L;
      c.bidirectional = cell == CellKind::Lstm;
      RnnConfig f32 = c;
      f32.math = Math::Fp32;
      Rnn reduced(c, Device::cpu(), 7), exact(f32, Device::cpu(), 7);
      const std::int64_t DH = (c.bidirectional ? 2 : 1) * H;
      Random rng(8);
      const Tensor x = rng.tensor<float>({T, B, I}), dy = rng.tensor<float>({T, B, DH});
      const ForwardResult fr = reduced.forward(x), fe = exact.forward(x);
      const BackwardResult br = reduced.backward(dy), be = exact.backward(dy);
      const double depth = static_cast<double>(T * (I + 2 * H) * L);
      const Tolerance tol{unit_roundoff(math), 8.0 * std::log2(2.0 + depth)};
      EXPECT_TRUE(all_close(fr.y.to_vector<float>(), fe.y.to_vector<float>(), tol)) << "y";
      EXPECT_TRUE(all_close(fr.h_n.to_vector<float>(), fe.h_n.to_vector<float>(), tol)) << "h_n";
      EXPECT_TRUE(all_close(br.dx.to_vector<float>(), be.dx.to_vector<float>(), tol)) << "dx";
      EXPECT_TRUE(all_close(reduced.gradients().to_vector<float>(),
                            exact.gradients().to_vector<float>(), tol))
          << "gradients";
      EXPECT_NE(fr.y.to_vector<float>(), fe.y.to_vector<float>())
          << "the products were not rounded";
    }
  }
}

// Two float32 sums of the same products in different orders differ by about u sqrt(k) times
// the sum of the terms' magnitudes (the roundings as a random walk): each element's budget,
// with a safety factor of 8, `magnitude` being that sum (alpha's products and beta C).
::testing::AssertionResult sums_agree(const std::vector<float>& got, const std::vector<float>& ref,
                                      const std::vector<double>& magnitude, double k) {
  const double scale = 8.0 * detail::unit_roundoff(Math::Fp32) * std::sqrt(k + 1.0);
  return all_within(got, ref, [&](std::size_t i, double) { return scale * magnitude[i] + 1e-30; });
}

// Each native BF16 GEMM (cpu/bf16_gemm.h) against the emulation (the same rounded operands,
// an exact float32 product on sgemm) for every transpose pair, odd and even sizes around
// the 32 x 12 (32 x 32) tiles and the 16-pair groups, k in several slices (more than 256
// pairs), C in several units each way (more than 8 panels, more than 16 blocks), k = 0
// (C = beta C), leading dimensions past the rows, alpha and beta (and alpha 1 with beta 0,
// 1 and 0.5, which AMX tiles start from C), on one and two threads: the two differ only in
// the order of float32 accumulation.
TEST(Math, NativeBf16GemmMatchesTheEmulation) {
  if (!detail::bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  using detail::Gemm;
  using detail::Trans;
  const std::vector<detail::Bf16Kernel> kernels = native_kernels();
  std::vector<detail::CpuOps<float>> natives(kernels.size());
  detail::CpuOps<float> emulated;
  emulated.set_math(Math::Bf16);
  detail::Tuning off;
  off.cpu_native_bf16 = detail::NativeBf16::Off;
  emulated.set_tuning(off);
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    detail::Tuning forced;
    force_native(forced, kernels[i]);
    natives[i].set_math(Math::Bf16);
    natives[i].set_tuning(forced);
  }
  Random rng(21);
  const std::int64_t shapes[][3] = {{1, 1, 1},      {31, 11, 7},     {33, 13, 64},    {64, 24, 511},
                                    {100, 50, 300}, {2048, 64, 512}, {300, 40, 1537}, {70, 205, 33},
                                    {600, 30, 100}, {5, 7, 0},       {64, 48, 64},    {96, 17, 40}};
  const float scales[][2] = {{0.75f, 0.5f}, {1.0f, 0.0f}, {1.0f, 1.0f}, {1.0f, 0.5f}};
  for (const auto& shape : shapes) {
    for (Trans ta : {Trans::N, Trans::T}) {
      for (Trans tb : {Trans::N, Trans::T}) {
        const std::int64_t m = shape[0], n = shape[1], k = shape[2], ldc = m + 1;
        const std::int64_t lda = (ta == Trans::N ? m : k) + 3;
        const std::int64_t ldb = (tb == Trans::N ? k : n) + 2;
        const std::vector<float> a = rng.vector<float>(lda * (ta == Trans::N ? k : m));
        const std::vector<float> b = rng.vector<float>(ldb * (tb == Trans::N ? n : k));
        const std::vector<float> c_values = rng.vector<float>(ldc * n);
        // sum over kk of |op(A)[r][kk]| |op(B)[kk][j]|, each C element's (column-major).
        std::vector<double> products(static_cast<std::size_t>(ldc * n), 0.0);
        for (std::int64_t j = 0; j < n; ++j) {
          for (std::int64_t kk = 0; kk < k; ++kk) {
            const float bv = tb == Trans::N ? b[j * ldb + kk] : b[kk * ldb + j];
            for (std::int64_t r = 0; r < m; ++r) {
              const float av = ta == Trans::N ? a[kk * lda + r] : a[r * lda + kk];
              products[j * ldc + r] += std::fabs(static_cast<double>(av) * bv);
            }
          }
        }
        for (std::size_t i = 0; i < kernels.size(); ++i) {
          for (const auto& scale : scales) {
            SCOPED_TRACE(std::string(name_of(kernels[i])) + " " + std::to_string(m) + "x" +
                         std::to_string(n) + "x" + std::to_string(k) +
                         (ta == Trans::N ? " N" : " T") + (tb == Trans::N ? "N" : "T") + " alpha " +
                         std::to_string(scale[0]) + " beta " + std::to_string(scale[1]));
            // Beta 0 never reads C, as BLAS: NaN there must not come through.
            std::vector<float> c0 = c_values;
            if (scale[1] == 0.0f) std::fill(c0.begin(), c0.end(), std::nanf(""));
            std::vector<float> cn = c0, ce = c0;
            auto gemm = [&](std::vector<float>& c) {
              return Gemm<float>::op(ta, tb)
                  .shape(m, n, k)
                  .from(a.data(), lda, b.data(), ldb)
                  .into(c.data(), ldc)
                  .scale(scale[0], scale[1]);
            };
            natives[i].gemm(gemm(cn));
            emulated.gemm(gemm(ce));
            std::vector<double> magnitude(products.size(), 0.0);
            for (std::int64_t j = 0; j < n; ++j) {
              // (The row past m of each column is C's padding: left as it was, NaN or not.)
              cn[j * ldc + m] = ce[j * ldc + m] = 0.0f;
              for (std::int64_t r = 0; r < m; ++r) {
                const std::int64_t e = j * ldc + r;
                magnitude[e] = std::fabs(scale[0]) * products[e];
                if (scale[1] != 0.0f) magnitude[e] += std::fabs(scale[1] * c0[e]);
              }
            }
            EXPECT_TRUE(sums_agree(cn, ce, magnitude, static_cast<double>(k)));
          }
        }
      }
    }
  }
  for (std::size_t i = 0; i < kernels.size(); ++i)
    expect_ran_on(natives[i].statistics(), kernels[i]);
  EXPECT_EQ(emulated.statistics().native_bf16_gemms, 0);
}

// Where the CPU has AMX, the rule (NativeBf16::ByRule, the default) runs BF16 on its tiles:
// their measured rate is many times float32 FMAs'.
TEST(Math, TheRuleRunsBf16OnAmxTilesWhereTheCpuHasThem) {
  if (!detail::bf16_kernel_available(detail::Bf16Kernel::Tiles)) {
    GTEST_SKIP() << "this CPU (or OS) has no AMX-BF16 tiles";
  }
  EXPECT_TRUE(detail::bf16_gemm_pays(detail::Bf16Kernel::Tiles));
  Rnn rnn(lstm(24, 32, Math::Bf16), Device::cpu(), 5);
  tune(rnn, [](detail::Tuning& t) { t = detail::Tuning(); });
  const Tensor x = Random(6).tensor<float>({6, 20, 24});
  rnn.forward(x);
  EXPECT_GT(forward_statistics(rnn).bf16_tile_gemms, 0);
  EXPECT_EQ(forward_statistics(rnn).bf16_tile_gemms, forward_statistics(rnn).native_bf16_gemms);
}

// A stack trained with native BF16 products against the emulation: the same rounding
// points, so within BF16's budget (an operand such as h may round the other way once the
// sums differ in their last bit), and the native GEMMs ran.
TEST(Math, NativeBf16TrainingMatchesTheEmulation) {
  if (!detail::bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  const std::int64_t T = 12, B = 20, I = 24, H = 32;
  for (detail::Bf16Kernel kernel : native_kernels()) {
    for (CellKind cell : {CellKind::Lstm, CellKind::GruResetBeforeProduct}) {
      SCOPED_TRACE(std::string(to_string(cell)) + " on " + name_of(kernel));
      RnnConfig c = lstm(I, H, Math::Bf16);
      c.cell = cell;
      c.num_layers = 2;
      c.bidirectional = true;
      Rnn native(c, Device::cpu(), 7), emulated(c, Device::cpu(), 7);
      tune(native, [kernel](detail::Tuning& t) { force_native(t, kernel); });
      tune(emulated, [](detail::Tuning& t) { t.cpu_native_bf16 = detail::NativeBf16::Off; });
      Random rng(8);
      const Tensor x = rng.tensor<float>({T, B, I}), dy = rng.tensor<float>({T, B, 2 * H});
      const ForwardResult fn = native.forward(x), fe = emulated.forward(x);
      const BackwardResult bn = native.backward(dy), be = emulated.backward(dy);
      expect_ran_on(forward_statistics(native), kernel);
      expect_ran_on(backward_statistics(native), kernel);
      EXPECT_EQ(forward_statistics(emulated).native_bf16_gemms, 0);
      const double depth = static_cast<double>(T * (I + 2 * H) * 2);
      const Tolerance tol{unit_roundoff(Math::Bf16), 8.0 * std::log2(2.0 + depth)};
      EXPECT_TRUE(all_close(fn.y.to_vector<float>(), fe.y.to_vector<float>(), tol)) << "y";
      EXPECT_TRUE(all_close(bn.dx.to_vector<float>(), be.dx.to_vector<float>(), tol)) << "dx";
      EXPECT_TRUE(all_close(native.gradients().to_vector<float>(),
                            emulated.gradients().to_vector<float>(), tol))
          << "gradients";
    }
  }
}

// Native BF16 steps run row-parallel (each lane its rows' products, on narrower blocks for
// its narrow share) give the bits of the same steps run one by one: a tile's arithmetic
// does not depend on who computes it. Every cell, one and two layers, both directions, each
// kernel.
TEST(Math, NativeBf16RowParallelRunsMatchStepByStep) {
  if (!detail::bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  const std::int64_t T = 12, B = 40, I = 24, H = 32;
  for (detail::Bf16Kernel kernel : native_kernels()) {
    for (CellKind cell : {CellKind::Lstm, CellKind::GruLinearBeforeReset,
                          CellKind::GruResetBeforeProduct, CellKind::RnnTanh}) {
      for (bool bidirectional : {false, true}) {
        SCOPED_TRACE(std::string(to_string(cell)) + (bidirectional ? " bidirectional" : "") +
                     " on " + name_of(kernel));
        RnnConfig c = lstm(I, H, Math::Bf16);
        c.cell = cell;
        c.num_layers = 2;
        c.bidirectional = bidirectional;
        const std::int64_t D = bidirectional ? 2 : 1;
        Rnn rows(c, Device::cpu(), 7), steps(c, Device::cpu(), 7);
        tune(rows, [kernel](detail::Tuning& t) { force_native(t, kernel); });
        tune(steps, [kernel](detail::Tuning& t) {
          force_native(t, kernel);
          t.cpu_row_parallel = false;
        });
        Random rng(9);
        const Tensor x = rng.tensor<float>({T, B, I}), dy = rng.tensor<float>({T, B, D * H});
        expect_same_step_bits(rows, steps, x, dy);
        if (detail::cpu_step_threads() >= 2) {
          EXPECT_GT(forward_statistics(rows).row_parallel_runs, 0);
          EXPECT_GT(backward_statistics(rows).row_parallel_runs, 0);
        }
        EXPECT_EQ(forward_statistics(steps).row_parallel_runs, 0);
        expect_ran_on(forward_statistics(rows), kernel);
        expect_ran_on(backward_statistics(steps), kernel);
      }
    }
  }
}

// Under reduced math a pass holds its step weights rounded once at any batch (one row here):
// the steps then run on the held copy, with the bits of steps that round the weights as
// stored at every GEMM (packing off). Each format, emulated and native.
TEST(Math, SmallBatchesStepOnWeightsRoundedOnce) {
  const std::int64_t T = 5, B = 1, I = 6, H = 8;
  for (Math math : kReduced) {
    for (bool native : {false, true}) {
      if (native && (math != Math::Bf16 || !detail::bf16_gemm_available())) continue;
      SCOPED_TRACE(std::string(to_string(math)) + (native ? " native" : " emulated"));
      const auto set = [native](detail::Tuning& t) {
        t.cpu_native_bf16 = native ? detail::NativeBf16::Always : detail::NativeBf16::Off;
      };
      Rnn held(lstm(I, H, math), Device::cpu(), 3), as_stored(lstm(I, H, math), Device::cpu(), 3);
      tune(held, set);
      tune(as_stored, [&set](detail::Tuning& t) {
        set(t);
        t.cpu_pack_weights = false;
      });
      Random rng(4);
      const Tensor x = rng.tensor<float>({T, B, I}), dy = rng.tensor<float>({T, B, H});
      expect_same_step_bits(held, as_stored, x, dy);
      EXPECT_GE(forward_statistics(held).packed_gemms, T - 1);
      EXPECT_GE(backward_statistics(held).packed_gemms, T - 1);
      EXPECT_EQ(forward_statistics(as_stored).packed_gemms, 0);
    }
  }
}

// A BF16 or FP16 model takes x and dy in its storage type too: y and dx come back in it,
// exactly the float32 results rounded once (x widens exactly), and the states stay float32.
TEST(Math, ReducedInputsComeBackReduced) {
  const std::int64_t T = 4, B = 3, I = 8, H = 8;
  for (Math math : {Math::Bf16, Math::Fp16}) {
    SCOPED_TRACE(to_string(math));
    const DType io = math == Math::Bf16 ? DType::BFloat16 : DType::Float16;
    Rnn rnn(lstm(I, H, math), Device::cpu(), 5);
    Random rng(6);
    const Tensor x = rng.tensor<float>({T, B, I}).to(io), dy = rng.tensor<float>({T, B, H}).to(io);
    const ForwardResult reduced = rnn.forward(x);
    EXPECT_EQ(reduced.y.dtype(), io);
    EXPECT_EQ(reduced.h_n.dtype(), DType::Float32);
    const BackwardResult g = rnn.backward(dy);
    EXPECT_EQ(g.dx.dtype(), io);
    EXPECT_EQ(g.dh0.dtype(), DType::Float32);
    const ForwardResult wide = rnn.forward(x.to(DType::Float32));
    const BackwardResult gw = rnn.backward(dy.to(DType::Float32));
    EXPECT_EQ(reduced.y.to(DType::Float32).to_vector<float>(),
              wide.y.to(io).to(DType::Float32).to_vector<float>());
    EXPECT_EQ(g.dx.to(DType::Float32).to_vector<float>(),
              gw.dx.to(io).to(DType::Float32).to_vector<float>());
    EXPECT_EQ(reduced.h_n.to_vector<float>(), wide.h_n.to_vector<float>());
  }
}

TEST(Math, BadCombinationsAreNamed) {
  RnnConfig c = lstm(4, 4, Math::Tf32);
  c.dtype = DType::Float64;
  try {
    Rnn rnn(c);
    ADD_FAILURE() << "a Float64 model took Tf32";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "recur: Rnn: argument 'config.math': expected Fp32 for a Float64 model (reduced "
                 "math is for Float32), got Tf32 with dtype float64");
  }
  c.dtype = DType::Float32;
  c.math = static_cast<Math>(9);
  try {
    Rnn rnn(c);
    ADD_FAILURE() << "an unknown Math was taken";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "recur: Rnn: argument 'config.math': expected a Math, got value 9");
  }
  EXPECT_STREQ(to_string(Math::Bf16), "Bf16");
  // A reduced x for a model whose math has no such storage type.
  Rnn fp32(lstm(4, 4, Math::Fp32));
  try {
    fp32.forward(Tensor::zeros({2, 1, 4}, DType::BFloat16));
    ADD_FAILURE() << "an Fp32 model took a bfloat16 x";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "recur: Rnn::forward: argument 'x': expected dtype float32 (the model's), got "
                 "dtype bfloat16");
  }
  Rnn bf16(lstm(4, 4, Math::Bf16));
  try {
    bf16.forward(Tensor::zeros({2, 1, 4}, DType::Float16));
    ADD_FAILURE() << "a Bf16 model took a float16 x";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "recur: Rnn::forward: argument 'x': expected dtype float32 (the model's), got "
                 "dtype float16");
  }
}

}  // namespace
}  // namespace recur::test
