// tests/test_tensor.cpp: Tensor, TensorView, devices, version.
#include <cstring>

#include "cpu/cpu_ops.h"
#include "cuda_backend.h"
#include "io_test_util.h"
#include "test_util.h"

namespace recur::test {
namespace {

TEST(Version, MatchesProject) { EXPECT_STREQ(version(), RECUR_EXPECTED_VERSION); }

TEST(Version, CpuBackendInfoNamesTheGemmLibraryAndTheLoops) {
  const std::string info = cpu_backend_info();
  EXPECT_TRUE(info.find("oneDNN sgemm") != std::string::npos ||
              info.find("OpenBLAS sgemm") != std::string::npos)
      << info;
  EXPECT_EQ(info.find("matmul on packed") != std::string::npos,
            detail::environment_tuning().cpu_pack_weights && detail::PackedGemms::available())
      << info;
  EXPECT_NE(info.find("step loops: "), std::string::npos) << info;
  EXPECT_NE(info.find("thread"), std::string::npos) << info;
  EXPECT_NE(info.find("; BF16 products: "), std::string::npos) << info;
  // Without AVX512_BF16 they are emulated; with AMX, tiles (15x float32 FMAs where measured)
  // unless a switch says otherwise.
  const detail::Tuning& tuning = detail::environment_tuning();
  if (!detail::bf16_gemm_available()) {
    EXPECT_NE(info.find("BF16 products: emulated"), std::string::npos) << info;
  } else if (detail::bf16_kernel_available(detail::Bf16Kernel::Tiles) && tuning.cpu_bf16_tiles &&
             tuning.cpu_native_bf16 != detail::NativeBf16::Off) {
    EXPECT_NE(info.find("BF16 products: AMX tiles"), std::string::npos) << info;
  }
}

TEST(Tensor, RoundTripsHostData) {
  const std::vector<float> data = {1, 2, 3, 4, 5, 6};
  Tensor t = Tensor::from_vector(data, {2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(t.to_vector<float>(), data);
}

TEST(Tensor, CloneIsDeep) {
  Tensor a = Tensor::from_vector(std::vector<double>{1, 2}, {2});
  Tensor b = a.clone();
  b.data_as<double>()[0] = 7;
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{1, 2}));
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{7, 2}));
}

TEST(Tensor, ZerosAreZero) {
  Tensor t = Tensor::zeros({4, 5}, DType::Float64);
  for (double v : t.to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(Tensor, ZeroElementTensorIsDefined) {
  Tensor t = Tensor::empty({0, 3}, DType::Float32);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector<float>().empty());
}

TEST(Tensor, WrongDtypeAccessIsAnError) {
  Tensor t = Tensor::zeros({2}, DType::Float32);
  try {
    t.data_as<double>();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "T");
    EXPECT_NE(std::string(e.what()).find("float32"), std::string::npos) << e.what();
  }
}

TEST(Tensor, FromVectorChecksSize) {
  try {
    Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "data");
    EXPECT_EQ(e.expected(), "4 elements for shape [2, 2]");
    EXPECT_EQ(e.got(), "3 elements");
  }
}

TEST(Tensor, NegativeShapeIsAnError) {
  EXPECT_THROW(Tensor::empty({2, -1}, DType::Float32), Error);
}

TEST(Tensor, ImpossibleSizesAreErrors) {
  // Products that overflow int64, or whose bytes do; never a small allocation that the
  // shape then overruns.
  const std::int64_t big = std::int64_t(1) << 62;
  EXPECT_TRUE(throws_error([&] { numel({big, 4}); }, {"argument 'shape'", "fits in int64"}));
  EXPECT_EQ(numel({big, 0, big}), 0);
  EXPECT_TRUE(throws_error([&] { Tensor::zeros({big + 1}, DType::Float32); },
                           {"Tensor::empty", "argument 'shape'", "[4611686018427387905]"}));
  EXPECT_TRUE(throws_error(
      [&] {
        Tensor::empty({big, big}, DType::Float64);
      },
      {"Tensor::empty", "bytes that fit in int64"}));
  float x = 0;
  EXPECT_TRUE(throws_error(
      [&] {
        TensorView(&x, {big / 2, 2}, DType::Float32, Device::cpu());
      },
      {"TensorView", "argument 'shape'"}));
  EXPECT_EQ(Tensor::empty({big, 0}, DType::Float32).numel(), 0);
  // Memory the host cannot give.
  EXPECT_TRUE(
      throws_error([&] { Tensor::empty({big / 16}, DType::Float64); }, {"host allocation of"}));
}

TEST(Tensor, UnknownDtypeIsAnError) {
  const auto bad = static_cast<DType>(7);
  EXPECT_TRUE(throws_error([&] { Tensor::empty({2}, bad); },
                           {"Tensor::empty", "argument 'dtype'", "value 7"}));
  float x = 0;
  EXPECT_TRUE(throws_error([&] { TensorView(&x, {1}, bad, Device::cpu()); }, {"argument 'dtype'"}));
}

TEST(Tensor, CopyFromChecksDtypeAndCount) {
  Tensor a = Tensor::zeros({3}, DType::Float32);
  Tensor b = Tensor::zeros({3}, DType::Float64);
  Tensor c = Tensor::zeros({4}, DType::Float32);
  EXPECT_THROW(a.view().copy_from(b), Error);
  EXPECT_THROW(a.view().copy_from(c), Error);
}

// ---- reduced-precision dtypes (recur/half.h) ----

TEST(Tensor, DtypesHaveSizesAndNames) {
  EXPECT_EQ(dtype_size(DType::Float32), 4u);
  EXPECT_EQ(dtype_size(DType::Float64), 8u);
  EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
  EXPECT_EQ(dtype_size(DType::Float16), 2u);
  EXPECT_STREQ(to_string(DType::BFloat16), "bfloat16");
  EXPECT_STREQ(to_string(DType::Float16), "float16");
  EXPECT_STREQ(to_string(static_cast<DType>(7)), "unknown");
  EXPECT_EQ(dtype_size(static_cast<DType>(7)), 0u);
  static_assert(dtype_of<bfloat16>() == DType::BFloat16);
  static_assert(dtype_of<float16>() == DType::Float16);
  static_assert(dtype_of<float>() == DType::Float32 && dtype_of<double>() == DType::Float64);
}

TEST(Tensor, HoldsBf16AndFp16HostData) {
  const std::vector<bfloat16> b = {bfloat16(1.0f), bfloat16(0.1f), bfloat16(-3.0f)};
  Tensor t = Tensor::from_vector(b, {3});
  EXPECT_EQ(t.dtype(), DType::BFloat16);
  EXPECT_EQ(t.nbytes(), 6u);
  const std::vector<bfloat16> back = t.to_vector<bfloat16>();
  ASSERT_EQ(back.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(back[i].bits, b[i].bits);
  EXPECT_EQ(t.data_as<bfloat16>()[1].bits, 0x3dcdu);
  Tensor h = Tensor::zeros({2, 2}, DType::Float16);
  h.data_as<float16>()[3] = float16(2.5f);
  EXPECT_EQ(static_cast<float>(h.to_vector<float16>()[3]), 2.5f);
  EXPECT_EQ(h.to_vector<float16>()[0].bits, 0u);
  // The element type must match: a bfloat16 tensor is no float16 one.
  EXPECT_TRUE(throws_error([&] { t.data_as<float16>(); },
                           {"TensorView::data_as", "argument 'T'", "bfloat16", "float16"}));
  EXPECT_TRUE(throws_error([&] { h.to_vector<float>(); }, {"argument 'T'", "float16"}));
}

// Widens each float through the format and back to float32: what a conversion to `dtype`
// must give for each element, by the rules of kernels/precision.h.
std::vector<float> rounded(const std::vector<float>& x, DType dtype) {
  std::vector<float> out;
  for (float v : x) {
    out.push_back(dtype == DType::BFloat16 ? static_cast<float>(bfloat16(v))
                                           : static_cast<float>(float16(v)));
  }
  return out;
}

// The bits of each float, so that NaNs and -0 compare too.
std::vector<std::uint32_t> bits_of(const std::vector<float>& x) {
  std::vector<std::uint32_t> out(x.size());
  std::memcpy(out.data(), x.data(), x.size() * sizeof(float));
  return out;
}

TEST(Tensor, ToDtypeConvertsEveryPair) {
  std::vector<float> x = Random(3).vector<float>(64, -70000.0, 70000.0);
  for (float special : {0.1f, -0.0f, 65520.0f, 1e-7f, 1.0f + 0x1p-8f, INFINITY, -NAN, 1e-40f}) {
    x.push_back(special);
  }
  const Shape shape{2, 36};
  Tensor f32 = Tensor::from_vector(x, shape);
  for (DType reduced : {DType::BFloat16, DType::Float16}) {
    SCOPED_TRACE(to_string(reduced));
    Tensor r = f32.to(reduced);
    EXPECT_EQ(r.dtype(), reduced);
    EXPECT_EQ(r.shape(), shape);
    EXPECT_EQ(bits_of(r.to(DType::Float32).to_vector<float>()), bits_of(rounded(x, reduced)));
    // Widening to float64 is exact: the same values as through float32.
    const std::vector<double> wide = r.to(DType::Float64).to_vector<double>();
    const std::vector<float> narrow = r.to(DType::Float32).to_vector<float>();
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (std::isnan(narrow[i])) {
        EXPECT_TRUE(std::isnan(wide[i]));
      } else {
        EXPECT_EQ(wide[i], static_cast<double>(narrow[i])) << i;
      }
    }
  }
  // BF16 <-> FP16 widens exactly, then rounds once.
  Tensor b = f32.to(DType::BFloat16);
  EXPECT_EQ(bits_of(b.to(DType::Float16).to(DType::Float32).to_vector<float>()),
            bits_of(rounded(b.to(DType::Float32).to_vector<float>(), DType::Float16)));
  // Float64 -> Float32 rounds to nearest; the same dtype is a deep copy.
  Tensor f64 = Tensor::from_vector(std::vector<double>{0.1, -1e300, 1.0 + 0x1p-30}, {3});
  EXPECT_EQ(f64.to(DType::Float32).to_vector<float>(), (std::vector<float>{0.1f, -INFINITY, 1.0f}));
  Tensor copy = f32.to(DType::Float32);
  EXPECT_NE(copy.data(), f32.data());
  EXPECT_EQ(bits_of(copy.to_vector<float>()), bits_of(x));
  // Float64 -> BFloat16 rounds once: 1 + 2^-8 + 2^-40 is above BF16's tie 1 + 2^-8, which
  // rounding to float32 first would land on (and then round to the even 1).
  Tensor above_tie = Tensor::from_vector(std::vector<double>{1.0 + 0x1p-8 + 0x1p-40}, {1});
  EXPECT_EQ(above_tie.to(DType::BFloat16).to_vector<bfloat16>()[0].bits, 0x3f81u);
  EXPECT_EQ(above_tie.to(DType::Float32).to(DType::BFloat16).to_vector<bfloat16>()[0].bits,
            0x3f80u);
}

// A conversion of a megabyte or more is split among the threads (convert_host, sliced as
// cpu_for_slices slices): every element, the slices' boundaries and an odd count's last
// one among them, as one thread converts it.
TEST(Tensor, LargeConversionsMatchElementByElement) {
  const std::int64_t n = 3 * 262144 + 7;  // 3 MB of float32
  const std::vector<float> x = Random(4).vector<float>(n, -70000.0, 70000.0);
  Tensor f32 = Tensor::from_vector(x, {n});
  for (DType reduced : {DType::BFloat16, DType::Float16}) {
    SCOPED_TRACE(to_string(reduced));
    const std::vector<float> back = f32.to(reduced).to(DType::Float32).to_vector<float>();
    EXPECT_EQ(bits_of(back), bits_of(rounded(x, reduced)));
  }
  const std::vector<double> wide = f32.to(DType::Float64).to_vector<double>();
  ASSERT_EQ(wide.size(), x.size());
  for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(wide[i], static_cast<double>(x[i])) << i;
}

TEST(Tensor, ToDtypeOfNothing) {
  EXPECT_FALSE(Tensor().to(DType::BFloat16).defined());
  Tensor empty = Tensor::empty({0, 3}, DType::Float32).to(DType::Float16);
  EXPECT_TRUE(empty.defined());
  EXPECT_EQ(empty.dtype(), DType::Float16);
  EXPECT_EQ(empty.shape(), (Shape{0, 3}));
  EXPECT_TRUE(
      throws_error([] { Tensor::zeros({2}, DType::Float32).to(static_cast<DType>(9)); },
                   {"Tensor::to", "argument 'dtype'", "Float16, Int32 or Int64", "value 9"}));
  EXPECT_TRUE(throws_error([] { Tensor::zeros({2}, DType::Int32).to(DType::Float32); },
                           {"Tensor::to", "'dtype'", "int32 tensor", "got float32"}));
  EXPECT_TRUE(throws_error([] { Tensor::zeros({2}, DType::Float32).to(DType::Int64); },
                           {"Tensor::to", "a floating dtype", "got int64"}));
  EXPECT_EQ(Tensor::from_vector<std::int64_t>({-5, 1LL << 40}, {2})
                .to(DType::Int64)
                .to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{-5, 1LL << 40}));
}

TEST(Tensor, ToDtypeOnTheGpu) {
  RECUR_REQUIRE_GPU();
  const std::vector<float> x = Random(4).vector<float>(1000, -70000.0, 70000.0);
  Tensor gpu = Tensor::from_vector(x, {1000}, Device::cuda(0));
  for (DType reduced : {DType::BFloat16, DType::Float16}) {
    Tensor r = gpu.to(reduced);
    EXPECT_TRUE(r.device().is_cuda());
    EXPECT_EQ(r.dtype(), reduced);
    Tensor back = r.to(DType::Float32);
    EXPECT_TRUE(back.device().is_cuda());
    EXPECT_EQ(bits_of(back.to_vector<float>()), bits_of(rounded(x, reduced)));
  }
}

TEST(Device, NamesAndEquality) {
  EXPECT_EQ(Device::cpu().str(), "cpu");
  EXPECT_EQ(Device::cuda(1).str(), "cuda:1");
  EXPECT_EQ(Device::cpu(), Device::cpu());
  EXPECT_NE(Device::cuda(0), Device::cuda(1));
  EXPECT_NE(Device::cpu(), Device::cuda(0));
}

TEST(Device, TheCudaBackendIsThereWhereBuilt) {
  // A CUDA build links its backend into every test binary; were it missing, every CUDA
  // test would skip as if there were no GPU.
  std::string why;
  detail::CudaBackend* backend = detail::cuda_backend(&why);
  if (!RECUR_HAS_CUDA) {
    EXPECT_EQ(backend, nullptr);
    EXPECT_NE(why.find("built without its CUDA backend"), std::string::npos) << why;
    EXPECT_TRUE(throws_error([] { Tensor::zeros({2}, DType::Float32, Device::cuda(0)); },
                             {"CUDA backend is unavailable", "built without"}));
    return;
  }
  EXPECT_NE(backend, nullptr) << why;
  EXPECT_TRUE(cuda_built());
}

TEST(Device, CudaCountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cuda_device_count());
  EXPECT_GE(n, 0);
  if (!cuda_built()) {
    EXPECT_EQ(n, 0);
  }
}

}  // namespace
}  // namespace recur::test
