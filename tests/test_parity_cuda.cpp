// tests/test_parity_cuda.cpp: CudaOps against CpuOps, op by op, and every cell's model on
// the GPU against the same model on the CPU, in float32 and float64, forward and backward,
// on fresh random data. Without a usable GPU every test here reports SKIPPED.
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "cpu/cpu_ops.h"
#include "gradcheck_util.h"
#include "math_format.h"
#include "ops.h"
#include "test_util.h"

namespace recur::test {
namespace {

using detail::Gemm;
using detail::Ops;
using detail::Trans;
using kernels::ConnectionKind;
using kernels::StepKind;

const Device kGpu = Device::cuda(0);

// A tuning (src/tuning.h) with one choice changed from the environment's.
template <class Change>
detail::Tuning tuned(Change&& change) {
  detail::Tuning t = detail::environment_tuning();
  change(t);
  return t;
}

// What a model's last forward and backward did, together.
detail::PassStatistics last_pass_statistics(Rnn& rnn) {
  detail::PassStatistics s = forward_statistics(rnn);
  s += backward_statistics(rnn);
  return s;
}

template <typename T>
class OpsParity : public ::testing::Test {
 protected:
  void SetUp() override {
    RECUR_REQUIRE_GPU();
    gpu_ = detail::make_ops<T>(kGpu);
  }
  detail::CpuOps<T> cpu_;
  std::unique_ptr<Ops<T>> gpu_;
};

using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OpsParity, Types, TypeIndexNames);

// The same random host data on the CPU and on the GPU.
template <typename T>
struct Twin {
  Tensor cpu, gpu;
  Twin(Random& rng, std::int64_t n, double lo = -1.0, double hi = 1.0)
      : cpu(rng.tensor<T>({n}, Device::cpu(), lo, hi)), gpu(cpu.to(kGpu)) {}
  T* c() const { return cpu.data_as<T>(); }
  T* g() const { return gpu.data_as<T>(); }
  std::vector<T> from_gpu() const { return gpu.to_vector<T>(); }
  std::vector<T> from_cpu() const { return cpu.to_vector<T>(); }
};

TYPED_TEST(OpsParity, GemmEveryTransposeAndBeta) {
  using T = TypeParam;
  Random rng(1);
  const std::int64_t m = 37, n = 23, k = 19, pad = 3;
  for (Trans ta : {Trans::N, Trans::T}) {
    for (Trans tb : {Trans::N, Trans::T}) {
      for (T beta : {T(0), T(1), T(0.5)}) {
        const std::int64_t lda = (ta == Trans::N ? m : k) + pad;
        const std::int64_t ldb = (tb == Trans::N ? k : n) + pad;
        const std::int64_t ldc = m + pad;
        Twin<T> a(rng, lda * (ta == Trans::N ? k : m)), b(rng, ldb * (tb == Trans::N ? n : k));
        Twin<T> c(rng, ldc * n);
        auto g = [&](const T* pa, const T* pb, T* pc) {
          return Gemm<T>::op(ta, tb)
              .shape(m, n, k)
              .from(pa, lda, pb, ldb)
              .into(pc, ldc)
              .scale(T(1.5), beta);
        };
        this->cpu_.gemm(g(a.c(), b.c(), c.c()));
        this->gpu_->gemm(g(a.g(), b.g(), c.g()));
        EXPECT_TRUE(all_close(c.from_gpu(), c.from_cpu(), tolerance_for_depth<T>(k)))
            << "trans " << int(ta) << int(tb) << " beta " << beta;
      }
    }
  }
}

TYPED_TEST(OpsParity, FillAndCopy) {
  using T = TypeParam;
  Random rng(2);
  const std::int64_t n = 1000003;  // not a multiple of the block size
  Twin<T> a(rng, n), b(rng, n);
  this->gpu_->fill(a.g(), n, T(0.25));
  this->gpu_->copy(b.g(), a.g(), n - 1);
  const std::vector<T> got = b.from_gpu(), orig = b.from_cpu();
  for (std::int64_t i = 0; i < n - 1; ++i) ASSERT_EQ(got[i], T(0.25)) << i;
  EXPECT_EQ(got[n - 1], orig[n - 1]);  // one past the copy is untouched
}

// The GPU runs a batch from the staged arrays alone (cuBLAS's pointer-array batched GEMM)
// and, given the host arrays too, each way CudaOps can: its default choice, one GEMM per
// item, the batched kernels. Each must match the CPU.
TYPED_TEST(OpsParity, GemmBatchedWithStagedPointers) {
  using T = TypeParam;
  Random rng(3);
  const std::int64_t m = 24, n = 7, k = 13;
  const int count = 3;
  Twin<T> a(rng, count * m * k), b(rng, count * k * n), c(rng, count * m * n);
  // Units in reverse order, to check that the tables, not the strides, place them.
  auto table = [&](const T* pa, const T* pb, const T* pc) {
    std::vector<const void*> t;
    for (int i = count - 1; i >= 0; --i) t.push_back(pa + i * m * k);
    for (int i = count - 1; i >= 0; --i) t.push_back(pb + i * k * n);
    for (int i = count - 1; i >= 0; --i) t.push_back(pc + i * m * n);
    return t;
  };
  auto run = [&](Ops<T>& ops, T* pc, bool with_host) {
    const std::vector<const void*> host =
        table(&ops == &this->cpu_ ? a.c() : a.g(), &ops == &this->cpu_ ? b.c() : b.g(), pc);
    const void* const* staged = ops.stage_pointers(host.data(), host.size());
    detail::GemmBatch<T> g;
    g.trans_a = Trans::T;
    g.m = m;
    g.n = n;
    g.k = k;
    g.lda = k;
    g.ldb = k;
    g.ldc = m;
    g.beta = T(1);
    g.a = reinterpret_cast<const T* const*>(staged);
    g.b = reinterpret_cast<const T* const*>(staged + count);
    g.c = reinterpret_cast<T* const*>(const_cast<void* const*>(staged + 2 * count));
    if (with_host) {
      g.host_a = reinterpret_cast<const T* const*>(host.data());
      g.host_b = reinterpret_cast<const T* const*>(host.data() + count);
      g.host_c = reinterpret_cast<T* const*>(const_cast<void**>(host.data() + 2 * count));
    }
    g.count = count;
    ops.gemm_batched(g);
    if (&ops != &this->cpu_) ops.synchronize();  // `host` must outlive the staging copy
  };
  // Every GPU run starts from c's values; the CPU's c changes last.
  Tensor chosen = c.cpu.to(kGpu), per_item = c.cpu.to(kGpu), batched = c.cpu.to(kGpu);
  auto way = [&](detail::CudaBatchedGemm w) {
    this->gpu_->set_tuning(tuned([w](detail::Tuning& t) { t.cuda_batched_gemm = w; }));
  };
  run(*this->gpu_, c.g(), false);
  run(*this->gpu_, chosen.data_as<T>(), true);
  way(detail::CudaBatchedGemm::PerItem);
  run(*this->gpu_, per_item.data_as<T>(), true);
  way(detail::CudaBatchedGemm::Batched);
  run(*this->gpu_, batched.data_as<T>(), true);
  way(detail::CudaBatchedGemm::Auto);
  run(this->cpu_, c.c(), true);
  const Tolerance tol = tolerance_for_depth<T>(k);
  EXPECT_TRUE(all_close(c.from_gpu(), c.from_cpu(), tol)) << "staged arrays alone";
  EXPECT_TRUE(all_close(chosen.to_vector<T>(), c.from_cpu(), tol)) << "default choice";
  EXPECT_TRUE(all_close(per_item.to_vector<T>(), c.from_cpu(), tol)) << "one GEMM per item";
  EXPECT_TRUE(all_close(batched.to_vector<T>(), c.from_cpu(), tol)) << "batched kernels asked for";
}

// Strided rows copied, then added in place (a fused weight gradient's blocks): one
// operation per element, so the same bits on both.
TYPED_TEST(OpsParity, CopyRowsAndAddRows) {
  using T = TypeParam;
  Random rng(4);
  Twin<T> src(rng, 9 * 11), dst(rng, 9 * 13);
  this->cpu_.copy_rows(dst.c(), 13, src.c() + 2, 11, 9, 7);
  this->gpu_->copy_rows(dst.g(), 13, src.g() + 2, 11, 9, 7);
  EXPECT_EQ(dst.from_gpu(), dst.from_cpu());
  this->cpu_.add_rows(dst.c(), 13, src.c() + 3, 11, 9, 6);
  this->gpu_->add_rows(dst.g(), 13, src.g() + 3, 11, 9, 6);
  EXPECT_EQ(dst.from_gpu(), dst.from_cpu());
}

TYPED_TEST(OpsParity, Transpose) {
  using T = TypeParam;
  Random rng(5);
  for (std::int64_t rows : {1, 37, 1024}) {
    const std::int64_t cols = rows == 1024 ? 256 : 29;
    Twin<T> src(rng, rows * cols), dst(rng, rows * cols);
    kernels::TransposeArgs<T> c{rows, cols, dst.c(), src.c()}, g{rows, cols, dst.g(), src.g()};
    this->cpu_.transpose(c);
    this->gpu_->transpose(g);
    EXPECT_EQ(dst.from_gpu(), dst.from_cpu()) << rows << " x " << cols;
  }
}

TYPED_TEST(OpsParity, EveryConnectionKernel) {
  using T = TypeParam;
  const std::int64_t rows = 37, width = 29, ldy = 31, ldu = 33;
  for (ConnectionKind kind : {ConnectionKind::ResidualForward, ConnectionKind::ResidualBackward,
                              ConnectionKind::HighwayForward, ConnectionKind::HighwayBackward}) {
    Random rng(50 + static_cast<std::uint64_t>(kind));
    Twin<T> y(rng, rows * ldy), u(rng, rows * ldu), out(rng, rows * width);
    Twin<T> gate(rng, rows * width, 0.05, 0.95), bias(rng, width), dout(rng, rows * width);
    Twin<T> dy(rng, rows * ldy), du(rng, rows * ldu), dz(rng, rows * width);
    for (bool gpu : {false, true}) {
      auto p = [gpu](const Twin<T>& t) { return gpu ? t.g() : t.c(); };
      kernels::ConnectionArgs<T> a;
      a.rows = rows;
      a.width = width;
      a.y = p(y), a.ldy = ldy, a.u = p(u), a.ldu = ldu, a.out = p(out), a.gate = p(gate);
      a.bias = p(bias), a.dout = p(dout), a.dy = p(dy), a.du = p(du), a.dz = p(dz);
      if (gpu) {
        this->gpu_->connection(kind, a);
      } else {
        this->cpu_.connection(kind, a);
      }
    }
    const Tolerance tol = tolerance_for_depth<T>(4);
    for (const Twin<T>* t : {&out, &gate, &dy, &du, &dz}) {
      EXPECT_TRUE(all_close(t->from_gpu(), t->from_cpu(), tol)) << static_cast<int>(kind);
    }
  }
}

// Every buffer a step kernel may read or write, as twins.
template <typename T>
struct StepTwins {
  static constexpr std::int64_t B = 5, H = 67;  // B*H not a multiple of the block size
  Random rng;
  Twin<T> gx, gh, b_ih, b_hh, h_prev, c_prev, h, c, saved, rh, dy, drh, dh, dc, dgx, dgh;
  Twin<T> h0, c0, g0, hp, dproj;
  explicit StepTwins(std::uint64_t seed)
      : rng(seed),
        gx(rng, B * 4 * H, -2, 2),
        gh(rng, B * 4 * H, -2, 2),
        b_ih(rng, 4 * H),
        b_hh(rng, 4 * H),
        h_prev(rng, B * H),
        c_prev(rng, B * H),
        h(rng, B * H),
        c(rng, B * H, -2, 2),
        saved(rng, B * 4 * H, 0.05, 0.95),  // activations in (0, 1), as σ and tanh give
        rh(rng, B * H),
        dy(rng, B * H),
        drh(rng, B * H),
        dh(rng, B * H),
        dc(rng, B * H),
        dgx(rng, B * 4 * H),
        dgh(rng, B * 4 * H),
        h0(rng, B * H),
        c0(rng, B * H),
        g0(rng, B * 4 * H, -2, 2),
        hp(rng, B * H),
        dproj(rng, B * H) {}

  kernels::StepForward<T> forward(bool gpu) const {
    kernels::StepForward<T> a;
    a.batch = B;
    a.hidden = H;
    a.ldh = H;
    a.active = B;
    a.carried = B - 2;  // the last rows start from h0 / c0 / g0
    auto p = [gpu](const Twin<T>& t) { return gpu ? t.g() : t.c(); };
    a.gx = p(gx), a.gh = p(gh), a.b_ih = p(b_ih), a.b_hh = p(b_hh);
    a.h_prev = p(h_prev), a.c_prev = p(c_prev), a.h = p(h), a.c = p(c);
    a.saved = p(saved), a.rh = p(rh);
    a.h0 = p(h0), a.c0 = p(c0), a.g0 = p(g0), a.hp = p(hp), a.ldhp = H;
    return a;
  }
  kernels::StepBackward<T> backward(bool gpu) const {
    kernels::StepBackward<T> a;
    a.batch = B;
    a.hidden = H;
    a.ldh = H;
    a.active = B;
    a.carried = B - 2;  // the last rows start from h0 / c0 / g0
    auto p = [gpu](const Twin<T>& t) { return gpu ? t.g() : t.c(); };
    a.dy = p(dy), a.h = p(h), a.h_prev = p(h_prev), a.c = p(c), a.c_prev = p(c_prev);
    a.saved = p(saved), a.drh = p(drh), a.dh = p(dh), a.dc = p(dc), a.dgx = p(dgx), a.dgh = p(dgh);
    a.c0 = p(c0), a.dproj = p(dproj);
    return a;
  }
  // Every output buffer, compared.
  void expect_equal_outputs(const char* what) const {
    const Tolerance tol = tolerance_for_depth<T>(4);
    for (const Twin<T>* t : {&h, &c, &saved, &rh, &dh, &dc, &dgx, &dgh, &hp, &dproj}) {
      EXPECT_TRUE(all_close(t->from_gpu(), t->from_cpu(), tol)) << what;
    }
  }
};

TYPED_TEST(OpsParity, EveryStepKernelForwardAndBackward) {
  using T = TypeParam;
  for (StepKind kind : kernels::kStepKinds) {
    StepTwins<T> fwd(10 + static_cast<std::uint64_t>(kind));
    const kernels::StepForward<T> fc = fwd.forward(false), fg = fwd.forward(true);
    this->cpu_.step_forward(kind, &fc, 1);
    this->gpu_->step_forward(kind, &fg, 1);
    fwd.expect_equal_outputs("forward");

    StepTwins<T> bwd(20 + static_cast<std::uint64_t>(kind));
    const kernels::StepBackward<T> bc = bwd.backward(false), bg = bwd.backward(true);
    this->cpu_.step_backward(kind, &bc, 1);
    this->gpu_->step_backward(kind, &bg, 1);
    bwd.expect_equal_outputs("backward");
  }
}

// ---- whole models: GPU against CPU ----

struct ModelCase {
  CellKind cell;
  DType dtype;
  std::int64_t layers = 1;
  bool bidirectional = false;
  Connection connection = Connection::None;
  std::int64_t proj_size = 0;  // the LSTM's projection P, or 0
};

class ModelParity : public ::testing::TestWithParam<ModelCase> {};

// B = 5 runs the forward recurrent GEMMs on W_hh as stored, B = 16 on its transpose
// (src/pass/pass_plan.h), so both layouts are checked on the GPU. Both models take
// `tuning`; returns what the GPU model's passes did.
template <typename T>
detail::PassStatistics check_model(const ModelCase& mc, std::int64_t T_, std::int64_t B,
                                   const detail::Tuning& tuning = detail::environment_tuning()) {
  const CellKind cell = mc.cell;
  const std::int64_t H = 33, D = mc.bidirectional ? 2 : 1;
  const std::int64_t O = mc.proj_size > 0 ? mc.proj_size : H;  // h's features
  // x as wide as y for residual and highway, so they apply at layer 0 as well.
  const std::int64_t I =
      mc.connection == Connection::Residual || mc.connection == Connection::Highway ? D * O : 19;
  const std::int64_t LD = mc.layers * D;
  RnnConfig c;
  c.cell = cell;
  c.input_size = I;
  c.hidden_size = H;
  c.dtype = dtype_of<T>();
  c.num_layers = mc.layers;
  c.bidirectional = mc.bidirectional;
  c.connection = mc.connection;
  c.proj_size = mc.proj_size;
  Rnn cpu(c, Device::cpu(), 3);
  Rnn gpu(c, kGpu, 3);
  detail::RnnAccess::engine(cpu).set_tuning(tuning);
  detail::RnnAccess::engine(gpu).set_tuning(tuning);
  EXPECT_EQ(gpu.parameters().to_vector<T>(), cpu.parameters().to_vector<T>());
  Random rng(100 + static_cast<std::uint64_t>(cell));
  Tensor x = rng.tensor<T>({T_, B, I}), h0 = rng.tensor<T>({LD, B, O});
  Tensor c0 = has_cell_state(cell) ? rng.tensor<T>({LD, B, H}) : Tensor();
  Tensor dy = rng.tensor<T>({T_, B, D * O}), dh = rng.tensor<T>({LD, B, O});
  Tensor dc = has_cell_state(cell) ? rng.tensor<T>({LD, B, H}) : Tensor();
  Tensor x_g = x.to(kGpu), h0_g = h0.to(kGpu), c0_g = c0.to(kGpu);
  Tensor dy_g = dy.to(kGpu), dh_g = dh.to(kGpu), dc_g = dc.to(kGpu);

  const double depth =
      static_cast<double>(T_ * (std::max(I, D * H) + H + (mc.proj_size > 0 ? H : 0)) * mc.layers);
  const Tolerance fwd = tolerance_for_depth<T>(depth), bwd = tolerance_for_depth<T>(2 * depth);

  ForwardResult inf_c = cpu.forward(x, h0, c0, Mode::Inference);
  ForwardResult inf_g = gpu.forward(x_g, h0_g, c0_g, Mode::Inference);
  detail::PassStatistics done = forward_statistics(gpu);
  EXPECT_TRUE(all_close(inf_g.y.to_vector<T>(), inf_c.y.to_vector<T>(), fwd)) << "inference y";

  ForwardResult fc = cpu.forward(x, h0, c0);
  ForwardResult fg = gpu.forward(x_g, h0_g, c0_g);
  EXPECT_TRUE(fg.y.device() == kGpu);
  EXPECT_TRUE(all_close(fg.y.to_vector<T>(), fc.y.to_vector<T>(), fwd)) << "y";
  EXPECT_TRUE(all_close(fg.h_n.to_vector<T>(), fc.h_n.to_vector<T>(), fwd)) << "h_n";
  if (has_cell_state(cell)) {
    EXPECT_TRUE(all_close(fg.c_n.to_vector<T>(), fc.c_n.to_vector<T>(), fwd)) << "c_n";
  }
  BackwardResult bc = cpu.backward(dy, dh, dc);
  BackwardResult bg = gpu.backward(dy_g, dh_g, dc_g);
  done += last_pass_statistics(gpu);
  EXPECT_TRUE(all_close(bg.dx.to_vector<T>(), bc.dx.to_vector<T>(), bwd)) << "dx";
  EXPECT_TRUE(all_close(bg.dh0.to_vector<T>(), bc.dh0.to_vector<T>(), bwd)) << "dh0";
  if (has_cell_state(cell)) {
    EXPECT_TRUE(all_close(bg.dc0.to_vector<T>(), bc.dc0.to_vector<T>(), bwd)) << "dc0";
  }
  for (const ParamInfo& info : cpu.parameter_info()) {
    EXPECT_TRUE(all_close(gpu.gradient(info.name).to_vector<T>(),
                          cpu.gradient(info.name).to_vector<T>(), bwd))
        << info.name;
  }
  return done;
}

// The LSTM again with layer 0's h_{t-1} beside x (its two weight gradients as one GEMM and
// cuBLAS's geam adds), which only problems of 2048 rows or more take by default.
TEST_P(ModelParity, ForwardAndBackwardMatchTheCpu) {
  RECUR_REQUIRE_GPU();
  const std::int64_t by_default = detail::environment_tuning().hp_beside_x_min_rows;
  for (std::int64_t xh_rows : {by_default, std::int64_t{0}}) {
    if (xh_rows == 0 && GetParam().cell != CellKind::Lstm) continue;
    const detail::Tuning tuning =
        tuned([xh_rows](detail::Tuning& t) { t.hp_beside_x_min_rows = xh_rows; });
    for (auto [steps, batch] : {std::pair<std::int64_t, std::int64_t>{7, 5}, {5, 16}}) {
      SCOPED_TRACE("T=" + std::to_string(steps) + " B=" + std::to_string(batch) +
                   (xh_rows == 0 ? " h_{t-1} beside x" : ""));
      if (GetParam().dtype == DType::Float32) {
        check_model<float>(GetParam(), steps, batch, tuning);
      } else {
        check_model<double>(GetParam(), steps, batch, tuning);
      }
    }
  }
}

// The parity suite runs the default choice per batch (CudaOps::gemm_batched); each forced
// way must give the same model, several units per step included: both directions of a
// 2-layer bidirectional stack, the layers of a 3-layer wavefront (whose waves' batches
// hold the upper layers' input GEMMs too, except with wave fusion off).
TEST(CudaModel, EveryBatchedGemmWayMatchesTheCpu) {
  RECUR_REQUIRE_GPU();
  using detail::CudaBatchedGemm;
  const char* names[] = {"auto", "per item", "batched"};
  for (CudaBatchedGemm w :
       {CudaBatchedGemm::Auto, CudaBatchedGemm::PerItem, CudaBatchedGemm::Batched}) {
    for (CellKind cell :
         {CellKind::Lstm, CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
      for (bool bi : {true, false}) {
        for (bool fusion : {true, false}) {
          if (bi && !fusion) continue;  // layer by layer: nothing to fuse
          const detail::Tuning tuning = tuned([&](detail::Tuning& t) {
            t.cuda_batched_gemm = w;
            t.wave_fusion = fusion;
          });
          SCOPED_TRACE(std::string(to_string(cell)) + (bi ? " 2-layer bi " : " 3-layer uni ") +
                       names[static_cast<int>(w)] + (fusion ? "" : ", wave fusion off"));
          check_model<float>({cell, DType::Float32, bi ? 2 : 3, bi, Connection::None}, 5, 16,
                             tuning);
        }
      }
    }
  }
}

std::vector<ModelCase> model_cases() {
  std::vector<ModelCase> cases;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::RnnSigmoid, CellKind::Lstm,
                        CellKind::GruLinearBeforeReset, CellKind::GruResetBeforeProduct}) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (std::int64_t layers : {1, 2, 3}) {
        for (bool bi : {false, true}) {
          for (Connection conn :
               {Connection::None, Connection::Residual, Connection::Highway, Connection::Dense}) {
            cases.push_back({cell, dtype, layers, bi, conn});
          }
        }
      }
    }
  }
  // The projected LSTM (P = 13 < H = 33).
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (std::int64_t layers : {1, 3}) {
      for (bool bi : {false, true}) {
        for (Connection conn : {Connection::None, Connection::Residual, Connection::Dense}) {
          cases.push_back({CellKind::Lstm, dtype, layers, bi, conn, 13});
        }
      }
    }
  }
  return cases;
}

std::string model_name(const ::testing::TestParamInfo<ModelCase>& p) {
  return std::string(to_string(p.param.cell)) + "_" + to_string(p.param.dtype) + "_L" +
         std::to_string(p.param.layers) + (p.param.bidirectional ? "_bi_" : "_uni_") +
         to_string(p.param.connection) +
         (p.param.proj_size > 0 ? "_P" + std::to_string(p.param.proj_size) : "");
}

INSTANTIATE_TEST_SUITE_P(AllCells, ModelParity, ::testing::ValuesIn(model_cases()), model_name);

// Three training steps of a 2-layer bidirectional LSTM, on three fresh models or on one
// (its gradients zeroed in between): each step's gradients and dx must be the same bits.
void expect_training_steps_bitwise_equal(
    bool one_model, std::uint64_t seed,
    const detail::Tuning& tuning = detail::environment_tuning()) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 16;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.bidirectional = true;
  Random rng(seed);
  Tensor x = rng.tensor<float>({9, 4, 16}).to(kGpu), dy = rng.tensor<float>({9, 4, 64}).to(kGpu);
  std::unique_ptr<Rnn> kept = one_model ? std::make_unique<Rnn>(c, kGpu, 1) : nullptr;
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    std::unique_ptr<Rnn> fresh = one_model ? nullptr : std::make_unique<Rnn>(c, kGpu, 1);
    Rnn& rnn = one_model ? *kept : *fresh;
    detail::RnnAccess::engine(rnn).set_tuning(tuning);
    rnn.zero_grad();
    rnn.forward(x);
    BackwardResult b = rnn.backward(dy);
    std::vector<float> all = rnn.gradients().to_vector<float>();
    const std::vector<float> dx = b.dx.to_vector<float>();
    all.insert(all.end(), dx.begin(), dx.end());
    if (run == 0) {
      first = all;
    } else {
      EXPECT_EQ(all, first) << "run " << run;  // the same bits, no atomics
    }
  }
}

TEST(CudaModel, TrainingStepIsBitwiseDeterministic) {
  RECUR_REQUIRE_GPU();
  expect_training_steps_bitwise_equal(false, 7);
}

// With CUDA graphs recorded at once (Always), a pass's steps run as one recorded graph:
// the model must match the CPU (one layer, both directions of a 2-layer stack, and a
// 3-layer wavefront, every cell kind), and the same training step again, replayed from
// the graphs, the same bits.
TEST(CudaModel, GraphsMatchTheCpuAndReplayBitwise) {
  RECUR_REQUIRE_GPU();
  const detail::Tuning always =
      tuned([](detail::Tuning& t) { t.cuda_graphs = detail::CudaGraphs::Always; });
  std::int64_t recorded = 0;
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct}) {
    for (int layers : {1, 2, 3}) {
      const bool bi = layers == 2;
      SCOPED_TRACE(std::string(to_string(cell)) + " " + std::to_string(layers) + " layers" +
                   (bi ? " bi" : ""));
      recorded +=
          check_model<float>({cell, DType::Float32, layers, bi, Connection::None}, 6, 16, always)
              .graph_captures;
    }
  }
  EXPECT_GT(recorded, 0);
  expect_training_steps_bitwise_equal(true, 8, always);
}

// With graph branches (always, or by the pass plan's rule: a wavefront's small batches),
// the per-item GEMMs of a recorded batch (a bidirectional step's two backward GEMMs, a
// 3-layer wave's three) run as parallel branches of the graph: the models must still
// match the CPU, and a replayed training step give the same bits.
TEST(CudaModel, GraphBranchesMatchTheCpuAndReplayBitwise) {
  RECUR_REQUIRE_GPU();
  for (detail::GraphBranches branches :
       {detail::GraphBranches::Always, detail::GraphBranches::ByRule}) {
    const detail::Tuning tuning = tuned([branches](detail::Tuning& t) {
      t.cuda_graphs = detail::CudaGraphs::Always;
      t.cuda_graph_branches = branches;
    });
    const bool always = branches == detail::GraphBranches::Always;
    for (CellKind cell : {CellKind::Lstm, CellKind::GruLinearBeforeReset}) {
      for (int layers : {2, 3}) {
        const bool bi = layers == 2;
        SCOPED_TRACE(std::string(to_string(cell)) + " " + std::to_string(layers) + " layers" +
                     (always ? ", always" : ", by rule"));
        const detail::PassStatistics done =
            check_model<float>({cell, DType::Float32, layers, bi, Connection::None}, 6, 16, tuning);
        // By rule only the wavefront's backward waves (3 per-item GEMMs of m = 33) branch.
        if (always || !bi) {
          EXPECT_GT(done.branched_batches, 0);
        } else {
          EXPECT_EQ(done.branched_batches, 0);
        }
      }
    }
    expect_training_steps_bitwise_equal(true, 9, tuning);
  }
}

// The graphs (recorded, replayed) of `steps` training steps of one model, one after the
// other on the same data.
std::pair<std::int64_t, std::int64_t> graphs_of_training_steps(const RnnConfig& c, int steps,
                                                               detail::CudaGraphs mode) {
  Rnn rnn(c, kGpu, 1);
  tune(rnn, [mode](detail::Tuning& t) { t.cuda_graphs = mode; });
  const std::int64_t T_ = 7, B = 5, D = c.bidirectional ? 2 : 1;
  Random rng(21);
  Tensor x = rng.tensor<float>({T_, B, c.input_size}).to(kGpu);
  Tensor dy = rng.tensor<float>({T_, B, D * c.hidden_size}).to(kGpu);
  std::int64_t recorded = 0, replayed = 0;
  for (int i = 0; i < steps; ++i) {
    rnn.forward(x);
    rnn.backward(dy);
    const detail::PassStatistics done = last_pass_statistics(rnn);
    recorded += done.graph_captures;
    replayed += done.graph_replays;
  }
  return {recorded, replayed};
}

// Which lists become graphs: by default (Repeated) a list seen once runs launch by launch,
// the second time it is recorded, the third replayed; a wavefront is one list per pass,
// unless something launches between its waves (residual connections, dropout); Off
// records nothing.
TEST(CudaModel, GraphsRecordListsThatComeAgain) {
  RECUR_REQUIRE_GPU();
  using detail::CudaGraphs;
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 12;
  c.hidden_size = 16;
  const std::pair<std::int64_t, std::int64_t> none{0, 0};
  {
    c.num_layers = 1;  // one list forward, one backward
    EXPECT_EQ(graphs_of_training_steps(c, 1, CudaGraphs::Repeated), none);
    EXPECT_EQ(graphs_of_training_steps(c, 2, CudaGraphs::Repeated),
              std::make_pair(std::int64_t{2}, std::int64_t{0}));
    EXPECT_EQ(graphs_of_training_steps(c, 4, CudaGraphs::Repeated),
              std::make_pair(std::int64_t{2}, std::int64_t{4}));
    c.num_layers = 3;  // a wavefront: still one list each way
    EXPECT_EQ(graphs_of_training_steps(c, 3, CudaGraphs::Repeated),
              std::make_pair(std::int64_t{2}, std::int64_t{2}));
    c.bidirectional = true;  // layer by layer: one list per layer each way
    EXPECT_EQ(graphs_of_training_steps(c, 3, CudaGraphs::Repeated),
              std::make_pair(std::int64_t{6}, std::int64_t{6}));
  }
  {
    c.bidirectional = false;
    c.input_size = c.hidden_size;
    c.connection = Connection::Residual;  // launches between waves
    EXPECT_EQ(graphs_of_training_steps(c, 2, CudaGraphs::Always), none);
    c.connection = Connection::None;
    c.dropout = 0.25;  // between waves in training
    EXPECT_EQ(graphs_of_training_steps(c, 2, CudaGraphs::Always), none);
    c.dropout = 0;
    EXPECT_EQ(graphs_of_training_steps(c, 2, CudaGraphs::Always),
              std::make_pair(std::int64_t{2}, std::int64_t{2}));
  }
  { EXPECT_EQ(graphs_of_training_steps(c, 3, CudaGraphs::Off), none); }
}

// Variable lengths, dropout and batch-first on the GPU against the CPU: the same masks
// for the same seed and step.
TEST(CudaModel, PackedBatchesWithDropoutMatchTheCpu) {
  RECUR_REQUIRE_GPU();
  for (CellKind cell : {CellKind::Lstm, CellKind::GruLinearBeforeReset,
                        CellKind::GruResetBeforeProduct, CellKind::RnnTanh}) {
    for (bool bi : {false, true}) {
      for (bool batch_first : {false, true}) {
        RnnConfig c;
        c.cell = cell;
        c.input_size = 24;
        c.hidden_size = 40;
        c.num_layers = 3;
        c.bidirectional = bi;
        c.connection = Connection::Dense;
        c.dropout = 0.3;
        c.batch_first = batch_first;
        Rnn cpu(c, Device::cpu(), 9), gpu(c, kGpu, 9);
        const std::int64_t T_ = 11, B = 6, DH = (bi ? 2 : 1) * 40;
        const std::vector<std::int64_t> lengths = {4, 11, 1, 7, 11, 2};
        Random rng(10);
        const Shape xs = batch_first ? Shape{B, T_, 24} : Shape{T_, B, 24};
        const Shape ys = batch_first ? Shape{B, T_, DH} : Shape{T_, B, DH};
        Tensor x = rng.tensor<float>(xs), dy = rng.tensor<float>(ys);
        Tensor xg = x.to(kGpu), dyg = dy.to(kGpu);
        ForwardResult fc = cpu.forward(x, {}, {}, Mode::Training, lengths);
        ForwardResult fg = gpu.forward(xg, {}, {}, Mode::Training, lengths);
        const double depth = static_cast<double>(T_ * (24 + 3 * DH + 40) * 3);
        const Tolerance fwd = tolerance_for_depth<float>(depth);
        const Tolerance bwd = tolerance_for_depth<float>(2 * depth);
        EXPECT_TRUE(all_close(fg.y.to_vector<float>(), fc.y.to_vector<float>(), fwd));
        EXPECT_TRUE(all_close(fg.h_n.to_vector<float>(), fc.h_n.to_vector<float>(), fwd));
        BackwardResult bc = cpu.backward(dy), bg = gpu.backward(dyg);
        EXPECT_TRUE(all_close(bg.dx.to_vector<float>(), bc.dx.to_vector<float>(), bwd));
        EXPECT_TRUE(
            all_close(gpu.gradients().to_vector<float>(), cpu.gradients().to_vector<float>(), bwd));
      }
    }
  }
}

// Reduced math on the GPU (src/cuda/reduced_gemms.h) against the CPU's emulation: both
// round every GEMM's operands to nearest even with the same functor and accumulate in
// float32, so they differ only in the order of accumulation, and through it in the rare
// operand (an h, a dgh) that lands on the other side of a rounding boundary. The budget is
// the format's unit roundoff with the usual depth factor, as between reduced math and
// float32 (test_math); the run also checks that the GPU really rounded (its result is not
// the GPU's float32 one). Graphs recorded on the first pass, with branches, and a
// wavefront, so that the scratch reserved before recording and the side streams' own are
// exercised; BF16 and FP16 models take x and dy in their storage type.
TEST(CudaModel, ReducedMathMatchesTheCpusEmulation) {
  RECUR_REQUIRE_GPU();
  for (Math math : {Math::Tf32, Math::Bf16, Math::Fp16}) {
    for (const auto& [cell, proj] : {std::pair<CellKind, std::int64_t>{CellKind::Lstm, 0},
                                     {CellKind::Lstm, 13},
                                     {CellKind::GruLinearBeforeReset, 0},
                                     {CellKind::GruResetBeforeProduct, 0}}) {
      SCOPED_TRACE(std::string(to_string(math)) + " " + to_string(cell) +
                   (proj > 0 ? " projected" : ""));
      RnnConfig c;
      c.cell = cell;
      c.input_size = 19;
      c.hidden_size = 33;
      c.proj_size = proj;
      c.num_layers = 2;
      c.math = math;
      RnnConfig f32 = c;
      f32.math = Math::Fp32;
      Rnn cpu(c, Device::cpu(), 3), gpu(c, kGpu, 3), exact(f32, kGpu, 3);
      tune(gpu, [](detail::Tuning& t) {
        t.cuda_graphs = detail::CudaGraphs::Always;
        t.cuda_graph_branches = detail::GraphBranches::Always;
      });
      const std::int64_t T_ = 9, B = 16;
      Random rng(77);
      const DType io = math == Math::Bf16   ? DType::BFloat16
                       : math == Math::Fp16 ? DType::Float16
                                            : DType::Float32;
      const Tensor x = rng.tensor<float>({T_, B, 19}).to(io);
      const Tensor dy = rng.tensor<float>({T_, B, proj > 0 ? proj : 33}).to(io);
      const double depth = static_cast<double>(T_ * (19 + 2 * 33 + (proj > 0 ? 33 : 0)) * 2);
      const Tolerance tol{detail::unit_roundoff(math), 8.0 * std::log2(2.0 + depth)};
      for (int pass = 0; pass < 2; ++pass) {  // recorded, then replayed
        SCOPED_TRACE(pass == 0 ? "recorded" : "replayed");
        cpu.zero_grad();
        gpu.zero_grad();
        const ForwardResult fc = cpu.forward(x), fg = gpu.forward(x.to(kGpu));
        const BackwardResult bc = cpu.backward(dy), bg = gpu.backward(dy.to(kGpu));
        EXPECT_EQ(fg.y.dtype(), io);
        const std::vector<float> yg = fg.y.to(Device::cpu()).to(DType::Float32).to_vector<float>();
        EXPECT_TRUE(all_close(yg, fc.y.to(DType::Float32).to_vector<float>(), tol)) << "y";
        EXPECT_TRUE(all_close(fg.h_n.to_vector<float>(), fc.h_n.to_vector<float>(), tol)) << "h_n";
        EXPECT_TRUE(all_close(bg.dx.to(Device::cpu()).to(DType::Float32).to_vector<float>(),
                              bc.dx.to(DType::Float32).to_vector<float>(), tol))
            << "dx";
        EXPECT_TRUE(
            all_close(gpu.gradients().to_vector<float>(), cpu.gradients().to_vector<float>(), tol))
            << "gradients";
        const std::vector<float> ye =
            exact.forward(x.to(kGpu).to(DType::Float32)).y.to_vector<float>();
        EXPECT_NE(yg, ye) << "the GPU's products were not rounded";
      }
      EXPECT_GT(forward_statistics(gpu).graph_replays, 0);
    }
  }
}

// A deep bidirectional stack holds more working copies than a shallow one (about six a
// layer, kept from pass to pass): they all stay, and the graphs recorded over them replay,
// pass after pass, with the GEMMs launched between replays (the input projections, the
// weight gradients) growing the launch-by-launch scratch without moving the graphs'.
TEST(CudaModel, DeepReducedStacksReplayTheirGraphs) {
  RECUR_REQUIRE_GPU();
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 8;
  c.hidden_size = 8;
  c.num_layers = 12;
  c.bidirectional = true;
  c.math = Math::Bf16;
  Rnn gpu(c, kGpu, 5);
  const std::int64_t T_ = 5, B = 4;
  Random rng(78);
  const Tensor x = rng.tensor<float>({T_, B, 8}).to(DType::BFloat16).to(kGpu);
  const Tensor dy = rng.tensor<float>({T_, B, 16}).to(DType::BFloat16).to(kGpu);
  for (int pass = 0; pass < 4; ++pass) {
    gpu.forward(x);
    gpu.backward(dy);
  }
  // Pass 0 sees each list, pass 1 records it, passes 2 and 3 replay.
  EXPECT_GT(forward_statistics(gpu).graph_replays, 0);
  EXPECT_GT(backward_statistics(gpu).graph_replays, 0);
  EXPECT_EQ(forward_statistics(gpu).graph_captures, 0);
  EXPECT_EQ(backward_statistics(gpu).graph_captures, 0);
}

// ---- tensors and devices ----

// Tensor::to on the device (kernels/convert.cuh) gives the CPU's bits for every pair of
// dtypes, on random values and the edge cases: ties, subnormals, overflow, infinities, NaN.
TEST(CudaTensor, ConversionsOnTheDeviceMatchTheCpuBitwise) {
  RECUR_REQUIRE_GPU();
  Random rng(31);
  std::vector<double> v = rng.vector<double>(4000);
  for (double& x : v) x *= 1e3;
  const double edges[] = {0.0,
                          -0.0,
                          1.0 + std::ldexp(1.0, -8),
                          1.0 + 3 * std::ldexp(1.0, -9),
                          65504.0,
                          65520.0,
                          1e-7,
                          6e-8,
                          std::ldexp(1.0, -130),
                          1e39,
                          -1e300,
                          std::numeric_limits<double>::infinity(),
                          std::numeric_limits<double>::quiet_NaN(),
                          1.0 + std::ldexp(1.0, -40)};
  v.insert(v.end(), std::begin(edges), std::end(edges));
  const DType all[] = {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16};
  const Tensor base = Tensor::from_vector(v, {static_cast<std::int64_t>(v.size())});
  for (DType from : all) {
    const Tensor src = base.to(from);
    for (DType to : all) {
      SCOPED_TRACE(std::string(to_string(from)) + " -> " + to_string(to));
      const Tensor on_cpu = src.to(to), on_gpu = src.to(kGpu).to(to).to(Device::cpu());
      ASSERT_EQ(on_gpu.dtype(), to);
      EXPECT_EQ(std::memcmp(on_gpu.data(), on_cpu.data(), on_cpu.view().nbytes()), 0);
    }
  }
}

TEST(CudaTensor, RoundTripsThroughTheGpu) {
  RECUR_REQUIRE_GPU();
  Random rng(5);
  Tensor a = rng.tensor<float>({3, 1001});
  Tensor g = a.to(kGpu);
  EXPECT_EQ(g.device(), kGpu);
  Tensor back = g.clone().to(Device::cpu());
  EXPECT_EQ(back.to_vector<float>(), a.to_vector<float>());
  Tensor z = Tensor::zeros({77}, DType::Float64, kGpu);
  for (double v : z.to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(CudaModel, MixedDevicesAreNamed) {
  RECUR_REQUIRE_GPU();
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 3;
  c.hidden_size = 4;
  Rnn rnn(c, kGpu);
  Tensor x_cpu = Tensor::zeros({2, 2, 3}, DType::Float32);
  try {
    rnn.forward(x_cpu);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "x");
    EXPECT_EQ(e.expected(), "device cuda:0 (the model's)");
    EXPECT_EQ(e.got(), "device cpu");
  }
  Tensor x = x_cpu.to(kGpu);
  try {
    rnn.forward(x, Tensor::zeros({1, 2, 4}, DType::Float32));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "h0");
    EXPECT_EQ(e.got(), "device cpu");
  }
}

TEST(CudaModel, StreamIsSettableAndResettable) {
  RECUR_REQUIRE_GPU();
  RnnConfig c;
  c.cell = CellKind::GruLinearBeforeReset;
  c.input_size = 3;
  c.hidden_size = 4;
  Rnn rnn(c, kGpu);
  void* own = rnn.cuda_stream();
  EXPECT_NE(own, nullptr);
  Rnn other(c, kGpu);
  rnn.set_cuda_stream(other.cuda_stream());  // share another model's stream
  EXPECT_EQ(rnn.cuda_stream(), other.cuda_stream());
  Tensor x = Tensor::zeros({2, 2, 3}, DType::Float32, kGpu);
  ForwardResult a = rnn.forward(x);
  rnn.synchronize();
  rnn.set_cuda_stream(nullptr);
  EXPECT_EQ(rnn.cuda_stream(), own);
  ForwardResult b = rnn.forward(x);
  EXPECT_EQ(a.y.to_vector<float>(), b.y.to_vector<float>());
}

TEST(CudaModel, CpuModelHasNoStream) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 3;
  c.hidden_size = 4;
  Rnn rnn(c);
  EXPECT_EQ(rnn.cuda_stream(), nullptr);
  try {
    rnn.set_cuda_stream(nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "stream");
    EXPECT_EQ(e.got(), "a model on cpu");
  }
}

}  // namespace
}  // namespace recur::test
