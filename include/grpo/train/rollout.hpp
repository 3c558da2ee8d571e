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
#include "grpo/train/rollout_exchange.hpp"
#include "grpo/train/scored_rollout.hpp"
#include "grpo/train/state.hpp"

namespace grpo {

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
    const int64_t positions = model_max_positions(policy_.model());
    const auto length = static_cast<int64_t>(ids.size());
    if (positions > 0 && length + config_.max_completion_length > positions) {
      const int64_t room = positions - config_.max_completion_length;
      if (!config_.truncate_prompts_to_model_positions || room < 1) {
        throw InvalidArgument(
            "grpo::GRPOTrainer: the prompt of dataset row " + std::to_string(row) + " has " + std::to_string(length) +
            " tokens (after max_prompt_length = " + std::to_string(config_.max_prompt_length) +
            "); with max_completion_length = " + std::to_string(config_.max_completion_length) + " that needs " +
            std::to_string(length + config_.max_completion_length) + " positions, but the model has " +
            std::to_string(positions) + " (max_position_embeddings)" +
            (room < 1 ? std::string("; max_completion_length alone leaves no room for a prompt")
                      : std::string("; lower max_prompt_length or max_completion_length, or set "
                                    "truncate_prompts_to_model_positions to keep the prompt's last ") +
                            std::to_string(room) + " tokens"));
      }
      ids.erase(ids.begin(), ids.end() - room);
      if (!warned_truncation_) {
        warned_truncation_ = true;
        pending_warning_ = "prompts longer than the model's " + std::to_string(positions) +
                           " positions minus max_completion_length = " + std::to_string(config_.max_completion_length) +
                           " are cut to their last " + std::to_string(room) + " tokens (first: dataset row " +
                           std::to_string(row) + ", " + std::to_string(length) + " tokens); this warning is given once";
      }
    }
    return ids;
  }

  /// Generates completions for dataset rows `indices` (each prompt's G = group_size copies consecutive) and scores
  /// them; `progress` reaches the reward functions (RewardInputs::trainer_state). Row b samples with the seed
  /// row_seed(options.seed, b) however the rows are split. With a process group of P > 1 ranks this is a
  /// collective: each rank generates and scores its slice of the rows (detail::rank_rows) and every rank returns
  /// all of them (gather_rollout).
  Rollout generate(const Dataset& data, const std::vector<int64_t>& indices, int group_size,
                   const GenerationOptions& options, const TrainingProgress& progress) {
    if (group_ == nullptr || group_->size() == 1) return generate_rows(data, indices, group_size, options, progress);
    const auto [first, last] = detail::rank_rows(static_cast<int64_t>(indices.size()), group_->rank(), group_->size());
    const std::vector<int64_t> mine(indices.begin() + first, indices.begin() + last);
    GenerationOptions sliced = options;
    if (options.seed && options.row_seeds.empty()) {
      for (int64_t b = first; b < last; ++b)
        sliced.row_seeds.push_back(row_seed(*options.seed, static_cast<uint64_t>(b)));
    }
    const Rollout local =
        generate_rows(data, mine, group_size, sliced, progress, static_cast<std::size_t>(first), indices.size());
    return gather_rollout(*group_, local, tokenizer_.pad_token_id(),
                          static_cast<Eigen::Index>(scorer_.functions().size()),
                          "rollout of " + std::to_string(indices.size()) + " rows");
  }

  /// The process group rollouts are split over (null: this process alone).
  void set_process_group(ProcessGroup* group) { group_ = group; }

 private:
  // Rows [row_offset, row_offset + indices.size()) of a batch of batch_rows (0: the whole batch).
  Rollout generate_rows(const Dataset& data, const std::vector<int64_t>& indices, int group_size,
                        const GenerationOptions& options, const TrainingProgress& progress, std::size_t row_offset = 0,
                        std::size_t batch_rows = 0) {
    Rollout r;
    if (indices.empty()) {  // a rank with no rows of a small batch
      r.rewards.resize(0, static_cast<Eigen::Index>(scorer_.functions().size()));
      r.weighted_rewards.resize(0);
      r.prompt_ids = r.prompt_mask = r.completion_ids = r.completion_mask = torch::zeros({0, 1}, torch::kLong);
      return r;
    }
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
    inputs.row_offset = row_offset;
    inputs.batch_rows = batch_rows;
    inputs.trainer_state = progress;
    auto scores = scorer_.score(inputs);
    r.rewards = std::move(scores.rewards_per_func);
    const auto& w = scorer_.weights();
    r.weighted_rewards = detail::weighted_nansum(
        r.rewards, Eigen::Map<const Eigen::VectorXd>(w.data(), static_cast<Eigen::Index>(w.size())));
    r.reward_metrics = std::move(scores.metrics);
    r.warnings = std::move(scores.warnings);
    if (!pending_warning_.empty()) r.warnings.insert(r.warnings.begin(), std::exchange(pending_warning_, ""));
    return r;
  }

 public:
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
  ProcessGroup* group_ = nullptr;
  mutable bool warned_truncation_ = false;  // the one warning about prompts cut to the model's positions
  mutable std::string pending_warning_;
};

}  // namespace grpo
