// bench/cudnn_driver.cpp: the GPU anchor, cuDNN's RNN API (cuDNN 8/9 "v8" calls).
//
// cuDNN is loaded at run time (dlopen), not linked: a GPU machine without cuDNN still
// runs the rest of the benchmark, and this anchor reports an error row instead. The
// library is looked for under $RECUR_CUDNN_LIBRARY, the loader's path, and the pip
// wheel's folder (nvidia/cudnn/lib) of the usual Python installs.
//
// Setup (outside the timing): one RNN descriptor (CUDNN_RNN_ALGO_STANDARD) at one of four
// precisions (Precision below): FP32 data with FP32 math, CUDNN_FMA_MATH, as recur's GEMMs
// ("cudnn"; CUDNN_DEFAULT_MATH is not FP32 on Hopper, where it ran the LSTM T=50 B=64
// H=1024 training step in 2.6 ms, and in 6.4 ms with NVIDIA_TF32_OVERRIDE=0), FP32 data
// with CUDNN_DEFAULT_MATH, which permits TF32 tensor ops ("cudnn_tf32", what PyTorch sets
// under allow_tf32; CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION would round FP32 data to FP16),
// or BF16 / FP16 data, weights and states with tensor ops and FP32 math precision
// ("cudnn_bf16", from cuDNN 9.13, the first with BF16 RNNs; "cudnn_fp16"); double bias as
// PyTorch; linear input; L layers, uni- or bidirectional, which cuDNN concatenates between
// layers as PyTorch does), packed sequence-major data [T, B, C] with every length T,
// random weights, zero initial states.
//   inference      cudnnRNNForward(CUDNN_FWD_MODE_INFERENCE)
//   training step  cudnnRNNForward(TRAINING) + cudnnRNNBackwardData_v8 +
//                  cudnnRNNBackwardWeights_v8(CUDNN_WGRAD_MODE_ADD)
// Every cuDNN and CUDA status is checked; a failure becomes the row's note.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <dlfcn.h>
#include <glob.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "recur/half.h"
#include "result.h"

namespace bench {
namespace {

// One precision's cuDNN settings: the type of the data, weights and states, the math type
// and the math precision (cudnnSetRNNDescriptor_v8's dataType, mathType, mathPrec).
struct Precision {
  cudnnDataType_t data, math_prec;
  cudnnMathType_t math;
  std::size_t bytes;  // of one data element
};

Precision precision_for(recur::Math math) {
  switch (math) {
    case recur::Math::Fp32: return {CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH, 4};
    case recur::Math::Tf32: return {CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_DEFAULT_MATH, 4};
    case recur::Math::Bf16: return {CUDNN_DATA_BFLOAT16, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, 2};
    case recur::Math::Fp16: return {CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, 2};
  }
  throw std::runtime_error("unknown math");
}

// `value` encoded in `type` (FLOAT, BFLOAT16 or HALF) at `out`.
void encode(float value, cudnnDataType_t type, unsigned char* out) {
  if (type == CUDNN_DATA_BFLOAT16) {
    const std::uint16_t bits = recur::bfloat16(value).bits;
    std::memcpy(out, &bits, sizeof bits);
  } else if (type == CUDNN_DATA_HALF) {
    const std::uint16_t bits = recur::float16(value).bits;
    std::memcpy(out, &bits, sizeof bits);
  } else {
    std::memcpy(out, &value, sizeof value);
  }
}

// The cuDNN entry points used here; each becomes a member of CudnnApi.
// clang-format off
#define RECUR_CUDNN_FUNCTIONS(X) \
  X(cudnnGetVersion) \
  X(cudnnGetErrorString) \
  X(cudnnCreate) \
  X(cudnnDestroy) \
  X(cudnnSetStream) \
  X(cudnnCreateTensorDescriptor) \
  X(cudnnDestroyTensorDescriptor) \
  X(cudnnSetTensorNdDescriptor) \
  X(cudnnCreateDropoutDescriptor) \
  X(cudnnDestroyDropoutDescriptor) \
  X(cudnnDropoutGetStatesSize) \
  X(cudnnSetDropoutDescriptor) \
  X(cudnnCreateRNNDescriptor) \
  X(cudnnDestroyRNNDescriptor) \
  X(cudnnSetRNNDescriptor_v8) \
  X(cudnnCreateRNNDataDescriptor) \
  X(cudnnDestroyRNNDataDescriptor) \
  X(cudnnSetRNNDataDescriptor) \
  X(cudnnGetRNNWeightSpaceSize) \
  X(cudnnGetRNNTempSpaceSizes) \
  X(cudnnRNNForward) \
  X(cudnnRNNBackwardData_v8) \
  X(cudnnRNNBackwardWeights_v8)
// clang-format on

struct CudnnApi {
#define RECUR_CUDNN_MEMBER(name) decltype(&::name) name = nullptr;
  RECUR_CUDNN_FUNCTIONS(RECUR_CUDNN_MEMBER)
#undef RECUR_CUDNN_MEMBER
  std::string error;  // why loading failed; empty when every entry point was found
};

std::vector<std::string> candidate_paths() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("RECUR_CUDNN_LIBRARY")) out.push_back(env);
  out.push_back("libcudnn.so.9");
  out.push_back("libcudnn.so");
  for (const char* pattern :
       {"/usr/local/lib/python3*/dist-packages/nvidia/cudnn/lib/libcudnn.so.9",
        "/usr/local/lib/python3*/site-packages/nvidia/cudnn/lib/libcudnn.so.9",
        "/usr/lib/python3*/dist-packages/nvidia/cudnn/lib/libcudnn.so.9",
        "/opt/conda/lib/python3*/site-packages/nvidia/cudnn/lib/libcudnn.so.9",
        "/root/.local/lib/python3*/site-packages/nvidia/cudnn/lib/libcudnn.so.9"}) {
    glob_t g{};
    if (glob(pattern, 0, nullptr, &g) == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
    }
    globfree(&g);
  }
  return out;
}

const CudnnApi& api() {
  static const CudnnApi loaded = [] {
    CudnnApi a;
    void* lib = nullptr;
    std::string tried;
    for (const std::string& path : candidate_paths()) {
      lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
      if (lib != nullptr) break;
      tried += (tried.empty() ? "" : ", ") + path;
    }
    if (lib == nullptr) {
      a.error = "libcudnn not found (tried " + tried + "; set RECUR_CUDNN_LIBRARY)";
      return a;
    }
#define RECUR_CUDNN_LOAD(name)                                     \
  a.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name)); \
  if (a.name == nullptr && a.error.empty()) a.error = "libcudnn lacks " #name;
    RECUR_CUDNN_FUNCTIONS(RECUR_CUDNN_LOAD)
#undef RECUR_CUDNN_LOAD
    return a;  // the library stays loaded for the process's lifetime
  }();
  return loaded;
}

#define CUDNN_CHECK(call)                                                                       \
  do {                                                                                          \
    const cudnnStatus_t status_ = (call);                                                       \
    if (status_ != CUDNN_STATUS_SUCCESS) {                                                      \
      throw std::runtime_error(std::string(#call) + ": " + api().cudnnGetErrorString(status_)); \
    }                                                                                           \
  } while (0)

#define CUDA_CHECK(call)                                                                 \
  do {                                                                                   \
    const cudaError_t status_ = (call);                                                  \
    if (status_ != cudaSuccess) {                                                        \
      throw std::runtime_error(std::string(#call) + ": " + cudaGetErrorString(status_)); \
    }                                                                                    \
  } while (0)

// Device allocations freed on every path.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  ~DeviceMemory() {
    for (void* p : owned_) cudaFree(p);
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  void* zeros(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    owned_.push_back(p);
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
  }
  // `count` random values in [-0.1, 0.1] of precision `pr`'s data type.
  void* random_values(std::size_t count, const Precision& pr, std::uint32_t seed) {
    void* p = zeros(count * pr.bytes);
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
    std::vector<unsigned char> host(count * pr.bytes);
    for (std::size_t i = 0; i < count; ++i) encode(dist(gen), pr.data, &host[i * pr.bytes]);
    CUDA_CHECK(cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice));
    return p;
  }

 private:
  std::vector<void*> owned_;
};

// Everything one problem needs; destroyed in reverse order of creation.
class Session {
 public:
  Session(const Problem& p, const Precision& pr) {
    try {
      set_up(p, pr);
    } catch (...) {
      release();  // the destructor does not run for a constructor that throws
      throw;
    }
  }

  ~Session() { release(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void forward(bool training) {
    CUDNN_CHECK(api().cudnnRNNForward(
        handle_, rnn_, training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE, seq_lengths_,
        x_desc_, x_, y_desc_, y_, h_desc_, hx_, hy_, h_desc_, cx_, cy_, weight_bytes_, weights_,
        work_bytes_, work_, training ? reserve_bytes_ : 0, training ? reserve_ : nullptr));
  }
  void backward() {
    CUDNN_CHECK(api().cudnnRNNBackwardData_v8(handle_, rnn_, seq_lengths_, y_desc_, y_, dy_,
                                              x_desc_, dx_, h_desc_, hx_, dhy_, dhx_, h_desc_, cx_,
                                              dcy_, dcx_, weight_bytes_, weights_, work_bytes_,
                                              work_, reserve_bytes_, reserve_));
    CUDNN_CHECK(api().cudnnRNNBackwardWeights_v8(
        handle_, rnn_, CUDNN_WGRAD_MODE_ADD, seq_lengths_, x_desc_, x_, h_desc_, hx_, y_desc_, y_,
        weight_bytes_, dweights_, work_bytes_, work_, reserve_bytes_, reserve_));
  }
  cudaStream_t stream() const { return stream_; }

 private:
  void set_up(const Problem& p, const Precision& pr) {
    const CudnnApi& a = api();
    CUDA_CHECK(cudaStreamCreate(&stream_));
    CUDNN_CHECK(a.cudnnCreate(&handle_));
    CUDNN_CHECK(a.cudnnSetStream(handle_, stream_));

    size_t states = 0;
    CUDNN_CHECK(a.cudnnCreateDropoutDescriptor(&dropout_));
    CUDNN_CHECK(a.cudnnDropoutGetStatesSize(handle_, &states));
    CUDNN_CHECK(
        a.cudnnSetDropoutDescriptor(dropout_, handle_, 0.0f, mem_.zeros(states), states, 0));

    cudnnRNNMode_t mode = CUDNN_LSTM;
    switch (p.cell) {
      case Cell::RnnTanh: mode = CUDNN_RNN_TANH; break;
      case Cell::RnnRelu: mode = CUDNN_RNN_RELU; break;
      case Cell::Lstm: mode = CUDNN_LSTM; break;
      case Cell::Gru: mode = CUDNN_GRU; break;
      case Cell::GruRbp: throw std::runtime_error("cuDNN has no reset-before-product GRU");
    }
    const int T = int(p.T), B = int(p.B), I = int(p.I), H = int(p.H), D = p.directions();
    CUDNN_CHECK(a.cudnnCreateRNNDescriptor(&rnn_));
    CUDNN_CHECK(a.cudnnSetRNNDescriptor_v8(
        rnn_, CUDNN_RNN_ALGO_STANDARD, mode, CUDNN_RNN_DOUBLE_BIAS,
        p.bidirectional ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, pr.data,
        pr.math_prec, pr.math, I, H, H, p.layers, dropout_, CUDNN_RNN_PADDED_IO_DISABLED));

    const std::vector<int> lengths(static_cast<std::size_t>(B), T);
    CUDNN_CHECK(a.cudnnCreateRNNDataDescriptor(&x_desc_));
    CUDNN_CHECK(a.cudnnSetRNNDataDescriptor(x_desc_, pr.data,
                                            CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED, T, B, I,
                                            lengths.data(), nullptr));
    CUDNN_CHECK(a.cudnnCreateRNNDataDescriptor(&y_desc_));
    CUDNN_CHECK(a.cudnnSetRNNDataDescriptor(y_desc_, pr.data,
                                            CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED, T, B, D * H,
                                            lengths.data(), nullptr));
    const int dims[3] = {p.layers * D, B, H}, strides[3] = {B * H, H, 1};
    CUDNN_CHECK(a.cudnnCreateTensorDescriptor(&h_desc_));
    CUDNN_CHECK(a.cudnnSetTensorNdDescriptor(h_desc_, pr.data, 3, dims, strides));

    seq_lengths_ = static_cast<int*>(mem_.zeros(lengths.size() * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(seq_lengths_, lengths.data(), lengths.size() * sizeof(int),
                          cudaMemcpyHostToDevice));
    CUDNN_CHECK(a.cudnnGetRNNWeightSpaceSize(handle_, rnn_, &weight_bytes_));
    weights_ = mem_.random_values(weight_bytes_ / pr.bytes, pr, 1);
    dweights_ = mem_.zeros(weight_bytes_);
    CUDNN_CHECK(a.cudnnGetRNNTempSpaceSizes(handle_, rnn_, CUDNN_FWD_MODE_TRAINING, x_desc_,
                                            &work_bytes_, &reserve_bytes_));
    std::size_t inference_work = 0, inference_reserve = 0;
    CUDNN_CHECK(a.cudnnGetRNNTempSpaceSizes(handle_, rnn_, CUDNN_FWD_MODE_INFERENCE, x_desc_,
                                            &inference_work, &inference_reserve));
    work_bytes_ = std::max(work_bytes_, inference_work);
    work_ = mem_.zeros(work_bytes_);
    reserve_ = mem_.zeros(reserve_bytes_);

    const std::size_t x_count = std::size_t(T) * B * I, y_count = std::size_t(T) * B * D * H;
    const std::size_t h_bytes = std::size_t(p.layers) * D * B * H * pr.bytes;
    x_ = mem_.random_values(x_count, pr, 2);
    dy_ = mem_.random_values(y_count, pr, 3);
    y_ = mem_.zeros(y_count * pr.bytes);
    dx_ = mem_.zeros(x_count * pr.bytes);
    for (void** state : {&hx_, &cx_, &hy_, &cy_, &dhy_, &dcy_, &dhx_, &dcx_}) {
      *state = mem_.zeros(h_bytes);
    }
  }

  void release() noexcept {
    const CudnnApi& a = api();
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    if (h_desc_ != nullptr) a.cudnnDestroyTensorDescriptor(h_desc_);
    if (y_desc_ != nullptr) a.cudnnDestroyRNNDataDescriptor(y_desc_);
    if (x_desc_ != nullptr) a.cudnnDestroyRNNDataDescriptor(x_desc_);
    if (rnn_ != nullptr) a.cudnnDestroyRNNDescriptor(rnn_);
    if (dropout_ != nullptr) a.cudnnDestroyDropoutDescriptor(dropout_);
    if (handle_ != nullptr) a.cudnnDestroy(handle_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    h_desc_ = nullptr;
    y_desc_ = x_desc_ = nullptr;
    rnn_ = nullptr;
    dropout_ = nullptr;
    handle_ = nullptr;
    stream_ = nullptr;
  }

  DeviceMemory mem_;  // declared first: freed last
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t handle_ = nullptr;
  cudnnDropoutDescriptor_t dropout_ = nullptr;
  cudnnRNNDescriptor_t rnn_ = nullptr;
  cudnnRNNDataDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
  cudnnTensorDescriptor_t h_desc_ = nullptr;
  int* seq_lengths_ = nullptr;
  std::size_t weight_bytes_ = 0, work_bytes_ = 0, reserve_bytes_ = 0;
  void *weights_ = nullptr, *dweights_ = nullptr, *work_ = nullptr, *reserve_ = nullptr;
  void *x_ = nullptr, *y_ = nullptr, *dx_ = nullptr, *dy_ = nullptr;
  void *hx_ = nullptr, *cx_ = nullptr, *hy_ = nullptr, *cy_ = nullptr;
  void *dhy_ = nullptr, *dcy_ = nullptr, *dhx_ = nullptr, *dcx_ = nullptr;
};

}  // namespace

Prepared prepare_cudnn(const Problem& p, recur::Math math, Mode mode) {
  Prepared out;
  out.result = note_result("cudnn", math, "gpu", p, mode, "");
  try {
    if (!api().error.empty()) throw std::runtime_error(api().error);
    const std::size_t version = api().cudnnGetVersion();
    if (math == recur::Math::Bf16 && version < 91300) {
      throw std::runtime_error("cuDNN " + std::to_string(version) +
                               " has no BF16 RNNs (they came with 9.13)");
    }
    Precision pr = precision_for(math);
    std::shared_ptr<Session> session;
    try {
      session = std::make_shared<Session>(p, pr);
    } catch (const std::exception& e) {
      // BF16 with CUDNN_TENSOR_OP_MATH is not documented either way; PyTorch asks BF16 RNNs
      // for CUDNN_DEFAULT_MATH. Try that once, and say so in the row.
      if (math != recur::Math::Bf16) throw;
      pr.math = CUDNN_DEFAULT_MATH;
      session = std::make_shared<Session>(p, pr);
      out.result.note = std::string("CUDNN_DEFAULT_MATH (CUDNN_TENSOR_OP_MATH: ") + e.what() + ")";
    }
    const bool training = mode == Mode::Training;
    out.call = cuda_timed(
        [session, training] {
          session->forward(training);
          if (training) session->backward();
        },
        session->stream());
  } catch (const std::exception& e) {
    out.result.note = std::string("error: ") + e.what();
  }
  return out;
}

std::string cudnn_version() {
  if (!api().error.empty()) return "unavailable: " + api().error;
  const std::size_t v = api().cudnnGetVersion();
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

}  // namespace bench
