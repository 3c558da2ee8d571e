#pragma once
// How a run's batches are laid out (TRL's generate_every buffering, docs/math.md §9): the sampler a
// config implies, and what each micro-step does. Torch-free.

#include <cstdint>
#include <string>

#include "grpo/data/sampler.hpp"
#include "grpo/error.hpp"
#include "grpo/train/config.hpp"

namespace grpo {

/// The sampler a GRPOConfig implies: prompts_per_generation() prompts per batch, its seed and shuffle_dataset.
inline RepeatSampler make_sampler(const GRPOConfig& config, int64_t num_prompts) {
  return RepeatSampler(num_prompts, config.prompts_per_generation(), config.num_generations, config.seed,
                       config.shuffle_dataset);
}

/// What micro-step number `micro_step` (0-based, counting every training forward/backward) does.
struct MicroStep {
  /// Which generation batch it trains on (0-based); a new one every steps_per_generation * num_iterations.
  int64_t generation = 0;
  /// Which of the steps_per_generation slices of that batch (rows [slice * B, (slice + 1) * B) of this
  /// process's part, B = per_device_train_batch_size, after the trainer's shuffle of the batch's rows).
  int64_t slice = 0;
  /// Which optimisation pass over the generation batch (0 .. num_iterations - 1).
  int64_t iteration = 0;
  /// True on the first micro-step of a generation batch: generate and score before training.
  bool generate = false;
  /// True on the last micro-step of an accumulation window: clip, step the optimizer, zero the gradients.
  bool optimizer_step = false;
};

/// TRL's buffering order (docs/math.md §9): each generation batch is split into steps_per_generation
/// slices, used in order, and the whole cycle repeats num_iterations times before the next batch is generated.
inline MicroStep micro_step_schedule(const GRPOConfig& config, int64_t micro_step) {
  if (micro_step < 0) {
    throw InvalidArgument("grpo::micro_step_schedule: micro_step must be >= 0, got " + std::to_string(micro_step));
  }
  const int64_t steps_per_generation = config.effective_steps_per_generation();
  const int64_t generate_every = config.micro_steps_per_generation();
  const int64_t within = micro_step % generate_every;
  MicroStep s;
  s.generation = micro_step / generate_every;
  s.slice = within % steps_per_generation;
  s.iteration = within / steps_per_generation;
  s.generate = within == 0;
  s.optimizer_step = (micro_step + 1) % config.gradient_accumulation_steps == 0;
  return s;
}

}  // namespace grpo
