// bench/onednn_driver.cpp: the CPU anchor, oneDNN's RNN primitives, in f32 ("onednn") and
// bf16 ("onednn_bf16", beside recur's Math::Bf16).
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
// One code path for both precisions, the data types a parameter (Types): bf16 has bf16
// layers, hidden states and weights, f32 bias and LSTM cell state, as oneDNN's bf16 RNN
// configuration asks; its backward pass takes and gives every diff in f32 (oneDNN 2.6
// refuses bf16 diff_src/diff_dst: "could not create a descriptor for an LSTM backward
// propagation primitive"). f16 is passed on as f16 throughout, for oneDNN to accept or
// refuse in the row's note. Inputs are made in f32 and reordered (rounded) into each
// memory's type outside the timing.
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
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

// The data types of one precision's memories.
struct Types {
  dt data;          // src/dst layer and iter (hidden states), weights
  dt bias;          // bias
  dt cell;          // LSTM cell state: src_iter_c, dst_iter_c and their diffs
  dt diff_data;     // diff_src/diff_dst layer and iter
  dt diff_weights;  // diff_weights_layer/iter and diff_bias
};

Types types_for(recur::Math math) {
  switch (math) {
    case recur::Math::Fp32: return {dt::f32, dt::f32, dt::f32, dt::f32, dt::f32};
    case recur::Math::Bf16: return {dt::bf16, dt::f32, dt::f32, dt::f32, dt::f32};
    case recur::Math::Fp16: return {dt::f16, dt::f16, dt::f16, dt::f16, dt::f16};
    case recur::Math::Tf32: break;
  }
  throw std::runtime_error(std::string("oneDNN's CPU RNN has no ") + math_name(math) +
                           " configuration here");
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

// A memory in `md`'s layout and type holding `user` (reordered when they differ).
memory reordered(memory user, const memory::desc& md, dnnl::stream& s) {
  if (user.get_desc() == md) return user;
  memory m(md, cpu_engine());
  dnnl::reorder(user, m).execute(s, user, m);
  s.wait();
  return m;
}

// A memory of `type` in plain layout `layout`, holding random values (fill_random's, made
// in f32 and rounded into `type`).
memory random_memory(const memory::dims& dims, dt type, tag layout, std::uint32_t seed,
                     dnnl::stream& s) {
  memory f(memory::desc(dims, dt::f32, layout), cpu_engine());
  fill_random(f, seed);
  return reordered(f, memory::desc(dims, type, layout), s);
}

// The memory descriptors of one layer; weights_* are format_tag::any.
struct LayerDescs {
  memory::desc src_layer, src_iter, src_iter_c, weights_layer, weights_iter, bias, dst_layer,
      dst_iter, dst_iter_c;
};

LayerDescs layer_descs(const Problem& p, int layer, const Types& ty) {
  const memory::dim T = p.T, B = p.B, H = p.H, D = p.directions(), C = p.layer_input(layer);
  const memory::dim G = gate_count(p.cell), Gb = p.cell == Cell::Gru ? G + 1 : G;
  LayerDescs d;
  d.src_layer = memory::desc({T, B, C}, ty.data, tag::tnc);
  d.src_iter = memory::desc({1, D, B, H}, ty.data, tag::ldnc);
  d.weights_layer = memory::desc({1, D, C, G, H}, ty.data, tag::any);
  d.weights_iter = memory::desc({1, D, H, G, H}, ty.data, tag::any);
  d.bias = memory::desc({1, D, Gb, H}, ty.bias, tag::ldgo);
  d.dst_layer = memory::desc({T, B, D * H}, ty.data, tag::tnc);
  d.dst_iter = memory::desc({1, D, B, H}, ty.data, tag::ldnc);
  if (p.cell == Cell::Lstm) {
    d.src_iter_c = memory::desc({1, D, B, H}, ty.cell, tag::ldnc);
    d.dst_iter_c = d.src_iter_c;
  }
  return d;
}

// The descriptors of the backward pass's diffs: diff_data for the layers and states (the
// cell type for the LSTM cell state), diff_weights for the weights and the bias.
LayerDescs diff_descs(const LayerDescs& d, const Types& ty) {
  auto as = [](const memory::desc& md, dt type, tag layout) {
    return md.dims().empty() ? md : memory::desc(md.dims(), type, layout);
  };
  LayerDescs g;
  g.src_layer = as(d.src_layer, ty.diff_data, tag::tnc);
  g.src_iter = as(d.src_iter, ty.diff_data, tag::ldnc);
  g.src_iter_c = as(d.src_iter_c, ty.cell, tag::ldnc);
  g.weights_layer = as(d.weights_layer, ty.diff_weights, tag::any);
  g.weights_iter = as(d.weights_iter, ty.diff_weights, tag::any);
  g.bias = as(d.bias, ty.diff_weights, tag::ldgo);
  g.dst_layer = as(d.dst_layer, ty.diff_data, tag::tnc);
  g.dst_iter = as(d.dst_iter, ty.diff_data, tag::ldnc);
  g.dst_iter_c = as(d.dst_iter_c, ty.cell, tag::ldnc);
  return g;
}

// The forward primitive descriptor for `prop`, and for training the backward one.
void make_pds(const Problem& p, const LayerDescs& d, const LayerDescs& g, bool training,
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
                                                    d.dst_iter,     d.dst_iter_c, g.src_layer,
                                                    g.src_iter,     g.src_iter_c, g.weights_layer,
                                                    g.weights_iter, g.bias,       g.dst_layer,
                                                    g.dst_iter,     g.dst_iter_c},
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
             d.dst_layer, d.dst_iter, g.src_layer, g.src_iter, g.weights_layer, g.weights_iter,
             g.bias, g.dst_layer, g.dst_iter},
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
             d.dst_layer, d.dst_iter, g.src_layer, g.src_iter, g.weights_layer, g.weights_iter,
             g.bias, g.dst_layer, g.dst_iter},
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
             d.dst_layer, d.dst_iter, g.src_layer, g.src_iter, g.weights_layer, g.weights_iter,
             g.bias, g.dst_layer, g.dst_iter},
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
  Net(const Problem& p, bool training, const Types& ty) {
    dnnl::stream s(cpu_engine());
    const bool lstm = p.cell == Cell::Lstm;
    memory input = random_memory({p.T, p.B, p.I}, ty.data, tag::tnc, 11, s);
    for (int l = 0; l < p.layers; ++l) {
      const LayerDescs d = layer_descs(p, l, ty);
      dnnl::rnn_primitive_desc_base fpd, bpd;
      make_pds(p, d, diff_descs(d, ty), training, &fpd, &bpd);
      Layer layer;
      layer.fwd = dnnl::primitive(fpd);
      // Weights in PyTorch-like ldigo, reordered to what the primitive chose.
      const memory::dims wl = d.weights_layer.dims(), wi = d.weights_iter.dims();
      memory user_wl(memory::desc(wl, dt::f32, tag::ldigo), cpu_engine());
      memory user_wi(memory::desc(wi, dt::f32, tag::ldigo), cpu_engine());
      fill_random(user_wl, 100 + l);
      fill_random(user_wi, 200 + l);
      const memory bias = random_memory(d.bias.dims(), ty.bias, tag::ldgo, 300 + l, s);
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
      layers_.back().bwd_args[DNNL_ARG_DIFF_DST_LAYER] =
          random_memory({p.T, p.B, p.directions() * p.H}, ty.diff_data, tag::tnc, 12, s);
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
extern "C" void recur_bench_onednn_prepare(const Problem& p, Mode mode, recur::Math math,
                                           Prepared& out) {
  out.result = note_result("onednn", math, "cpu", p, mode, "");
  // What one call needs, kept alive by the call.
  struct State {
    Net net;
    dnnl::stream stream;
  };
  try {
    const bool training = mode == Mode::Training;
    auto s = std::make_shared<State>(
        State{Net(p, training, types_for(math)), dnnl::stream(cpu_engine())});
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
