// src/pass/staging.cpp: fills and stages the pointer tables of a program.
#include "staging.h"

#include "step_args.h"

namespace recur::detail {

template <typename T>
PointerTables stage_pointer_tables(const PassContext<T>& ctx, const Program& program,
                                   bool backward) {
  const std::int64_t H = ctx.hidden(), O = ctx.state();
  const bool rbp = ctx.reset_before_product();
  PointerTables tables;
  std::vector<const void*>& table = tables.host;
  for (const PassOp& op : program) {
    if (op.kind != PassOpKind::Steps && op.kind != PassOpKind::StepsBackward) continue;
    // Per group: the units' own GEMMs, then (a wavefront's first GEMM) the input GEMMs of
    // the units whose layer fuses its input; all A pointers, then all B, then all C.
    auto push = [&](int gemm, auto a_of, auto b_of, auto c_of) {
      for (const GemmGroup& g : op.groups[gemm]) {
        std::vector<const UnitStep*> fused;
        if (gemm == 0) {
          for (std::size_t i = g.first; i < g.first + g.count; ++i) {
            if (ctx.pass.fuses_input[ctx.plan.units[op.steps[i].unit].layer]) {
              fused.push_back(&op.steps[i]);
            }
          }
        }
        // Filled in the schedule's order, so that this group starts at g.table.
        for (int operand = 0; operand < 3; ++operand) {
          for (std::size_t i = g.first; i < g.first + g.count; ++i) {
            const UnitStep& s = op.steps[i];
            table.push_back(operand == 0 ? a_of(s) : operand == 1 ? b_of(s) : c_of(s));
          }
          for (const UnitStep* s : fused) {
            table.push_back(input_gemm_operand(ctx, *s, backward, operand));
          }
        }
      }
    };
    // W_hh's rows [first, ...) as op(A): W_hh itself (its row `first`), or in a forward
    // pass that transposed it, the copy (its column `first`).
    const bool transposed = !backward && ctx.transposed_weights();
    auto w_hh = [&](std::int64_t first) {
      return [&ctx, first, transposed, O](const UnitStep& s) -> const void* {
        return transposed ? ctx.buf.units[s.unit].w_t + first
                          : ctx.params + ctx.plan.units[s.unit].w_hh + first * O;
      };
    };
    auto w_hr = [&](const UnitStep& s) -> const void* {
      return ctx.params + ctx.plan.units[s.unit].w_hr;
    };
    if (!backward) {
      auto h_prev = [&](const UnitStep& s) -> const void* {
        return step_forward_args(ctx, s).h_prev;
      };
      auto gh = [&](std::int64_t offset) {
        return [&ctx, offset](const UnitStep& s) -> const void* {
          return ctx.buf.units[s.unit].gh + offset;
        };
      };
      auto projection = [&](int operand) {  // gx_t = W_ih u_t of each unit
        return [&ctx, operand](const UnitStep& s) {
          return input_gemm_operand(ctx, s, false, operand);
        };
      };
      push(0, w_hh(0), h_prev, gh(0));
      push(2, projection(0), projection(1), projection(2));
      if (rbp) {
        auto rh = [&](const UnitStep& s) -> const void* { return step_forward_args(ctx, s).rh; };
        push(1, w_hh(2 * H), rh, gh(2 * H));
      }
      // h_t = W_hr m_t (proj_size)
      auto m = [&](const UnitStep& s) -> const void* { return step_forward_args(ctx, s).h; };
      auto h = [&](const UnitStep& s) -> const void* { return ctx.y_at(s.unit, ctx.out_row(s.t)); };
      push(3, w_hr, m, h);
    } else {
      // d/d(W_hh h) in its slots (dgx itself for the plain cells but the
      // linear-before-reset GRU)
      auto dgh = [&](std::int64_t offset) {
        return [&ctx, offset](const UnitStep& s) -> const void* {
          return step_backward_args(ctx, s).dgh + offset;
        };
      };
      auto dh = [&](const UnitStep& s) -> const void* { return ctx.buf.units[s.unit].dh; };
      auto drh = [&](const UnitStep& s) -> const void* { return ctx.buf.units[s.unit].drh; };
      if (rbp) {
        push(0, w_hh(2 * H), dgh(2 * H), drh);
        push(1, w_hh(0), dgh(0), dh);
      } else {
        push(0, w_hh(0), dgh(0), dh);
      }
      // dJ/dm_t = W_hr^T dJ/dh_t (proj_size)
      auto dproj = [&](const UnitStep& s) -> const void* {
        return projection_backward_args(ctx, s).dproj;
      };
      auto dm = [&](const UnitStep& s) -> const void* { return ctx.buf.units[s.unit].dm; };
      push(3, w_hr, dproj, dm);
    }
  }
  tables.staged = ctx.ops.stage_pointers(table.data(), table.size());
  return tables;
}

template PointerTables stage_pointer_tables(const PassContext<float>&, const Program&, bool);
template PointerTables stage_pointer_tables(const PassContext<double>&, const Program&, bool);

}  // namespace recur::detail
