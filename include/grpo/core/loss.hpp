#pragma once
// The clipped-ratio GRPO policy loss on [B,T] log-probs (docs/math.md §3-§6): every TRL loss type,
// token or sequence importance sampling, two-sided clip, k3 KL with optional bias correction, clip metrics.

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "grpo/core/detail/fused_loss.hpp"
#include "grpo/core/loss_options.hpp"
#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// One micro-batch of B completions padded to T tokens.
struct LossBatch {
  /// [B,T] log-probs of the sampled tokens under the current policy; requires grad.
  torch::Tensor logps;
  /// [B,T] log-probs under the policy that generated the batch; undefined means logps.detach() (on-policy).
  torch::Tensor old_logps;
  /// [B,T] log-probs under the frozen reference model; required when beta != 0.
  torch::Tensor ref_logps;
  /// [B] one advantage per completion.
  torch::Tensor advantages;
  /// [B,T] completion mask, 0/1 (bool, integer or floating).
  torch::Tensor mask;
  /// dapo/cispo: active completion tokens over all processes of the optimizer step's accumulation window; with
  /// steps_per_generation == gradient_accumulation_steps (the default) that is the whole generation batch.
  double num_items_in_batch = 0;
  /// P: data-parallel processes (gradients are averaged over them).
  int num_processes = 1;
  /// GA: micro-steps accumulated per optimizer step.
  int grad_accum_steps = 1;
};

/// The micro-step loss and its metrics.
struct LossResult {
  /// Scalar, differentiable with respect to batch.logps.
  torch::Tensor loss;
  /// "kl", "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max",
  /// "clip_ratio/region_mean", "cispo_clip_ratio", as they apply (docs/math.md §6).
  std::map<std::string, double> metrics;
};

namespace detail {

inline bool is_clip_family(LossType t) {
  return t == LossType::grpo || t == LossType::bnpo || t == LossType::dr_grpo || t == LossType::dapo ||
         t == LossType::luspo;
}

// Validates shapes, devices and counts: the checks that do not read tensor values (no pass, no sync).
inline void validate_loss_batch_structure(const LossBatch& b, const LossOptions& o) {
  const std::string where = "grpo::policy_loss: ";
  if (!b.logps.defined()) throw InvalidArgument(where + "logps is undefined; expected [B,T] log-probs");
  if (b.logps.dim() != 2) {
    throw InvalidArgument(where + "logps must be [B,T], got shape " + shape_string(b.logps));
  }
  if (!b.logps.is_floating_point()) throw InvalidArgument(where + "logps must be a floating-point tensor");
  const auto rows = b.logps.size(0);
  const auto tokens = b.logps.size(1);
  require_shape(where, "mask", b.mask, {rows, tokens}, "[B,T] like logps");
  require_shape(where, "advantages", b.advantages, {rows}, "[B]");
  if (b.old_logps.defined()) require_shape(where, "old_logps", b.old_logps, {rows, tokens}, "[B,T] like logps");
  if (o.beta != 0.0 && !b.ref_logps.defined()) {
    throw InvalidArgument(where + "beta = " + std::to_string(o.beta) +
                          " needs ref_logps ([B,T] reference-model log-probs); pass them or set beta = 0");
  }
  if (b.ref_logps.defined()) require_shape(where, "ref_logps", b.ref_logps, {rows, tokens}, "[B,T] like logps");
  for (const auto& [name, t] : {std::pair<const char*, const torch::Tensor*>{"mask", &b.mask},
                                {"advantages", &b.advantages},
                                {"old_logps", &b.old_logps},
                                {"ref_logps", &b.ref_logps}}) {
    if (t->defined()) require_device(where, name, *t, "logps", b.logps);
  }
  if (b.num_processes < 1) {
    throw InvalidArgument(where + "num_processes must be >= 1, got " + std::to_string(b.num_processes));
  }
  if (b.grad_accum_steps < 1) {
    throw InvalidArgument(where + "grad_accum_steps must be >= 1, got " + std::to_string(b.grad_accum_steps));
  }
}

// Validates the values (several passes, each with a device sync); returns true when a log-prob tensor holds
// non-finite values on padding only, which the composed path then zeroes so that padding garbage cannot turn
// the loss into NaN. The fused path runs it only when its own pass found a problem, to throw this message.
inline bool validate_loss_batch_values(const LossBatch& b, const LossOptions& o) {
  const std::string where = "grpo::policy_loss: ";
  torch::NoGradGuard no_grad;
  const auto active = b.mask != 0;
  throw_if_any(where, "mask", b.mask, active & (b.mask != 1), "has a value other than 0 or 1");
  throw_if_any(where, "logps", b.logps, active & ~torch::isfinite(b.logps), "is not finite on an active token");
  if (b.old_logps.defined()) {
    throw_if_any(where, "old_logps", b.old_logps, active & ~torch::isfinite(b.old_logps),
                 "is not finite on an active token");
  }
  if (b.ref_logps.defined() && o.beta != 0.0) {
    throw_if_any(where, "ref_logps", b.ref_logps, active & ~torch::isfinite(b.ref_logps),
                 "is not finite on an active token");
  }
  if (b.advantages.is_floating_point()) {
    throw_if_any(where, "advantages", b.advantages, ~torch::isfinite(b.advantages), "is not finite");
  }
  bool padding_not_finite = (~torch::isfinite(b.logps)).any().item<bool>();
  if (b.old_logps.defined())
    padding_not_finite = padding_not_finite || (~torch::isfinite(b.old_logps)).any().item<bool>();
  if (b.ref_logps.defined() && o.beta != 0.0) {
    padding_not_finite = padding_not_finite || (~torch::isfinite(b.ref_logps)).any().item<bool>();
  }
  if (o.loss_type == LossType::dapo || o.loss_type == LossType::cispo) {
    const double local_tokens = active.sum().item<double>();
    if (!std::isfinite(b.num_items_in_batch) || b.num_items_in_batch < local_tokens) {
      throw InvalidArgument(
          where + "num_items_in_batch = " + std::to_string(b.num_items_in_batch) + " but this micro-batch alone has " +
          std::to_string(static_cast<long long>(local_tokens)) + " active tokens; loss_type " + to_string(o.loss_type) +
          " needs the active-token count of the whole generation batch (all processes), which is at least that");
    }
  }
  return padding_not_finite;
}

// Mean of an indicator over active tokens ([B,T]) or over rows ([B,1], sequence level).
inline torch::Tensor masked_batch_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  if (x.size(1) == 1) return x.mean();
  return (x * mask).sum() / mask.sum().clamp_min(1.0);
}

// Per-row mean of an indicator over that row's active tokens; NaN for rows with no active token.
inline torch::Tensor masked_row_mean(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& lengths) {
  if (x.size(1) == 1) return x.squeeze(1);
  return (x * mask).sum(1) / lengths.squeeze(1);  // 0/0 = NaN for empty rows, dropped by nanmin/nanmax
}

inline torch::Tensor nanmin(const torch::Tensor& v) {
  const auto kept = v.masked_select(~torch::isnan(v));
  return kept.numel() ? kept.min() : torch::full({}, std::nan(""), v.options());
}
inline torch::Tensor nanmax(const torch::Tensor& v) {
  const auto kept = v.masked_select(~torch::isnan(v));
  return kept.numel() ? kept.max() : torch::full({}, std::nan(""), v.options());
}

// policy_loss as composed LibTorch ops (any device, any floating dtype, differentiable to any order): the
// reference the fused kernel is tested against, and the path for inputs the fused kernel does not take.
inline LossResult policy_loss_composed(const LossBatch& batch, const LossOptions& options) {
  options.validate();
  detail::validate_loss_batch_structure(batch, options);
  const bool padding_not_finite = detail::validate_loss_batch_values(batch, options);

  const auto mask = batch.mask.to(batch.logps.scalar_type());
  // Padding may hold -inf or NaN (e.g. from a masked-fill); zero it there so 0 * NaN cannot reach the loss.
  const auto on_active = [&](const torch::Tensor& t) {
    return padding_not_finite ? torch::where(mask != 0, t, torch::zeros_like(t)) : t;
  };
  const torch::Tensor logps = on_active(batch.logps);
  const auto advantages = batch.advantages.to(logps.scalar_type()).unsqueeze(1);  // [B,1]
  const auto old_logps =
      batch.old_logps.defined() ? on_active(batch.old_logps.to(logps.scalar_type())) : logps.detach();
  const auto lengths = mask.sum(1, /*keepdim=*/true);  // [B,1] L_i
  const double eps_low = options.epsilon;
  const double eps_high = options.epsilon_high_or_low();
  const auto ga = static_cast<double>(batch.grad_accum_steps);

  // §3: importance ratio, per token [B,T] or per sequence [B,1] (geometric mean over active tokens).
  const auto log_ratio = logps - old_logps;
  const auto log_importance = options.importance_sampling_level == ImportanceSampling::token
                                  ? log_ratio
                                  : (log_ratio * mask).sum(1, true) / lengths.clamp_min(1.0);
  const auto ratio = torch::exp(log_importance);

  // §4: k3 KL to the reference, optionally weighted by the (unclipped) ratio.
  torch::Tensor per_token_kl;
  if (options.beta != 0.0) {
    const auto ref_minus_policy = on_active(batch.ref_logps.to(logps.scalar_type())) - logps;
    per_token_kl = torch::exp(ref_minus_policy) - ref_minus_policy - 1.0;
    if (options.use_bias_correction_kl) per_token_kl = per_token_kl * ratio;
  }

  // §4: per-token loss; [B,1] at sequence level for the ratio-only losses, broadcast later as TRL does.
  torch::Tensor per_token_loss;
  switch (options.loss_type) {
    case LossType::cispo:
      per_token_loss = -(ratio.clamp_max(eps_high).detach() * advantages * logps);
      break;
    case LossType::sapo: {
      const auto temperature = torch::where(advantages > 0, torch::full_like(advantages, options.sapo_temperature_pos),
                                            torch::full_like(advantages, options.sapo_temperature_neg));
      per_token_loss = -(torch::sigmoid(temperature * (ratio - 1.0)) * 4.0 / temperature * advantages);
      break;
    }
    default: {
      const auto clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high);
      const auto unclipped = options.delta ? ratio.clamp_max(*options.delta) : ratio;
      per_token_loss = -torch::min(unclipped * advantages, clipped * advantages);
    }
  }
  if (options.beta != 0.0) per_token_loss = per_token_loss + options.beta * per_token_kl;

  // §5: aggregation into the micro-step loss.
  torch::Tensor loss;
  const auto masked_sum = [&] { return (per_token_loss * mask).sum(); };
  switch (options.loss_type) {
    case LossType::grpo:
    case LossType::sapo:
      loss = ((per_token_loss * mask).sum(1) / lengths.squeeze(1).clamp_min(1.0)).mean() / ga;
      break;
    case LossType::bnpo:
      loss = masked_sum() / mask.sum().clamp_min(1.0) / ga;
      break;
    case LossType::dr_grpo:
      loss =
          masked_sum() / (static_cast<double>(logps.size(0)) * static_cast<double>(options.max_completion_length)) / ga;
      break;
    case LossType::dapo:
    case LossType::cispo:
      loss = masked_sum() / (std::max(batch.num_items_in_batch, 1.0) / batch.num_processes);
      break;
    case LossType::luspo:
      loss = (per_token_loss * lengths).mean() / ga;
      break;
  }

  // §6: metrics, gathered into one tensor so that reading them costs one device sync.
  LossResult result;
  result.loss = loss;
  torch::NoGradGuard no_grad;
  std::vector<std::string> names;
  std::vector<torch::Tensor> values;
  if (options.beta != 0.0) {
    names.emplace_back("kl");
    values.push_back(detail::masked_batch_mean(per_token_kl.detach(), mask));
  }
  const auto r = ratio.detach();
  if (detail::is_clip_family(options.loss_type)) {
    const auto low = ((r < 1.0 - eps_low) & (advantages < 0)).to(mask.scalar_type());
    const auto high = ((r > 1.0 + eps_high) & (advantages > 0)).to(mask.scalar_type());
    const auto region = ((low + high) > 0).to(mask.scalar_type());
    names.insert(names.end(), {"clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                               "clip_ratio/low_min", "clip_ratio/high_max"});
    values.push_back(detail::masked_batch_mean(low, mask));
    values.push_back(detail::masked_batch_mean(high, mask));
    values.push_back(detail::masked_batch_mean(region, mask));
    values.push_back(detail::nanmin(detail::masked_row_mean(low, mask, lengths)));
    values.push_back(detail::nanmax(detail::masked_row_mean(high, mask, lengths)));
  } else if (options.loss_type == LossType::cispo) {
    names.emplace_back("cispo_clip_ratio");
    values.push_back(detail::masked_batch_mean(((r > eps_high) & (advantages > 0)).to(mask.scalar_type()), mask));
  }
  if (!values.empty()) {
    const auto host = torch::stack(values).to(torch::kCPU, torch::kDouble);
    const auto* data = host.data_ptr<double>();
    for (std::size_t i = 0; i < names.size(); ++i) result.metrics[names[i]] = data[i];
  }
  return result;
}

// Whether the fused kernel takes this batch: CPU float32/float64 log-probs, a non-empty [B,T], and no gradient
// wanted for anything but logps (the fused node differentiates with respect to logps only).
inline bool fused_policy_loss_applies(const LossBatch& b) {
  if (!GRPO_HAS_SIMD) return false;  // a compiler without vector types: the composed path
  const auto dtype = b.logps.scalar_type();
  if (dtype != torch::kFloat && dtype != torch::kDouble) return false;
  if (!b.logps.device().is_cpu() || b.logps.numel() == 0) return false;
  if (b.mask.is_floating_point() && b.mask.scalar_type() != dtype) return false;  // exact 0/1 check needs it
  if (torch::GradMode::is_enabled()) {
    for (const auto* t : {&b.old_logps, &b.ref_logps, &b.advantages}) {
      if (t->defined() && t->requires_grad()) return false;
    }
  }
  return true;
}

// The fused path: one pass (fused_loss.hpp); value validation is folded into that pass, and only when it finds
// a problem does the full validation run, to throw its exact message.
#if GRPO_HAS_SIMD
inline LossResult policy_loss_fused(const LossBatch& batch, const LossOptions& options) {
  const auto dtype = batch.logps.scalar_type();
  FusedOutcome outcome;
  FusedTensors ts;
  {
    torch::NoGradGuard no_grad;
    ts.logps = batch.logps.detach().contiguous();
    if (batch.old_logps.defined()) ts.old_logps = batch.old_logps.detach().to(dtype).contiguous();
    if (options.beta != 0.0) ts.ref_logps = batch.ref_logps.detach().to(dtype).contiguous();
    ts.advantages = batch.advantages.detach().to(dtype).contiguous();
    ts.mask = batch.mask.to(dtype).contiguous();
  }
  ts.options = &options;
  ts.num_items_in_batch = batch.num_items_in_batch;
  ts.num_processes = batch.num_processes;
  ts.grad_accum_steps = batch.grad_accum_steps;
  ts.outcome = &outcome;
  LossResult result;
  result.loss = FusedPolicyLossFunction::apply(batch.logps, &ts);
  const bool counts_tokens = options.loss_type == LossType::dapo || options.loss_type == LossType::cispo;
  if (outcome.invalid || (counts_tokens && !(std::isfinite(batch.num_items_in_batch) &&
                                             batch.num_items_in_batch >= outcome.local_tokens))) {
    validate_loss_batch_values(batch, options);  // throws the composed path's message
    if (outcome.invalid) {
      // Only a finite advantage that overflows the logps dtype gets here; the composed path accepts it too.
      return policy_loss_composed(batch, options);
    }
  }
  result.metrics = std::move(outcome.metrics);
  return result;
}
#endif  // GRPO_HAS_SIMD

}  // namespace detail

/// The GRPO micro-step loss (docs/math.md §3-§5) and its metrics (§6). The loss is scaled so that summing the
/// gradients of GA micro-steps (and averaging over P processes) gives the loss of the whole step.
/// CPU float32/float64 inputs take the fused one-pass kernel (fused_loss.hpp; first derivatives only); other
/// devices and dtypes take the composed LibTorch ops (detail::policy_loss_composed), with the same results.
inline LossResult policy_loss(const LossBatch& batch, const LossOptions& options) {
  options.validate();
  detail::validate_loss_batch_structure(batch, options);
#if GRPO_HAS_SIMD
  if (detail::fused_policy_loss_applies(batch)) return detail::policy_loss_fused(batch, options);
#endif
  return detail::policy_loss_composed(batch, options);
}

}  // namespace grpo
