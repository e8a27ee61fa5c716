// src/rnn_access.h: what library code outside rnn.cpp may reach inside an Rnn (the
// gradient-flow diagnostics run the engine with a recording backward pass).
#pragma once

#include <cstdint>

#include "engine.h"
#include "plan.h"
#include "recur/rnn.h"

namespace recur::detail {

struct RnnAccess {
  static Engine& engine(Rnn& rnn);
  static const Plan& plan(const Rnn& rnn);
  static std::uint64_t dropout_seed(const Rnn& rnn);
};

}  // namespace recur::detail
