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

// One layer's part of a layer-by-layer pass, for a backward that rebuilds the layers one
// at a time (PassPlan::recomputes_layers): forward, the layer's input projections and
// steps (not its connection, whose outputs were kept); backward, the layer's steps, input
// gradients and the connection below it (the top layer's also starts with its own).
Program schedule_layer_forward(const Plan& plan, const Timeline& timeline, const PassPlan& pass,
                               int layer);
Program schedule_layer_backward(const Plan& plan, const Timeline& timeline, const PassPlan& pass,
                                int layer);

}  // namespace recur::detail
