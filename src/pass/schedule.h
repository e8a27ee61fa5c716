// src/pass/schedule.h: the forward and backward programs of a pass (program.h), as pure
// functions of the plan, the timeline and the pass plan's choices (pass_plan.h: wavefront
// or layer by layer, fused inputs, inputs projected inside the steps). Each Steps op's
// units come ordered by active rows, longest first, with their GEMM groups.
#pragma once

#include "../plan.h"
#include "../timeline.h"
#include "program.h"

namespace recur::detail {

struct PassPlan;

Program schedule_forward(const Plan& plan, const Timeline& timeline, const PassPlan& pass);
Program schedule_backward(const Plan& plan, const Timeline& timeline, const PassPlan& pass);

}  // namespace recur::detail
