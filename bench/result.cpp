// bench/result.cpp: helpers shared by the drivers, and the rule that pairs an anchor's
// row with recur's.
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

Result note_result(const char* base, recur::Math math, const char* device, const Problem& p,
                   Mode mode, const std::string& note) {
  Result r = note_result(impl_name(base, math).c_str(), device, p, mode, note);
  r.math = math;
  return r;
}

const char* math_name(recur::Math math) {
  switch (math) {
    case recur::Math::Fp32: return "fp32";
    case recur::Math::Tf32: return "tf32";
    case recur::Math::Bf16: return "bf16";
    case recur::Math::Fp16: return "fp16";
  }
  return "?";
}

bool parse_math(const std::string& text, recur::Math* math) {
  for (recur::Math m :
       {recur::Math::Fp32, recur::Math::Tf32, recur::Math::Bf16, recur::Math::Fp16}) {
    if (text == math_name(m)) {
      *math = m;
      return true;
    }
  }
  return false;
}

std::string impl_name(const char* base, recur::Math math) {
  return math == recur::Math::Fp32 ? std::string(base) : std::string(base) + "_" + math_name(math);
}

bool is_recur(const Result& r) { return r.impl == impl_name("recur", r.math); }

bool same_problem(const Problem& a, const Problem& b) {
  return a.cell == b.cell && a.T == b.T && a.B == b.B && a.I == b.I && a.H == b.H &&
         a.layers == b.layers && a.bidirectional == b.bidirectional;
}

bool pairs_with(const Result& a, const Result& r) {
  return !is_recur(a) && is_recur(r) && a.math == r.math && a.device == r.device &&
         a.mode == r.mode && a.load == r.load && same_problem(a.problem, r.problem);
}

}  // namespace bench
