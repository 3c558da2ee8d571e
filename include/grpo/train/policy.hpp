#pragma once
// Policy<M> (the trainable model) and Reference<M> (a frozen copy for the KL term): completion log-probs in
// micro-batches (docs/math.md §2), generation, and reference-model sync.

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "grpo/core/chunked_lm_head.hpp"
#include "grpo/core/logprobs.hpp"
#include "grpo/detail/autocast.hpp"
#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"
#include "grpo/generation/generate.hpp"
#include "grpo/models/causal_lm.hpp"

namespace grpo {

/// Per-token log-probs of completions, and their entropies when asked for.
struct CompletionLogps {
  /// [B,T] log p(completion token) under softmax(logits / temperature).
  torch::Tensor logps;
  /// [B,T] entropy of that distribution (no gradient); undefined unless requested.
  torch::Tensor entropies;
};

namespace detail {

template <class M, class = void>
struct has_clone : std::false_type {};
template <class M>
struct has_clone<M, std::void_t<decltype(std::declval<const M&>().clone())>> : std::true_type {};

template <class>
inline constexpr bool always_false = false;

// A deep copy of `model` through its clone() (torch::nn::Cloneable modules, TorchScriptLM).
template <class M>
std::shared_ptr<M> deep_copy(const M& model) {
  if constexpr (has_clone<M>::value) {
    auto copy = model.clone();
    if constexpr (std::is_convertible_v<decltype(copy), std::shared_ptr<M>>) {
      return copy;
    } else {
      auto typed = std::dynamic_pointer_cast<M>(copy);
      if (!typed) throw RuntimeError("grpo::Reference: the model's clone() returned another type");
      return typed;
    }
  } else {
    static_assert(always_false<M>,
                  "grpo::Reference: the model type has no clone(); build the reference model yourself and pass "
                  "it to Reference<M>(std::shared_ptr<M>)");
  }
}

template <class M, class = void>
struct has_chunked_head : std::false_type {};
template <class M>
struct has_chunked_head<M,
                        std::void_t<decltype(torch::Tensor(std::declval<M&>().hidden_states(
                                        std::declval<const torch::Tensor&>(), std::declval<const torch::Tensor&>()))),
                                    decltype(torch::Tensor(std::declval<M&>().lm_head_weight()))>> : std::true_type {};

// Log-probs of completion_ids given prompt + completion, `micro_batch_size` rows per forward (0 = all). Models
// with the hidden_states/lm_head_weight hook (causal_lm.hpp) go through the chunked LM head at the completion
// positions only; others through forward()'s logits.
template <class M>
CompletionLogps completion_logps_in_micro_batches(M& model, const torch::Tensor& prompt_ids,
                                                  const torch::Tensor& prompt_mask, const torch::Tensor& completion_ids,
                                                  const torch::Tensor& completion_mask, double temperature,
                                                  int64_t micro_batch_size, bool want_entropy) {
  const std::string where = "grpo::Policy::completion_logps: ";
  if (!prompt_ids.defined() || prompt_ids.dim() != 2) {
    throw InvalidArgument(where + "prompt_ids must be [B,P], got shape " + shape_string(prompt_ids));
  }
  if (!completion_ids.defined() || completion_ids.dim() != 2 || completion_ids.size(0) != prompt_ids.size(0)) {
    throw InvalidArgument(where + "completion_ids must be [B,T] with B = " + std::to_string(prompt_ids.size(0)) +
                          ", got shape " + shape_string(completion_ids));
  }
  const auto batch = prompt_ids.size(0);
  require_shape(where, "prompt_mask", prompt_mask, prompt_ids.sizes(), "[B,P] like prompt_ids");
  require_shape(where, "completion_mask", completion_mask, completion_ids.sizes(), "[B,T] like completion_ids");
  if (micro_batch_size < 0) {
    throw InvalidArgument(where + "micro_batch_size must be >= 0, got " + std::to_string(micro_batch_size));
  }
  if (prompt_ids.size(1) < 1) {
    throw InvalidArgument(where + "prompt_ids has no positions (shape " + shape_string(prompt_ids) +
                          "); the first completion token is predicted from the last prompt position");
  }
  const auto step = micro_batch_size == 0 ? std::max<int64_t>(batch, 1) : micro_batch_size;
  const auto ids = torch::cat({prompt_ids, completion_ids}, 1);
  const auto mask = torch::cat({prompt_mask, completion_mask}, 1);
  std::vector<torch::Tensor> logps, entropies;
  for (int64_t start = 0; start < batch; start += step) {
    const auto end = std::min(start + step, batch);
    const auto targets = completion_ids.slice(0, start, end);
    if constexpr (has_chunked_head<M>::value) {
      // The prediction for completion token t sits at position P - 1 + t (docs/math.md §2).
      const auto prompt_length = prompt_ids.size(1), completion_length = targets.size(1);
      const auto hidden = model.hidden_states(ids.slice(0, start, end), mask.slice(0, start, end))
                              .slice(1, prompt_length - 1, prompt_length - 1 + completion_length);
      auto head = lm_head_logps_with_entropy(hidden, model.lm_head_weight(), targets, temperature, 0, want_entropy);
      logps.push_back(std::move(head.logps));
      if (want_entropy) entropies.push_back(std::move(head.entropies));
    } else {
      const auto logits = model.forward(ids.slice(0, start, end), mask.slice(0, start, end), nullptr);
      auto rows = grpo::completion_logps(logits, targets, temperature);
      // Half-type logits (a bf16 model, or autocast): the loss kernel gets float32 log-probs.
      logps.push_back(rows.scalar_type() == torch::kDouble ? rows : rows.to(torch::kFloat));
      if (want_entropy) {
        torch::NoGradGuard no_grad;
        entropies.push_back(entropy_from_logits(completion_logits(logits, targets.size(1)), temperature));
      }
    }
  }
  CompletionLogps out;
  if (logps.empty()) {
    out.logps = torch::empty(completion_ids.sizes(), torch::TensorOptions().device(ids.device()));
    if (want_entropy) out.entropies = out.logps.clone();
    return out;
  }
  out.logps = logps.size() == 1 ? logps[0] : torch::cat(logps, 0);
  if (want_entropy) out.entropies = entropies.size() == 1 ? entropies[0] : torch::cat(entropies, 0);
  return out;
}

// The device of a model's parameters (CPU for a model without parameters).
template <class M>
torch::Device parameter_device(M& model) {
  for (const auto& p : model.parameters()) return p.device();
  return torch::kCPU;
}

// Autocast to `dtype` on `device` for the scope when `dtype` is set (mixed precision), else nothing changes.
class MixedPrecisionScope {
 public:
  MixedPrecisionScope(const std::optional<torch::ScalarType>& dtype, const torch::Device& device) {
    if (dtype) scope_.emplace(device.type(), AutocastState{true, *dtype});
  }

 private:
  std::optional<AutocastScope> scope_;
};

}  // namespace detail

/// The trainable model. Kept in eval mode so dropout is off during GRPO (gradients still flow).
template <class M>
class Policy {
  static_assert(check_causal_lm<M>());

 public:
  /// Wraps `model` (shared: the optimizer and checkpoints may hold it too) and switches dropout off.
  explicit Policy(std::shared_ptr<M> model) : model_(std::move(model)) {
    if (!model_) throw InvalidArgument("grpo::Policy: the model is null");
    set_train_mode(*model_, false);
  }

  /// [B,T] completion log-probs (with gradient) and optional [B,T] entropies (no gradient), computed from the
  /// model's logits over prompt + completion, `micro_batch_size` rows per forward (0 = all rows at once).
  /// prompt_ids/prompt_mask [B,P] (left-padded), completion_ids/completion_mask [B,T]; docs/math.md §2.
  CompletionLogps completion_logps(const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                                   const torch::Tensor& completion_ids, const torch::Tensor& completion_mask,
                                   double temperature = 1.0, int64_t micro_batch_size = 0,
                                   bool want_entropy = false) const {
    const detail::MixedPrecisionScope autocast(mixed_precision_, device());
    return detail::completion_logps_in_micro_batches(*model_, prompt_ids, prompt_mask, completion_ids, completion_mask,
                                                     temperature, micro_batch_size, want_entropy);
  }

  /// Completions for left-padded prompts [B,P] (see grpo::generate).
  GenerationResult generate(const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                            const GenerationOptions& options) const {
    const detail::MixedPrecisionScope autocast(mixed_precision_, device());
    return grpo::generate(*model_, prompt_ids, prompt_mask, options);
  }

  /// Mixed precision (GRPOConfig::bf16): generation and log-prob forwards run under autocast to `dtype`
  /// (torch::kBFloat16) on the model's device, matmuls in that dtype, while the parameters, their gradients and
  /// the optimizer state stay float32 and the log-probs reach the loss in float32. std::nullopt: off.
  void set_mixed_precision(std::optional<torch::ScalarType> dtype) {
    if (dtype && !detail::autocast_supported(device().type())) {
      throw InvalidArgument(
          "grpo::Policy::set_mixed_precision: mixed precision (autocast) needs a CPU or CUDA "
          "model, the model is on " +
          c10::DeviceTypeName(device().type()));
    }
    mixed_precision_ = dtype;
  }
  /// The autocast dtype, std::nullopt when off.
  std::optional<torch::ScalarType> mixed_precision() const { return mixed_precision_; }

  /// The wrapped model.
  M& model() const { return *model_; }
  /// The wrapped model's shared handle.
  const std::shared_ptr<M>& model_ptr() const { return model_; }
  /// The device of the model's parameters (CPU for a model without parameters): where its inputs go.
  torch::Device device() const { return detail::parameter_device(*model_); }
  /// The trainable parameters (for the optimizer).
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& p : model_->parameters()) out.push_back(p);
    return out;
  }

 private:
  std::shared_ptr<M> model_;
  std::optional<torch::ScalarType> mixed_precision_;
};

/// A frozen copy of the policy (no gradients, eval mode) that scores completions for the KL term.
template <class M>
class Reference {
  static_assert(check_causal_lm<M>());

 public:
  /// A deep copy of the policy's current model (needs M::clone(): torch::nn::Cloneable models, TorchScriptLM).
  /// It scores under the policy's mixed precision setting.
  explicit Reference(const Policy<M>& policy)
      : model_(detail::deep_copy(policy.model())), mixed_precision_(policy.mixed_precision()) {
    freeze();
  }
  /// Uses `model` (e.g. loaded separately from a checkpoint) as the reference, frozen.
  explicit Reference(std::shared_ptr<M> model) : model_(std::move(model)) {
    if (!model_) throw InvalidArgument("grpo::Reference: the model is null");
    freeze();
  }

  /// [B,T] reference log-probs (and entropies if asked), without gradient; arguments as Policy::completion_logps.
  CompletionLogps completion_logps(const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                                   const torch::Tensor& completion_ids, const torch::Tensor& completion_mask,
                                   double temperature = 1.0, int64_t micro_batch_size = 0,
                                   bool want_entropy = false) const {
    torch::NoGradGuard no_grad;
    const detail::MixedPrecisionScope autocast(mixed_precision_, detail::parameter_device(*model_));
    return detail::completion_logps_in_micro_batches(*model_, prompt_ids, prompt_mask, completion_ids, completion_mask,
                                                     temperature, micro_batch_size, want_entropy);
  }

  /// Reference-model sync (TRL's sync_ref_model): ref = alpha * policy + (1 - alpha) * ref, parameter by parameter.
  void sync_from(const Policy<M>& policy, double alpha) {
    if (!(alpha >= 0 && alpha <= 1)) {
      throw InvalidArgument("grpo::Reference::sync_from: alpha must be in [0, 1], got " + std::to_string(alpha));
    }
    torch::NoGradGuard no_grad;
    const auto source = policy.parameters();
    std::vector<torch::Tensor> target;
    for (const auto& p : model_->parameters()) target.push_back(p);
    if (source.size() != target.size()) {
      throw InvalidArgument("grpo::Reference::sync_from: the policy has " + std::to_string(source.size()) +
                            " parameters but the reference has " + std::to_string(target.size()));
    }
    for (std::size_t i = 0; i < target.size(); ++i) {
      if (source[i].sizes() != target[i].sizes()) {
        throw InvalidArgument("grpo::Reference::sync_from: parameter " + std::to_string(i) + " has shape " +
                              shape_string_of(source[i]) + " in the policy but " + shape_string_of(target[i]) +
                              " in the reference");
      }
      target[i].mul_(1.0 - alpha).add_(source[i].detach().to(target[i].options()), alpha);
    }
  }

  /// The frozen model.
  M& model() const { return *model_; }
  /// Mixed precision as Policy::set_mixed_precision.
  void set_mixed_precision(std::optional<torch::ScalarType> dtype) { mixed_precision_ = dtype; }

 private:
  static std::string shape_string_of(const torch::Tensor& t) { return detail::shape_string(t); }

  void freeze() {
    for (auto& p : model_->parameters()) {
      auto parameter = p;
      parameter.requires_grad_(false);
    }
    set_train_mode(*model_, false);
  }

  std::shared_ptr<M> model_;
  std::optional<torch::ScalarType> mixed_precision_;
};

/// The reference model only when it is needed (beta != 0), as TRL creates it: otherwise std::nullopt.
template <class M>
std::optional<Reference<M>> make_reference(const Policy<M>& policy, double beta) {
  if (beta == 0.0) return std::nullopt;
  return Reference<M>(policy);
}

}  // namespace grpo
