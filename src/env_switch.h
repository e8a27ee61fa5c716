// src/env_switch.h: the environment variables that switch a code path on or off when a
// process starts, for side-by-side measurements (README.md lists them). Tests flip the same
// switches through their setters.
#pragma once

#include <cstdlib>
#include <cstring>

namespace recur::detail {

// A switch's value at start. Unset, it is `default_on`; set, a switch that is on by default
// is off only for "0", and one that is off by default is on only for "1".
inline bool env_switch(const char* name, bool default_on) {
  const char* value = std::getenv(name);
  if (value == nullptr) return default_on;
  return default_on ? std::strcmp(value, "0") != 0 : std::strcmp(value, "1") == 0;
}

}  // namespace recur::detail
