#pragma once
// The tests' one include for Catch2, version 2 (Debian 12) or 3 (Debian 13): the differences the tests meet are
// the header layout, Approx's namespace, the substring matcher's name and the listener API
// (tests/support/torch_seed_listener.cpp). tests/CMakeLists.txt defines GRPO_CATCH2_MAJOR from the package found.
#include <string>

#if !defined(GRPO_CATCH2_MAJOR)
#if __has_include(<catch2/catch_all.hpp>)
#define GRPO_CATCH2_MAJOR 3
#else
#define GRPO_CATCH2_MAJOR 2
#endif
#endif

#if GRPO_CATCH2_MAJOR >= 3
#include <catch2/catch_all.hpp>
using Catch::Approx;
#else
#include <catch2/catch.hpp>
#endif

namespace grpo_test {
// Matches a string holding `text` (Catch2 3 renamed the string matcher ContainsSubstring; its Contains is the
// range matcher).
inline auto Contains(const std::string& text) {
#if GRPO_CATCH2_MAJOR >= 3
  return Catch::Matchers::ContainsSubstring(text);
#else
  return Catch::Matchers::Contains(text);
#endif
}
}  // namespace grpo_test
