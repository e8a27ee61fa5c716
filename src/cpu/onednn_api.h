// src/cpu/onednn_api.h: the parts of oneDNN the CPU backend calls, loaded at run time from
// libdnnl.so.2, so recur needs no oneDNN to build or run. dnnl_sgemm is looked up by its
// documented signature; the matmul and reorder primitives (onednn_matmul.h) need oneDNN's
// C header for their types, so they exist only in builds that found dnnl.h.
#pragma once

#include <cstdint>

#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl.h>
#define RECUR_HAS_ONEDNN_HEADER 1
#else
#define RECUR_HAS_ONEDNN_HEADER 0
#endif

namespace recur::detail {

// dnnl_sgemm: row-major C = alpha op(A) op(B) + beta C with 64-bit sizes; 0 on success.
using OnednnSgemm = int (*)(char, char, std::int64_t, std::int64_t, std::int64_t, float,
                            const float*, std::int64_t, const float*, std::int64_t, float, float*,
                            std::int64_t);

// dnnl_sgemm from libdnnl.so.2, or null when the library is missing or the environment
// says RECUR_CPU_GEMM=openblas. Looked up once.
OnednnSgemm onednn_sgemm();

#if RECUR_HAS_ONEDNN_HEADER

// Every C function onednn_api() resolves, by name (an X-macro: clang-format re-indents its
// continuation lines on every run, so it is left as written).
// clang-format off
#define RECUR_ONEDNN_FUNCTIONS(X) \
  X(dnnl_engine_create) \
  X(dnnl_stream_create) \
  X(dnnl_stream_wait) \
  X(dnnl_stream_destroy) \
  X(dnnl_memory_desc_init_by_strides) \
  X(dnnl_memory_desc_init_by_tag) \
  X(dnnl_memory_create) \
  X(dnnl_memory_set_data_handle) \
  X(dnnl_memory_destroy) \
  X(dnnl_matmul_desc_init) \
  X(dnnl_reorder_primitive_desc_create) \
  X(dnnl_primitive_desc_create) \
  X(dnnl_primitive_desc_query) \
  X(dnnl_primitive_desc_query_md) \
  X(dnnl_primitive_desc_destroy) \
  X(dnnl_primitive_create) \
  X(dnnl_primitive_execute) \
  X(dnnl_primitive_destroy) \
  X(dnnl_primitive_attr_create) \
  X(dnnl_primitive_attr_set_post_ops) \
  X(dnnl_primitive_attr_destroy) \
  X(dnnl_post_ops_create) \
  X(dnnl_post_ops_append_sum) \
  X(dnnl_post_ops_destroy)
// clang-format on

// The resolved functions (each member named and typed as in dnnl.h) and the CPU engine.
struct OnednnApi {
#define RECUR_ONEDNN_MEMBER(name) decltype(&::name) name = nullptr;
  RECUR_ONEDNN_FUNCTIONS(RECUR_ONEDNN_MEMBER)
#undef RECUR_ONEDNN_MEMBER
  dnnl_engine_t engine = nullptr;
};

// The API, or null when onednn_sgemm() is (oneDNN is not used at all then), when the
// loaded library lacks one of the functions, or when its CPU engine cannot be made.
const OnednnApi* onednn_api();

#endif

}  // namespace recur::detail
