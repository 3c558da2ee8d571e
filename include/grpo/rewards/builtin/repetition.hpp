#pragma once
// N-gram repetition penalty: the share of repeated word n-grams, scaled by a (negative) maximum penalty.

#include <cctype>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// (1 - distinct n-grams / n-grams) * max_penalty over lower-cased whitespace-separated words; 0 for a completion
/// with fewer than ngram_size words.
struct RepetitionPenalty {
  /// Words per n-gram.
  int ngram_size = 3;
  /// The penalty of a completion made of one n-gram repeated (must be <= 0).
  double max_penalty = -1.0;

  double operator()(std::string_view completion, const Row&) const {
    std::vector<std::string> words;
    std::string word;
    for (char c : completion) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    if (!word.empty()) words.push_back(std::move(word));
    if (static_cast<int>(words.size()) < ngram_size) return 0.0;
    std::set<std::vector<std::string>> distinct;
    const std::size_t total = words.size() - static_cast<std::size_t>(ngram_size) + 1;
    for (std::size_t i = 0; i < total; ++i) {
      distinct.emplace(words.begin() + static_cast<std::ptrdiff_t>(i),
                       words.begin() + static_cast<std::ptrdiff_t>(i) + ngram_size);
    }
    return (1.0 - static_cast<double>(distinct.size()) / static_cast<double>(total)) * max_penalty;
  }
};

/// The penalty as a RewardFunction named "repetition_penalty".
inline RewardFunction repetition_penalty_reward(int ngram_size = 3, double max_penalty = -1.0) {
  if (ngram_size < 1) throw InvalidArgument("grpo::repetition_penalty_reward: ngram_size must be >= 1");
  if (max_penalty > 0) {
    throw InvalidArgument("grpo::repetition_penalty_reward: max_penalty must be <= 0, got " +
                          std::to_string(max_penalty));
  }
  return RewardFunction("repetition_penalty", RepetitionPenalty{ngram_size, max_penalty});
}

}  // namespace grpo
