#pragma once
// Completion log-probs straight from hidden states and the LM-head weight, chunk by chunk of token positions, so
// that the [N,V] logits never exist at once (docs/math.md §2). Forward and backward each hold one [chunk,V] block;
// gradients with respect to the hidden states and the weight are exact (not an approximation): the backward pass
// recomputes each chunk's logits from the saved per-row logsumexp.
//
// Use with the GRPO loss: the chunking happens in the log-prob step, the loss is unchanged:
//   auto logps = grpo::lm_head_logps(hidden, lm_head_weight, completion_ids, temperature);   // [B,T]
//   auto loss = grpo::policy_loss(grpo::LossBatch{logps, old, ref, advantages, mask, ...}, options).loss;
//   loss.backward();   // d loss / d hidden and d loss / d weight, without [B,T,V] logits or their gradient

#include <torch/csrc/autograd/custom_function.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "grpo/detail/autocast.hpp"
#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Default size of one chunk of logits in elements (4 Mi: 16 MiB in float32) for small vocabularies.
inline constexpr int64_t default_lm_head_chunk_elements = int64_t{1} << 22;
/// Fewest token positions per automatic chunk. Each chunk pays O(V x H) fixed work (the BLAS packs the [V,H]
/// weight, and the backward reads and writes the [V,H] weight gradient), so thin chunks are slow: at V = 32768,
/// H = 512, 32-row chunks took 2.2x the time of 128-row ones (benchmarks/RESULTS.md). With H >= 256 the [256,V]
/// chunk is no larger than the [V,H] weight gradient every path allocates.
inline constexpr int64_t min_lm_head_chunk_rows = 256;

/// Token positions per chunk for a vocabulary of V: `chunk_rows` if > 0, else
/// max(default_lm_head_chunk_elements / V, min_lm_head_chunk_rows).
inline int64_t lm_head_chunk_rows(int64_t vocab_size, int64_t chunk_rows = 0) {
  if (chunk_rows > 0) return chunk_rows;
  return std::max(min_lm_head_chunk_rows, default_lm_head_chunk_elements / std::max<int64_t>(vocab_size, 1));
}

/// Log-probs of target tokens and, when asked, the entropies of the same distributions.
struct LmHeadLogps {
  /// Log p(target) under softmax(hidden @ weight^T / temperature), shaped like the targets; differentiable with
  /// respect to hidden and weight.
  torch::Tensor logps;
  /// -sum_v p log p of the same distributions, shaped like the targets, no gradient; undefined unless requested.
  torch::Tensor entropies;
};

namespace detail {

// float32 for half types (their logsumexp is unstable), else the inputs' dtype.
inline torch::ScalarType lm_head_compute_dtype(torch::ScalarType t) {
  return (t == torch::kHalf || t == torch::kBFloat16) ? torch::kFloat32 : t;
}

// The autograd function behind lm_head_logps. Inputs: hidden [N,H], weight [V,H], targets [N] int64 (validated by
// the caller). Outputs: logps [N] and entropies [N] (empty [0] when not asked for).
struct ChunkedLmHeadFunction : public torch::autograd::Function<ChunkedLmHeadFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                                const torch::Tensor& weight, const torch::Tensor& targets,
                                                double temperature, int64_t chunk_rows, bool want_entropy,
                                                int64_t matmul_dtype) {
    const auto compute = lm_head_compute_dtype(hidden.scalar_type());
    const auto matmul = static_cast<torch::ScalarType>(matmul_dtype);
    const AutocastScope explicit_dtypes(hidden.device().type(), AutocastState{});
    const auto rows = hidden.size(0);
    const auto w = weight.to(matmul);  // no copy unless the inputs are half types or under autocast
    const auto options = hidden.options().dtype(compute);
    auto logsumexp = torch::empty({rows}, options);
    auto logps = torch::empty({rows}, options);
    auto entropies = torch::empty({want_entropy ? rows : 0}, options);
    for (int64_t start = 0; start < rows; start += chunk_rows) {
      const auto end = std::min(start + chunk_rows, rows);
      // Scaling the [c,H] hidden rows by 1/T is cheaper than scaling the [c,V] logits and gives the same logits.
      const auto scaled = hidden.slice(0, start, end).to(compute) / temperature;
      auto logits = torch::mm(scaled.to(matmul), w.t()).to(compute);  // [c,V], the one chunk-sized buffer in fp32
      const auto row_max = std::get<0>(logits.max(1, /*keepdim=*/true));
      logits.sub_(row_max);
      const auto target_shifted = logits.gather(1, targets.slice(0, start, end).unsqueeze(1)).squeeze(1);
      torch::Tensor sum_exp;
      if (want_entropy) {
        // H = log Z - sum_v e^z z / Z with z the shifted logits and Z = sum_v e^z.
        auto e = logits.exp();
        sum_exp = e.sum(1);
        const auto weighted = e.mul_(logits).sum(1);
        entropies.slice(0, start, end).copy_(sum_exp.log() - weighted / sum_exp);
      } else {
        sum_exp = logits.exp_().sum(1);
      }
      const auto shifted_lse = sum_exp.log_();
      logps.slice(0, start, end).copy_(target_shifted - shifted_lse);
      logsumexp.slice(0, start, end).copy_(shifted_lse + row_max.squeeze(1));
    }
    ctx->save_for_backward({hidden, weight, targets, logsumexp});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["matmul_dtype"] = matmul_dtype;
    ctx->mark_non_differentiable({entropies});
    return {logps.to(hidden.scalar_type()), entropies.to(hidden.scalar_type())};
  }

  // grad_logits = (onehot(target) - softmax) * grad_out per row; d logits / d hidden = weight / T and
  // d logits / d weight = hidden / T.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& hidden = saved[0];
    const auto& weight = saved[1];
    const auto& targets = saved[2];
    const auto& logsumexp = saved[3];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const bool need_hidden = ctx->needs_input_grad(0), need_weight = ctx->needs_input_grad(1);
    torch::Tensor grad_hidden, grad_weight;
    const auto& grad_logps = grad_outputs[0];
    if ((!need_hidden && !need_weight) || !grad_logps.defined()) {
      return {grad_hidden,     grad_weight,     torch::Tensor(), torch::Tensor(),
              torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    const auto compute = lm_head_compute_dtype(hidden.scalar_type());
    const auto matmul = static_cast<torch::ScalarType>(ctx->saved_data["matmul_dtype"].toInt());
    const AutocastScope explicit_dtypes(hidden.device().type(), AutocastState{});
    const auto w = weight.to(compute);
    const auto w_matmul = weight.to(matmul);
    const auto grad = grad_logps.to(compute);
    const auto rows = hidden.size(0);
    if (need_hidden) grad_hidden = torch::empty({rows, hidden.size(1)}, hidden.options().dtype(compute));
    if (need_weight) grad_weight = torch::zeros(w.sizes(), w.options());
    for (int64_t start = 0; start < rows; start += chunk_rows) {
      const auto end = std::min(start + chunk_rows, rows);
      const auto scaled = hidden.slice(0, start, end).to(compute) / temperature;
      const auto grad_rows = grad.slice(0, start, end).unsqueeze(1);              // [c,1]
      auto grad_logits = torch::mm(scaled.to(matmul), w_matmul.t()).to(compute);  // the forward's logits again
      grad_logits.sub_(logsumexp.slice(0, start, end).unsqueeze(1)).exp_().mul_(-grad_rows);
      grad_logits.scatter_add_(1, targets.slice(0, start, end).unsqueeze(1), grad_rows);
      if (need_hidden) {
        auto out = grad_hidden.slice(0, start, end);
        torch::mm_out(out, grad_logits, w);
      }
      if (need_weight) grad_weight.addmm_(grad_logits.t(), scaled);
    }
    if (need_hidden) grad_hidden = grad_hidden.div_(temperature).to(hidden.scalar_type());
    if (need_weight) grad_weight = grad_weight.to(weight.scalar_type());
    return {grad_hidden,     grad_weight,     torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

inline void check_lm_head_inputs(const std::string& where, const torch::Tensor& hidden, const torch::Tensor& weight,
                                 const torch::Tensor& targets, double temperature, int64_t chunk_rows) {
  if (!hidden.defined() || (hidden.dim() != 2 && hidden.dim() != 3) || !hidden.is_floating_point()) {
    throw InvalidArgument(where + "hidden must be floating point [B,T,H] or [N,H], got shape " + shape_string(hidden));
  }
  const auto width = hidden.size(-1);
  if (!weight.defined() || weight.dim() != 2 || weight.size(1) != width) {
    throw InvalidArgument(where + "weight has shape " + shape_string(weight) + " but hidden has shape " +
                          shape_string(hidden) + "; weight must be [V,H] with H = " + std::to_string(width));
  }
  if (weight.size(0) < 1) throw InvalidArgument(where + "weight has an empty vocabulary (shape [0, H])");
  if (weight.scalar_type() != hidden.scalar_type()) {
    throw InvalidArgument(where + "weight is " + std::string(c10::toString(weight.scalar_type())) + " but hidden is " +
                          std::string(c10::toString(hidden.scalar_type())));
  }
  require_device(where, "weight", weight, "hidden", hidden);
  if (!targets.defined() || targets.sizes() != hidden.sizes().slice(0, hidden.dim() - 1)) {
    throw InvalidArgument(where + "targets has shape " + shape_string(targets) + " but hidden has shape " +
                          shape_string(hidden) + "; targets must be hidden's shape without the last dimension");
  }
  if (targets.is_floating_point() || targets.scalar_type() == torch::kBool || targets.is_complex()) {
    throw InvalidArgument(where + "targets must hold integer token ids");
  }
  require_device(where, "targets", targets, "hidden", hidden);
  if (targets.numel() > 0) {
    const auto vocab = weight.size(0);
    throw_if_any(where, "targets", targets, (targets < 0) | (targets >= vocab),
                 ("is outside the vocabulary [0, " + std::to_string(vocab) + ")").c_str());
  }
  if (!(temperature > 0)) {
    throw InvalidArgument(where + "temperature must be > 0, got " + std::to_string(temperature));
  }
  if (chunk_rows < 0) {
    throw InvalidArgument(where + "chunk_rows must be >= 0 (0 = automatic), got " + std::to_string(chunk_rows));
  }
}

}  // namespace detail

/// Log-probs of `targets` under softmax(hidden @ weight^T / temperature) and, if `want_entropy`, the entropies
/// (no gradient), computed `chunk_rows` token positions at a time (0: lm_head_chunk_rows(V)); docs/math.md §2.
/// hidden: [B,T,H] or [N,H] (float32/float64; half types compute in float32); weight: [V,H], the LM head (an
/// nn::Linear's weight, or the tied embedding); targets: integer ids in [0,V), hidden's shape without H.
/// Extra memory: O(chunk_rows x V) in forward and backward (plus the [V,H] weight gradient), instead of the
/// several [N,V] tensors of log_softmax(linear(hidden, weight)). Gradients with respect to hidden and weight are
/// exact; the backward pass recomputes each chunk's logits (one more matrix product than the full path).
/// First derivatives only (the backward is not itself differentiable).
inline LmHeadLogps lm_head_logps_with_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                              const torch::Tensor& targets, double temperature = 1.0,
                                              int64_t chunk_rows = 0, bool want_entropy = true) {
  detail::check_lm_head_inputs("grpo::lm_head_logps: ", hidden, weight, targets, temperature, chunk_rows);
  const auto width = hidden.size(-1);
  const auto flat_hidden = hidden.reshape({-1, width});
  const auto flat_targets = targets.reshape({-1}).to(torch::kLong);
  const auto rows = lm_head_chunk_rows(weight.size(0), chunk_rows);
  // Under autocast (mixed precision) the logits' matrix products run in its lower precision dtype, as an
  // autocast linear layer's would; the log-softmax, the entropies and the gradients' sums stay in float32.
  const auto autocast = detail::autocast_state(hidden.device().type());
  const auto matmul = autocast.enabled && hidden.scalar_type() == torch::kFloat
                          ? autocast.dtype
                          : detail::lm_head_compute_dtype(hidden.scalar_type());
  auto outputs = detail::ChunkedLmHeadFunction::apply(flat_hidden, weight, flat_targets, temperature, rows,
                                                      want_entropy, static_cast<int64_t>(matmul));
  LmHeadLogps result;
  result.logps = outputs[0].reshape(targets.sizes());
  if (want_entropy) result.entropies = outputs[1].reshape(targets.sizes());
  return result;
}

/// [B,T] (or [N]) log-probs of `targets` under softmax(hidden @ weight^T / temperature), chunked; arguments as
/// lm_head_logps_with_entropy. Feed the result to policy_loss as LossBatch::logps.
inline torch::Tensor lm_head_logps(const torch::Tensor& hidden, const torch::Tensor& weight,
                                   const torch::Tensor& targets, double temperature = 1.0, int64_t chunk_rows = 0) {
  return lm_head_logps_with_entropy(hidden, weight, targets, temperature, chunk_rows, false).logps;
}

}  // namespace grpo
