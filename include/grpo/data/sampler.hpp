#pragma once
// Which prompts each generation batch holds, and which slice of it each micro-step trains on (TRL's
// RepeatSampler and generate_every buffering, trl-grpo-survey.md §2.3). Torch-free, reproducible across platforms.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "grpo/data/dataset.hpp"
#include "grpo/detail/json_fields.hpp"
#include "grpo/train/config.hpp"

namespace grpo {

/// Where a RepeatSampler stands; JSON-serialisable so that a resumed run draws the identical sequence.
struct SamplerState {
  /// Completed passes over the dataset.
  int64_t epoch = 0;
  /// Generation batches already drawn in the current epoch.
  int64_t position = 0;
  /// Seed of the per-epoch shuffles.
  uint64_t seed = 42;
};

inline void to_json(nlohmann::json& j, const SamplerState& s) {
  j = nlohmann::json{{"epoch", s.epoch}, {"position", s.position}, {"seed", s.seed}};
}
inline void from_json(const nlohmann::json& j, SamplerState& s) {
  detail::JsonFields f(j, "SamplerState");
  f.read("epoch", s.epoch);
  f.read("position", s.position);
  f.read("seed", s.seed);
  f.finish();
}

/// Draws generation batches of prompt indices: each epoch shuffles 0..num_prompts-1 (a pure function of seed
/// and epoch, identical on every platform; or keeps the order when shuffle is false), cuts it into chunks of
/// prompts_per_batch unique indices (an incomplete last chunk is dropped, as TRL does) and returns each chunk
/// with every index repeated num_generations times consecutively.
class RepeatSampler {
 public:
  /// num_prompts: dataset size; prompts_per_batch: unique prompts per generation batch (>= 1, <= num_prompts);
  /// num_generations: G, the repeat count of each prompt (>= 1).
  RepeatSampler(int64_t num_prompts, int64_t prompts_per_batch, int num_generations, uint64_t seed, bool shuffle = true)
      : num_prompts_(num_prompts),
        prompts_per_batch_(prompts_per_batch),
        num_generations_(num_generations),
        shuffle_(shuffle) {
    if (num_generations < 1) {
      throw std::invalid_argument("grpo::RepeatSampler: num_generations must be >= 1, got " +
                                  std::to_string(num_generations));
    }
    if (prompts_per_batch < 1 || num_prompts < prompts_per_batch) {
      throw std::invalid_argument("grpo::RepeatSampler: a generation batch needs " + std::to_string(prompts_per_batch) +
                                  " prompts but the dataset has " + std::to_string(num_prompts) +
                                  "; use more prompts or lower per_device_train_batch_size * steps_per_generation");
    }
    state_.seed = seed;
  }

  /// The sampler a GRPOConfig implies: prompts_per_generation() prompts per batch, its seed and shuffle_dataset.
  static RepeatSampler from_config(const GRPOConfig& config, int64_t num_prompts) {
    return RepeatSampler(num_prompts, config.prompts_per_generation(), config.num_generations, config.seed,
                         config.shuffle_dataset);
  }

  /// The next generation batch: prompts_per_batch * G dataset indices, each prompt's G copies consecutive.
  /// Starts a new epoch (a new shuffle) when the current one has no full chunk left.
  std::vector<int64_t> next_generation_batch() {
    if (state_.position >= batches_per_epoch()) {
      ++state_.epoch;
      state_.position = 0;
    }
    if (order_epoch_ != state_.epoch || order_.empty()) {
      order_ = epoch_order(state_.epoch);
      order_epoch_ = state_.epoch;
    }
    std::vector<int64_t> batch;
    batch.reserve(static_cast<std::size_t>(prompts_per_batch_ * num_generations_));
    const int64_t begin = state_.position * prompts_per_batch_;
    for (int64_t k = begin; k < begin + prompts_per_batch_; ++k) {
      for (int g = 0; g < num_generations_; ++g) batch.push_back(order_[static_cast<std::size_t>(k)]);
    }
    ++state_.position;
    return batch;
  }

  /// The dataset order of `epoch`: a seeded permutation, or 0..n-1 without shuffling.
  std::vector<int64_t> epoch_order(int64_t epoch) const {
    if (!shuffle_) {
      std::vector<int64_t> order(static_cast<std::size_t>(num_prompts_));
      for (int64_t i = 0; i < num_prompts_; ++i) order[static_cast<std::size_t>(i)] = i;
      return order;
    }
    return detail::seeded_permutation(num_prompts_, state_.seed, static_cast<uint64_t>(epoch));
  }

  /// Full generation batches per epoch: floor(num_prompts / prompts_per_batch).
  int64_t batches_per_epoch() const { return num_prompts_ / prompts_per_batch_; }
  /// Completed epochs (the epoch of the batch last drawn, once it has begun).
  int64_t epoch() const { return state_.epoch; }
  /// Fractional epochs consumed: epoch + position / batches_per_epoch (for TrainerState::epoch).
  double epoch_progress() const {
    return static_cast<double>(state_.epoch) +
           static_cast<double>(state_.position) / static_cast<double>(batches_per_epoch());
  }
  /// Unique prompts per generation batch.
  int64_t prompts_per_batch() const { return prompts_per_batch_; }
  /// G, the repeat count of each prompt.
  int num_generations() const { return num_generations_; }

  /// Where the sampler stands (store it in a checkpoint).
  SamplerState state() const { return state_; }
  /// Continues from a stored state; the following batches equal those the saved sampler would have drawn.
  void restore(const SamplerState& state) {
    if (state.epoch < 0 || state.position < 0 || state.position > batches_per_epoch()) {
      throw std::invalid_argument("grpo::RepeatSampler::restore: state epoch " + std::to_string(state.epoch) +
                                  ", position " + std::to_string(state.position) + " does not fit " +
                                  std::to_string(batches_per_epoch()) +
                                  " batches per epoch (was the dataset or the batch size changed?)");
    }
    state_ = state;
    order_.clear();
  }

 private:
  int64_t num_prompts_;
  int64_t prompts_per_batch_;
  int num_generations_;
  bool shuffle_;
  SamplerState state_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
};

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

/// TRL's buffering order (trl-grpo-survey.md §2.3): each generation batch is split into steps_per_generation
/// slices, used in order, and the whole cycle repeats num_iterations times before the next batch is generated.
inline MicroStep micro_step_schedule(const GRPOConfig& config, int64_t micro_step) {
  if (micro_step < 0) {
    throw std::invalid_argument("grpo::micro_step_schedule: micro_step must be >= 0, got " +
                                std::to_string(micro_step));
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

/// Indices of the groups (G consecutive rows) whose rewards are not all equal: the groups DAPO dynamic sampling
/// keeps (an all-equal group has zero advantages and no learning signal). NaN rewards are ignored; a group with
/// fewer than two non-NaN rewards counts as all equal. rewards.size() must be divisible by G.
inline std::vector<int64_t> groups_with_reward_variance(const std::vector<double>& rewards, int num_generations) {
  if (num_generations < 1 || rewards.size() % static_cast<std::size_t>(num_generations) != 0) {
    throw std::invalid_argument("grpo::groups_with_reward_variance: " + std::to_string(rewards.size()) +
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

/// Bookkeeping of DAPO dynamic sampling for one optimizer step's generation batch (grpo-math.md §8): the trainer
/// generates a round, passes its rewards to add_round(), keeps the groups it returns, and generates another round
/// (from the sampler's next batch) while more_rounds() is true. After max_retries extra rounds it trains on what it
/// has; metrics() reports the shortfall so that it is logged.
class DynamicSampling {
 public:
  /// groups_needed: prompts per generation batch; max_retries: extra rounds allowed after the first.
  DynamicSampling(int64_t groups_needed, int max_retries) : needed_(groups_needed), max_retries_(max_retries) {
    if (groups_needed < 1 || max_retries < 0) {
      throw std::invalid_argument("grpo::DynamicSampling: groups_needed must be >= 1 and max_retries >= 0, got " +
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
