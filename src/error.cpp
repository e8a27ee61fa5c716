// src/error.cpp: recur::Error's message format.
#include "recur/error.h"

namespace recur {

Error::Error(const std::string& message) : std::runtime_error(message) {}

Error::Error(const std::string& where, const std::string& argument, const std::string& expected,
             const std::string& got)
    : std::runtime_error("recur: " + where + ": argument '" + argument + "': expected " + expected +
                         ", got " + got),
      argument_(argument),
      expected_(expected),
      got_(got) {}

}  // namespace recur
