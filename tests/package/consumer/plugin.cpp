// A user's reward plugin, built with the package's grpo_add_reward_plugin() and loaded by consumer_core.
#include <string_view>

#include <grpo/rewards/plugin.hpp>

GRPO_REWARD_PLUGIN(make_consumer_reward, options) {
  const double scale = options.value("scale", 1.0);
  return grpo::RewardFunction("consumer_length", [scale](std::string_view completion, const grpo::Row&) {
    return scale * static_cast<double>(completion.size());
  });
}
