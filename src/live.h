// src/live.h: the check every method of a movable public type makes first, so that a
// moved-from object throws instead of following a null pointer.
#pragma once

#include <memory>
#include <string>

#include "recur/error.h"

namespace recur::detail {

// *impl, or a recur::Error naming `where` when the object was moved from. `type` is the
// public type's name ("Rnn").
template <class Impl>
Impl& live(const std::unique_ptr<Impl>& impl, const char* type, const char* where) {
  if (impl == nullptr) {
    throw Error(where, "this", std::string("a live ") + type, "one that was moved from");
  }
  return *impl;
}

}  // namespace recur::detail
