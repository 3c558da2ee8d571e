#pragma once
// DAPO dynamic sampling (docs/math.md §8): keep only the groups whose rewards differ, generate more until the
// generation batch is full or the retries run out. Torch-free.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "grpo/error.hpp"

namespace grpo {

/// Indices of the groups (G consecutive rows) whose rewards are not all equal: the groups DAPO dynamic sampling
/// keeps (an all-equal group has zero advantages and no learning signal). NaN rewards are ignored; a group with
/// fewer than two non-NaN rewards counts as all equal. rewards.size() must be divisible by G.
inline std::vector<int64_t> groups_with_reward_variance(const std::vector<double>& rewards, int num_generations) {
  if (num_generations < 1 || rewards.size() % static_cast<std::size_t>(num_generations) != 0) {
    throw InvalidArgument("grpo::groups_with_reward_variance: " + std::to_string(rewards.size()) +
                          " rewards are not a multiple of num_generations = " + std::to_string(num_generations));
  }
  std::vector<int64_t> kept;
  const auto groups = static_cast<int64_t>(rewards.size()) / num_generations;
  for (int64_t g = 0; g < groups; ++g) {
    bool have_first = false, varied = false;
    double first = 0.0;
    for (int i = 0; i < num_generations; ++i) {
      const double r = rewards[static_cast<std::size_t>(g * num_generations + i)];
      if (r != r) continue;  // NaN: "none"
      if (!have_first) {
        first = r;
        have_first = true;
      } else if (r != first) {
        varied = true;
      }
    }
    if (varied) kept.push_back(g);
  }
  return kept;
}

/// Bookkeeping of DAPO dynamic sampling for one optimizer step's generation batch (docs/math.md §8): the trainer
/// generates a round, passes its rewards to add_round(), keeps the groups it returns, and generates another round
/// (from the sampler's next batch) while more_rounds() is true. After max_retries extra rounds it trains on what it
/// has; metrics() reports the shortfall so that it is logged.
class DynamicSampling {
 public:
  /// groups_needed: prompts per generation batch; max_retries: extra rounds allowed after the first.
  DynamicSampling(int64_t groups_needed, int max_retries) : needed_(groups_needed), max_retries_(max_retries) {
    if (groups_needed < 1 || max_retries < 0) {
      throw InvalidArgument("grpo::DynamicSampling: groups_needed must be >= 1 and max_retries >= 0, got " +
                            std::to_string(groups_needed) + " and " + std::to_string(max_retries));
    }
  }

  /// Takes one round's rewards (G consecutive rows per group, NaN = none) and returns the indices of this round's
  /// groups to keep: those with varied rewards, at most as many as are still missing.
  std::vector<int64_t> add_round(const std::vector<double>& rewards, int num_generations) {
    std::vector<int64_t> kept = groups_with_reward_variance(rewards, num_generations);
    const auto groups = static_cast<int64_t>(rewards.size()) / num_generations;
    if (static_cast<int64_t>(kept.size()) > needed_ - filled_) kept.resize(static_cast<std::size_t>(needed_ - filled_));
    dropped_ += groups - static_cast<int64_t>(kept.size());
    filled_ += static_cast<int64_t>(kept.size());
    ++rounds_;
    return kept;
  }

  /// True while the batch is not full and another round is allowed (1 + max_retries rounds in all).
  bool more_rounds() const { return filled_ < needed_ && rounds_ <= max_retries_; }
  /// True when groups_needed groups were kept.
  bool full() const { return filled_ >= needed_; }
  /// Groups kept so far.
  int64_t filled() const { return filled_; }

  /// For the step's log: dynamic_sampling/rounds, /dropped_groups (generated but not kept, including surplus
  /// ones beyond the batch) and /filled_ratio (kept / needed; below 1 when the retries ran out).
  std::map<std::string, double> metrics() const {
    return {{"dynamic_sampling/rounds", static_cast<double>(rounds_)},
            {"dynamic_sampling/dropped_groups", static_cast<double>(dropped_)},
            {"dynamic_sampling/filled_ratio", static_cast<double>(filled_) / static_cast<double>(needed_)}};
  }

 private:
  int64_t needed_;
  int max_retries_;
  int64_t filled_ = 0;
  int64_t dropped_ = 0;
  int rounds_ = 0;
};

}  // namespace grpo
