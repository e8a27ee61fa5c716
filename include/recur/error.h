// recur/error.h: the one exception type recur throws.
//
// Every public entry point validates its arguments before it changes any state. When an
// argument is wrong it throws recur::Error, whose message names the function, the
// argument, what was expected and what was given, e.g.
//   recur: Rnn::forward: argument 'x': expected rank 3 [T, B, input_size], got rank 2 [5, 4]
// Backend failures (a CUDA or cuBLAS call) are recur::Error too, naming the call and its
// status. recur never calls exit() or abort().
#pragma once

#include <stdexcept>
#include <string>

#include "recur/export.h"

namespace recur {

class RECUR_API Error : public std::runtime_error {
 public:
  // A free-form error (backend failures, internal invariants).
  explicit Error(const std::string& message);
  // An argument error: `where` is the function, `argument` the parameter's name.
  Error(const std::string& where, const std::string& argument, const std::string& expected,
        const std::string& got);

  // Empty for free-form errors.
  const std::string& argument() const noexcept { return argument_; }
  const std::string& expected() const noexcept { return expected_; }
  const std::string& got() const noexcept { return got_; }

 private:
  std::string argument_, expected_, got_;
};

}  // namespace recur
