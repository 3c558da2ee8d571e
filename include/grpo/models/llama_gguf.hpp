#pragma once
// Llama-family models from GGUF files (llama.cpp's format): the LlamaConfig from the metadata and the Hugging Face
// tensors from the GGUF tensors. LlamaModel::from_gguf and from_pretrained (llama.hpp) build on these.
//
// Supported architectures (general.architecture): "llama" (Llama 1-3, SmolLM, Mistral without sliding windows, ...)
// and "qwen2" (q/k/v biases). llama.cpp's converter reorders the rows of llama's q and k projections for its
// rotary layout (in each head, the two rotated halves interleaved: HF row order (head, half, i) stored as
// (head, i, half)); llama_tensor_from_gguf undoes that so the weights match Hugging Face's rotate_half RoPE.
// Qwen2 files keep Hugging Face's order (llama.cpp rotates them NeoX-style).

#include <torch/types.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "grpo/error.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama_config.hpp"
#include "grpo/models/safetensors.hpp"

namespace grpo {

namespace detail {

// GGUF block tensor names (after "blk.N.") and their Hugging Face names (after "model.layers.N.").
inline const std::vector<std::pair<std::string, std::string>>& llama_block_tensor_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"attn_norm.weight", "input_layernorm.weight"},    {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.weight", "self_attn.k_proj.weight"},      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.weight", "self_attn.v_proj.weight"},      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"}, {"attn_output.bias", "self_attn.o_proj.bias"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},       {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  return names;
}

inline const std::vector<std::pair<std::string, std::string>>& llama_global_tensor_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  return names;
}

// Splits "<prefix><layer>.<rest>" with a canonical decimal layer ("0", "17"; no sign, no leading zero).
inline bool split_layer_name(const std::string& name, const std::string& prefix, std::string& layer,
                             std::string& rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const auto dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  layer = name.substr(prefix.size(), dot - prefix.size());
  if (!std::all_of(layer.begin(), layer.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) return false;
  if (layer.size() > 1 && layer[0] == '0') return false;
  rest = name.substr(dot + 1);
  return true;
}

// The Llama 3 frequency divisors llama.cpp's converter stores as rope_freqs.weight: 1 for high frequencies,
// `factor` for low ones, 1 / ((1 - s) / factor + s) in between (RopeScaling's llama3 formula as a divisor).
inline std::vector<double> llama3_frequency_divisors(double theta, int64_t head_dim, const RopeScaling& r) {
  std::vector<double> out;
  const double pi = 3.14159265358979323846;
  const double context = static_cast<double>(r.original_max_position_embeddings);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    const double wavelength = 2 * pi / inv_freq;
    if (wavelength < context / r.high_freq_factor) {
      out.push_back(1.0);
    } else if (wavelength > context / r.low_freq_factor) {
      out.push_back(r.factor);
    } else {
      const double s = (context / wavelength - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      out.push_back(1.0 / ((1 - s) / r.factor + s));
    }
  }
  return out;
}

// The number of heads whose rows llama.cpp's converter permuted in GGUF tensor `name` (llama's attn_q: the query
// heads, attn_k: the key/value heads; weights and biases), 0 for tensors stored in Hugging Face's order.
inline int64_t llama_permuted_heads(const std::string& name, const LlamaConfig& config) {
  std::string layer, rest;
  if (config.model_type != "llama" || !split_layer_name(name, "blk.", layer, rest)) return 0;
  if (rest == "attn_q.weight" || rest == "attn_q.bias") return config.num_attention_heads;
  if (rest == "attn_k.weight" || rest == "attn_k.bias") return config.num_key_value_heads;
  return 0;
}

}  // namespace detail

/// Hugging Face name of a tensor of a llama / qwen2 GGUF file: "token_embd.weight" -> "model.embed_tokens.weight",
/// "output_norm.weight" -> "model.norm.weight", "output.weight" -> "lm_head.weight", "blk.N.attn_norm.weight" ->
/// "model.layers.N.input_layernorm.weight", "blk.N.ffn_norm.weight" -> "...post_attention_layernorm.weight",
/// "blk.N.attn_{q,k,v,output}.{weight,bias}" -> "...self_attn.{q,k,v,o}_proj.{weight,bias}",
/// "blk.N.ffn_{gate,up,down}.weight" -> "...mlp.{gate,up,down}_proj.weight". Empty for any other name.
inline std::string llama_hf_tensor_name(const std::string& gguf_name) {
  for (const auto& [gguf, hf] : detail::llama_global_tensor_names()) {
    if (gguf_name == gguf) return hf;
  }
  std::string layer, rest;
  if (!detail::split_layer_name(gguf_name, "blk.", layer, rest)) return {};
  for (const auto& [gguf, hf] : detail::llama_block_tensor_names()) {
    if (rest == gguf) return "model.layers." + layer + "." + hf;
  }
  return {};
}

/// The inverse of llama_hf_tensor_name: the GGUF name of a Hugging Face parameter name, empty when none.
inline std::string llama_gguf_tensor_name(const std::string& hf_name) {
  for (const auto& [gguf, hf] : detail::llama_global_tensor_names()) {
    if (hf_name == hf) return gguf;
  }
  std::string layer, rest;
  if (!detail::split_layer_name(hf_name, "model.layers.", layer, rest)) return {};
  for (const auto& [gguf, hf] : detail::llama_block_tensor_names()) {
    if (rest == hf) return "blk." + layer + "." + gguf;
  }
  return {};
}

/// LlamaConfig from the metadata of a GGUF file whose general.architecture A is "llama" or "qwen2" (any other is
/// rejected naming it). Keys, with A. standing for the architecture:
///   A.block_count, A.embedding_length, A.feed_forward_length, A.attention.head_count,
///   A.attention.layer_norm_rms_epsilon, A.context_length (required) -> num_hidden_layers, hidden_size,
///   intermediate_size, num_attention_heads, rms_norm_eps, max_position_embeddings;
///   A.attention.head_count_kv -> num_key_value_heads (default head_count);
///   A.attention.key_length, else hidden_size / head_count -> head_dim (as llama.cpp reads it;
///   A.attention.value_length and A.rope.dimension_count must equal it when present: partial rotary is not
///   supported);
///   A.rope.freq_base -> rope_theta (default 10000);
///   A.vocab_size, else the length of tokenizer.ggml.tokens, else the rows of token_embd.weight -> vocab_size;
///   A.rope.scaling.type "none" or "linear" with A.rope.scaling.factor (or the older A.rope.scale_linear) ->
///   rope_scaling linear (other types are rejected naming them); a rope_freqs.weight tensor (what llama.cpp's
///   converter writes for Llama 3.1 / 3.2 instead of keys) -> rope_scaling llama3 when its divisors are those of
///   Llama 3's low_freq_factor 1, high_freq_factor 4, original context 8192 with factor = the largest divisor
///   (else an error);
///   no output.weight tensor -> tie_word_embeddings;
///   tokenizer.ggml.bos_token_id -> bos_token_id; tokenizer.ggml.eos_token_id, then .eot_token_id and
///   .eom_token_id when present and different -> eos_token_ids; tokenizer.ggml.padding_token_id -> pad_token_id.
/// Errors (grpo::InvalidArgument) start with "grpo::llama_config_from_gguf: <path>: " and name the key.
inline LlamaConfig llama_config_from_gguf(const GgufFile& file) {
  const std::string where = "grpo::llama_config_from_gguf: " + file.path() + ": ";
  const auto fail = [&](const std::string& message) -> void { throw InvalidArgument(where + message); };
  // GgufFile's own errors (missing key, wrong type) already name the file and the key; only the prefix changes.
  const auto rethrow = [&](const std::exception& e) -> void {
    std::string message = e.what();
    const std::string reader = "grpo::GgufFile: " + file.path() + ": ";
    if (message.compare(0, reader.size(), reader) == 0) message = message.substr(reader.size());
    fail(message);
  };
  LlamaConfig c;
  try {
    const auto architecture = file.get<std::string>("general.architecture");
    if (architecture != "llama" && architecture != "qwen2") {
      fail("architecture \"" + architecture + "\" is not supported; expected \"llama\" or \"qwen2\"");
    }
    const auto key = [&](const std::string& name) { return architecture + "." + name; };
    c.model_type = architecture;
    c.num_hidden_layers = file.get<int64_t>(key("block_count"));
    c.hidden_size = file.get<int64_t>(key("embedding_length"));
    c.intermediate_size = file.get<int64_t>(key("feed_forward_length"));
    c.num_attention_heads = file.get<int64_t>(key("attention.head_count"));
    c.num_key_value_heads = file.get_optional<int64_t>(key("attention.head_count_kv")).value_or(c.num_attention_heads);
    c.rms_norm_eps = file.get<double>(key("attention.layer_norm_rms_epsilon"));
    c.rope_theta = file.get_optional<double>(key("rope.freq_base")).value_or(10000.0);
    c.max_position_embeddings = file.get<int64_t>(key("context_length"));
    if (c.num_attention_heads <= 0) fail("key \"" + key("attention.head_count") + "\" must be > 0");

    c.head_dim =
        file.get_optional<int64_t>(key("attention.key_length")).value_or(c.hidden_size / c.num_attention_heads);
    for (const auto* name : {"attention.key_length", "attention.value_length", "rope.dimension_count"}) {
      const auto value = file.get_optional<int64_t>(key(name));
      if (value && *value != c.head_dim) {
        fail("key \"" + key(name) + "\" is " + std::to_string(*value) + " but the head dimension is " +
             std::to_string(c.head_dim) + " (partial rotary embeddings and unequal key / value widths are not " +
             "supported)");
      }
    }

    if (const auto vocab = file.get_optional<int64_t>(key("vocab_size"))) {
      c.vocab_size = *vocab;
    } else if (file.contains("tokenizer.ggml.tokens")) {
      c.vocab_size = static_cast<int64_t>(file.get<std::vector<std::string>>("tokenizer.ggml.tokens").size());
    } else if (const auto* embedding = file.find_tensor("token_embd.weight");
               embedding && embedding->dims.size() == 2) {
      c.vocab_size = embedding->dims[1];
    } else {
      fail("cannot tell the vocabulary size: no \"" + key("vocab_size") +
           "\", no \"tokenizer.ggml.tokens\" and no 2-D \"token_embd.weight\"");
    }
    c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
    c.attention_bias = false;

    // RoPE scaling: keys, or Llama 3's per-frequency divisors as a tensor.
    const auto scaling_type = file.get_optional<std::string>(key("rope.scaling.type"));
    const auto scaling_factor = file.get_optional<double>(key("rope.scaling.factor"));
    const auto scale_linear = file.get_optional<double>(key("rope.scale_linear"));
    if (scaling_type && *scaling_type != "none" && *scaling_type != "linear") {
      fail("key \"" + key("rope.scaling.type") + "\" is \"" + *scaling_type +
           "\", which is not supported; expected \"none\" or \"linear\"");
    }
    if (scaling_type == std::optional<std::string>("linear") ||
        (!scaling_type && scale_linear && *scale_linear != 1.0)) {
      const auto factor = scaling_factor ? scaling_factor : scale_linear;
      if (!factor) fail("key \"" + key("rope.scaling.type") + "\" is \"linear\" but no scaling factor is given");
      c.rope_scaling = RopeScaling{"linear", *factor, 1.0, 4.0, c.max_position_embeddings};
    }
    if (const auto* freqs = file.find_tensor("rope_freqs.weight")) {
      if (c.rope_scaling) fail("has both linear RoPE scaling keys and a rope_freqs.weight tensor");
      if (c.head_dim < 2) {  // no frequencies, and Llama 3's factor is the largest of them
        fail("tensor \"rope_freqs.weight\" needs a head dimension of at least 2, but it is " +
             std::to_string(c.head_dim));
      }
      if (freqs->element_count != c.head_dim / 2) {
        fail("tensor \"rope_freqs.weight\" has " + std::to_string(freqs->element_count) + " values, expected " +
             std::to_string(c.head_dim / 2) + " (head_dim / 2)");
      }
      std::vector<float> divisors(static_cast<std::size_t>(freqs->element_count));
      file.dequantize_into(*freqs, divisors.data());
      RopeScaling llama3{"llama3", *std::max_element(divisors.begin(), divisors.end()), 1.0, 4.0, 8192};
      const auto expected = detail::llama3_frequency_divisors(c.rope_theta, c.head_dim, llama3);
      for (std::size_t i = 0; i < divisors.size(); ++i) {
        if (!(std::abs(divisors[i] - expected[i]) <= 1e-3 * expected[i])) {
          fail("tensor \"rope_freqs.weight\" holds frequency divisors that are not Llama 3's (factor " +
               std::to_string(llama3.factor) + ", low_freq_factor 1, high_freq_factor 4, original context 8192: " +
               "divisor " + std::to_string(i) + " is " + std::to_string(divisors[i]) + ", expected " +
               std::to_string(expected[i]) + "); other per-frequency factors are not supported");
        }
      }
      c.rope_scaling = llama3;
    }

    c.bos_token_id = file.get_optional<int64_t>("tokenizer.ggml.bos_token_id");
    c.pad_token_id = file.get_optional<int64_t>("tokenizer.ggml.padding_token_id");
    c.eos_token_ids.clear();
    for (const auto* name :
         {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
      const auto id = file.get_optional<int64_t>(name);
      if (id && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *id) == c.eos_token_ids.end()) {
        c.eos_token_ids.push_back(*id);
      }
    }
    c.torch_dtype = "float32";
    c.validate();
  } catch (const InvalidArgument& e) {
    if (std::string(e.what()).compare(0, where.size(), where) == 0) throw;
    rethrow(e);
  }
  return c;
}

/// Tensor `info` of a llama / qwen2 GGUF file described by `config`, as float32 in Hugging Face's layout:
/// dequantised, and for llama's attn_q / attn_k (weights and biases) with the rows put back from llama.cpp's rotary
/// order into Hugging Face's (see the top of this file).
inline torch::Tensor llama_tensor_from_gguf(const GgufFile& file, const GgufTensorInfo& info,
                                            const LlamaConfig& config) {
  auto tensor = file.tensor(info);
  const auto heads = detail::llama_permuted_heads(info.name, config);
  if (heads == 0) return tensor;
  const auto rows = tensor.dim() > 0 ? tensor.size(0) : 0;
  if (heads <= 0 || rows % (2 * heads) != 0) {
    throw InvalidArgument("grpo::llama_tensor_from_gguf: " + file.path() + ": tensor \"" + info.name + "\" has " +
                          std::to_string(rows) + " rows, not a multiple of 2 x " + std::to_string(heads) + " heads");
  }
  const auto shape = tensor.sizes().vec();
  return tensor.reshape({heads, rows / heads / 2, 2, -1}).transpose(1, 2).reshape(shape).contiguous();
}

/// Every weight of a llama / qwen2 GGUF file under its Hugging Face name, as float32 (llama_tensor_from_gguf).
/// This holds the whole model in float32 at once; LlamaModel::from_gguf loads tensor by tensor instead. A tensor
/// that is not part of the layout (llama_hf_tensor_name is empty) is an error naming it; rope_freqs.weight (read by
/// llama_config_from_gguf) is skipped.
inline TensorMap llama_weights_from_gguf(const GgufFile& file, const LlamaConfig& config) {
  TensorMap out;
  for (const auto& info : file.tensors()) {
    if (info.name == "rope_freqs.weight") continue;
    const auto name = llama_hf_tensor_name(info.name);
    if (name.empty()) {
      throw InvalidArgument("grpo::llama_weights_from_gguf: " + file.path() + ": unexpected tensor \"" + info.name +
                            "\" (not part of the " + config.model_type + " layout)");
    }
    out[name] = llama_tensor_from_gguf(file, info, config);
  }
  return out;
}

}  // namespace grpo
