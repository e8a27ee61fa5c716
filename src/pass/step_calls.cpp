// src/pass/step_calls.cpp: a step's batched GEMMs and fused kernels.
#include "step_calls.h"

#include <algorithm>
#include <utility>

#include "step_args.h"

namespace recur::detail {
namespace {

// The two kernels of a reset-before-product step.
StepKind rbp_gates_kind(const RnnConfig& config) {
  return config.layer_norm ? StepKind::LnGruRbpGates : StepKind::GruRbpGates;
}
StepKind rbp_output_kind(const RnnConfig& config) {
  return config.layer_norm ? StepKind::LnGruRbpOutput : StepKind::GruRbpOutput;
}

StepKind step_kind(const RnnConfig& config) {
  if (config.layer_norm) {
    return config.cell == CellKind::Lstm ? StepKind::LnLstm : StepKind::LnGruLinearBeforeReset;
  }
  switch (config.cell) {
    case CellKind::RnnTanh: return StepKind::RnnTanh;
    case CellKind::RnnRelu: return StepKind::RnnRelu;
    case CellKind::RnnSigmoid: return StepKind::RnnSigmoid;
    case CellKind::Lstm: return StepKind::Lstm;
    case CellKind::GruLinearBeforeReset: return StepKind::GruLinearBeforeReset;
    case CellKind::GruResetBeforeProduct: return StepKind::GruRbpOutput;
  }
  return StepKind::Lstm;
}

// The batched GEMM call of one group: C = op(A) B, or C += op(A) B, its pointer arrays
// (staged, and the host table they were staged from) from the group's place in the table.
template <typename T>
StepCall<T> gemm_call(const PassContext<T>& ctx, const PointerTables& tables,
                      const GemmGroup& group, Trans trans_a, std::int64_t m, std::int64_t k,
                      std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate) {
  StepCall<T> c;
  GemmBatch<T>& b = c.gemms;
  const std::size_t count = group.items();
  const void* const* base = tables.staged + group.table;
  b.a = reinterpret_cast<const T* const*>(base);
  b.b = reinterpret_cast<const T* const*>(base + count);
  b.c = reinterpret_cast<T* const*>(const_cast<void* const*>(base + 2 * count));
  const void* const* host_base = tables.host.data() + group.table;
  b.host_a = reinterpret_cast<const T* const*>(host_base);
  b.host_b = reinterpret_cast<const T* const*>(host_base + count);
  b.host_c = reinterpret_cast<T* const*>(const_cast<void* const*>(host_base + 2 * count));
  b.count = static_cast<int>(count);
  b.n = group.n;
  b.trans_a = trans_a;
  b.m = m;
  b.k = k;
  b.lda = lda;
  b.ldb = ldb;
  b.ldc = ldc;
  b.beta = accumulate ? T(1) : T(0);
  b.branches = branches_pay(ctx.pass, b.count, m, b.n, k);
  return c;
}

// One kernel's arguments for each unit of the op, `make(step)`, each launched over the
// widest unit's rows: one launch covers every unit, and each masks its own rows.
template <class Args, class Make>
std::vector<Args> unit_args(const Timeline& tl, const PassOp& op, Make make) {
  std::int64_t widest = 0;
  for (const UnitStep& s : op.steps) widest = std::max(widest, tl.active[s.t]);
  std::vector<Args> args;
  args.reserve(op.steps.size());
  for (const UnitStep& s : op.steps) {
    args.push_back(make(s));
    args.back().batch = widest;
  }
  return args;
}

}  // namespace

template <typename T>
void forward_calls(const PassContext<T>& ctx, const PointerTables& tables, const PassOp& op,
                   std::vector<StepCall<T>>& calls) {
  const std::int64_t H = ctx.hidden(), GH = ctx.gate_rows(), O = ctx.state();
  const std::int64_t DH = ctx.plan.output_size();
  std::vector<StepForward<T>> args = unit_args<StepForward<T>>(
      ctx.tl, op, [&](const UnitStep& s) { return step_forward_args(ctx, s); });
  // gh = W h for every group of units (C pointers, e.g. gh's n slot, come from the table).
  auto recurrent = [&](int gemm_index, std::int64_t m, std::int64_t ldb) {
    const bool t = ctx.transposed_weights();  // w_t, or W_hh
    for (const GemmGroup& group : op.groups[gemm_index]) {
      calls.push_back(
          gemm_call(ctx, tables, group, t ? Trans::N : Trans::T, m, O, t ? GH : O, ldb, GH, false));
    }
  };
  // The last kernel call takes `args` over; the reset-before-product GRU's first copies it.
  auto kernel = [&](StepKind kind, std::vector<StepForward<T>> units) {
    StepCall<T> c;
    c.kind = StepCall<T>::Kind::Forward;
    c.step = kind;
    c.forward = std::move(units);
    calls.push_back(std::move(c));
  };
  if (!op.groups[2].empty()) {  // gx_t = W_ih u_t (PassPlan::projects_in_steps)
    const LayerPlan& layer = ctx.plan.layers[ctx.plan.units[op.steps[0].unit].layer];
    const std::int64_t ld = ctx.buf.acts[layer.inputs[0].act].ld;
    for (const GemmGroup& group : op.groups[2]) {
      calls.push_back(gemm_call(ctx, tables, group, Trans::T, GH, layer.input_size,
                                layer.input_size, ld, GH, false));
    }
  }
  if (ctx.reset_before_product()) {
    recurrent(0, 2 * H, DH);  // gh[r, z] = W_h[r, z] h_prev
    kernel(rbp_gates_kind(ctx.plan.config), args);
    recurrent(1, H, H);  // gh[n] = W_hn (r*h_prev)
    kernel(rbp_output_kind(ctx.plan.config), std::move(args));
  } else {
    recurrent(0, GH, DH);
    if (ctx.plan.projects() && ctx.pass.training) {  // keeps h_{t-1}, P wide
      kernel(StepKind::Projection, unit_args<StepForward<T>>(ctx.tl, op, [&](const UnitStep& s) {
               return projection_forward_args(ctx, s);
             }));
    }
    kernel(step_kind(ctx.plan.config), std::move(args));  // h_t, or a projected LSTM's m_t
    for (const GemmGroup& group : op.groups[3]) {         // h_t = W_hr m_t (proj_size)
      calls.push_back(gemm_call(ctx, tables, group, Trans::T, O, H, H, H, DH, false));
    }
  }
}

template <typename T>
void backward_calls(const PassContext<T>& ctx, const PointerTables& tables, const PassOp& op,
                    std::vector<StepCall<T>>& calls) {
  const std::int64_t H = ctx.hidden(), GH = ctx.gate_rows(), O = ctx.state();
  std::vector<StepBackward<T>> args = unit_args<StepBackward<T>>(
      ctx.tl, op, [&](const UnitStep& s) { return step_backward_args(ctx, s); });
  // dh (+)= W^T d: m = O (h's features), ldb = G*H, ldc = O.
  auto recurrent = [&](int gemm_index, std::int64_t k, bool accumulate) {
    for (const GemmGroup& group : op.groups[gemm_index]) {
      calls.push_back(gemm_call(ctx, tables, group, Trans::N, O, k, O, GH, O, accumulate));
    }
  };
  // The last kernel call takes `args` over; the reset-before-product GRU's first copies it.
  auto kernel = [&](StepKind kind, std::vector<StepBackward<T>> units) {
    StepCall<T> c;
    c.kind = StepCall<T>::Kind::Backward;
    c.step = kind;
    c.backward = std::move(units);
    calls.push_back(std::move(c));
  };
  if (ctx.reset_before_product()) {
    kernel(rbp_output_kind(ctx.plan.config), args);
    recurrent(0, H, false);  // drh = W_hn^T dgh[n]
    kernel(rbp_gates_kind(ctx.plan.config), std::move(args));
    recurrent(1, 2 * H, true);  // dh += W_h[r,z]^T dgh[r,z]
  } else {
    if (ctx.plan.projects()) {  // dproj = dh + dy first (record_flow reads its arguments)
      kernel(StepKind::Projection, unit_args<StepBackward<T>>(ctx.tl, op, [&](const UnitStep& s) {
               return projection_backward_args(ctx, s);
             }));
    }
    for (const GemmGroup& group : op.groups[3]) {  // dm = W_hr^T dproj (proj_size)
      calls.push_back(gemm_call(ctx, tables, group, Trans::N, H, O, H, O, H, false));
    }
    kernel(step_kind(ctx.plan.config), std::move(args));
    recurrent(0, GH, true);  // dh += W_hh^T dgh
  }
}

#define RECUR_PASS_STEP_CALLS(T)                                                           \
  template void forward_calls(const PassContext<T>&, const PointerTables&, const PassOp&,  \
                              std::vector<StepCall<T>>&);                                  \
  template void backward_calls(const PassContext<T>&, const PointerTables&, const PassOp&, \
                               std::vector<StepCall<T>>&);
RECUR_PASS_STEP_CALLS(float)
RECUR_PASS_STEP_CALLS(double)
#undef RECUR_PASS_STEP_CALLS

}  // namespace recur::detail
