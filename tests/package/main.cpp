// tests/package/main.cpp: uses the installed recur through find_package. Arguments: the
// expected version, then "cuda-loads" (the CUDA backend is installed and loads, so a GPU
// is refused only for want of a device) or "cuda-absent" (its library is missing: the CPU
// works and a GPU is refused saying why), or nothing.
#include <recur/recur.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  std::printf("recur %s, CUDA built: %s, CUDA devices: %d\n", recur::version(),
              recur::cuda_built() ? "yes" : "no", recur::cuda_device_count());
  if (argc > 1 && std::strcmp(argv[1], recur::version()) != 0) return 1;
  recur::RnnConfig c;
  c.cell = recur::CellKind::GruLinearBeforeReset;
  c.input_size = 3;
  c.hidden_size = 4;
  recur::Rnn rnn(c);
  recur::Tensor x = recur::Tensor::zeros({2, 1, 3}, recur::DType::Float32);
  recur::ForwardResult out = rnn.forward(x);
  if (out.y.shape() != recur::Shape{2, 1, 4}) return 1;
  // The reduced-precision types are exported: rounding 0.1f to bfloat16 and widening.
  const recur::Tensor b = out.y.to(recur::DType::BFloat16);
  if (b.dtype() != recur::DType::BFloat16 || recur::bfloat16(0.1f).bits != 0x3dcd ||
      static_cast<float>(recur::float16::from_bits(0x3c00)) != 1.0f) {
    return 1;
  }
  if (argc < 3 || recur::cuda_device_count() > 0) return 0;
  const std::string want = argv[2];
  try {
    recur::Tensor on_gpu = recur::Tensor::zeros({2}, recur::DType::Float32, recur::Device::cuda(0));
    std::printf("no error for a tensor on cuda:0 without a GPU\n");
    return 1;
  } catch (const recur::Error& e) {
    const std::string message = e.what();
    std::printf("cuda:0: %s\n", message.c_str());
    // Absent: the message says the backend could not be loaded, and why.
    const bool absent = message.find("CUDA backend is unavailable") != std::string::npos &&
                        message.find("could not be loaded") != std::string::npos;
    if (want == "cuda-absent") return absent ? 0 : 1;
    if (want == "cuda-loads") return absent ? 1 : 0;
  }
  return 1;
}
