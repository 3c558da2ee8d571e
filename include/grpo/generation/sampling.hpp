#pragma once
// Logits filters for sampling (Hugging Face semantics) and a reproducible per-row sampler. Each filter takes
// logits [B,V] and returns logits [B,V] with removed tokens set to -inf; a disabled filter returns its input.

#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "grpo/detail/random.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Repetition penalty (HF): for tokens with seen[b,v] true, logit / penalty if logit > 0 else logit * penalty.
/// logits [B,V]; seen [B,V] bool (tokens already in prompt + completion); penalty 1.0 = off.
inline torch::Tensor apply_repetition_penalty(const torch::Tensor& logits, const torch::Tensor& seen, double penalty) {
  if (!(penalty > 0)) {
    throw InvalidArgument("grpo::apply_repetition_penalty: penalty must be > 0, got " + std::to_string(penalty));
  }
  if (penalty == 1.0) return logits;
  const auto penalised = torch::where(logits > 0, logits / penalty, logits * penalty);
  return torch::where(seen, penalised, logits);
}

/// Keeps the k largest logits of each row (ties with the k-th are kept); k <= 0 or k >= V = off.
inline torch::Tensor top_k_filter(const torch::Tensor& logits, int64_t k) {
  if (k <= 0 || k >= logits.size(-1)) return logits;
  const auto kth = std::get<0>(logits.topk(k, -1)).slice(-1, k - 1, k);
  return logits.masked_fill(logits < kth, -std::numeric_limits<double>::infinity());
}

/// Keeps, per row, the smallest set of most probable tokens whose probability mass is >= p (at least one token);
/// p >= 1 = off. Probabilities are softmax(logits) in float32 (float64 stays float64).
inline torch::Tensor top_p_filter(const torch::Tensor& logits, double p) {
  if (p >= 1.0) return logits;
  if (!(p > 0)) throw InvalidArgument("grpo::top_p_filter: top_p must be in (0, 1], got " + std::to_string(p));
  const auto compute = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto sorted = logits.sort(-1, /*descending=*/true);
  const auto& sorted_logits = std::get<0>(sorted);
  const auto& order = std::get<1>(sorted);
  const auto probs = torch::softmax(sorted_logits, -1, compute);
  // A token is dropped when the tokens ranked before it already hold mass >= p; the first is always kept.
  auto drop_sorted = (probs.cumsum(-1) - probs) >= p;
  drop_sorted.select(-1, 0).fill_(false);
  const auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
  return logits.masked_fill(drop, -std::numeric_limits<double>::infinity());
}

/// Keeps tokens whose probability is >= min_p * (the row's largest probability); min_p <= 0 = off.
inline torch::Tensor min_p_filter(const torch::Tensor& logits, double min_p) {
  if (min_p <= 0) return logits;
  if (min_p > 1) throw InvalidArgument("grpo::min_p_filter: min_p must be in [0, 1], got " + std::to_string(min_p));
  const auto compute = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto probs = torch::softmax(logits, -1, compute);
  const auto threshold = std::get<0>(probs.max(-1, /*keepdim=*/true)) * min_p;
  return logits.masked_fill(probs < threshold, -std::numeric_limits<double>::infinity());
}

/// Seed of row `row` derived from a base seed (splitmix64 of seed + row), for one generator per row.
inline uint64_t row_seed(uint64_t seed, uint64_t row) { return detail::mix_seed(seed, row); }

/// Draws one token per row from probs [B,V] (rows need not be normalised) with rngs[b]; returns [B] int64 on
/// probs' device. Draws on the CPU in float64 by inverse CDF with a 53-bit uniform, so results depend only on the
/// row's generator and probabilities: the same on every platform and for any batch composition.
inline torch::Tensor sample_rows(const torch::Tensor& probs, std::vector<std::mt19937_64>& rngs) {
  if (probs.dim() != 2 || static_cast<std::size_t>(probs.size(0)) != rngs.size()) {
    throw InvalidArgument("grpo::sample_rows: probs must be [B,V] with one generator per row");
  }
  const auto cpu = probs.to(torch::kCPU, torch::kDouble).contiguous();
  const auto rows = cpu.size(0), vocab = cpu.size(1);
  auto out = torch::empty({rows}, torch::kLong);
  const double* p = cpu.data_ptr<double>();
  auto* token = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < rows; ++b) {
    const double* row = p + b * vocab;
    double total = 0;
    int64_t last_positive = -1;
    for (int64_t v = 0; v < vocab; ++v) {
      if (!(row[v] >= 0)) {
        throw InvalidArgument("grpo::sample_rows: row " + std::to_string(b) +
                              " has a negative or NaN probability at token " + std::to_string(v));
      }
      total += row[v];
      if (row[v] > 0) last_positive = v;
    }
    if (last_positive < 0) {
      throw InvalidArgument("grpo::sample_rows: row " + std::to_string(b) + " has no token with probability > 0");
    }
    const double u = static_cast<double>(rngs[static_cast<std::size_t>(b)]() >> 11) * 0x1.0p-53 * total;
    double cumulative = 0;
    token[b] = last_positive;
    for (int64_t v = 0; v <= last_positive; ++v) {
      cumulative += row[v];
      if (u < cumulative && row[v] > 0) {
        token[b] = v;
        break;
      }
    }
  }
  return out.to(probs.device());
}

}  // namespace grpo
