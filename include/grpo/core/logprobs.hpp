#pragma once
// Log-probabilities and entropies of completion tokens from [B,T,V] logits (docs/math.md §2), in row chunks so
// that no full [B,T,V] log-softmax copy is made.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Default number of token positions handled per chunk (each chunk allocates about chunk x V temporaries).
inline constexpr int64_t default_logprob_chunk = 256;

namespace detail {

inline void check_logits(const std::string& where, const torch::Tensor& logits, double temperature, int64_t chunk) {
  if (!logits.defined() || logits.dim() != 3) {
    throw InvalidArgument(where + "logits must be [B,T,V], got shape " + shape_string(logits));
  }
  if (!logits.is_floating_point()) throw InvalidArgument(where + "logits must be floating point");
  if (!(temperature > 0)) {
    throw InvalidArgument(where + "temperature must be > 0, got " + std::to_string(temperature));
  }
  if (chunk < 1) throw InvalidArgument(where + "chunk must be >= 1, got " + std::to_string(chunk));
}

// Calls fn(rows of [n,V] logits already divided by the temperature) chunk by chunk and concatenates the [n]
// results into [B,T].
template <class Fn>
torch::Tensor map_position_chunks(const torch::Tensor& logits, double temperature, int64_t chunk, Fn&& fn) {
  const auto rows = logits.size(0), tokens = logits.size(1), vocab = logits.size(2);
  const auto flat = logits.reshape({rows * tokens, vocab});
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < rows * tokens; start += chunk) {
    auto block = flat.slice(0, start, std::min(start + chunk, rows * tokens));
    if (temperature != 1.0) block = block / temperature;
    parts.push_back(fn(block, start));
  }
  if (parts.empty()) return torch::empty({rows, tokens}, logits.options());
  return torch::cat(parts).reshape({rows, tokens});
}

}  // namespace detail

/// [B,T] log-probability of `index[b,t]` under softmax(logits[b,t] / temperature).
/// logits: [B,T,V]; index: [B,T] integer token ids in [0, V). Differentiable with respect to logits.
/// float32/float64 use logit - logsumexp; half types use a per-chunk log_softmax (logsumexp is unstable there).
inline torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& index,
                                           double temperature = 1.0, int64_t chunk = default_logprob_chunk) {
  const std::string where = "grpo::selective_log_softmax: ";
  detail::check_logits(where, logits, temperature, chunk);
  detail::require_shape(where, "index", index, {logits.size(0), logits.size(1)}, "[B,T] like logits");
  if (index.is_floating_point() || index.scalar_type() == torch::kBool) {
    throw InvalidArgument(where + "index must hold integer token ids");
  }
  detail::require_device(where, "index", index, "logits", logits);
  if (index.numel() > 0) {
    const auto vocab = logits.size(2);
    detail::throw_if_any(where, "index", index, (index < 0) | (index >= vocab),
                         ("is outside the vocabulary [0, " + std::to_string(vocab) + ")").c_str());
  }
  const auto flat_index = index.reshape({-1}).to(torch::kLong);
  const bool low_precision = logits.scalar_type() == torch::kHalf || logits.scalar_type() == torch::kBFloat16;
  return detail::map_position_chunks(logits, temperature, chunk, [&](const torch::Tensor& block, int64_t start) {
    const auto ids = flat_index.slice(0, start, start + block.size(0)).unsqueeze(1);
    if (low_precision) return torch::log_softmax(block, -1).gather(1, ids).squeeze(1);
    return block.gather(1, ids).squeeze(1) - torch::logsumexp(block, -1);
  });
}

/// [B,T] entropy -sum_v p log p of softmax(logits / temperature). Wrap in torch::NoGradGuard unless an entropy
/// bonus needs its gradient.
inline torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature = 1.0,
                                         int64_t chunk = default_logprob_chunk) {
  detail::check_logits("grpo::entropy_from_logits: ", logits, temperature, chunk);
  return detail::map_position_chunks(logits, temperature, chunk, [](const torch::Tensor& block, int64_t) {
    const auto logp = torch::log_softmax(block, -1);
    return -(torch::exp(logp) * logp).sum(-1);
  });
}

/// The logits that score a completion of T tokens: the model's logits over prompt + completion are [B,L,V]; the
/// prediction for token t sits one position earlier, so this is logits[:, :-1][:, -T:] ([B,T,V], a view).
inline torch::Tensor completion_logits(const torch::Tensor& logits, int64_t completion_length) {
  const std::string where = "grpo::completion_logits: ";
  if (!logits.defined() || logits.dim() != 3) {
    throw InvalidArgument(where + "logits must be [B,L,V], got shape " + detail::shape_string(logits));
  }
  if (completion_length < 0 || completion_length + 1 > logits.size(1)) {
    throw InvalidArgument(where + "a completion of " + std::to_string(completion_length) + " tokens needs at least " +
                          std::to_string(completion_length + 1) + " positions of logits, got shape " +
                          detail::shape_string(logits));
  }
  const auto length = logits.size(1);
  return logits.slice(1, length - 1 - completion_length, length - 1);
}

/// [B,T] log-probs of the completion tokens `completion_ids` ([B,T]) given the model's logits over prompt +
/// completion ([B,L,V]), with temperature (docs/math.md §2).
inline torch::Tensor completion_logps(const torch::Tensor& logits, const torch::Tensor& completion_ids,
                                      double temperature = 1.0, int64_t chunk = default_logprob_chunk) {
  if (!completion_ids.defined() || completion_ids.dim() != 2) {
    throw InvalidArgument("grpo::completion_logps: completion_ids must be [B,T], got shape " +
                          detail::shape_string(completion_ids));
  }
  return selective_log_softmax(completion_logits(logits, completion_ids.size(1)), completion_ids, temperature, chunk);
}

}  // namespace grpo
