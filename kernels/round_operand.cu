// kernels/round_operand.cu: the CUDA side of kernels/round_operand.cuh: one element per
// thread, calling the functor the CPU reference calls.
#include <cuda_runtime.h>

#include <string>

#include "launch.h"
#include "launch_check.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

template <typename Out>
__global__ void __launch_bounds__(kThreads)
    round_operand_kernel(std::int64_t n, RoundOperandArgs<Out> args) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n) RoundOperand<Out>{}(i % args.rows, i / args.rows, args);
}

}  // namespace

template <typename Out>
void launch_round_operand(const RoundOperandArgs<Out>& args, void* stream) {
  const std::int64_t n = args.rows * args.cols;
  if (n == 0) return;
  const auto blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  round_operand_kernel<Out><<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(n, args);
  check_launch("round_operand_kernel");
}

template void launch_round_operand<float>(const RoundOperandArgs<float>&, void*);
template void launch_round_operand<std::uint16_t>(const RoundOperandArgs<std::uint16_t>&, void*);

}  // namespace recur::kernels
