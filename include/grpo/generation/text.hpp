#pragma once
// Text in, text out: encode prompts with a Tokenizer, left-pad them, generate() on the model's device, and decode
// the completions.

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "grpo/error.hpp"
#include "grpo/generation/generate.hpp"
#include "grpo/models/causal_lm.hpp"
#include "grpo/tokenizers/tokenizer.hpp"

namespace grpo {

/// What generate_text() returns, one entry per prompt.
struct TextGenerationResult {
  /// [B] decoded completions, without the ending EOS token and the padding after it.
  std::vector<std::string> completions;
  /// [B] generated token ids, unpadded (the EOS or stop token kept when one was generated).
  std::vector<std::vector<int64_t>> completion_ids;
  /// [B] true when the row reached max_new_tokens without an EOS or stop token.
  std::vector<bool> truncated;
};

/// Generates a completion for each prompt string. Prompts are encoded with `tokenizer.encode` (no special tokens
/// added, as the trainer does), left-padded with `tokenizer.pad_token_id()`, moved to the device of the model's
/// first parameter (CPU when it has none) and passed to generate() with `options`. EOS: options.eos_token_ids when
/// set; unset, the model's EOS ids (CausalLM's optional `eos_token_ids()`) plus `tokenizer.eos_token_id()`.
/// Completions are decoded with `tokenizer.decode` after removing a final EOS id (stop tokens stay) and the padding.
/// Throws grpo::InvalidArgument for an empty prompt list or a prompt that encodes to no tokens (naming its index).
template <class M, class T>
TextGenerationResult generate_text(M& model, const T& tokenizer, const std::vector<std::string>& prompts,
                                   const GenerationOptions& options = {}) {
  static_assert(check_causal_lm<M>());
  static_assert(check_tokenizer<T>());
  const std::string where = "grpo::generate_text: ";
  if (prompts.empty()) throw InvalidArgument(where + "the prompt list is empty; pass at least one prompt");

  std::vector<std::vector<int64_t>> encoded;
  encoded.reserve(prompts.size());
  std::size_t longest = 0;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    encoded.push_back(tokenizer.encode(prompts[b]));
    if (encoded.back().empty()) {
      throw InvalidArgument(where + "prompt " + std::to_string(b) + " (\"" + prompts[b] +
                            "\") encodes to no tokens; every prompt needs at least one token");
    }
    longest = std::max(longest, encoded.back().size());
  }

  const auto batch = static_cast<int64_t>(prompts.size()), length = static_cast<int64_t>(longest);
  auto ids = torch::full({batch, length}, tokenizer.pad_token_id(), torch::kLong);
  auto mask = torch::zeros({batch, length}, torch::kLong);
  for (int64_t b = 0; b < batch; ++b) {
    const auto& row = encoded[static_cast<std::size_t>(b)];
    const auto offset = length - static_cast<int64_t>(row.size());
    ids[b].slice(0, offset).copy_(torch::tensor(row, torch::kLong));
    mask[b].slice(0, offset).fill_(1);
  }
  torch::Device device = torch::kCPU;
  for (const auto& p : model.parameters()) {
    device = p.device();
    break;
  }

  auto generation = options;
  if (!generation.eos_token_ids) {
    auto eos = model_eos_token_ids(model);
    const auto tokenizer_eos = tokenizer.eos_token_id();
    if (std::find(eos.begin(), eos.end(), tokenizer_eos) == eos.end()) eos.push_back(tokenizer_eos);
    generation.eos_token_ids = eos;
  }
  const auto& eos_ids = *generation.eos_token_ids;
  const GenerationResult generated = generate(model, ids.to(device), mask.to(device), generation);

  const torch::Tensor completion_ids = generated.completion_ids.to(torch::kCPU, torch::kLong).contiguous();
  const torch::Tensor lengths = generated.lengths.to(torch::kCPU);
  const torch::Tensor truncated = generated.truncated.to(torch::kCPU);
  TextGenerationResult result;
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = lengths[b].item<int64_t>();
    const auto* row = completion_ids[b].data_ptr<int64_t>();
    std::vector<int64_t> tokens(row, row + n);
    const bool ended = !truncated[b].item<bool>();
    auto text_end = tokens.end();
    if (ended && !tokens.empty() && std::find(eos_ids.begin(), eos_ids.end(), tokens.back()) != eos_ids.end()) {
      --text_end;
    }
    result.completions.push_back(tokenizer.decode(std::vector<int64_t>(tokens.begin(), text_end)));
    result.completion_ids.push_back(std::move(tokens));
    result.truncated.push_back(!ended);
  }
  return result;
}

}  // namespace grpo
