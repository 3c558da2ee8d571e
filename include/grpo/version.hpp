#pragma once

// grpo-cpp version, kept equal to the project() version in CMakeLists.txt.
#define GRPO_VERSION_MAJOR 0
#define GRPO_VERSION_MINOR 1
#define GRPO_VERSION_PATCH 0

namespace grpo {
/// The library version as "major.minor.patch".
inline constexpr const char* version = "0.1.0";
}  // namespace grpo
