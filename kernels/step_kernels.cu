// kernels/step_kernels.cu: the CUDA side of the shared gate functors.
//
// A step kernel gives one thread one (b, j) element and calls the very functor the CPU
// backend calls in its loop (kernels/dispatch.h picks it), so the arithmetic tested on
// the CPU is the arithmetic that runs here.
#include <cuda_runtime.h>

#include <string>

#include "launch.h"
#include "launch_check.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

// ---- CUDA kernels ----

// Arguments of up to kMaxUnitsPerLaunch units, passed by value (no upload).
template <class Args>
struct UnitArgs {
  Args unit[kMaxUnitsPerLaunch];
};

// blockIdx.y picks the unit, the x dimension covers its n elements.
template <class F, class Args>
__global__ void apply_units_kernel(F f, std::int64_t n, UnitArgs<Args> args) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) f(i, args.unit[blockIdx.y]);
}

// The lanes of a row-by-row functor (kernels/layer_norm.cuh): the threads of one block.
// sum() stores each thread's partials in shared memory and adds them in a fixed tree
// (blockDim.x is a power of two), so a sum's bits depend on the inputs alone.
constexpr int kRowThreads = 128;
constexpr int kMaxRowSums = 4;

// (Host-device members, empty on the host, so that the functors' host-device row() may
// call them; only device code instantiates it with these lanes.)
struct BlockLanes {
  double* scratch;  // [kMaxRowSums * kRowThreads]
  __host__ __device__ std::int64_t lane() const {
#if defined(__CUDA_ARCH__)
    return threadIdx.x;
#else
    return 0;
#endif
  }
  __host__ __device__ std::int64_t lanes() const {
#if defined(__CUDA_ARCH__)
    return blockDim.x;
#else
    return 1;
#endif
  }
  template <int N>
  __host__ __device__ void sum(double (&v)[N]) const {
    static_assert(N <= kMaxRowSums, "scratch holds kMaxRowSums sums");
#if defined(__CUDA_ARCH__)
    const unsigned t = threadIdx.x, n = blockDim.x;
    for (int q = 0; q < N; ++q) scratch[q * n + t] = v[q];
    __syncthreads();
    for (unsigned half = n / 2; half > 0; half /= 2) {
      if (t < half) {
        for (int q = 0; q < N; ++q) scratch[q * n + t] += scratch[q * n + t + half];
      }
      __syncthreads();
    }
    for (int q = 0; q < N; ++q) v[q] = scratch[q * n];
    __syncthreads();  // before the next sum overwrites the scratch
#else
    (void)v;
#endif
  }
};

// blockIdx.x is the row, blockIdx.y the unit; rows b >= active leave the block at once
// (the whole block: the lanes meet only inside a row).
template <class F, class Args>
__global__ void __launch_bounds__(kRowThreads) apply_rows_kernel(F f, UnitArgs<Args> args) {
  __shared__ double scratch[kMaxRowSums * kRowThreads];
  const Args& a = args.unit[blockIdx.y];
  const std::int64_t b = blockIdx.x;
  if (b >= a.active) return;
  BlockLanes lanes{scratch};
  f.row(b, a, lanes);
}

template <class F, class Args>
__global__ void apply_kernel(F f, std::int64_t n, Args args) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) f(i, args);
}

template <typename T>
__global__ void fill_kernel(T* dst, std::int64_t n, T value) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = value;
}

// ---- kernel launchers ----

unsigned blocks_for(std::int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

template <class Args, class Dispatch>
void launch_step(StepKind kind, const Args* units, int count, void* stream, Dispatch dispatch) {
  if (count == 0) return;
  const std::int64_t n = units[0].batch * units[0].hidden;
  if (n == 0) return;
  for (int first = 0; first < count; first += kMaxUnitsPerLaunch) {
    const int here = count - first < kMaxUnitsPerLaunch ? count - first : kMaxUnitsPerLaunch;
    UnitArgs<Args> args{};
    std::int64_t rows = 0;
    for (int u = 0; u < here; ++u) {
      args.unit[u] = units[first + u];
      rows = rows > args.unit[u].batch ? rows : args.unit[u].batch;
    }
    const auto s = static_cast<cudaStream_t>(stream);
    dispatch(kind, [&](auto functor) {
      if constexpr (is_per_row<decltype(functor)>) {
        if (rows == 0) return;
        const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(here));
        apply_rows_kernel<<<grid, kRowThreads, 0, s>>>(functor, args);
      } else {
        const dim3 grid(blocks_for(n), static_cast<unsigned>(here));
        apply_units_kernel<<<grid, kThreads, 0, s>>>(functor, n, args);
      }
    });
    check_launch("step kernel");
  }
}

}  // namespace

template <typename T>
void launch_step_forward(StepKind kind, const StepForward<T>* units, int count, void* stream) {
  launch_step(kind, units, count, stream,
              [](StepKind k, auto&& fn) { dispatch_forward<T>(k, fn); });
}

template <typename T>
void launch_step_backward(StepKind kind, const StepBackward<T>* units, int count, void* stream) {
  launch_step(kind, units, count, stream,
              [](StepKind k, auto&& fn) { dispatch_backward<T>(k, fn); });
}

template <typename T>
void launch_connection(ConnectionKind kind, const ConnectionArgs<T>& args, void* stream) {
  const std::int64_t n = args.rows * args.width;
  if (n == 0) return;
  dispatch_connection<T>(kind, [&](auto functor) {
    apply_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(functor, n,
                                                                                    args);
  });
  check_launch("connection kernel");
}

template <typename T>
void launch_gather(const GatherArgs<T>& args, void* stream) {
  const std::int64_t n = args.rows * args.width;
  if (n == 0) return;
  apply_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(GatherRows<T>{},
                                                                                  n, args);
  check_launch("gather kernel");
}

template <typename T>
void launch_transpose(const TransposeArgs<T>& args, void* stream) {
  const std::int64_t n = args.rows * args.cols;
  if (n == 0) return;
  apply_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(Transpose<T>{}, n,
                                                                                  args);
  check_launch("transpose kernel");
}

template <typename T>
void launch_fill(T* dst, std::int64_t n, T value, void* stream) {
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(dst, n, value);
  check_launch("fill_kernel");
}

bool kernels_runnable_on(int device) noexcept {
  // The device's compute capability against the oldest architecture this build carries
  // code for (nvcc's __CUDA_ARCH_LIST__; CMake's "90" embeds its PTX beside the SASS, which
  // newer GPUs compile). Asked without a context: cudaSetDevice or a kernel's attributes
  // would make one on every GPU of the machine, in every process that counts them (each
  // rank of a data-parallel run, hundreds of MiB a GPU).
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  constexpr int kArchitectures[] = {__CUDA_ARCH_LIST__};
  int oldest = kArchitectures[0];
  for (int a : kArchitectures) oldest = a < oldest ? a : oldest;
  return major * 100 + minor * 10 >= oldest;
}

template void launch_step_forward<float>(StepKind, const StepForward<float>*, int, void*);
template void launch_step_forward<double>(StepKind, const StepForward<double>*, int, void*);
template void launch_step_backward<float>(StepKind, const StepBackward<float>*, int, void*);
template void launch_step_backward<double>(StepKind, const StepBackward<double>*, int, void*);
template void launch_connection<float>(ConnectionKind, const ConnectionArgs<float>&, void*);
template void launch_connection<double>(ConnectionKind, const ConnectionArgs<double>&, void*);
template void launch_gather<float>(const GatherArgs<float>&, void*);
template void launch_gather<double>(const GatherArgs<double>&, void*);
template void launch_transpose<float>(const TransposeArgs<float>&, void*);
template void launch_transpose<double>(const TransposeArgs<double>&, void*);
template void launch_fill<float>(float*, std::int64_t, float, void*);
template void launch_fill<double>(double*, std::int64_t, double, void*);

}  // namespace recur::kernels
