// src/cpu/onednn_matmul.cpp: PackedGemms on oneDNN's matmul and reorder primitives.
//
// Gemm is column-major; oneDNN is row-major. Column-major C = op(A) op(B) (m x n) is
// row-major C^T = op(B)^T op(A)^T, i.e. a matmul dst[n, m] = src[n, k] * weights[k, m]
// with src = B^T (row stride ldb), dst = C^T (row stride ldc) and weights = op(A)^T, whose
// element (l, i) is a[i + l*lda] (trans_a N: strides {lda, 1}) or a[l + i*lda] (T: {1, lda}).
// oneDNN 2.6's fast matmul (brgemm) takes packed weights only with dense src and dst; with
// a row stride it falls back to a reference loop, far slower (docs/benchmarks.md). So strided rows
// (a bidirectional layer's h, the reset-before-product GRU's gate blocks) go through dense scratch
// rows: a copy of n*k or n*m floats beside a GEMM of 2*n*m*k flops.
#include "onednn_matmul.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_steps.h"
#include "onednn_api.h"
#include "recur/error.h"

namespace recur::detail {

#if RECUR_HAS_ONEDNN_HEADER

namespace {

// Kernels (matmuls per layout, column count and beta) kept before the cache starts afresh: a
// packed batch has at most one per distinct batch width, so this bounds only callers that
// change shapes without end.
constexpr std::size_t kMaxKernels = 256;

void check(dnnl_status_t status, const char* what) {
  if (status != dnnl_success) {
    throw Error(std::string("recur: oneDNN's ") + what + " failed with status " +
                std::to_string(static_cast<int>(status)));
  }
}

dnnl_memory_desc_t row_major(const OnednnApi& api, std::int64_t rows, std::int64_t cols,
                             std::int64_t row_stride, std::int64_t col_stride) {
  dnnl_memory_desc_t md;
  const dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
  check(api.dnnl_memory_desc_init_by_strides(&md, 2, dims, dnnl_f32, strides), "memory desc");
  return md;
}

// rows x width floats between row strides.
void copy_rows(float* dst, std::int64_t ld_dst, const float* src, std::int64_t ld_src,
               std::int64_t rows, std::int64_t width) {
  for (std::int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * ld_dst, src + r * ld_src,
                static_cast<std::size_t>(width) * sizeof(float));
  }
}

// A matmul primitive dst[n, m] (+)= src[n, k] * weights, or null when oneDNN has none for
// these descriptors or only its reference implementation. `accumulate` is a sum post-op.
dnnl_primitive_t make_matmul(const OnednnApi& api, const dnnl_memory_desc_t& src,
                             const dnnl_memory_desc_t& weights, const dnnl_memory_desc_t& dst,
                             bool accumulate, dnnl_memory_desc_t* chosen_weights) {
  dnnl_matmul_desc_t desc;
  check(api.dnnl_matmul_desc_init(&desc, &src, &weights, nullptr, &dst), "matmul desc");
  dnnl_primitive_attr_t attr = nullptr;
  dnnl_post_ops_t post_ops = nullptr;
  if (accumulate) {
    check(api.dnnl_primitive_attr_create(&attr), "attr");
    check(api.dnnl_post_ops_create(&post_ops), "post ops");
    check(api.dnnl_post_ops_append_sum(post_ops, 1.0f), "sum post op");
    check(api.dnnl_primitive_attr_set_post_ops(attr, post_ops), "post ops");
  }
  dnnl_primitive_desc_t pd = nullptr;
  const dnnl_status_t made = api.dnnl_primitive_desc_create(&pd, &desc, attr, api.engine, nullptr);
  if (post_ops != nullptr) api.dnnl_post_ops_destroy(post_ops);
  if (attr != nullptr) api.dnnl_primitive_attr_destroy(attr);
  if (made != dnnl_success) return nullptr;
  const char* impl = nullptr;
  if (api.dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
      impl == nullptr || std::strncmp(impl, "ref", 3) == 0) {
    api.dnnl_primitive_desc_destroy(pd);
    return nullptr;
  }
  if (chosen_weights != nullptr) {
    *chosen_weights = *api.dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  }
  dnnl_primitive_t prim = nullptr;
  const dnnl_status_t created = api.dnnl_primitive_create(&prim, pd);
  api.dnnl_primitive_desc_destroy(pd);
  return created == dnnl_success ? prim : nullptr;
}

}  // namespace

struct PackedGemms::Impl {
  // One shape of held matrix: op(A) as stored (plain) and as the matmul wants it (packed),
  // with the reorder that packs it on the thread count it was made for (as Kernel).
  struct Layout {
    Trans trans;
    std::int64_t m, k, lda, widest_n;
    int threads;
    dnnl_memory_desc_t plain, packed;
    dnnl_primitive_t reorder = nullptr;
    dnnl_memory_t from = nullptr;  // plain view; its data handle is set per hold
  };
  // A packed copy; held while `a` is set.
  struct Slot {
    const Layout* layout;
    dnnl_memory_t packed = nullptr;
    const float* a = nullptr;
  };
  // A matmul for one layout, column count, beta and thread count, on dense rows; prim null
  // when oneDNN has none (run() then declines). A primitive runs with the threads OpenMP
  // gave when it was made, so a pass with fewer (the thread governor's) needs its own.
  struct Kernel {
    const Layout* layout;
    std::int64_t n;
    bool accumulate;
    int threads;
    dnnl_primitive_t prim = nullptr;
    dnnl_memory_t src = nullptr, dst = nullptr;
  };
  // What one thread's GEMMs change: a stream, matmuls with their memory objects (their
  // data handles are set per call), and scratch rows. Lane 0 serves ordinary calls, whose
  // matmuls use all of OpenMP's threads; lane 1 + i serves thread i of a row-parallel run
  // (CpuOps::run_step_list), whose matmuls are made inside that run and so use one thread.
  struct Lane {
    const OnednnApi& api;
    dnnl_stream_t stream = nullptr;
    std::vector<Kernel> kernels;
    std::vector<float> src_rows, dst_rows;  // dense copies of strided rows

    explicit Lane(const OnednnApi& loaded) : api(loaded) {
      check(api.dnnl_stream_create(&stream, api.engine, dnnl_stream_default_flags), "stream");
    }
    ~Lane() {
      clear_kernels();
      api.dnnl_stream_destroy(stream);
    }
    Lane(const Lane&) = delete;
    Lane& operator=(const Lane&) = delete;

    void clear_kernels() {
      for (Kernel& k : kernels) {
        if (k.prim != nullptr) api.dnnl_primitive_destroy(k.prim);
        if (k.src != nullptr) api.dnnl_memory_destroy(k.src);
        if (k.dst != nullptr) api.dnnl_memory_destroy(k.dst);
      }
      kernels.clear();
    }

    const Kernel& kernel(const Layout& l, std::int64_t n, bool accumulate) {
      const int threads = cpu_step_threads();
      for (const Kernel& k : kernels) {
        if (k.layout == &l && k.n == n && k.accumulate == accumulate && k.threads == threads) {
          return k;
        }
      }
      if (kernels.size() >= kMaxKernels) clear_kernels();
      Kernel k{&l, n, accumulate, threads};
      const dnnl_memory_desc_t src = row_major(api, n, l.k, l.k, 1);
      const dnnl_memory_desc_t dst = row_major(api, n, l.m, l.m, 1);
      k.prim = make_matmul(api, src, l.packed, dst, accumulate, nullptr);
      if (k.prim != nullptr) {
        check(api.dnnl_memory_create(&k.src, &src, api.engine, DNNL_MEMORY_NONE), "memory");
        check(api.dnnl_memory_create(&k.dst, &dst, api.engine, DNNL_MEMORY_NONE), "memory");
      }
      kernels.push_back(k);
      return kernels.back();
    }

    void execute(dnnl_primitive_t prim, int count, const dnnl_exec_arg_t* args) {
      check(api.dnnl_primitive_execute(prim, stream, count, args), "primitive execution");
      check(api.dnnl_stream_wait(stream), "stream wait");
    }
  };

  const OnednnApi& api;
  std::vector<std::unique_ptr<Layout>> layouts;
  std::vector<Slot> slots;
  std::vector<std::unique_ptr<Lane>> lanes;

  explicit Impl(const OnednnApi& loaded) : api(loaded) {
    lanes.push_back(std::make_unique<Lane>(api));
  }

  ~Impl() {
    lanes.clear();
    for (Slot& s : slots) api.dnnl_memory_destroy(s.packed);
    for (auto& l : layouts) {
      api.dnnl_primitive_destroy(l->reorder);
      api.dnnl_memory_destroy(l->from);
    }
  }

  // The layout for this shape, made on first use; null when oneDNN has no matmul for it.
  const Layout* layout(Trans trans, std::int64_t m, std::int64_t k, std::int64_t lda,
                       std::int64_t widest_n) {
    const int threads = cpu_step_threads();
    for (const auto& l : layouts) {
      if (l->trans == trans && l->m == m && l->k == k && l->lda == lda && l->widest_n == widest_n &&
          l->threads == threads) {
        return l->reorder != nullptr ? l.get() : nullptr;
      }
    }
    auto l = std::make_unique<Layout>();
    *l = Layout{trans, m, k, lda, widest_n, threads, {}, {}, nullptr, nullptr};
    l->plain = trans == Trans::N ? row_major(api, k, m, lda, 1) : row_major(api, k, m, 1, lda);
    dnnl_memory_desc_t any;
    const dnnl_dims_t dims = {k, m};
    check(api.dnnl_memory_desc_init_by_tag(&any, 2, dims, dnnl_f32, dnnl_format_tag_any), "any");
    dnnl_primitive_t probe = make_matmul(api, row_major(api, widest_n, k, k, 1), any,
                                         row_major(api, widest_n, m, m, 1), false, &l->packed);
    if (probe != nullptr) {
      api.dnnl_primitive_destroy(probe);
      dnnl_primitive_desc_t rpd = nullptr;
      if (api.dnnl_reorder_primitive_desc_create(&rpd, &l->plain, api.engine, &l->packed,
                                                 api.engine, nullptr) == dnnl_success) {
        if (api.dnnl_primitive_create(&l->reorder, rpd) != dnnl_success) l->reorder = nullptr;
        api.dnnl_primitive_desc_destroy(rpd);
      }
      if (l->reorder != nullptr) {
        check(api.dnnl_memory_create(&l->from, &l->plain, api.engine, DNNL_MEMORY_NONE), "memory");
      }
    }
    layouts.push_back(std::move(l));
    return layouts.back()->reorder != nullptr ? layouts.back().get() : nullptr;
  }
};

bool PackedGemms::available() { return onednn_api() != nullptr; }

PackedGemms::PackedGemms() {
  const OnednnApi* api = onednn_api();
  if (api == nullptr) throw Error("recur: PackedGemms needs oneDNN's C API, which is not loaded");
  impl_ = std::make_unique<Impl>(*api);
}

PackedGemms::~PackedGemms() = default;

bool PackedGemms::hold(const float* a, Trans trans_a, std::int64_t m, std::int64_t k,
                       std::int64_t lda, std::int64_t widest_n) {
  Impl& im = *impl_;
  if (m <= 0 || k <= 0 || widest_n <= 0) return false;
  const Impl::Layout* l = im.layout(trans_a, m, k, lda, widest_n);
  if (l == nullptr) return false;
  auto free_slot = std::find_if(im.slots.begin(), im.slots.end(), [&](const Impl::Slot& s) {
    return s.layout == l && s.a == nullptr;
  });
  if (free_slot == im.slots.end()) {
    Impl::Slot s{l};
    check(im.api.dnnl_memory_create(&s.packed, &l->packed, im.api.engine, DNNL_MEMORY_ALLOCATE),
          "memory");
    im.slots.push_back(s);
    free_slot = im.slots.end() - 1;
  }
  check(im.api.dnnl_memory_set_data_handle(l->from, const_cast<float*>(a)), "data handle");
  const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, l->from}, {DNNL_ARG_TO, free_slot->packed}};
  im.lanes[0]->execute(l->reorder, 2, args);
  free_slot->a = a;
  return true;
}

void PackedGemms::release() {
  for (Impl::Slot& s : impl_->slots) s.a = nullptr;
}

void PackedGemms::prepare_lanes(int count) {
  Impl& im = *impl_;
  while (static_cast<int>(im.lanes.size()) < count + 1) {
    im.lanes.push_back(std::make_unique<Impl::Lane>(im.api));
  }
}

bool PackedGemms::holds(const Gemm<float>& g) const {
  for (const Impl::Slot& s : impl_->slots) {
    const Impl::Layout& l = *s.layout;
    if (s.a == g.a && l.trans == g.trans_a && l.m == g.m && l.k == g.k && l.lda == g.lda) {
      return true;
    }
  }
  return false;
}

bool PackedGemms::run(const Gemm<float>& g, int lane) {
  Impl& im = *impl_;
  if (g.alpha != 1.0f || (g.beta != 0.0f && g.beta != 1.0f) || g.trans_b != Trans::N) return false;
  Impl::Lane& ln = *im.lanes.at(static_cast<std::size_t>(lane));
  for (const Impl::Slot& s : im.slots) {
    const Impl::Layout& l = *s.layout;
    if (s.a != g.a || l.trans != g.trans_a || l.m != g.m || l.k != g.k || l.lda != g.lda) continue;
    const bool accumulate = g.beta != 0.0f;
    const Impl::Kernel& k = ln.kernel(l, g.n, accumulate);
    if (k.prim == nullptr) return false;
    const float* src = g.b;
    if (g.ldb != g.k) {
      ln.src_rows.resize(static_cast<std::size_t>(g.n * g.k));
      copy_rows(ln.src_rows.data(), g.k, g.b, g.ldb, g.n, g.k);
      src = ln.src_rows.data();
    }
    float* dst = g.c;
    if (g.ldc != g.m) {
      ln.dst_rows.resize(static_cast<std::size_t>(g.n * g.m));
      if (accumulate) copy_rows(ln.dst_rows.data(), g.m, g.c, g.ldc, g.n, g.m);
      dst = ln.dst_rows.data();
    }
    check(im.api.dnnl_memory_set_data_handle(k.src, const_cast<float*>(src)), "data handle");
    check(im.api.dnnl_memory_set_data_handle(k.dst, dst), "data handle");
    const dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, k.src}, {DNNL_ARG_WEIGHTS, s.packed}, {DNNL_ARG_DST, k.dst}};
    ln.execute(k.prim, 3, args);
    if (dst != g.c) copy_rows(g.c, g.ldc, dst, g.m, g.n, g.m);
    return true;
  }
  return false;
}

#else  // built without oneDNN's header: nothing can be packed

struct PackedGemms::Impl {};
bool PackedGemms::available() { return false; }
PackedGemms::PackedGemms() {
  throw Error("recur: PackedGemms needs oneDNN's C API; this build did not find dnnl.h");
}
PackedGemms::~PackedGemms() = default;
bool PackedGemms::hold(const float*, Trans, std::int64_t, std::int64_t, std::int64_t,
                       std::int64_t) {
  return false;
}
void PackedGemms::release() {}
void PackedGemms::prepare_lanes(int) {}
bool PackedGemms::holds(const Gemm<float>&) const { return false; }
bool PackedGemms::run(const Gemm<float>&, int) { return false; }

#endif

}  // namespace recur::detail
