// src/pass/staging.h: the pointer tables of a program's batched per-step GEMMs, built on
// the host and staged for the backend once per pass, before the time loop
// (Ops::stage_pointers). Where each group's pointers go was laid out by the schedule
// (GemmGroup::table).
#pragma once

#include <vector>

#include "pass_context.h"

namespace recur::detail {

struct PointerTables {
  std::vector<const void*> host;
  const void* const* staged = nullptr;  // the backend's copy of `host`
};

template <typename T>
PointerTables stage_pointer_tables(const PassContext<T>& ctx, const Program& program,
                                   bool backward);

}  // namespace recur::detail
