// bench/result.cpp: helpers shared by the drivers.
#include "result.h"

namespace bench {

Result note_result(const char* impl, const char* device, const Problem& p, Mode mode,
                   const std::string& note) {
  Result r;
  r.impl = impl;
  r.device = device;
  r.problem = p;
  r.mode = mode;
  r.note = note;
  return r;
}

}  // namespace bench
