// src/grad_internal.h: what the optimizers (src/optim.cpp) need from a GradNorm
// (src/clip.cpp): its finite flag, in the memory of its device; and the spans' check that
// clipping and loss scaling share.
#pragma once

#include <vector>

#include "recur/clip.h"

namespace recur::detail {

struct GradNormAccess {
  // The finite flag of `norm`'s last result (an int, 1 = finite), in host memory for a
  // CPU result and in device memory for a GPU one. On a GPU, first makes `stream` wait
  // (on the device, not the host) until that result has been computed.
  static const int* finite_flag(const GradNorm& norm, void* stream);
  // After the kernel that reads finite_flag(norm, stream) is queued on `stream`: the
  // norm's next computation waits for it before it overwrites the flag (GPU; nothing on
  // the CPU). `norm` is logically unchanged.
  static void flag_read(const GradNorm& norm, void* stream);
  // global_norm (max_norm < 0) and clip_grad_norm, once the arguments are validated.
  static void compute(const char* where, const std::vector<TensorView>& spans, double max_norm,
                      GradNorm& result, void* stream);
};

// Throws recur::Error from `where`, naming `argument`[i], when spans[i] shares memory with an
// earlier span: a span given twice would be counted (and scaled) twice.
void check_disjoint_spans(const char* where, const char* argument,
                          const std::vector<TensorView>& spans);

}  // namespace recur::detail
