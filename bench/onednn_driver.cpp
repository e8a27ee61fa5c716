// bench/onednn_driver.cpp: the CPU anchor, oneDNN's RNN primitives (f32).
//
// Built as a plugin (libbench_onednn.so beside recur_bench, loaded by onednn_loader.cpp),
// so that recur_bench itself does not depend on libdnnl (40 MB): the GPU bundle stays
// small, and a machine without oneDNN simply has no oneDNN rows.
//
// Each layer of a stack is its own primitive (L = 1, D = 1 or 2 with bidirectional_concat),
// so layer l+1 reads the concatenated [T, B, D*H] output of layer l, as in PyTorch and
// recur; a single multi-layer oneDNN primitive would instead run each direction through
// all layers on its own and combine them only at the end. Weights are created in ldigo
// and reordered once, outside the timing, into the layout each primitive chooses
// (format_tag::any; forward and backward choose separately). States start at zero.
//   inference      forward_inference primitives, layer by layer
//   training step  forward_training (keeps the workspace), then backward, last layer first
// Cells: lstm -> lstm_*, gru -> lbr_gru_* (linear-before-reset, 4 bias rows),
// gru_rbp -> gru_*, rnn_tanh / rnn_relu -> vanilla_rnn_* with eltwise_tanh / eltwise_relu.
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <random>
#include <unordered_map>

#include "result.h"

namespace bench {
namespace {

using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;
using Args = std::unordered_map<int, memory>;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

void fill_random(const memory& m, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  float* p = static_cast<float*>(m.get_data_handle());
  const std::size_t n = m.get_desc().get_size() / sizeof(float);
  for (std::size_t i = 0; i < n; ++i) p[i] = dist(gen);
}

memory zeros(const memory::desc& md) {
  memory m(md, cpu_engine());
  std::memset(m.get_data_handle(), 0, md.get_size());
  return m;
}

// A memory in `md`'s layout holding `user` (reordered when the layouts differ).
memory reordered(memory user, const memory::desc& md, dnnl::stream& s) {
  if (user.get_desc() == md) return user;
  memory m(md, cpu_engine());
  dnnl::reorder(user, m).execute(s, user, m);
  s.wait();
  return m;
}

// The memory descriptors of one layer; weights_* are format_tag::any.
struct LayerDescs {
  memory::desc src_layer, src_iter, src_iter_c, weights_layer, weights_iter, bias, dst_layer,
      dst_iter, dst_iter_c;
};

LayerDescs layer_descs(const Problem& p, int layer) {
  const memory::dim T = p.T, B = p.B, H = p.H, D = p.directions(), C = p.layer_input(layer);
  const memory::dim G = gate_count(p.cell), Gb = p.cell == Cell::Gru ? G + 1 : G;
  LayerDescs d;
  d.src_layer = memory::desc({T, B, C}, dt::f32, tag::tnc);
  d.src_iter = memory::desc({1, D, B, H}, dt::f32, tag::ldnc);
  d.weights_layer = memory::desc({1, D, C, G, H}, dt::f32, tag::any);
  d.weights_iter = memory::desc({1, D, H, G, H}, dt::f32, tag::any);
  d.bias = memory::desc({1, D, Gb, H}, dt::f32, tag::ldgo);
  d.dst_layer = memory::desc({T, B, D * H}, dt::f32, tag::tnc);
  d.dst_iter = memory::desc({1, D, B, H}, dt::f32, tag::ldnc);
  if (p.cell == Cell::Lstm) {
    d.src_iter_c = d.src_iter;
    d.dst_iter_c = d.dst_iter;
  }
  return d;
}

// The forward primitive descriptor for `prop`, and for training the backward one.
void make_pds(const Problem& p, const LayerDescs& d, bool training,
              dnnl::rnn_primitive_desc_base* fwd, dnnl::rnn_primitive_desc_base* bwd) {
  const prop_kind prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
  const prop_kind back = prop_kind::backward;
  const dnnl::rnn_direction dir = p.bidirectional ? dnnl::rnn_direction::bidirectional_concat
                                                  : dnnl::rnn_direction::unidirectional_left2right;
  const dnnl::engine& e = cpu_engine();
  switch (p.cell) {
    case Cell::Lstm: {
      dnnl::lstm_forward::primitive_desc f(
          {prop, dir, d.src_layer, d.src_iter, d.src_iter_c, d.weights_layer, d.weights_iter,
           d.bias, d.dst_layer, d.dst_iter, d.dst_iter_c},
          e);
      *fwd = f;
      if (training) {
        *bwd = dnnl::lstm_backward::primitive_desc({back,           dir,          d.src_layer,
                                                    d.src_iter,     d.src_iter_c, d.weights_layer,
                                                    d.weights_iter, d.bias,       d.dst_layer,
                                                    d.dst_iter,     d.dst_iter_c, d.src_layer,
                                                    d.src_iter,     d.src_iter_c, d.weights_layer,
                                                    d.weights_iter, d.bias,       d.dst_layer,
                                                    d.dst_iter,     d.dst_iter_c},
                                                   e, f);
      }
      return;
    }
    case Cell::Gru: {
      dnnl::lbr_gru_forward::primitive_desc f({prop, dir, d.src_layer, d.src_iter, d.weights_layer,
                                               d.weights_iter, d.bias, d.dst_layer, d.dst_iter},
                                              e);
      *fwd = f;
      if (training) {
        *bwd = dnnl::lbr_gru_backward::primitive_desc(
            {back, dir, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter, d.bias,
             d.dst_layer, d.dst_iter, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter,
             d.bias, d.dst_layer, d.dst_iter},
            e, f);
      }
      return;
    }
    case Cell::GruRbp: {
      dnnl::gru_forward::primitive_desc f({prop, dir, d.src_layer, d.src_iter, d.weights_layer,
                                           d.weights_iter, d.bias, d.dst_layer, d.dst_iter},
                                          e);
      *fwd = f;
      if (training) {
        *bwd = dnnl::gru_backward::primitive_desc(
            {back, dir, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter, d.bias,
             d.dst_layer, d.dst_iter, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter,
             d.bias, d.dst_layer, d.dst_iter},
            e, f);
      }
      return;
    }
    case Cell::RnnTanh:
    case Cell::RnnRelu: {
      const dnnl::algorithm act =
          p.cell == Cell::RnnTanh ? dnnl::algorithm::eltwise_tanh : dnnl::algorithm::eltwise_relu;
      dnnl::vanilla_rnn_forward::primitive_desc f(
          {prop, act, dir, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter, d.bias,
           d.dst_layer, d.dst_iter},
          e);
      *fwd = f;
      if (training) {
        *bwd = dnnl::vanilla_rnn_backward::primitive_desc(
            {back, act, dir, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter, d.bias,
             d.dst_layer, d.dst_iter, d.src_layer, d.src_iter, d.weights_layer, d.weights_iter,
             d.bias, d.dst_layer, d.dst_iter},
            e, f);
      }
      return;
    }
  }
}

struct Layer {
  dnnl::primitive fwd, bwd;
  Args fwd_args, bwd_args;
};

// A whole stack, ready to execute: primitives created, memories allocated and filled.
class Net {
 public:
  Net(const Problem& p, bool training) {
    dnnl::stream s(cpu_engine());
    const bool lstm = p.cell == Cell::Lstm;
    memory x(memory::desc({p.T, p.B, p.I}, dt::f32, tag::tnc), cpu_engine());
    fill_random(x, 11);
    memory input = x;
    for (int l = 0; l < p.layers; ++l) {
      const LayerDescs d = layer_descs(p, l);
      dnnl::rnn_primitive_desc_base fpd, bpd;
      make_pds(p, d, training, &fpd, &bpd);
      Layer layer;
      layer.fwd = dnnl::primitive(fpd);
      // Weights in PyTorch-like ldigo, reordered to what the primitive chose.
      const memory::dims wl = d.weights_layer.dims(), wi = d.weights_iter.dims();
      memory user_wl(memory::desc(wl, dt::f32, tag::ldigo), cpu_engine());
      memory user_wi(memory::desc(wi, dt::f32, tag::ldigo), cpu_engine());
      fill_random(user_wl, 100 + l);
      fill_random(user_wi, 200 + l);
      memory bias(d.bias, cpu_engine());
      fill_random(bias, 300 + l);
      Args& fa = layer.fwd_args;
      fa[DNNL_ARG_SRC_LAYER] = input;
      fa[DNNL_ARG_SRC_ITER] = zeros(fpd.src_iter_desc());
      fa[DNNL_ARG_WEIGHTS_LAYER] = reordered(user_wl, fpd.weights_layer_desc(), s);
      fa[DNNL_ARG_WEIGHTS_ITER] = reordered(user_wi, fpd.weights_iter_desc(), s);
      fa[DNNL_ARG_BIAS] = bias;
      fa[DNNL_ARG_DST_LAYER] = memory(fpd.dst_layer_desc(), cpu_engine());
      fa[DNNL_ARG_DST_ITER] = memory(fpd.dst_iter_desc(), cpu_engine());
      if (lstm) {
        fa[DNNL_ARG_SRC_ITER_C] = zeros(fpd.src_iter_c_desc());
        fa[DNNL_ARG_DST_ITER_C] = memory(fpd.dst_iter_c_desc(), cpu_engine());
      }
      if (training) {
        fa[DNNL_ARG_WORKSPACE] = memory(fpd.workspace_desc(), cpu_engine());
        layer.bwd = dnnl::primitive(bpd);
        Args& ba = layer.bwd_args;
        for (int arg : {DNNL_ARG_SRC_LAYER, DNNL_ARG_SRC_ITER, DNNL_ARG_BIAS, DNNL_ARG_DST_LAYER,
                        DNNL_ARG_DST_ITER, DNNL_ARG_WORKSPACE}) {
          ba[arg] = fa[arg];
        }
        ba[DNNL_ARG_WEIGHTS_LAYER] = reordered(user_wl, bpd.weights_layer_desc(), s);
        ba[DNNL_ARG_WEIGHTS_ITER] = reordered(user_wi, bpd.weights_iter_desc(), s);
        ba[DNNL_ARG_DIFF_SRC_LAYER] = memory(bpd.diff_src_layer_desc(), cpu_engine());
        ba[DNNL_ARG_DIFF_SRC_ITER] = memory(bpd.diff_src_iter_desc(), cpu_engine());
        ba[DNNL_ARG_DIFF_WEIGHTS_LAYER] = zeros(bpd.diff_weights_layer_desc());
        ba[DNNL_ARG_DIFF_WEIGHTS_ITER] = zeros(bpd.diff_weights_iter_desc());
        ba[DNNL_ARG_DIFF_BIAS] = zeros(bpd.diff_bias_desc());
        ba[DNNL_ARG_DIFF_DST_ITER] = zeros(bpd.diff_dst_iter_desc());
        if (lstm) {
          ba[DNNL_ARG_SRC_ITER_C] = fa[DNNL_ARG_SRC_ITER_C];
          ba[DNNL_ARG_DST_ITER_C] = fa[DNNL_ARG_DST_ITER_C];
          ba[DNNL_ARG_DIFF_SRC_ITER_C] = memory(bpd.diff_src_iter_c_desc(), cpu_engine());
          ba[DNNL_ARG_DIFF_DST_ITER_C] = zeros(bpd.diff_dst_iter_c_desc());
        }
      }
      input = fa[DNNL_ARG_DST_LAYER];
      layers_.push_back(std::move(layer));
    }
    if (training) {
      // dy for the last layer; each lower layer gets the diff_src_layer of the one above.
      memory dy(layers_.back().bwd_args[DNNL_ARG_DST_LAYER].get_desc(), cpu_engine());
      fill_random(dy, 12);
      layers_.back().bwd_args[DNNL_ARG_DIFF_DST_LAYER] = dy;
      for (int l = p.layers - 2; l >= 0; --l) {
        layers_[l].bwd_args[DNNL_ARG_DIFF_DST_LAYER] =
            layers_[l + 1].bwd_args[DNNL_ARG_DIFF_SRC_LAYER];
      }
    }
  }

  void forward(dnnl::stream& s) {
    for (Layer& l : layers_) l.fwd.execute(s, l.fwd_args);
  }
  void backward(dnnl::stream& s) {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) it->bwd.execute(s, it->bwd_args);
  }

 private:
  std::vector<Layer> layers_;
};

}  // namespace

// The plugin's entry points (C linkage, so the loader finds them by name with dlsym).
extern "C" void recur_bench_onednn_prepare(const Problem& p, Mode mode, Prepared& out) {
  out.result = note_result("onednn", "cpu", p, mode, "");
  // What one call needs, kept alive by the call.
  struct State {
    Net net;
    dnnl::stream stream;
  };
  try {
    const bool training = mode == Mode::Training;
    auto s = std::make_shared<State>(State{Net(p, training), dnnl::stream(cpu_engine())});
    out.call = host_timed([s, training] {
      s->net.forward(s->stream);
      if (training) s->net.backward(s->stream);
      s->stream.wait();
    });
  } catch (const std::exception& e) {
    out.result.note = std::string("error: ") + e.what();
  }
}

extern "C" void recur_bench_onednn_version(std::string& out) {
  const dnnl_version_t* v = dnnl_version();
  out = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
        " (" + v->hash + ")";
}

}  // namespace bench
