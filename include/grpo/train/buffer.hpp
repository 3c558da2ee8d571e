#pragma once
// The generation buffer: one scored rollout turned into the tensors the micro-steps train on (docs/math.md §9):
// rows shuffled (TRL shuffles the generation batch before slicing it), truncated completions masked when
// asked, advantages, and old / reference log-probs when they are needed. Sliced into steps_per_generation
// micro-batches; serialisable into a checkpoint so that a resume continues mid-batch.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "grpo/core/advantages.hpp"
#include "grpo/detail/random.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/train/batching.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/policy.hpp"
#include "grpo/train/rollout.hpp"

namespace grpo {

/// One micro-batch of the buffer: what a micro-step's loss needs besides the policy's fresh log-probs.
struct BufferSlice {
  torch::Tensor prompt_ids, prompt_mask, completion_ids, completion_mask, advantages, old_logps, ref_logps;
};

/// The generation batch being trained on, on the training device.
class GenerationBuffer {
 public:
  /// An empty buffer (defined() is false until the first rollout).
  GenerationBuffer() = default;

  /// Builds the buffer of generation batch `generation` from a scored rollout and its advantages: shuffles the
  /// rows (seeded by config.seed and `generation`), masks truncated completions (mask_truncated_completions),
  /// computes old log-probs when the policy can change before the batch is used up (TRL: gradient_accumulation_steps
  /// is not a multiple of steps_per_generation x num_iterations) and reference log-probs when there is a reference.
  template <class Model>
  static GenerationBuffer build(const Rollout& rollout, const Advantages& advantages, int64_t generation,
                                const GRPOConfig& config, Policy<Model>& policy,
                                const std::optional<Reference<Model>>& reference) {
    torch::NoGradGuard no_grad;
    const auto n = static_cast<int64_t>(rollout.size());
    auto completion_mask = rollout.completion_mask.clone();
    if (config.mask_truncated_completions) {
      for (int64_t i = 0; i < n; ++i) {
        if (rollout.truncated[static_cast<std::size_t>(i)]) completion_mask[i].zero_();
      }
    }
    const auto perm = torch::tensor(
        detail::seeded_permutation(n, config.seed ^ 0x5A5A5A5AULL, static_cast<uint64_t>(generation)), torch::kLong);
    const auto device = policy.device();
    GenerationBuffer b;
    b.generation_ = generation;
    b.rows_per_slice_ = config.per_device_train_batch_size;
    b.prompt_ids_ = rollout.prompt_ids.index_select(0, perm).to(device);
    b.prompt_mask_ = rollout.prompt_mask.index_select(0, perm).to(device);
    b.completion_ids_ = rollout.completion_ids.index_select(0, perm).to(device);
    b.completion_mask_ = completion_mask.index_select(0, perm).to(device);
    b.advantages_ = torch::from_blob(const_cast<double*>(advantages.advantages.data()), {n}, torch::kDouble)
                        .index_select(0, perm)
                        .to(device, torch::kFloat);
    const torch::Tensor tokens_per_row = completion_mask.index_select(0, perm).sum(1).to(torch::kDouble);
    for (int64_t start = 0; start < n; start += b.rows_per_slice_) {
      b.slice_tokens_.push_back(tokens_per_row.slice(0, start, start + b.rows_per_slice_).sum().item<double>());
    }
    if (config.gradient_accumulation_steps % config.micro_steps_per_generation() != 0) {
      b.old_logps_ = policy
                         .completion_logps(b.prompt_ids_, b.prompt_mask_, b.completion_ids_, b.completion_mask_,
                                           config.temperature, config.effective_log_prob_micro_batch_size())
                         .logps.detach();
    }
    if (reference) {
      b.ref_logps_ = reference
                         ->completion_logps(b.prompt_ids_, b.prompt_mask_, b.completion_ids_, b.completion_mask_,
                                            config.temperature, config.effective_log_prob_micro_batch_size())
                         .logps;
    }
    return b;
  }

  /// Whether a generation batch is loaded.
  bool defined() const { return generation_ >= 0; }
  /// Which generation batch this is (0-based), -1 when empty.
  int64_t generation() const { return generation_; }

  /// Rows [slice * B, (slice + 1) * B) of the buffer, B = per_device_train_batch_size.
  BufferSlice slice(int64_t slice) const {
    const auto rows = torch::indexing::Slice(slice * rows_per_slice_, (slice + 1) * rows_per_slice_);
    BufferSlice s;
    s.prompt_ids = prompt_ids_.index({rows});
    s.prompt_mask = prompt_mask_.index({rows});
    s.completion_ids = completion_ids_.index({rows});
    s.completion_mask = completion_mask_.index({rows});
    s.advantages = advantages_.index({rows});
    if (old_logps_.defined()) s.old_logps = old_logps_.index({rows});
    if (ref_logps_.defined()) s.ref_logps = ref_logps_.index({rows});
    return s;
  }

  /// dapo/cispo normaliser of micro-step `plan`: active tokens of its optimizer step's accumulation window
  /// (docs/math.md §5, with the correction of TRL issue 5619). Exact when the window lies inside one generation
  /// batch; otherwise TRL's rescaled generation-batch count.
  double window_tokens(const MicroStep& plan, const GRPOConfig& config) const {
    const int64_t ga = config.gradient_accumulation_steps, spg = config.effective_steps_per_generation();
    if (spg % ga == 0) {
      const int64_t first = (plan.slice / ga) * ga;
      double sum = 0;
      for (int64_t s = first; s < first + ga; ++s) sum += slice_tokens_[static_cast<std::size_t>(s)];
      return sum;
    }
    double total = 0;
    for (const double t : slice_tokens_) total += t;
    return total * static_cast<double>(ga) / static_cast<double>(spg);
  }

  /// The tensors to store in a checkpoint ("buffer/<name>") and the rest as JSON.
  TensorMap tensors() const {
    TensorMap out{{"buffer/prompt_ids", prompt_ids_},
                  {"buffer/prompt_mask", prompt_mask_},
                  {"buffer/completion_ids", completion_ids_},
                  {"buffer/completion_mask", completion_mask_},
                  {"buffer/advantages", advantages_}};
    if (old_logps_.defined()) out["buffer/old_logps"] = old_logps_.detach();
    if (ref_logps_.defined()) out["buffer/ref_logps"] = ref_logps_.detach();
    return defined() ? out : TensorMap{};
  }
  nlohmann::json meta() const { return {{"generation", generation_}, {"slice_tokens", slice_tokens_}}; }

  /// The buffer a checkpoint stored (meta() and tensors()) of a run with `config`, moved to `device`.
  static GenerationBuffer restore(const nlohmann::json& meta, const TensorMap& tensors, const GRPOConfig& config,
                                  const torch::Device& device) {
    GenerationBuffer b;
    b.generation_ = meta.at("generation").get<int64_t>();
    b.slice_tokens_ = meta.at("slice_tokens").get<std::vector<double>>();
    b.rows_per_slice_ = config.per_device_train_batch_size;
    if (b.generation_ < 0) return b;
    const auto get = [&](const char* name) {
      const auto it = tensors.find(std::string("buffer/") + name);
      return it == tensors.end() ? torch::Tensor() : it->second.to(device);
    };
    b.prompt_ids_ = get("prompt_ids");
    b.prompt_mask_ = get("prompt_mask");
    b.completion_ids_ = get("completion_ids");
    b.completion_mask_ = get("completion_mask");
    b.advantages_ = get("advantages");
    b.old_logps_ = get("old_logps");
    b.ref_logps_ = get("ref_logps");
    return b;
  }

 private:
  torch::Tensor prompt_ids_, prompt_mask_, completion_ids_, completion_mask_, advantages_, old_logps_, ref_logps_;
  std::vector<double> slice_tokens_;  // active completion tokens per slice of B rows
  int64_t rows_per_slice_ = 1;
  int64_t generation_ = -1;
};

}  // namespace grpo
