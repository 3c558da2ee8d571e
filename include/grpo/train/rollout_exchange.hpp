#pragma once
// Rollouts across processes (docs/math.md §9, "P processes"): rank r generates and scores rows
// [N r / P, N (r + 1) / P) of a generation batch of N rows (TRL's process slice; a prompt's G completions may span
// ranks), then every rank receives every rank's rows, so that advantages, dynamic sampling and metrics see the
// whole generation batch exactly as one process would.

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/types.h>
#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "grpo/detail/nan_stats.hpp"
#include "grpo/detail/padding.hpp"
#include "grpo/distributed/process_group.hpp"
#include "grpo/train/scored_rollout.hpp"

namespace grpo {
namespace detail {

/// Rows [first, second) of a batch of n rows that rank `rank` of `size` handles.
inline std::pair<int64_t, int64_t> rank_rows(int64_t n, int rank, int size) {
  return {n * rank / size, n * (rank + 1) / size};
}

// The token ids of row i of a padded [N, T] batch (where mask is 1).
inline std::vector<int64_t> unpadded_row(const torch::Tensor& ids, const torch::Tensor& mask, int64_t i) {
  const auto kept = ids[i].masked_select(mask[i].to(torch::kBool)).contiguous();
  return std::vector<int64_t>(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + kept.numel());
}

inline std::vector<uint8_t> pack_rollout(const Rollout& r) {
  nlohmann::json j;
  j["dataset_index"] = r.dataset_index;
  j["prompts"] = r.prompts;
  j["completions"] = r.completions;
  j["completion_tokens"] = r.completion_token_lists;
  std::vector<std::vector<int64_t>> prompt_tokens;
  for (int64_t i = 0; i < static_cast<int64_t>(r.size()); ++i) {
    prompt_tokens.push_back(unpadded_row(r.prompt_ids, r.prompt_mask, i));
  }
  j["prompt_tokens"] = prompt_tokens;
  j["truncated"] = r.truncated;
  std::vector<double> rewards;  // row-major N x K; CBOR keeps NaN (no reward) exactly
  for (Eigen::Index i = 0; i < r.rewards.rows(); ++i) {
    for (Eigen::Index k = 0; k < r.rewards.cols(); ++k) rewards.push_back(r.rewards(i, k));
  }
  j["rewards"] = rewards;
  j["weighted_rewards"] =
      std::vector<double>(r.weighted_rewards.data(), r.weighted_rewards.data() + r.weighted_rewards.size());
  j["reward_metrics"] = r.reward_metrics;
  j["warnings"] = r.warnings;
  return nlohmann::json::to_cbor(j);
}

}  // namespace detail

/// Every rank's part of a rollout joined in rank order (the generation batch one process would have made):
/// texts, tokens, rewards and truncation flags concatenated, tensors re-padded; the reward functions' own metrics
/// averaged over the ranks, warnings of every rank kept. `num_reward_functions` is K (for empty parts).
inline Rollout gather_rollout(ProcessGroup& group, const Rollout& local, int64_t pad_token_id,
                              Eigen::Index num_reward_functions, const std::string& what) {
  const auto packed = detail::pack_rollout(local);
  const auto parts = group.all_gather_bytes(std::string(packed.begin(), packed.end()), what);
  Rollout out;
  std::vector<std::vector<int64_t>> prompt_tokens;
  std::vector<double> rewards, weighted;
  std::map<std::string, std::pair<double, int>> metric_sums;
  for (const auto& bytes : parts) {
    const auto j = nlohmann::json::from_cbor(bytes);
    const auto append = [&](const char* key, auto& into) {
      const auto values = j.at(key).get<std::decay_t<decltype(into)>>();
      into.insert(into.end(), values.begin(), values.end());
    };
    append("dataset_index", out.dataset_index);
    append("prompts", out.prompts);
    append("completions", out.completions);
    append("completion_tokens", out.completion_token_lists);
    append("prompt_tokens", prompt_tokens);
    append("truncated", out.truncated);
    append("rewards", rewards);
    append("weighted_rewards", weighted);
    append("warnings", out.warnings);
    for (const auto& [name, value] : j.at("reward_metrics").get<std::map<std::string, double>>()) {
      if (std::isnan(value)) continue;
      metric_sums[name].first += value;
      metric_sums[name].second += 1;
    }
  }
  const auto n = static_cast<Eigen::Index>(out.completions.size());
  out.rewards.resize(n, num_reward_functions);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index k = 0; k < num_reward_functions; ++k) {
      out.rewards(i, k) = rewards[static_cast<std::size_t>(i * num_reward_functions + k)];
    }
  }
  out.weighted_rewards = Eigen::Map<const Eigen::VectorXd>(weighted.data(), n);
  for (const auto& [name, sum] : metric_sums) out.reward_metrics[name] = sum.first / sum.second;
  std::tie(out.prompt_ids, out.prompt_mask) = detail::pad_rows(prompt_tokens, pad_token_id, /*left=*/true);
  std::tie(out.completion_ids, out.completion_mask) =
      detail::pad_rows(out.completion_token_lists, pad_token_id, /*left=*/false, /*min_length=*/1);
  return out;
}

}  // namespace grpo
