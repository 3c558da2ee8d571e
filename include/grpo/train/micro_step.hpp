#pragma once
// One micro-step: the policy's log-probs of a buffer slice (with gradient), the GRPO loss (docs/math.md §3-§5),
// backward (gradients accumulate until the optimizer step), and the micro-step's metrics (§6).

#include <cmath>
#include <map>
#include <string>

#include <torch/types.h>

#include "grpo/core/loss.hpp"
#include "grpo/train/batching.hpp"
#include "grpo/train/buffer.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/policy.hpp"

namespace grpo {

/// Runs micro-step `plan` on `buffer` (forward, loss, backward) and returns its metrics: the loss's ("kl",
/// "clip_ratio/...") plus "loss" and "entropy" (mean over active completion tokens).
template <class Model>
std::map<std::string, double> run_micro_step(Policy<Model>& policy, const GenerationBuffer& buffer,
                                             const MicroStep& plan, const GRPOConfig& config) {
  const BufferSlice slice = buffer.slice(plan.slice);
  const CompletionLogps out =
      policy.completion_logps(slice.prompt_ids, slice.prompt_mask, slice.completion_ids, slice.completion_mask,
                              config.temperature, config.per_device_train_batch_size, /*want_entropy=*/true);
  LossBatch batch;
  batch.logps = out.logps;
  batch.old_logps = slice.old_logps;
  batch.ref_logps = slice.ref_logps;
  batch.advantages = slice.advantages;
  batch.mask = slice.completion_mask;
  batch.num_items_in_batch = buffer.window_tokens(plan, config);
  batch.num_processes = config.num_processes;
  batch.grad_accum_steps = config.gradient_accumulation_steps;
  auto result = policy_loss(batch, config.loss_options());
  result.loss.backward();
  torch::NoGradGuard no_grad;
  const torch::Tensor mask = slice.completion_mask.to(out.entropies.scalar_type());
  const double active = mask.sum().item<double>();
  result.metrics["entropy"] = active > 0 ? (out.entropies * mask).sum().item<double>() / active : std::nan("");
  result.metrics["loss"] = result.loss.template item<double>();
  return result.metrics;
}

}  // namespace grpo
