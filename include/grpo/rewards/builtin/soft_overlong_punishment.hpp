#pragma once
// DAPO's soft overlong punishment (docs/math.md §8), from the completion's token count.

#include <cstdint>
#include <string>
#include <string_view>

#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// 0 up to L_max - L_c tokens, then a linear ramp down to -1 at L_max, and -1 beyond.
struct SoftOverlongPunishment {
  /// L_max: the completion-length budget.
  int64_t max_completion_length = 512;
  /// L_c: the length of the ramp before L_max.
  int64_t soft_punish_cache = 128;

  double operator()(std::string_view, const Row& row) const {
    const auto length = static_cast<int64_t>(row.completion_ids().size());
    const int64_t safe = max_completion_length - soft_punish_cache;
    if (length <= safe) return 0.0;
    if (length <= max_completion_length) {
      return static_cast<double>(safe - length) / static_cast<double>(soft_punish_cache);
    }
    return -1.0;
  }
};

/// The punishment as a RewardFunction named "soft_overlong_punishment".
inline RewardFunction soft_overlong_punishment_reward(int64_t max_completion_length, int64_t soft_punish_cache) {
  if (soft_punish_cache < 1 || soft_punish_cache > max_completion_length) {
    throw InvalidArgument("grpo::soft_overlong_punishment_reward: soft_punish_cache must be in [1, " +
                          std::to_string(max_completion_length) + "], got " + std::to_string(soft_punish_cache));
  }
  return RewardFunction("soft_overlong_punishment", SoftOverlongPunishment{max_completion_length, soft_punish_cache});
}

}  // namespace grpo
