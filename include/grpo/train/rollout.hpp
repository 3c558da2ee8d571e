#pragma once
// Rollouts: dataset rows -> prompts (conversations rendered with the chat template) -> completions (generated with
// the KV cache, seeded) -> rewards (the dataset's columns are the reward functions' kwargs), and DAPO dynamic
// sampling over several such rounds. The padded tensors
// of the generation are kept as they are for the training buffer; token-id lists and texts are made once, for the
// reward functions and the logs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>
#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "grpo/core/advantages.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/data/sampler.hpp"
#include "grpo/detail/nan_stats.hpp"
#include "grpo/detail/padding.hpp"
#include "grpo/detail/random.hpp"
#include "grpo/error.hpp"
#include "grpo/generation/generate.hpp"
#include "grpo/rewards/scoring.hpp"
#include "grpo/tokenizers/tokenizer.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/dynamic_sampling.hpp"
#include "grpo/train/policy.hpp"
#include "grpo/train/prompt_renderer.hpp"
#include "grpo/train/state.hpp"

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

/// Makes rollouts for a policy: encodes prompts, generates, decodes, scores.
template <class Model, class Tokenizer>
class RolloutGenerator {
  static_assert(check_tokenizer<Tokenizer>());

 public:
  /// The policy, tokenizer, scorer, config and renderer must outlive the generator.
  RolloutGenerator(Policy<Model>& policy, const Tokenizer& tokenizer, RewardScorer& scorer, const GRPOConfig& config,
                   const PromptRenderer& renderer)
      : policy_(policy), tokenizer_(tokenizer), scorer_(scorer), config_(config), renderer_(renderer) {}

  /// The sampling options of a training rollout (eval = false) or of evaluation (greedy unless eval_sample), seeded
  /// from config.seed and `call`, the count of rollouts made before.
  GenerationOptions generation_options(uint64_t call, bool eval, bool eval_sample = false) const {
    GenerationOptions o;
    o.max_new_tokens = config_.max_completion_length;
    o.temperature = config_.temperature;
    o.top_p = config_.top_p;
    o.top_k = config_.top_k;
    o.min_p = config_.min_p;
    o.repetition_penalty = config_.repetition_penalty;
    o.eos_token_ids = std::vector<int64_t>{tokenizer_.eos_token_id()};
    o.pad_token_id = tokenizer_.pad_token_id();
    o.do_sample = !eval || eval_sample;
    o.seed = detail::mix_seed(config_.seed, eval ? 0xE7A1ULL + call : call);
    return o;
  }

  /// Prompt tokens, left-truncated to max_prompt_length (TRL keeps the end of the prompt).
  std::vector<int64_t> encode_prompt(const std::string& prompt, int64_t row) const {
    auto ids = tokenizer_.encode(prompt);
    if (ids.empty()) {
      throw InvalidArgument("grpo::GRPOTrainer: the prompt of dataset row " + std::to_string(row) +
                            " encodes to no tokens: \"" + prompt + "\"");
    }
    if (static_cast<int64_t>(ids.size()) > config_.max_prompt_length) {
      ids.erase(ids.begin(), ids.end() - config_.max_prompt_length);
    }
    return ids;
  }

  /// Generates completions for dataset rows `indices` (each prompt's G = group_size copies consecutive) and scores
  /// them; `progress` reaches the reward functions (RewardInputs::trainer_state).
  Rollout generate(const Dataset& data, const std::vector<int64_t>& indices, int group_size,
                   const GenerationOptions& options, const TrainingProgress& progress) {
    Rollout r;
    std::vector<nlohmann::json> rows, messages;
    std::vector<std::vector<int64_t>> prompt_lists;
    bool conversational = false;
    for (const auto i : indices) {
      const auto& prompt = data.prompt_value(static_cast<std::size_t>(i));
      conversational |= prompt.is_array();
      messages.push_back(prompt.is_array() ? prompt : nlohmann::json());
      r.dataset_index.push_back(i);
      r.prompts.push_back(renderer_(prompt, i));
      prompt_lists.push_back(encode_prompt(r.prompts.back(), i));
      rows.push_back(data.row(static_cast<std::size_t>(i)));
    }
    std::tie(r.prompt_ids, r.prompt_mask) = detail::pad_rows(prompt_lists, tokenizer_.pad_token_id(), /*left=*/true);
    const auto device = policy_.device();
    // Each prompt's G copies are consecutive: prefill it once and share its keys/values with the group's rows.
    GenerationOptions grouped = options;
    bool same_in_groups = group_size > 1 && indices.size() % static_cast<std::size_t>(group_size) == 0;
    for (std::size_t i = 0; same_in_groups && i < indices.size(); ++i) {
      same_in_groups = indices[i] == indices[i - i % static_cast<std::size_t>(group_size)];
    }
    if (same_in_groups) grouped.prompt_group_size = group_size;
    GenerationResult generated = policy_.generate(r.prompt_ids.to(device), r.prompt_mask.to(device), grouped);
    r.completion_ids = generated.completion_ids.to(torch::kCPU).contiguous();
    r.completion_mask = generated.completion_mask.to(torch::kCPU).contiguous();
    if (r.completion_ids.size(1) == 0) {  // max_completion_length tokens of nothing: keep one padded column
      r.completion_ids = torch::full({r.completion_ids.size(0), 1}, tokenizer_.pad_token_id(), torch::kLong);
      r.completion_mask = torch::zeros({r.completion_ids.size(0), 1}, torch::kLong);
    }
    const auto lengths = generated.lengths.to(torch::kCPU).contiguous();
    const auto truncated = generated.truncated.to(torch::kCPU).contiguous();
    const int64_t eos = tokenizer_.eos_token_id();
    const auto* ids = r.completion_ids.template data_ptr<int64_t>();
    const int64_t width = r.completion_ids.size(1);
    for (int64_t b = 0; b < r.completion_ids.size(0); ++b) {
      const auto length = lengths[b].template item<int64_t>();
      std::vector<int64_t> tokens(ids + b * width, ids + b * width + length);
      r.truncated.push_back(truncated[b].template item<bool>());
      std::vector<int64_t> text_tokens = tokens;
      if (!text_tokens.empty() && text_tokens.back() == eos) text_tokens.pop_back();
      r.completions.push_back(tokenizer_.decode(text_tokens));
      r.completion_token_lists.push_back(std::move(tokens));
    }
    RewardInputs inputs;
    inputs.prompts = r.prompts;
    if (conversational) inputs.prompt_messages = std::move(messages);
    inputs.completions = r.completions;
    inputs.completion_ids = r.completion_token_lists;
    inputs.columns = Columns::from_rows(rows);
    inputs.num_generations = group_size;
    inputs.trainer_state = progress;
    auto scores = scorer_.score(inputs);
    r.rewards = std::move(scores.rewards_per_func);
    const auto& w = scorer_.weights();
    r.weighted_rewards = detail::weighted_nansum(
        r.rewards, Eigen::Map<const Eigen::VectorXd>(w.data(), static_cast<Eigen::Index>(w.size())));
    r.reward_metrics = std::move(scores.metrics);
    r.warnings = std::move(scores.warnings);
    return r;
  }

  /// The next training rollout: the sampler's next generation batch and, with dynamic_sampling (DAPO), more
  /// rounds until every group has varied rewards or the retries run out; then equal-reward groups fill the rest,
  /// so every step trains on a full batch. `call` counts generation rounds (it seeds them) and is advanced.
  /// Adds the dynamic-sampling metrics to `metrics`.
  Rollout next(const Dataset& data, RepeatSampler& sampler, uint64_t& call, const TrainingProgress& progress,
               std::map<std::string, double>& metrics) {
    const int g = config_.num_generations;
    Rollout first = generate(data, sampler.next_generation_batch(), g, generation_options(call++, false), progress);
    if (!config_.dynamic_sampling) return first;
    const auto wanted = static_cast<int64_t>(first.size()) / g;
    DynamicSampling sampling(wanted, config_.max_dynamic_sampling_retries);
    std::vector<Rollout> rounds;
    rounds.push_back(std::move(first));
    std::vector<std::pair<std::size_t, int64_t>> kept_groups, spare_groups;  // (round, group)
    for (;;) {
      const Rollout& round = rounds.back();
      const std::vector<double> sums(round.weighted_rewards.data(),
                                     round.weighted_rewards.data() + round.weighted_rewards.size());
      std::vector<bool> keep(static_cast<std::size_t>(round.size()) / static_cast<std::size_t>(g), false);
      for (const auto group : sampling.add_round(sums, g)) keep[static_cast<std::size_t>(group)] = true;
      for (std::size_t group = 0; group < keep.size(); ++group) {
        (keep[group] ? kept_groups : spare_groups).emplace_back(rounds.size() - 1, static_cast<int64_t>(group));
      }
      if (!sampling.more_rounds()) break;
      rounds.push_back(generate(data, sampler.next_generation_batch(), g, generation_options(call++, false), progress));
    }
    int64_t filled = 0;
    for (; static_cast<int64_t>(kept_groups.size()) < wanted; ++filled) {
      kept_groups.push_back(spare_groups[static_cast<std::size_t>(filled)]);
    }
    std::vector<const Rollout*> parts;
    for (const auto& r : rounds) parts.push_back(&r);
    std::vector<std::pair<std::size_t, int64_t>> rows;
    for (const auto& [round, group] : kept_groups) {
      for (int i = 0; i < g; ++i) rows.emplace_back(round, group * g + i);
    }
    Rollout joined = detail::join_rows(parts, rows, tokenizer_.pad_token_id());
    for (const auto& [name, value] : sampling.metrics()) metrics[name] = value;
    metrics["dynamic_sampling/zero_std_groups_used"] = static_cast<double>(filled);
    if (filled > 0) {
      joined.warnings.push_back("dynamic sampling: only " + std::to_string(wanted - filled) + " of " +
                                std::to_string(wanted) + " groups had differing rewards after " +
                                std::to_string(config_.max_dynamic_sampling_retries) +
                                " extra generation batches (max_dynamic_sampling_retries); " + std::to_string(filled) +
                                " equal-reward groups fill the batch");
    }
    return joined;
  }

 private:
  Policy<Model>& policy_;
  const Tokenizer& tokenizer_;
  RewardScorer& scorer_;
  const GRPOConfig& config_;
  const PromptRenderer& renderer_;
};

}  // namespace grpo
