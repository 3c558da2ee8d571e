#pragma once
// Format reward: 1 when the whole completion matches a pattern, else 0.

#include <cctype>
#include <functional>
#include <regex>
#include <string>
#include <string_view>

#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// Format reward: `match_reward` when `matches(completion)`, else `miss_reward`.
struct FormatReward {
  /// Whole-completion test.
  std::function<bool(std::string_view)> matches;
  /// Reward for a matching completion.
  double match_reward = 1.0;
  /// Reward for any other completion.
  double miss_reward = 0.0;

  double operator()(std::string_view completion, const Row&) const {
    return matches(completion) ? match_reward : miss_reward;
  }
};

/// A format reward named `name` whose completion must fully match the ECMAScript regex `pattern`. Note that
/// std::regex recurses per character on patterns such as [\s\S]*, so very long completions (tens of thousands of
/// characters) can exhaust a thread's stack; prefer think_answer_format_reward() for the tag format.
inline RewardFunction format_reward(const std::string& pattern, std::string name = "format") {
  std::regex compiled;
  try {
    compiled = std::regex(pattern, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    throw InvalidArgument("grpo::format_reward: invalid regex \"" + pattern + "\": " + e.what());
  }
  FormatReward reward;
  reward.matches = [compiled](std::string_view text) { return std::regex_match(text.begin(), text.end(), compiled); };
  return RewardFunction(std::move(name), std::move(reward));
}

/// True when `text` is exactly "<think>...</think>", optional whitespace, "<answer>...</answer>", with no further
/// tag of either kind inside (linear time, no regex).
inline bool is_think_answer_format(std::string_view text) {
  const auto starts = [&](std::size_t at, std::string_view tag) { return text.substr(at, tag.size()) == tag; };
  if (!starts(0, "<think>")) return false;
  const auto think_end = text.find("</think>");
  if (think_end == std::string_view::npos || text.find("<think>", 7) < think_end) return false;
  std::size_t at = think_end + 8;
  while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  if (!starts(at, "<answer>")) return false;
  const auto answer_end = text.find("</answer>", at + 8);
  if (answer_end == std::string_view::npos || answer_end + 9 != text.size()) return false;
  const auto inner = text.substr(at + 8, answer_end - at - 8);
  return inner.find("<answer>") == std::string_view::npos && inner.find("<think>") == std::string_view::npos &&
         inner.find("</think>") == std::string_view::npos;
}

/// The reasoning format "<think>...</think><answer>...</answer>" as a RewardFunction named "format".
inline RewardFunction think_answer_format_reward(std::string name = "format") {
  FormatReward reward;
  reward.matches = is_think_answer_format;
  return RewardFunction(std::move(name), std::move(reward));
}

}  // namespace grpo
