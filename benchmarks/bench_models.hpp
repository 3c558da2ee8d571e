#pragma once
// Model configurations shared by the benchmarks.

#include <grpo/models/llama_config.hpp>

namespace grpo_bench {

// A small Llama (4 layers, width 256, 8 query / 4 kv heads, head 32, MLP 688, vocab 1024): big enough for
// attention to matter, small enough for a 2-core machine. The generation benchmark and the Python peer use it.
inline grpo::LlamaConfig small_llama_config() {
  auto c = grpo::LlamaConfig::tiny(1024);
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 32;
  c.max_position_embeddings = 2048;
  return c;
}

}  // namespace grpo_bench
