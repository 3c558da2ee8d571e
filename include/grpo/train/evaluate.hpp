#pragma once
// Evaluation: one or more completions per eval prompt (greedy by default), scored by the training reward
// functions. Metrics: "eval_reward" (mean weighted reward), "eval_rewards/<name>/mean" per function,
// "eval_completions/mean_length" and, when EvalOptions::accuracy_reward names a reward function, "eval_accuracy"
// (that function's mean).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "grpo/data/dataset.hpp"
#include "grpo/error.hpp"
#include "grpo/train/rollout.hpp"
#include "grpo/train/state.hpp"

namespace grpo {

/// How evaluate() samples and what it calls accuracy.
struct EvalOptions {
  /// Completions per eval prompt; 1 with greedy decoding gives a deterministic score.
  int num_generations = 1;
  /// Greedy decoding (false: sample with the training temperature and filters).
  bool greedy = true;
  /// The reward function whose mean is reported as "eval_accuracy" (e.g. "accuracy", the built-in accuracy
  /// reward's name); empty: no eval_accuracy.
  std::string accuracy_reward;
};

/// Scores `data` with the generator's policy and reward functions; `batch_rows` completions per generation call.
/// `call` seeds sampled evaluations and is advanced.
template <class Model, class Tokenizer>
std::map<std::string, double> evaluate_rollouts(RolloutGenerator<Model, Tokenizer>& generator, const Dataset& data,
                                                const std::vector<std::string>& reward_names,
                                                const EvalOptions& options, int64_t batch_rows, uint64_t& call,
                                                const TrainingProgress& progress) {
  if (data.empty()) throw InvalidArgument("grpo::evaluate: the eval dataset is empty");
  const int g = std::max(1, options.num_generations);
  double reward_sum = 0, length_sum = 0;
  int64_t reward_count = 0;
  std::vector<std::pair<double, int64_t>> per_function(reward_names.size());
  const int64_t prompts_per_call = std::max<int64_t>(1, batch_rows / g);
  const auto size = static_cast<int64_t>(data.size());
  for (int64_t start = 0; start < size; start += prompts_per_call) {
    std::vector<int64_t> indices;
    for (int64_t i = start; i < std::min(start + prompts_per_call, size); ++i) {
      for (int r = 0; r < g; ++r) indices.push_back(i);
    }
    const auto rollout =
        generator.generate(data, indices, g, generator.generation_options(call++, true, !options.greedy), progress);
    for (std::size_t i = 0; i < rollout.size(); ++i) {
      const double weighted = rollout.weighted_rewards[static_cast<Eigen::Index>(i)];
      if (!std::isnan(weighted)) {
        reward_sum += weighted;
        ++reward_count;
      }
      length_sum += static_cast<double>(rollout.completion_token_lists[i].size());
      for (std::size_t k = 0; k < reward_names.size(); ++k) {
        const double v = rollout.rewards(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k));
        if (std::isnan(v)) continue;
        per_function[k].first += v;
        per_function[k].second += 1;
      }
    }
  }
  std::map<std::string, double> out;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out["eval_reward"] = reward_count ? reward_sum / static_cast<double>(reward_count) : nan;
  out["eval_completions/mean_length"] = length_sum / static_cast<double>(size * g);
  for (std::size_t k = 0; k < reward_names.size(); ++k) {
    const auto& [sum, count] = per_function[k];
    out["eval_rewards/" + reward_names[k] + "/mean"] = count ? sum / static_cast<double>(count) : nan;
  }
  if (!options.accuracy_reward.empty()) {
    out["eval_accuracy"] = out.at("eval_rewards/" + options.accuracy_reward + "/mean");
  }
  return out;
}

}  // namespace grpo
