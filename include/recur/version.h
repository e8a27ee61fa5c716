// recur/version.h: the library's version.
#pragma once

#include "recur/export.h"

namespace recur {

// The version of the loaded library, "MAJOR.MINOR.PATCH".
RECUR_API const char* version();

}  // namespace recur
