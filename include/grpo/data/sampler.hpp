#pragma once
// Which prompts each generation batch holds (TRL's RepeatSampler, docs/math.md §9): seeded per-epoch
// shuffles cut into batches, each prompt repeated G times. Torch-free, reproducible across platforms.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grpo/detail/json_fields.hpp"
#include "grpo/detail/random.hpp"
#include "grpo/error.hpp"

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
  detail::JsonFields f(j, "grpo::SamplerState");
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
      throw InvalidArgument("grpo::RepeatSampler: num_generations must be >= 1, got " +
                            std::to_string(num_generations));
    }
    if (prompts_per_batch < 1 || num_prompts < prompts_per_batch) {
      throw InvalidArgument("grpo::RepeatSampler: a generation batch needs " + std::to_string(prompts_per_batch) +
                            " prompts but the dataset has " + std::to_string(num_prompts) +
                            "; use more prompts or lower per_device_train_batch_size * steps_per_generation");
    }
    state_.seed = seed;
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
      throw InvalidArgument("grpo::RepeatSampler::restore: state epoch " + std::to_string(state.epoch) + ", position " +
                            std::to_string(state.position) + " does not fit " + std::to_string(batches_per_epoch()) +
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

}  // namespace grpo
