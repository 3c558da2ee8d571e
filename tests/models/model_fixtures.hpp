#pragma once
// Small Llama-family configurations and prompt helpers shared by the model tests.

#include <torch/types.h>
#include "support/scoped_temp_dir.hpp"

#include <cstdint>
#include <vector>

#include "grpo/models/llama_config.hpp"

namespace grpo::testing {

// The demo's tiny model over 37 ids: GQA (4 query heads, 2 kv heads), tied embeddings.
inline LlamaConfig tiny_gqa() { return LlamaConfig::tiny(37); }

// Qwen2-style: q/k/v biases, one kv head, untied LM head.
inline LlamaConfig tiny_qwen2() {
  auto c = LlamaConfig::tiny(41);
  c.model_type = "qwen2";
  c.num_key_value_heads = 1;
  c.tie_word_embeddings = false;
  c.rope_theta = 1000000.0;
  return c;
}

// Llama with attention_bias (q/k/v/o biases), plain multi-head attention, head_dim != hidden / heads.
inline LlamaConfig tiny_llama_bias() {
  auto c = LlamaConfig::tiny(29);
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.head_dim = 24;
  c.attention_bias = true;
  c.tie_word_embeddings = false;
  return c;
}

// Left-pads rows of token ids to a [B,P] batch; returns {ids, mask}.
inline std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows,
                                                        int64_t pad_id = 0) {
  std::size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  const auto batch = static_cast<int64_t>(rows.size()), length = static_cast<int64_t>(longest);
  auto ids = torch::full({batch, length}, pad_id, torch::kLong);
  auto mask = torch::zeros({batch, length}, torch::kLong);
  for (int64_t b = 0; b < batch; ++b) {
    const auto& r = rows[static_cast<std::size_t>(b)];
    const auto offset = length - static_cast<int64_t>(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      ids[b][offset + static_cast<int64_t>(i)] = r[i];
      mask[b][offset + static_cast<int64_t>(i)] = 1;
    }
  }
  return {ids, mask};
}

// [1,n] tensor of the ids.
inline torch::Tensor row_tensor(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kLong).unsqueeze(0);
}

}  // namespace grpo::testing

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace grpo::testing {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
using TempDir = grpo_test::ScopedTempDir;

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace grpo::testing
