#pragma once
// The generation buffer: one scored rollout turned into the tensors the micro-steps train on (docs/math.md §9):
// rows shuffled (TRL shuffles the generation batch before slicing it), truncated completions masked when
// asked, advantages, and old / reference log-probs when they are needed. Sliced into steps_per_generation
// micro-batches; serialisable into a checkpoint so that a resume continues mid-batch.
//
// With P processes every rank holds the whole shuffled generation batch of N = B * S * P rows (B =
// per_device_train_batch_size, S = steps_per_generation), and micro-step s of rank r trains on rows
// [s B P + r B, s B P + (r + 1) B): the P ranks together train on exactly the rows one process with B * P rows per
// micro-batch would, so the trajectory depends on the global batch, not on P (a checkpoint of P processes
// resumes on P' with B' P' = B P). Old and reference log-probs are computed by each rank for its own rows only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "grpo/core/advantages.hpp"
#include "grpo/detail/random.hpp"
#include "grpo/distributed/process_group.hpp"
#include "grpo/error.hpp"
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

/// Which replica of a data-parallel run a buffer serves: rank r of `size` processes.
struct ReplicaSlot {
  int rank = 0;
  int size = 1;
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
                                const std::optional<Reference<Model>>& reference, ReplicaSlot replica = {}) {
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
    b.replica_ = replica;
    b.check_rows(n, config, "grpo::GenerationBuffer::build: the rollout");
    b.prompt_ids_ = rollout.prompt_ids.index_select(0, perm).to(device);
    b.prompt_mask_ = rollout.prompt_mask.index_select(0, perm).to(device);
    b.completion_ids_ = rollout.completion_ids.index_select(0, perm).to(device);
    b.completion_mask_ = completion_mask.index_select(0, perm).to(device);
    b.advantages_ = torch::from_blob(const_cast<double*>(advantages.advantages.data()), {n}, torch::kDouble)
                        .index_select(0, perm)
                        .to(device, torch::kFloat);
    const torch::Tensor tokens_per_row = completion_mask.index_select(0, perm).sum(1).to(torch::kDouble);
    const int64_t global_slice = b.rows_per_slice_ * replica.size;  // rows of one micro-step over all ranks
    for (int64_t start = 0; start < n; start += global_slice) {
      b.slice_tokens_.push_back(tokens_per_row.slice(0, start, start + global_slice).sum().item<double>());
    }
    const bool need_old = config.gradient_accumulation_steps % config.micro_steps_per_generation() != 0;
    if (need_old || reference) {
      const auto own = b.own_rows().to(device);
      const auto prompt_ids = b.prompt_ids_.index_select(0, own), prompt_mask = b.prompt_mask_.index_select(0, own);
      const auto completion_ids = b.completion_ids_.index_select(0, own);
      const auto completion_mask = b.completion_mask_.index_select(0, own);
      if (need_old) {
        b.old_logps_ = policy
                           .completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask,
                                             config.temperature, config.effective_log_prob_micro_batch_size())
                           .logps.detach();
      }
      if (reference) {
        b.ref_logps_ = reference
                           ->completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask,
                                              config.temperature, config.effective_log_prob_micro_batch_size())
                           .logps;
      }
    }
    return b;
  }

  /// Whether a generation batch is loaded.
  bool defined() const { return generation_ >= 0; }
  /// Which generation batch this is (0-based), -1 when empty.
  int64_t generation() const { return generation_; }

  /// Micro-batch `slice` of this replica: rows [slice B P + r B, slice B P + (r + 1) B) of the buffer, B =
  /// per_device_train_batch_size (rows [slice B, (slice + 1) B) for one process).
  BufferSlice slice(int64_t slice) const {
    const int64_t start = slice * rows_per_slice_ * replica_.size + replica_.rank * rows_per_slice_;
    const auto rows = torch::indexing::Slice(start, start + rows_per_slice_);
    const auto own = torch::indexing::Slice(slice * rows_per_slice_, (slice + 1) * rows_per_slice_);
    BufferSlice s;
    s.prompt_ids = prompt_ids_.index({rows});
    s.prompt_mask = prompt_mask_.index({rows});
    s.completion_ids = completion_ids_.index({rows});
    s.completion_mask = completion_mask_.index({rows});
    s.advantages = advantages_.index({rows});
    if (old_logps_.defined()) s.old_logps = old_logps_.index({own});
    if (ref_logps_.defined()) s.ref_logps = ref_logps_.index({own});
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

  /// The tensors to store in a checkpoint ("buffer/<name>", for the whole generation batch in one process's
  /// order) and the rest as JSON. With P > 1 ranks a collective (the ranks' log-probs are gathered): pass the group.
  TensorMap tensors(ProcessGroup* group = nullptr) const {
    if (!defined()) return {};
    TensorMap out{{"buffer/prompt_ids", prompt_ids_},
                  {"buffer/prompt_mask", prompt_mask_},
                  {"buffer/completion_ids", completion_ids_},
                  {"buffer/completion_mask", completion_mask_},
                  {"buffer/advantages", advantages_}};
    if (old_logps_.defined()) out["buffer/old_logps"] = whole_batch(old_logps_.detach(), group, "old log-probs");
    if (ref_logps_.defined()) out["buffer/ref_logps"] = whole_batch(ref_logps_.detach(), group, "reference log-probs");
    return out;
  }
  nlohmann::json meta() const { return {{"generation", generation_}, {"slice_tokens", slice_tokens_}}; }

  /// The buffer a checkpoint stored (meta() and tensors()) of a run with `config`, moved to `device`.
  static GenerationBuffer restore(const nlohmann::json& meta, const TensorMap& tensors, const GRPOConfig& config,
                                  const torch::Device& device, ReplicaSlot replica = {}) {
    GenerationBuffer b;
    b.generation_ = meta.at("generation").get<int64_t>();
    b.slice_tokens_ = meta.at("slice_tokens").get<std::vector<double>>();
    b.rows_per_slice_ = config.per_device_train_batch_size;
    b.replica_ = replica;
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
    b.check_rows(b.prompt_ids_.defined() ? b.prompt_ids_.size(0) : 0, config,
                 "grpo::GenerationBuffer::restore: the checkpoint's buffer");
    const auto own = b.own_rows().to(device);
    const auto own_rows_of = [&](const torch::Tensor& t) { return t.defined() ? t.index_select(0, own) : t; };
    b.old_logps_ = own_rows_of(get("old_logps"));
    b.ref_logps_ = own_rows_of(get("ref_logps"));
    return b;
  }

 private:
  // The generation batch must be S micro-batches of B rows on each of the P ranks.
  void check_rows(int64_t n, const GRPOConfig& config, const std::string& where) const {
    const int64_t expected =
        static_cast<int64_t>(config.effective_steps_per_generation()) * rows_per_slice_ * replica_.size;
    if (n != expected) {
      throw InvalidArgument(
          where + " has " + std::to_string(n) + " rows, but steps_per_generation * " +
          "per_device_train_batch_size * processes = " + std::to_string(config.effective_steps_per_generation()) +
          " * " + std::to_string(rows_per_slice_) + " * " + std::to_string(replica_.size) + " = " +
          std::to_string(expected));
    }
  }

  // [S B] rows of the whole batch that this replica trains on, in its micro-steps' order.
  torch::Tensor own_rows() const {
    const int64_t steps = static_cast<int64_t>(slice_tokens_.size());
    std::vector<int64_t> rows;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t start = s * rows_per_slice_ * replica_.size + replica_.rank * rows_per_slice_;
      for (int64_t i = 0; i < rows_per_slice_; ++i) rows.push_back(start + i);
    }
    return torch::tensor(rows, torch::kLong);
  }

  // This replica's [S B, T] rows of a per-row tensor, joined with the other ranks' into the whole batch's [N, T].
  torch::Tensor whole_batch(const torch::Tensor& own, ProcessGroup* group, const std::string& what) const {
    if (replica_.size == 1) return own;
    if (group == nullptr || group->size() != replica_.size) {
      throw LogicError("grpo::GenerationBuffer::tensors: a buffer of " + std::to_string(replica_.size) +
                       " ranks needs their process group");
    }
    auto parts = group->all_gather(own.contiguous(), "checkpoint: gather the buffer's " + what);
    const int64_t steps = static_cast<int64_t>(slice_tokens_.size());
    for (auto& p : parts) p = p.to(own.device()).view({steps, rows_per_slice_, own.size(1)});
    return torch::stack(parts, 1).reshape({-1, own.size(1)});
  }

  torch::Tensor prompt_ids_, prompt_mask_, completion_ids_, completion_mask_, advantages_, old_logps_, ref_logps_;
  std::vector<double> slice_tokens_;  // active completion tokens per slice of B rows
  int64_t rows_per_slice_ = 1;
  ReplicaSlot replica_;
  int64_t generation_ = -1;
};

}  // namespace grpo
