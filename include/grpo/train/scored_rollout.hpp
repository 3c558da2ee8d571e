#pragma once
// A scored rollout: N completions of a generation batch (each prompt's G rows consecutive) with their tokens,
// texts, truncation flags and rewards, on the CPU; joining rows of several rollouts (DAPO dynamic sampling) and
// the generation-batch metrics of TRL's log.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>
#include <Eigen/Core>

#include "grpo/core/advantages.hpp"
#include "grpo/detail/nan_stats.hpp"
#include "grpo/detail/padding.hpp"

namespace grpo {

/// N scored completions (each prompt's G rows consecutive), on the CPU.
struct Rollout {
  /// [N] dataset row of each completion.
  std::vector<int64_t> dataset_index;
  /// [N] prompt and completion texts (the completion without its EOS).
  std::vector<std::string> prompts, completions;
  /// [N] completion tokens (EOS included when generated), as the reward functions see them.
  std::vector<std::vector<int64_t>> completion_token_lists;
  /// [N,P] left-padded prompt tokens and mask (prompts left-truncated to max_prompt_length).
  torch::Tensor prompt_ids, prompt_mask;
  /// [N,T] right-padded completion tokens and mask (EOS included), as generated.
  torch::Tensor completion_ids, completion_mask;
  /// [N] no EOS within max_completion_length.
  std::vector<bool> truncated;
  /// N x K rewards (NaN = none) and [N] their weighted sum (NaN for unscorable rows), as compute_advantages sums.
  Eigen::MatrixXd rewards;
  Eigen::VectorXd weighted_rewards;
  /// Metrics the scorer and the reward functions reported (of the last round), and its warnings.
  std::map<std::string, double> reward_metrics;
  std::vector<std::string> warnings;

  std::size_t size() const { return completions.size(); }
};

namespace detail {

// Rows `rows` of `parts` (part index, row) joined into one rollout; tensors re-padded to the widest part.
inline Rollout join_rows(const std::vector<const Rollout*>& parts,
                         const std::vector<std::pair<std::size_t, int64_t>>& rows, int64_t pad_token_id) {
  Rollout out;
  if (rows.empty()) return out;
  const auto k = parts.front()->rewards.cols();
  out.rewards.resize(static_cast<Eigen::Index>(rows.size()), k);
  out.weighted_rewards.resize(static_cast<Eigen::Index>(rows.size()));
  std::vector<std::vector<int64_t>> prompt_lists;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const Rollout& from = *parts[rows[r].first];
    const auto i = rows[r].second;
    const auto u = static_cast<std::size_t>(i);
    out.dataset_index.push_back(from.dataset_index[u]);
    out.prompts.push_back(from.prompts[u]);
    out.completions.push_back(from.completions[u]);
    out.completion_token_lists.push_back(from.completion_token_lists[u]);
    out.truncated.push_back(from.truncated[u]);
    out.rewards.row(static_cast<Eigen::Index>(r)) = from.rewards.row(static_cast<Eigen::Index>(i));
    out.weighted_rewards[static_cast<Eigen::Index>(r)] = from.weighted_rewards[static_cast<Eigen::Index>(i)];
    const auto mask = from.prompt_mask[i].to(torch::kBool);
    const auto ids = from.prompt_ids[i].masked_select(mask);
    prompt_lists.emplace_back(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  }
  std::tie(out.prompt_ids, out.prompt_mask) = pad_rows(prompt_lists, pad_token_id, /*left=*/true);
  std::tie(out.completion_ids, out.completion_mask) =
      pad_rows(out.completion_token_lists, pad_token_id, /*left=*/false, /*min_length=*/1);
  out.reward_metrics = parts.back()->reward_metrics;
  for (const auto* p : parts) out.warnings.insert(out.warnings.end(), p->warnings.begin(), p->warnings.end());
  return out;
}

}  // namespace detail

/// The generation-batch metrics of TRL's log (docs/math.md §6): reward, reward_std, rewards/<name>/mean|std,
/// frac_reward_zero_std, completions/{mean,min,max}_length, completions/clipped_ratio, plus the reward functions'
/// own metrics.
inline std::map<std::string, double> rollout_metrics(const Rollout& rollout, const Advantages& advantages,
                                                     const std::vector<std::string>& reward_names) {
  std::map<std::string, double> m = rollout.reward_metrics;
  const auto n = static_cast<double>(rollout.size());
  m["reward"] = detail::nanmean(advantages.rewards);
  m["reward_std"] = detail::nanstd(advantages.rewards);
  for (std::size_t k = 0; k < reward_names.size(); ++k) {
    const auto column = rollout.rewards.col(static_cast<Eigen::Index>(k));
    m["rewards/" + reward_names[k] + "/mean"] = detail::nanmean(column);
    m["rewards/" + reward_names[k] + "/std"] = detail::nanstd(column);
  }
  double zero_std = 0, clipped = 0, length_sum = 0;
  double min_length = std::numeric_limits<double>::infinity(), max_length = 0;
  for (std::size_t i = 0; i < rollout.size(); ++i) {
    zero_std += advantages.zero_std[i] ? 1 : 0;
    clipped += rollout.truncated[i] ? 1 : 0;
    const auto length = static_cast<double>(rollout.completion_token_lists[i].size());
    length_sum += length;
    min_length = std::min(min_length, length);
    max_length = std::max(max_length, length);
  }
  m["frac_reward_zero_std"] = zero_std / n;
  m["completions/clipped_ratio"] = clipped / n;
  m["completions/mean_length"] = length_sum / n;
  m["completions/min_length"] = min_length;
  m["completions/max_length"] = max_length;
  return m;
}

}  // namespace grpo
