#pragma once
// A small supervised fine-tuning helper: teacher-forced cross-entropy on (prompt, completion) pairs. Used as a
// warm-up so that a freshly initialised model sometimes produces a right answer that GRPO can then reinforce.

#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "grpo/detail/padding.hpp"
#include "grpo/models/policy.hpp"
#include "grpo/tokenizers/tokenizer.hpp"

namespace grpo {

/// One supervised example: the completion (followed by EOS) is the target.
struct SFTExample {
  /// Prompt text (not trained on).
  std::string prompt;
  /// Target completion text.
  std::string completion;
};

/// Options of sft_train.
struct SFTOptions {
  /// Optimizer steps.
  int64_t steps = 200;
  /// Examples per step, drawn with replacement.
  int64_t batch_size = 32;
  /// AdamW learning rate (constant).
  double learning_rate = 1e-3;
  /// Seed of the example draws.
  uint64_t seed = 0;
  /// Print the mean loss every this many steps (0 = never).
  int64_t log_every = 0;
};

/// Trains `policy` to produce each example's completion + EOS after its prompt; returns the mean loss (nats per
/// completion token) of the last min(20, steps) steps.
template <class Model, class Tokenizer>
double sft_train(Policy<Model>& policy, const Tokenizer& tokenizer, const std::vector<SFTExample>& examples,
                 const SFTOptions& options) {
  static_assert(check_tokenizer<Tokenizer>());
  if (examples.empty()) throw std::invalid_argument("sft_train: no examples");
  if (options.steps < 0 || options.batch_size < 1) {
    throw std::invalid_argument("sft_train: steps must be >= 0 and batch_size >= 1");
  }
  torch::Device device = torch::kCPU;
  for (const auto& p : policy.parameters()) {
    device = p.device();
    break;
  }
  torch::optim::AdamW optimizer(policy.parameters(), torch::optim::AdamWOptions(options.learning_rate));
  std::mt19937_64 rng(options.seed);
  double recent = 0;
  int64_t recent_count = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    std::vector<std::vector<int64_t>> prompts, completions;
    for (int64_t i = 0; i < options.batch_size; ++i) {
      const auto& ex = examples[static_cast<std::size_t>(rng() % examples.size())];
      prompts.push_back(tokenizer.encode(ex.prompt));
      auto target = tokenizer.encode(ex.completion);
      target.push_back(tokenizer.eos_token_id());
      completions.push_back(std::move(target));
    }
    const auto [prompt_ids, prompt_mask] = detail::pad_rows(prompts, tokenizer.pad_token_id(), true);
    const auto [completion_ids, completion_mask] = detail::pad_rows(completions, tokenizer.pad_token_id(), false);
    const auto mask = completion_mask.to(device);
    const torch::Tensor logps = policy
                           .completion_logps(prompt_ids.to(device), prompt_mask.to(device), completion_ids.to(device),
                                             mask)
                           .logps;
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
    if (options.log_every > 0 && (step + 1) % options.log_every == 0) {
      std::printf("sft step %lld/%lld | loss %.4f\n", static_cast<long long>(step + 1),
                  static_cast<long long>(options.steps), value);
      std::fflush(stdout);
    }
  }
  return recent_count ? recent / static_cast<double>(recent_count) : 0.0;
}

}  // namespace grpo
