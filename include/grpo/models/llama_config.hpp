#pragma once
// Configuration of the Llama-family decoder, read from and written to a Hugging Face config.json
// (model_type "llama" or "qwen2"; SmolLM checkpoints are "llama"). Torch-free.

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "grpo/detail/atomic_file.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Scaling of the rotary frequencies, as Hugging Face's "rope_scaling" (transformers 4) or "rope_parameters"
/// (transformers 5) of config.json. The inverse frequencies inv_freq[i] = rope_theta^(-2i / head_dim) become:
///   linear: inv_freq / factor;
///   llama3 (Llama 3.1 / 3.2): with wavelength w = 2 pi / inv_freq, L = original_max_position_embeddings,
///     inv_freq / factor where w > L / low_freq_factor (low frequencies), inv_freq where w < L / high_freq_factor
///     (high frequencies), and in between (1 - s) inv_freq / factor + s inv_freq with
///     s = (L / w - low_freq_factor) / (high_freq_factor - low_freq_factor).
/// Both keep the attention scale (transformers' attention_factor 1). grpo::rope_inv_freq (llama.hpp) computes it.
struct RopeScaling {
  /// "linear" or "llama3" (other types, e.g. "dynamic", "yarn", "longrope", are rejected when read).
  std::string rope_type = "linear";
  /// Divisor of the (low) frequencies, > 0.
  double factor = 1.0;
  /// llama3 only: wavelengths above original_max_position_embeddings / low_freq_factor are divided by factor.
  double low_freq_factor = 1.0;
  /// llama3 only: wavelengths below original_max_position_embeddings / high_freq_factor are kept; > low_freq_factor.
  double high_freq_factor = 4.0;
  /// llama3 only: the context length of pre-training (absent in the file: max_position_embeddings).
  int64_t original_max_position_embeddings = 8192;
};

/// Hyper-parameters of a Llama-family decoder, named as in Hugging Face's config.json.
struct LlamaConfig {
  /// "llama" or "qwen2" (qwen2 adds q/k/v biases).
  std::string model_type = "llama";
  /// Number of token ids V.
  int64_t vocab_size = 32000;
  /// Model width d.
  int64_t hidden_size = 4096;
  /// Width of the SwiGLU MLP.
  int64_t intermediate_size = 11008;
  /// Number of decoder layers.
  int64_t num_hidden_layers = 32;
  /// Number of query heads.
  int64_t num_attention_heads = 32;
  /// Number of key/value heads (grouped-query attention); unset in the file: num_attention_heads.
  int64_t num_key_value_heads = 32;
  /// Width of one head; unset in the file: hidden_size / num_attention_heads.
  int64_t head_dim = 128;
  /// RMSNorm epsilon.
  double rms_norm_eps = 1e-6;
  /// RoPE base theta.
  double rope_theta = 10000.0;
  /// RoPE frequency scaling; unset: plain RoPE.
  std::optional<RopeScaling> rope_scaling;
  /// Longest sequence the model was trained for (positions).
  int64_t max_position_embeddings = 2048;
  /// lm_head shares the token-embedding matrix.
  bool tie_word_embeddings = false;
  /// Llama: bias on q/k/v/o projections. Qwen2 always has q/k/v biases (and no o bias).
  bool attention_bias = false;
  /// Beginning-of-sequence token id, if any.
  std::optional<int64_t> bos_token_id;
  /// End-of-sequence token ids (config.json's eos_token_id: one id or a list; written back as one id when there
  /// is one, a list when there are several, null when there are none). LlamaModel::eos_token_ids() returns them.
  std::vector<int64_t> eos_token_ids;
  /// Padding token id, if any.
  std::optional<int64_t> pad_token_id;
  /// Weight dtype recorded in the file ("float32", "bfloat16", ...), informational.
  std::string torch_dtype = "float32";

  /// True when q/k/v projections have biases.
  bool qkv_bias() const { return attention_bias || model_type == "qwen2"; }
  /// True when the output projection has a bias (Llama with attention_bias only).
  bool o_bias() const { return attention_bias && model_type == "llama"; }

  /// The demo's tiny model: 2 layers, width 64, 4 query heads, 2 kv heads, MLP 128, tied embeddings.
  static LlamaConfig tiny(int64_t vocab_size) {
    LlamaConfig c;
    c.vocab_size = vocab_size;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-5;
    c.max_position_embeddings = 512;
    c.tie_word_embeddings = true;
    return c;
  }

  /// Throws grpo::InvalidArgument naming the first inconsistent field.
  void validate() const {
    const auto fail = [](const std::string& message) { throw InvalidArgument("grpo::LlamaConfig: " + message); };
    if (model_type != "llama" && model_type != "qwen2") {
      fail("model_type \"" + model_type + "\" is not supported; expected \"llama\" or \"qwen2\"");
    }
    const auto positive = [&](const char* name, int64_t v) {
      if (v <= 0) fail(std::string(name) + " must be > 0, got " + std::to_string(v));
    };
    positive("vocab_size", vocab_size);
    positive("hidden_size", hidden_size);
    positive("intermediate_size", intermediate_size);
    positive("num_hidden_layers", num_hidden_layers);
    positive("num_attention_heads", num_attention_heads);
    positive("num_key_value_heads", num_key_value_heads);
    positive("head_dim", head_dim);
    positive("max_position_embeddings", max_position_embeddings);
    if (num_attention_heads % num_key_value_heads != 0) {
      fail("num_attention_heads (" + std::to_string(num_attention_heads) + ") must be a multiple of " +
           "num_key_value_heads (" + std::to_string(num_key_value_heads) + ")");
    }
    if (head_dim % 2 != 0) fail("head_dim must be even for rotary embeddings, got " + std::to_string(head_dim));
    if (!(rms_norm_eps > 0)) fail("rms_norm_eps must be > 0");
    if (!(rope_theta > 0)) fail("rope_theta must be > 0");
    if (rope_scaling) {
      const auto& r = *rope_scaling;
      if (r.rope_type != "linear" && r.rope_type != "llama3") {
        fail("rope_scaling type \"" + r.rope_type + "\" is not supported; expected \"linear\" or \"llama3\"");
      }
      if (!(r.factor > 0)) fail("rope_scaling factor must be > 0, got " + std::to_string(r.factor));
      if (r.rope_type == "llama3") {
        if (!(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor)) {
          fail("rope_scaling needs 0 < low_freq_factor < high_freq_factor, got " + std::to_string(r.low_freq_factor) +
               " and " + std::to_string(r.high_freq_factor));
        }
        if (r.original_max_position_embeddings <= 0) {
          fail("rope_scaling original_max_position_embeddings must be > 0, got " +
               std::to_string(r.original_max_position_embeddings));
        }
      }
    }
    const auto in_vocab = [&](const char* name, int64_t id) {
      if (id < 0 || id >= vocab_size) {
        fail(std::string(name) + " " + std::to_string(id) + " is outside [0, vocab_size=" + std::to_string(vocab_size) +
             ")");
      }
    };
    if (bos_token_id) in_vocab("bos_token_id", *bos_token_id);
    if (pad_token_id) in_vocab("pad_token_id", *pad_token_id);
    for (const auto id : eos_token_ids) in_vocab("eos_token_id", id);
  }

  /// Reads a Hugging Face config.json; errors name the file and the field.
  static LlamaConfig load(const std::string& path);
  /// Writes config.json atomically (temporary file, fsync, rename).
  void save(const std::string& path) const;
};

namespace detail {

// Reads a required or optional field of an HF config with an error naming it.
template <class T>
T config_field(const nlohmann::json& j, const char* key, const std::optional<T>& fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    throw InvalidArgument("grpo::LlamaConfig: missing required field \"" + std::string(key) + "\"");
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InvalidArgument("grpo::LlamaConfig: field \"" + std::string(key) + "\" has a bad value " + it->dump());
  }
}

// config.json's "rope_scaling" (transformers 4) or "rope_parameters" (transformers 5) object -> RopeScaling, or
// nullopt for the "default" type. `field` names the object in errors; `max_position_embeddings` is the default of
// original_max_position_embeddings (as transformers does).
inline std::optional<RopeScaling> rope_scaling_from_json(const nlohmann::json& j, const std::string& field,
                                                         int64_t max_position_embeddings) {
  const auto fail = [&](const std::string& message) -> void {
    throw InvalidArgument("grpo::LlamaConfig: field \"" + field + "\" " + message);
  };
  if (!j.is_object()) fail("has a bad value " + j.dump() + "; expected an object");
  const auto type_key = j.contains("rope_type") ? "rope_type" : "type";
  if (!j.contains(type_key) || !j[type_key].is_string()) fail("needs a string \"rope_type\", got " + j.dump());
  const auto type = j[type_key].get<std::string>();
  if (j.contains("partial_rotary_factor") &&
      !(j["partial_rotary_factor"].is_number() && j["partial_rotary_factor"].get<double>() == 1.0)) {
    fail("has partial_rotary_factor " + j["partial_rotary_factor"].dump() + "; only 1 (full rotary) is supported");
  }
  if (type == "default") return std::nullopt;
  if (type != "linear" && type != "llama3") {
    fail("has rope_type \"" + type + "\", which is not supported; expected \"linear\" or \"llama3\" (or \"default\")");
  }
  const auto number = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number()) {
      fail("(rope_type \"" + type + "\") needs a number \"" + key + "\", got " + j.dump());
    }
    return j[key].get<double>();
  };
  RopeScaling r;
  r.rope_type = type;
  r.factor = number("factor");
  if (type == "llama3") {
    r.low_freq_factor = number("low_freq_factor");
    r.high_freq_factor = number("high_freq_factor");
    r.original_max_position_embeddings = max_position_embeddings;
    if (j.contains("original_max_position_embeddings")) {
      if (!j["original_max_position_embeddings"].is_number_integer()) {
        fail("has a bad original_max_position_embeddings " + j["original_max_position_embeddings"].dump());
      }
      r.original_max_position_embeddings = j["original_max_position_embeddings"].get<int64_t>();
    }
  }
  return r;
}

}  // namespace detail

/// Hugging Face config.json -> LlamaConfig. Required: model_type, vocab_size, hidden_size, intermediate_size,
/// num_hidden_layers, num_attention_heads. Keys this model does not use (architectures, transformers_version,
/// initializer_range, ...) are ignored, because HF files carry many; keys that would change the computation and
/// are not implemented (a rope_scaling type other than linear and llama3, a hidden_act other than silu, mlp_bias,
/// sliding windows) are errors. RoPE: transformers 4's "rope_theta" + "rope_scaling" and transformers 5's
/// "rope_parameters" (whose rope_theta, when present, wins) are both read.
inline void from_json(const nlohmann::json& j, LlamaConfig& c) {
  if (!j.is_object()) {
    throw InvalidArgument(std::string("grpo::LlamaConfig: expected a JSON object, got ") + j.type_name());
  }
  using detail::config_field;
  using std::nullopt;
  c.model_type = config_field<std::string>(j, "model_type", nullopt);
  if (c.model_type != "llama" && c.model_type != "qwen2") {
    throw InvalidArgument("grpo::LlamaConfig: field \"model_type\": \"" + c.model_type +
                          "\" is not supported; expected \"llama\" or \"qwen2\"");
  }
  c.vocab_size = config_field<int64_t>(j, "vocab_size", nullopt);
  c.hidden_size = config_field<int64_t>(j, "hidden_size", nullopt);
  c.intermediate_size = config_field<int64_t>(j, "intermediate_size", nullopt);
  c.num_hidden_layers = config_field<int64_t>(j, "num_hidden_layers", nullopt);
  c.num_attention_heads = config_field<int64_t>(j, "num_attention_heads", nullopt);
  c.num_key_value_heads = config_field<int64_t>(j, "num_key_value_heads", c.num_attention_heads);
  c.head_dim =
      config_field<int64_t>(j, "head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.rms_norm_eps = config_field<double>(j, "rms_norm_eps", 1e-6);
  c.rope_theta = config_field<double>(j, "rope_theta", 10000.0);
  c.max_position_embeddings = config_field<int64_t>(j, "max_position_embeddings", 2048);
  c.tie_word_embeddings = config_field<bool>(j, "tie_word_embeddings", false);
  c.attention_bias = config_field<bool>(j, "attention_bias", false);
  c.torch_dtype = config_field<std::string>(j, "torch_dtype", std::string("float32"));
  const auto hidden_act = config_field<std::string>(j, "hidden_act", std::string("silu"));
  if (hidden_act != "silu") {
    throw InvalidArgument("grpo::LlamaConfig: field \"hidden_act\": \"" + hidden_act +
                          "\" is not supported; expected \"silu\"");
  }
  c.rope_scaling.reset();
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    c.rope_scaling = detail::rope_scaling_from_json(j["rope_scaling"], "rope_scaling", c.max_position_embeddings);
  }
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    const auto& parameters = j["rope_parameters"];
    c.rope_scaling = detail::rope_scaling_from_json(parameters, "rope_parameters", c.max_position_embeddings);
    if (parameters.contains("rope_theta")) {
      if (!parameters["rope_theta"].is_number()) {
        throw InvalidArgument("grpo::LlamaConfig: field \"rope_parameters\" has a bad rope_theta " +
                              parameters["rope_theta"].dump());
      }
      c.rope_theta = parameters["rope_theta"].get<double>();
    }
  }
  if (config_field<bool>(j, "mlp_bias", false)) {
    throw InvalidArgument("grpo::LlamaConfig: field \"mlp_bias\": true is not supported");
  }
  if (config_field<bool>(j, "use_sliding_window", false)) {
    throw InvalidArgument("grpo::LlamaConfig: field \"use_sliding_window\": true is not supported");
  }
  c.bos_token_id.reset();
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null()) {
    c.bos_token_id = config_field<int64_t>(j, "bos_token_id", nullopt);
  }
  c.pad_token_id.reset();
  if (j.contains("pad_token_id") && !j["pad_token_id"].is_null()) {
    c.pad_token_id = config_field<int64_t>(j, "pad_token_id", nullopt);
  }
  // eos_token_id: one id (most models) or a list (Llama 3, Qwen2 instruct); null or absent: none.
  c.eos_token_ids.clear();
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const auto& eos = j["eos_token_id"];
    const auto bad_value = [&] {
      throw InvalidArgument("grpo::LlamaConfig: field \"eos_token_id\" has a bad value " + eos.dump() +
                            "; expected an integer token id or a list of them");
    };
    if (eos.is_number_integer()) {
      c.eos_token_ids = {eos.get<int64_t>()};
    } else if (eos.is_array()) {
      for (const auto& id : eos) {
        if (!id.is_number_integer()) bad_value();
        c.eos_token_ids.push_back(id.get<int64_t>());
      }
    } else {
      bad_value();
    }
  }
  c.validate();
}

/// LlamaConfig -> Hugging Face config.json fields (loadable by transformers' LlamaConfig / Qwen2Config).
inline void to_json(nlohmann::json& j, const LlamaConfig& c) {
  j = nlohmann::json::object();
  j["architectures"] = {c.model_type == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    const auto& r = *c.rope_scaling;
    j["rope_scaling"] = {{"rope_type", r.rope_type}, {"factor", r.factor}};
    if (r.rope_type == "llama3") {
      j["rope_scaling"]["low_freq_factor"] = r.low_freq_factor;
      j["rope_scaling"]["high_freq_factor"] = r.high_freq_factor;
      j["rope_scaling"]["original_max_position_embeddings"] = r.original_max_position_embeddings;
    }
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type == "llama") j["attention_bias"] = c.attention_bias;
  j["bos_token_id"] = c.bos_token_id ? nlohmann::json(*c.bos_token_id) : nlohmann::json(nullptr);
  j["pad_token_id"] = c.pad_token_id ? nlohmann::json(*c.pad_token_id) : nlohmann::json(nullptr);
  if (c.eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else {
    j["eos_token_id"] = c.eos_token_ids;
  }
  j["torch_dtype"] = c.torch_dtype;
}

inline LlamaConfig LlamaConfig::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RuntimeError("grpo::LlamaConfig::load: cannot open " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument("grpo::LlamaConfig::load: " + path + ": not valid JSON (" + e.what() + ")");
  }
  try {
    return j.get<LlamaConfig>();
  } catch (const std::invalid_argument& e) {
    throw InvalidArgument("grpo::LlamaConfig::load: " + path + ": " + e.what());
  }
}

inline void LlamaConfig::save(const std::string& path) const {
  validate();
  detail::atomic_write_file(path, nlohmann::json(*this).dump(2) + "\n", "grpo::LlamaConfig::save: ");
}

}  // namespace grpo
