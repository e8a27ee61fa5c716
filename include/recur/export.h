// recur/export.h: symbol visibility. The library is built with hidden visibility;
// only what carries RECUR_API is part of the shared library's interface.
#pragma once

#if defined(RECUR_BUILDING_LIBRARY)
#define RECUR_API __attribute__((visibility("default")))
#else
#define RECUR_API
#endif
