// tests/test_tensor.cpp: Tensor, TensorView, devices, version.
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
