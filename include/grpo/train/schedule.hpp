#pragma once
// Learning-rate schedule and run length, with Hugging Face Trainer semantics. Torch-free.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "grpo/error.hpp"
#include "grpo/train/config.hpp"

namespace grpo {

/// Multiplier of learning_rate for the update after `step` optimizer steps (0-based) of `total_steps`, with
/// `warmup_steps` of linear warmup from 0 (so the very first update has multiplier 0 when warming up, as in
/// Hugging Face). After warmup: constant 1 (Hugging Face's constant_with_warmup; with no warmup it is "constant"),
/// linear decay reaching 0 at total_steps, or half a cosine reaching 0 at total_steps. Never negative.
inline double lr_multiplier(LrSchedulerType type, int64_t step, int64_t total_steps, int64_t warmup_steps) {
  if (step < 0 || total_steps < 0 || warmup_steps < 0) {
    throw InvalidArgument("grpo::lr_multiplier: step, total_steps and warmup_steps must be >= 0, got " +
                          std::to_string(step) + ", " + std::to_string(total_steps) + ", " +
                          std::to_string(warmup_steps));
  }
  if (step < warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  }
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = static_cast<double>(step - warmup_steps) / decay_steps;
  switch (type) {
    case LrSchedulerType::constant:
      return 1.0;
    case LrSchedulerType::linear:
      return std::max(0.0, 1.0 - progress);
    case LrSchedulerType::cosine: {
      const double pi = std::acos(-1.0);
      return std::max(0.0, 0.5 * (1.0 + std::cos(pi * std::min(progress, 1.0))));
    }
  }
  return 1.0;
}

/// Warmup length in optimizer steps: warmup_steps if > 0, else ceil(warmup_ratio * total_steps).
inline int64_t resolve_warmup_steps(const GRPOConfig& config, int64_t total_steps) {
  if (config.warmup_steps > 0) return config.warmup_steps;
  return static_cast<int64_t>(std::ceil(config.warmup_ratio * static_cast<double>(total_steps)));
}

/// Learning rate of the update after `step` optimizer steps: learning_rate times lr_multiplier.
inline double learning_rate_at(const GRPOConfig& config, int64_t step, int64_t total_steps) {
  return config.learning_rate *
         lr_multiplier(config.lr_scheduler_type, step, total_steps, resolve_warmup_steps(config, total_steps));
}

/// Optimizer steps in one pass over `num_prompts` prompts: each full generation batch (prompts_per_generation
/// prompts; an incomplete last one is dropped) gives steps_per_generation * num_iterations micro-steps, and
/// gradient_accumulation_steps micro-steps make one optimizer step (at least 1, as in Hugging Face).
/// Throws when the dataset cannot fill a single generation batch.
inline int64_t optimizer_steps_per_epoch(const GRPOConfig& config, int64_t num_prompts) {
  const int64_t prompts_per_batch = config.prompts_per_generation();
  if (prompts_per_batch < 1 || num_prompts < prompts_per_batch) {
    throw InvalidArgument("grpo::optimizer_steps_per_epoch: the dataset has " + std::to_string(num_prompts) +
                          " prompts but one generation batch needs " + std::to_string(prompts_per_batch) +
                          " (generation_batch_size / num_generations); use more prompts or a smaller batch");
  }
  const int64_t micro_steps = (num_prompts / prompts_per_batch) * config.micro_steps_per_generation();
  return std::max<int64_t>(1, micro_steps / config.gradient_accumulation_steps);
}

/// Total optimizer steps of the run: max_steps if > 0, else ceil(num_train_epochs * optimizer_steps_per_epoch).
inline int64_t resolve_total_steps(const GRPOConfig& config, int64_t num_prompts) {
  if (config.max_steps > 0) return config.max_steps;
  const double steps = config.num_train_epochs * static_cast<double>(optimizer_steps_per_epoch(config, num_prompts));
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(steps)));
}

}  // namespace grpo
