// Include this instead of support/catch.hpp in LibTorch tests, after any LibTorch header.
// LibTorch builds that use glog (Debian's among them) define a one-argument CHECK(cond) macro that replaces
// Catch's CHECK: assertions would then abort instead of being reported and counted. This header restores
// Catch's definition whatever the include order (it deliberately has no include guard for that part).
#include <torch/types.h>

#include "support/catch.hpp"

#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)
