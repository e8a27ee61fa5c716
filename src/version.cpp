// src/version.cpp: recur::version(), from the project version CMake passes in.
#include "recur/version.h"

namespace recur {

const char* version() { return RECUR_VERSION_STRING; }

}  // namespace recur
