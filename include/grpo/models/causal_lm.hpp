#pragma once
// The model boundary: what grpo-cpp needs from a causal language model, and the KV cache it may fill.
//
// A type M is a CausalLM when it has
//   torch::Tensor forward(const torch::Tensor& input_ids,       // [B,L] int64 token ids
//                         const torch::Tensor& attention_mask,  // [B,P+L] 0/1 over cached + current tokens,
//                                                               // or undefined (= all ones)
//                         grpo::KVCache* cache);                // nullptr: no cache
//   -> logits [B,L,V]
//   std::vector<torch::Tensor> parameters();  (any container of tensors, as torch::nn::Module returns)
// Position ids derive from the mask (cumsum - 1, clamped at 0), so left-padded prompts work. A model that fills
// the cache must append the keys/values of the L current tokens and set `cache->attention_mask` to the mask it
// was given; a model that ignores the cache (it stays empty) still works: generation then recomputes the whole
// sequence at each step. Optional members, detected at compile time: `train(bool)` (Policy turns dropout off
// with train(false)), `clone()` (a deep copy, used by Reference to copy the policy) and
// `std::vector<int64_t> eos_token_ids() const` (the ids that end a sequence, e.g. config.json's eos_token_id;
// generate() stops at them unless GenerationOptions::eos_token_ids says otherwise), and the pair
// `torch::Tensor hidden_states(ids, mask)` ([B,L,H], the normed states the LM head reads) with
// `torch::Tensor lm_head_weight()` ([V,H], no bias): the trainer then computes completion log-probs with the
// chunked LM head (core/chunked_lm_head.hpp) at the completion positions only, O(chunk x V) memory instead of
// [B,L,V] logits; other models go through forward()'s full logits. `forward_last(ids, mask, cache)` -> [B,1,V]
// (the logits of the last position only, the cache extended by all L) saves generation's prefill the logits of
// the prompt positions. `set_gradient_checkpointing(bool)` lets GRPOConfig::gradient_checkpointing turn on
// activation recomputation. `int64_t max_positions() const` (config.json's max_position_embeddings) lets the
// trainer refuse or truncate prompts that leave no room for max_completion_length tokens.
// grpo::LlamaModel, any torch::nn::Module with this forward, and grpo::TorchScriptLM (a torch::jit::Module
// adapter) qualify.

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace grpo {

/// Per-layer key/value cache for incremental decoding (inference only: use it under NoGradGuard). Keys/values live
/// in buffers [B, n_kv_heads, capacity, head_dim] whose first `length` positions are valid, so appending L tokens
/// copies only their keys/values (capacity grows by doubling unless `reserve` covers the whole sequence).
struct KVCache {
  /// [B, n_kv_heads, capacity, head_dim] per layer; undefined until the first forward.
  std::vector<torch::Tensor> keys;
  /// [B, n_kv_heads, capacity, head_dim] per layer.
  std::vector<torch::Tensor> values;
  /// [B, length] 0/1 mask of the cached positions (set by the model after each forward).
  torch::Tensor attention_mask;
  /// Number of cached positions.
  int64_t length = 0;
  /// Capacity to allocate at the first append (positions); 0: exactly what the first forward needs.
  int64_t reserve = 0;

  /// True when nothing is cached.
  bool empty() const { return length == 0; }

  /// Appends `k`, `v` ([B, n_kv_heads, L, head_dim]) to layer `layer` at positions [length, length + L) and
  /// returns views of all cached keys and values [B, n_kv_heads, length + L, head_dim]. Call `advance(L)` once
  /// every layer has appended.
  std::pair<torch::Tensor, torch::Tensor> append(std::size_t layer, const torch::Tensor& k, const torch::Tensor& v) {
    if (keys.size() <= layer) {
      keys.resize(layer + 1);
      values.resize(layer + 1);
    }
    const auto new_length = length + k.size(2);
    auto& key_buffer = keys[layer];
    auto& value_buffer = values[layer];
    if (!key_buffer.defined() || key_buffer.size(2) < new_length) {
      const auto capacity = std::max({new_length, reserve, key_buffer.defined() ? 2 * key_buffer.size(2) : 0});
      auto grown_k = torch::empty({k.size(0), k.size(1), capacity, k.size(3)}, k.options());
      auto grown_v = torch::empty({v.size(0), v.size(1), capacity, v.size(3)}, v.options());
      if (length > 0) {
        grown_k.slice(2, 0, length).copy_(key_buffer.slice(2, 0, length));
        grown_v.slice(2, 0, length).copy_(value_buffer.slice(2, 0, length));
      }
      key_buffer = grown_k;
      value_buffer = grown_v;
    }
    key_buffer.slice(2, length, new_length).copy_(k);
    value_buffer.slice(2, length, new_length).copy_(v);
    return {key_buffer.slice(2, 0, new_length), value_buffer.slice(2, 0, new_length)};
  }

  /// Marks `tokens` more positions as cached (after all layers appended).
  void advance(int64_t tokens) { length += tokens; }

  /// Forgets everything (keeps nothing allocated).
  void clear() { *this = KVCache{}; }
};

namespace detail {

template <class M, class = void>
struct has_lm_forward : std::false_type {};
template <class M>
struct has_lm_forward<M, std::void_t<decltype(std::declval<torch::Tensor&>() = std::declval<M&>().forward(
                                                  std::declval<const torch::Tensor&>(),
                                                  std::declval<const torch::Tensor&>(), std::declval<KVCache*>()))>>
    : std::true_type {};

template <class M, class = void>
struct has_parameters : std::false_type {};
template <class M>
struct has_parameters<
    M, std::void_t<decltype(std::declval<M&>().parameters().begin()), decltype(std::declval<M&>().parameters().size())>>
    : std::true_type {};

template <class M, class = void>
struct has_train : std::false_type {};
template <class M>
struct has_train<M, std::void_t<decltype(std::declval<M&>().train(false))>> : std::true_type {};

template <class M, class = void>
struct has_eos_token_ids : std::false_type {};
template <class M>
struct has_eos_token_ids<
    M, std::void_t<decltype(std::declval<std::vector<int64_t>&>() = std::declval<const M&>().eos_token_ids())>>
    : std::true_type {};

template <class M, class = void>
struct has_max_positions : std::false_type {};
template <class M>
struct has_max_positions<M, std::void_t<decltype(int64_t{std::declval<const M&>().max_positions()})>> : std::true_type {
};

template <class M, class = void>
struct has_gradient_checkpointing : std::false_type {};
template <class M>
struct has_gradient_checkpointing<M, std::void_t<decltype(std::declval<M&>().set_gradient_checkpointing(true))>>
    : std::true_type {};

template <class M, class = void>
struct has_forward_last : std::false_type {};
template <class M>
struct has_forward_last<M, std::void_t<decltype(std::declval<torch::Tensor&>() = std::declval<M&>().forward_last(
                                                    std::declval<const torch::Tensor&>(),
                                                    std::declval<const torch::Tensor&>(), std::declval<KVCache*>()))>>
    : std::true_type {};

}  // namespace detail

/// Logits [B,1,V] of the last of the L positions of input_ids (the cache extended by all L): the model's optional
/// `forward_last` when it has one (no [B,L,V] logits for a prompt whose other positions nobody reads), else the
/// last position of forward().
template <class M>
torch::Tensor forward_last_logits(M& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                  KVCache* cache) {
  if constexpr (detail::has_forward_last<M>::value) {
    return model.forward_last(input_ids, attention_mask, cache);
  } else {
    const auto logits = model.forward(input_ids, attention_mask, cache);
    return logits.slice(1, logits.size(1) - 1);
  }
}

/// True when M meets the CausalLM trait (see the top of causal_lm.hpp).
template <class M>
inline constexpr bool is_causal_lm_v = detail::has_lm_forward<M>::value&& detail::has_parameters<M>::value;

/// Compile-time check with a message that names the missing member; use as `static_assert(check_causal_lm<M>())`.
template <class M>
constexpr bool check_causal_lm() {
  static_assert(detail::has_lm_forward<M>::value,
                "grpo::CausalLM: the model type lacks `torch::Tensor forward(const torch::Tensor& input_ids, "
                "const torch::Tensor& attention_mask, grpo::KVCache* cache)` returning logits [B,L,V]");
  static_assert(detail::has_parameters<M>::value,
                "grpo::CausalLM: the model type lacks `parameters()` returning a container of torch::Tensor "
                "(torch::nn::Module provides it)");
  return is_causal_lm_v<M>;
}

/// The model's end-of-sequence ids when it has `eos_token_ids() const` (optional member of the trait); otherwise
/// none (empty).
template <class M>
std::vector<int64_t> model_eos_token_ids(const M& model) {
  if constexpr (detail::has_eos_token_ids<M>::value) {
    return model.eos_token_ids();
  } else {
    (void)model;
    return {};
  }
}

/// The positions the model can attend over (`max_positions() const`, optional member of the trait); 0 = unknown.
template <class M>
int64_t model_max_positions(const M& model) {
  if constexpr (detail::has_max_positions<M>::value) {
    return model.max_positions();
  } else {
    (void)model;
    return 0;
  }
}

/// Puts a model in training (true) or evaluation (false) mode when it has `train(bool)`; otherwise does nothing.
template <class M>
void set_train_mode(M& model, bool on) {
  if constexpr (detail::has_train<M>::value) model.train(on);
}

}  // namespace grpo
