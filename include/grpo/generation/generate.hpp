#pragma once
// Batched generation from left-padded prompts with a KV cache, sampling filters, EOS / stop tokens and
// per-row seeded generators.

#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"
#include "grpo/generation/sampling.hpp"
#include "grpo/models/causal_lm.hpp"

namespace grpo {

/// Generation options; defaults are TRL's (temperature 1, top_p 1, top_k off, min_p off, no repetition penalty).
struct GenerationOptions {
  /// Most tokens generated per row (TRL's max_completion_length).
  int64_t max_new_tokens = 512;
  /// Logits are divided by this before the filters (> 0).
  double temperature = 1.0;
  /// Nucleus sampling mass in (0, 1]; 1 = off.
  double top_p = 1.0;
  /// Keep the k most likely tokens; 0 = off.
  int64_t top_k = 0;
  /// Keep tokens with p >= min_p * p_max; unset or 0 = off.
  std::optional<double> min_p;
  /// HF repetition penalty over prompt + completion tokens; 1 = off.
  double repetition_penalty = 1.0;
  /// false: greedy decoding (argmax after the repetition penalty; the sampling filters are not used).
  bool do_sample = true;
  /// Tokens that end a row (included in the completion). Unset (the default): the model's own EOS ids
  /// (`model.eos_token_ids()`, the optional member of the CausalLM trait; none when the model lacks it). An empty
  /// vector: no EOS, rows end only at stop_token_ids or max_new_tokens. Beware that `eos_token_ids = {}` unsets
  /// the optional (model's ids); write `eos_token_ids = std::vector<int64_t>{}` for "none".
  std::optional<std::vector<int64_t>> eos_token_ids;
  /// Further tokens that end a row like EOS (included in the completion).
  std::vector<int64_t> stop_token_ids;
  /// Fills completion_ids after a row's end.
  int64_t pad_token_id = 0;
  /// Base seed: row b samples from its own generator seeded with row_seed(seed, b). Unset: drawn from LibTorch's
  /// default generator (so torch::manual_seed makes runs reproducible).
  std::optional<uint64_t> seed;
  /// Explicit per-row seeds (overrides `seed`; size B): generating rows one by one with the seeds they had in a
  /// batch reproduces the batch.
  std::vector<uint64_t> row_seeds;
  /// Use the model's KV cache (false: recompute the whole sequence at each step; for benchmarks and checks).
  bool use_cache = true;
  /// Rows come in groups of this many identical prompts (GRPO's G completions per prompt, consecutive): each
  /// group's prompt is prefilled once and its keys/values copied to the group's rows. 1: every row prefilled.
  /// B must be a multiple; rows of a group that differ are an error.
  int64_t prompt_group_size = 1;

  /// Throws grpo::InvalidArgument naming the first bad field.
  void validate() const {
    const auto fail = [](const std::string& m) { throw InvalidArgument("grpo::GenerationOptions: " + m); };
    if (max_new_tokens < 0) fail("max_new_tokens must be >= 0, got " + std::to_string(max_new_tokens));
    if (!(temperature > 0)) fail("temperature must be > 0, got " + std::to_string(temperature));
    if (!(top_p > 0 && top_p <= 1)) fail("top_p must be in (0, 1], got " + std::to_string(top_p));
    if (top_k < 0) fail("top_k must be >= 0, got " + std::to_string(top_k));
    if (min_p && !(*min_p >= 0 && *min_p <= 1)) fail("min_p must be in [0, 1], got " + std::to_string(*min_p));
    if (!(repetition_penalty > 0)) fail("repetition_penalty must be > 0, got " + std::to_string(repetition_penalty));
    if (prompt_group_size < 1) fail("prompt_group_size must be >= 1, got " + std::to_string(prompt_group_size));
  }
};

/// What generate() returns; every tensor is on the prompt's device.
struct GenerationResult {
  /// [B,T] int64 completion tokens, T = the longest completion (<= max_new_tokens), pad_token_id after each end.
  torch::Tensor completion_ids;
  /// [B,T] int64 1 on completion tokens (the EOS / stop token included), 0 on padding.
  torch::Tensor completion_mask;
  /// [B] int64 completion length per row (the EOS / stop token included).
  torch::Tensor lengths;
  /// [B] bool: the row produced no EOS / stop token within max_new_tokens.
  torch::Tensor truncated;
};

/// The EOS ids generate() stops at for `model` under `options`: options.eos_token_ids when set, else the model's
/// (empty when it has none). Stop tokens are not included.
template <class M>
std::vector<int64_t> resolve_eos_token_ids(const M& model, const GenerationOptions& options) {
  return options.eos_token_ids ? *options.eos_token_ids : model_eos_token_ids(model);
}

namespace detail {

// Next token per row [B] from last-position logits [B,V] after the repetition penalty and filters.
inline torch::Tensor choose_tokens(torch::Tensor logits, const torch::Tensor& seen, const GenerationOptions& o,
                                   std::vector<std::mt19937_64>& rngs) {
  if (seen.defined()) logits = apply_repetition_penalty(logits, seen, o.repetition_penalty);
  if (!o.do_sample) return logits.argmax(-1);
  logits = logits.to(logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  if (o.temperature != 1.0) logits = logits / o.temperature;
  logits = top_k_filter(logits, o.top_k);
  logits = top_p_filter(logits, o.top_p);
  logits = min_p_filter(logits, o.min_p.value_or(0.0));
  return sample_rows(torch::softmax(logits, -1), rngs);
}

}  // namespace detail

/// Generates completions for left-padded prompts. prompt_ids [B,P] int64; prompt_mask [B,P] 0/1 (undefined: all
/// ones). Rows end at an EOS id (resolve_eos_token_ids: the model's unless options.eos_token_ids is set) or a
/// stop token. Runs without autograd (NoGradGuard: TorchScript modules with trainable parameters fail under
/// InferenceMode) with the model in whatever train/eval mode it is in (Policy keeps it in eval).
/// With a model that fills the KV cache each new token costs one forward of one position (attention over the
/// cache); a model that leaves the cache empty gets the whole sequence recomputed per token.
template <class M>
GenerationResult generate(M& model, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                          const GenerationOptions& options = {}) {
  static_assert(check_causal_lm<M>());
  const std::string where = "grpo::generate: ";
  options.validate();
  if (!prompt_ids.defined() || prompt_ids.dim() != 2 || prompt_ids.size(1) == 0) {
    throw InvalidArgument(where + "prompt_ids must be [B,P] with P >= 1, got shape " +
                          detail::shape_string(prompt_ids));
  }
  if (prompt_ids.is_floating_point()) throw InvalidArgument(where + "prompt_ids must hold integer token ids");
  const auto batch = prompt_ids.size(0), prompt_length = prompt_ids.size(1);
  if (prompt_mask.defined()) {
    detail::require_shape(where, "prompt_mask", prompt_mask, {batch, prompt_length}, "[B,P] like prompt_ids");
  }
  if (!options.row_seeds.empty() && static_cast<int64_t>(options.row_seeds.size()) != batch) {
    throw InvalidArgument(where + "row_seeds has " + std::to_string(options.row_seeds.size()) + " seeds for " +
                          std::to_string(batch) + " rows");
  }

  std::vector<std::mt19937_64> rngs;
  if (options.do_sample) {
    uint64_t base = 0;
    if (options.row_seeds.empty()) {
      base = options.seed
                 ? *options.seed
                 : static_cast<uint64_t>(
                       torch::randint(0, std::numeric_limits<int64_t>::max(), {1}, torch::kLong).item<int64_t>());
    }
    for (int64_t b = 0; b < batch; ++b) {
      const auto seed = options.row_seeds.empty() ? row_seed(base, static_cast<uint64_t>(b))
                                                  : options.row_seeds[static_cast<std::size_t>(b)];
      rngs.emplace_back(seed);
    }
  }

  GenerationResult result;
  {
    torch::NoGradGuard no_grad;
    const auto device = prompt_ids.device();
    const auto ids = prompt_ids.to(torch::kLong);
    auto mask = prompt_mask.defined() ? prompt_mask.to(device, torch::kLong)
                                      : torch::ones({batch, prompt_length}, ids.options());
    const auto long_options = ids.options();

    std::vector<int64_t> end_ids = resolve_eos_token_ids(model, options);
    end_ids.insert(end_ids.end(), options.stop_token_ids.begin(), options.stop_token_ids.end());

    KVCache cache;
    cache.reserve = prompt_length + options.max_new_tokens;
    const int64_t group = options.use_cache ? options.prompt_group_size : 1;
    torch::Tensor logits;  // [B,1,V]
    if (group > 1) {       // one prefill per group of identical prompts, then the cache copied to the group's rows
      if (batch % group != 0) {
        throw InvalidArgument(where + "prompt_group_size " + std::to_string(group) + " does not divide the " +
                              std::to_string(batch) + " rows");
      }
      const auto grouped_ids = ids.view({batch / group, group, prompt_length});
      const auto grouped_mask = mask.view({batch / group, group, prompt_length});
      const auto first_ids = grouped_ids.select(1, 0), first_mask = grouped_mask.select(1, 0);
      if (!torch::equal(grouped_ids, first_ids.unsqueeze(1).expand_as(grouped_ids)) ||
          !torch::equal(grouped_mask, first_mask.unsqueeze(1).expand_as(grouped_mask))) {
        throw InvalidArgument(where + "prompt_group_size is " + std::to_string(group) +
                              " but the rows of a group hold different prompts");
      }
      logits = forward_last_logits(model, first_ids.contiguous(), first_mask.contiguous(), &cache)
                   .repeat_interleave(group, 0);
      for (auto& k : cache.keys) k = k.repeat_interleave(group, 0);
      for (auto& v : cache.values) v = v.repeat_interleave(group, 0);
      if (cache.attention_mask.defined()) cache.attention_mask = cache.attention_mask.repeat_interleave(group, 0);
    } else {
      logits = forward_last_logits(model, ids, mask, options.use_cache ? &cache : nullptr);
    }
    const bool cached = options.use_cache && !cache.empty();
    const auto vocab = logits.size(-1);

    torch::Tensor seen;  // [B,V] bool: tokens of prompt + completion so far, for the repetition penalty
    if (options.repetition_penalty != 1.0) {
      seen = torch::zeros({batch, vocab + 1}, long_options.dtype(torch::kBool));
      seen.scatter_(1, torch::where(mask != 0, ids, torch::full_like(ids, vocab)), true);  // padding -> column V
      seen = seen.slice(1, 0, vocab);
    }

    // Rows still generating are the "active" ones (indices into the batch); with the cache, once at most half of
    // them are unfinished, the finished ones leave: their cache, mask, penalty state and generators are dropped,
    // so later steps compute only live rows. Each row samples with its own generator, so this changes no token.
    auto finished = torch::zeros({batch}, long_options.dtype(torch::kBool));  // over the whole batch
    auto lengths = torch::zeros({batch}, long_options);
    auto active = torch::arange(batch, long_options);
    auto active_finished = finished.clone();  // [A]
    std::vector<torch::Tensor> tokens;        // [B] per step
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      const bool all_active = active.size(0) == batch;
      auto next = detail::choose_tokens(logits.select(1, -1), seen, options, rngs).to(device);
      const auto alive = active_finished.logical_not();
      next = torch::where(alive, next, torch::full_like(next, options.pad_token_id));
      if (all_active) {
        tokens.push_back(next);
        lengths += alive.to(torch::kLong);
      } else {
        tokens.push_back(torch::full({batch}, options.pad_token_id, long_options).index_copy(0, active, next));
        lengths.index_add_(0, active, alive.to(torch::kLong));
      }
      for (const auto id : end_ids) active_finished = active_finished | (next == id);
      finished = all_active ? active_finished : finished.index_copy(0, active, active_finished);
      if (seen.defined()) seen.scatter_(1, next.unsqueeze(1), true);
      if (step + 1 == options.max_new_tokens || active_finished.all().item<bool>()) break;
      mask = torch::cat({mask, alive.to(torch::kLong).unsqueeze(1)}, 1);
      if (!cached) {
        logits = forward_last_logits(model, torch::cat({ids, torch::stack(tokens, 1)}, 1), mask, nullptr);
        continue;
      }
      const auto live = active_finished.logical_not();
      const auto live_count = live.sum().item<int64_t>();
      if (live_count * 2 <= active.size(0)) {
        const auto keep = live.nonzero().squeeze(1);
        active = active.index_select(0, keep);
        active_finished = active_finished.index_select(0, keep);
        next = next.index_select(0, keep);
        mask = mask.index_select(0, keep);
        if (seen.defined()) seen = seen.index_select(0, keep);
        for (auto& k : cache.keys) k = k.index_select(0, keep);
        for (auto& v : cache.values) v = v.index_select(0, keep);
        if (cache.attention_mask.defined()) cache.attention_mask = cache.attention_mask.index_select(0, keep);
        if (!rngs.empty()) {
          const auto kept = keep.to(torch::kCPU);
          std::vector<std::mt19937_64> live_rngs;
          for (int64_t i = 0; i < kept.size(0); ++i)
            live_rngs.push_back(rngs[static_cast<std::size_t>(kept[i].item<int64_t>())]);
          rngs = std::move(live_rngs);
        }
      }
      logits = model.forward(next.unsqueeze(1), mask, &cache);
    }
    auto completion_ids = tokens.empty() ? torch::empty({batch, 0}, long_options) : torch::stack(tokens, 1);
    const auto positions = torch::arange(completion_ids.size(1), long_options).unsqueeze(0);
    const auto completion_mask = (positions < lengths.unsqueeze(1)).to(torch::kLong);
    result = {completion_ids, completion_mask, lengths, finished.logical_not()};
  }
  return result;
}

}  // namespace grpo
