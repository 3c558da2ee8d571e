#pragma once
// Supervised fine-tuning on a dataset column: teacher-forced cross-entropy of the target (followed by EOS) after
// the prompt. A warm-up before GRPO, so that a freshly initialised model is sometimes right and GRPO has something
// to reinforce. It reports through the trainer's callbacks (train/callbacks.hpp): on_train_begin, on_step_end,
// on_log ({"loss", "learning_rate"} every logging_steps) and on_train_end; a hook returning Control::stop ends it.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "grpo/data/dataset.hpp"
#include "grpo/detail/padding.hpp"
#include "grpo/detail/random.hpp"
#include "grpo/error.hpp"
#include "grpo/tokenizers/tokenizer.hpp"
#include "grpo/train/callbacks.hpp"
#include "grpo/train/policy.hpp"

namespace grpo {

/// Options of sft_train.
struct SFTOptions {
  /// The dataset column holding the target completion (a string; a number is used as its JSON text).
  std::string target_column = "completion";
  /// Optimizer steps.
  int64_t steps = 200;
  /// Examples per step, drawn with replacement (seeded).
  int64_t batch_size = 32;
  /// AdamW learning rate (constant).
  double learning_rate = 1e-3;
  /// Seed of the example draws.
  uint64_t seed = 0;
  /// Steps between on_log calls.
  int64_t logging_steps = 10;
};

/// What sft_train did.
struct SFTResult {
  /// Optimizer steps done.
  int64_t steps = 0;
  /// Mean loss (nats per target token) of the last min(20, steps) steps.
  double recent_loss = 0;
  /// A callback asked to stop before options.steps.
  bool stopped_early = false;
};

/// Trains `policy` to produce each row's target_column + EOS after its prompt, `options.steps` steps of
/// `batch_size` rows; `callbacks` as the trainer's (lvalues by reference, temporaries moved in).
template <class Model, class Tokenizer, class... Callbacks>
SFTResult sft_train(Policy<Model>& policy, const Tokenizer& tokenizer, const Dataset& dataset,
                    const SFTOptions& options, Callbacks&&... callbacks) {
  static_assert(check_tokenizer<Tokenizer>());
  const std::string where = "grpo::sft_train: ";
  if (dataset.empty()) throw InvalidArgument(where + "the dataset is empty");
  if (options.steps < 0 || options.batch_size < 1 || options.logging_steps < 1) {
    throw InvalidArgument(where + "steps must be >= 0, batch_size >= 1 and logging_steps >= 1");
  }
  // Every row's prompt and target, tokenised once (errors name the row).
  std::vector<std::vector<int64_t>> prompts, targets;
  for (std::size_t i = 0; i < dataset.size(); ++i) {
    const nlohmann::json& row = dataset.row(i);
    const auto it = row.find(options.target_column);
    if (it == row.end() || it->is_null()) {
      throw InvalidArgument(where + "dataset row " + std::to_string(i) + " has no \"" + options.target_column +
                            "\" (SFTOptions::target_column)");
    }
    prompts.push_back(tokenizer.encode(dataset.prompt(i)));
    auto target = tokenizer.encode(it->is_string() ? it->template get<std::string>() : it->dump());
    target.push_back(tokenizer.eos_token_id());
    targets.push_back(std::move(target));
  }
  CallbackList hooks;
  (hooks.add(std::forward<Callbacks>(callbacks)), ...);
  const torch::Device device = policy.device();
  torch::optim::AdamW optimizer(policy.parameters(), torch::optim::AdamWOptions(options.learning_rate));
  detail::SplitMix64 rng(options.seed);
  TrainerState state;
  state.max_steps = options.steps;
  SFTResult result;
  double recent = 0;
  int64_t recent_count = 0;
  bool stop = hooks.on_train_begin(state) == Control::stop;
  for (int64_t step = 0; step < options.steps && !stop; ++step) {
    std::vector<std::vector<int64_t>> batch_prompts, batch_targets;
    for (int64_t i = 0; i < options.batch_size; ++i) {
      const auto row = static_cast<std::size_t>(rng.below(prompts.size()));
      batch_prompts.push_back(prompts[row]);
      batch_targets.push_back(targets[row]);
    }
    const auto [prompt_ids, prompt_mask] = detail::pad_rows(batch_prompts, tokenizer.pad_token_id(), true);
    const auto [target_ids, target_mask] = detail::pad_rows(batch_targets, tokenizer.pad_token_id(), false);
    const auto mask = target_mask.to(device);
    const torch::Tensor logps =
        policy.completion_logps(prompt_ids.to(device), prompt_mask.to(device), target_ids.to(device), mask).logps;
    const torch::Tensor fmask = mask.to(logps.scalar_type());
    const torch::Tensor loss = -(logps * fmask).sum() / fmask.sum().clamp_min(1.0);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    const double value = loss.item<double>();
    if (step >= options.steps - 20) {
      recent += value;
      ++recent_count;
    }
    ++state.global_step;
    state.micro_step = state.global_step;
    state.epoch = static_cast<double>(state.global_step * options.batch_size) / static_cast<double>(prompts.size());
    stop |= hooks.on_step_end(state) == Control::stop;
    if (state.global_step % options.logging_steps == 0 || state.global_step == options.steps) {
      stop |= hooks.on_log(state, {{"loss", value}, {"learning_rate", options.learning_rate}}) == Control::stop;
    }
  }
  hooks.on_train_end(state);
  result.steps = state.global_step;
  result.recent_loss = recent_count ? recent / static_cast<double>(recent_count) : 0.0;
  result.stopped_early = state.global_step < options.steps;
  return result;
}

}  // namespace grpo
