#include "test_util.h"
TEST(Golden, Placeholder) { GTEST_SKIP(); }
