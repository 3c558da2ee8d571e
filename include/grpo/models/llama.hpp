#pragma once
// The built-in Llama-family decoder (Llama, Qwen2, SmolLM) with Hugging Face semantics and parameter names:
// RMSNorm, rotary position embeddings (plain, linear or llama3 scaling), SwiGLU MLP, grouped-query attention,
// optional q/k/v bias, tied or untied embeddings, and a KV cache for generation. Loads Hugging Face checkpoint
// folders (safetensors) and GGUF files. Meets the CausalLM trait (causal_lm.hpp).

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "grpo/core/chunked_lm_head.hpp"
#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"
#include "grpo/models/causal_lm.hpp"
#include "grpo/models/detail/activation_checkpoint.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama_config.hpp"
#include "grpo/models/llama_gguf.hpp"
#include "grpo/models/safetensors.hpp"

namespace grpo {

namespace detail {

// float64 stays float64; every other dtype computes norms and softmaxes in float32 (as Hugging Face does).
inline torch::ScalarType accumulate_dtype(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// [x1, x2] -> [-x2, x1] over the last dimension (the RoPE rotation of HF's rotate_half).
inline torch::Tensor rotate_half(const torch::Tensor& x) {
  const auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

}  // namespace detail

/// RoPE inverse frequencies [head_dim / 2] (float32) of `config`: rope_theta^(-2i / head_dim), scaled by
/// config.rope_scaling (linear or llama3, see RopeScaling), computed in float32 as transformers computes them.
inline torch::Tensor rope_inv_freq(const LlamaConfig& config, torch::Device device = torch::kCPU) {
  const auto dim = config.head_dim;
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(device);
  const auto inv_freq =
      1.0 / torch::pow(config.rope_theta, torch::arange(0, dim, 2, options) / static_cast<double>(dim));
  if (!config.rope_scaling) return inv_freq;
  const auto& r = *config.rope_scaling;
  if (r.rope_type == "linear") return inv_freq / r.factor;
  if (r.rope_type != "llama3") {
    throw InvalidArgument("grpo::rope_inv_freq: rope_scaling type \"" + r.rope_type + "\" is not supported");
  }
  // The operations and their order are transformers' (a scalar divided by a tensor is reciprocal() * scalar
  // there), so that the float32 results agree with it.
  const double pi = 3.14159265358979323846;
  const double context = static_cast<double>(r.original_max_position_embeddings);
  const double low_freq_wavelength = context / r.low_freq_factor, high_freq_wavelength = context / r.high_freq_factor;
  const auto wavelength = inv_freq.reciprocal() * (2 * pi);
  const auto low_scaled = torch::where(wavelength > low_freq_wavelength, inv_freq / r.factor, inv_freq);
  const auto smooth =
      (wavelength.reciprocal() * context - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  const auto smoothed = (1 - smooth) * low_scaled / r.factor + smooth * low_scaled;
  const auto medium = (wavelength >= high_freq_wavelength) & (wavelength <= low_freq_wavelength);
  return torch::where(medium, smoothed, low_scaled);
}

/// RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight, computed in float32 (float64 stays float64).
class LlamaRMSNorm : public torch::nn::Cloneable<LlamaRMSNorm> {
 public:
  /// Norm over the last dimension of width `dim`.
  LlamaRMSNorm(int64_t dim, double eps) : dim_(dim), eps_(eps) { reset(); }
  /// (Re)creates the weight (ones).
  void reset() override { weight = register_parameter("weight", torch::ones({dim_})); }
  /// [..., dim] -> [..., dim] in x's dtype.
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = x.to(detail::accumulate_dtype(x));
    h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
    return weight * h.to(x.scalar_type());
  }
  /// [dim] scale.
  torch::Tensor weight;

 private:
  int64_t dim_;
  double eps_;
};

/// Multi-head attention with grouped key/value heads, rotary embeddings and an optional KV cache.
class LlamaAttention : public torch::nn::Cloneable<LlamaAttention> {
 public:
  /// Projections sized from `config` (biases per config.qkv_bias() / o_bias()).
  explicit LlamaAttention(const LlamaConfig& config) : config_(config) { reset(); }
  /// (Re)creates the projections.
  void reset() override {
    const auto& c = config_;
    const auto linear = [](int64_t in, int64_t out, bool bias) {
      return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
    };
    q_proj = register_module("q_proj", linear(c.hidden_size, c.num_attention_heads * c.head_dim, c.qkv_bias()));
    k_proj = register_module("k_proj", linear(c.hidden_size, c.num_key_value_heads * c.head_dim, c.qkv_bias()));
    v_proj = register_module("v_proj", linear(c.hidden_size, c.num_key_value_heads * c.head_dim, c.qkv_bias()));
    o_proj = register_module("o_proj", linear(c.num_attention_heads * c.head_dim, c.hidden_size, c.o_bias()));
  }
  /// x [B,L,d]; cos/sin [B,1,L,head_dim]; allowed [B,1,1,L,S] bool (which keys each query may see);
  /// cache: append this layer's keys/values as layer `layer`. Returns [B,L,d].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed, KVCache* cache, std::size_t layer) {
    const auto& c = config_;
    const auto batch = x.size(0), length = x.size(1);
    const auto heads = c.num_attention_heads, kv_heads = c.num_key_value_heads, dim = c.head_dim;
    const auto group = heads / kv_heads;
    auto q = q_proj(x).view({batch, length, heads, dim}).transpose(1, 2);
    auto k = k_proj(x).view({batch, length, kv_heads, dim}).transpose(1, 2);
    auto v = v_proj(x).view({batch, length, kv_heads, dim}).transpose(1, 2);
    q = q * cos + detail::rotate_half(q) * sin;
    k = k * cos + detail::rotate_half(k) * sin;
    if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
    const auto keys = k.size(2);
    // Query head h reads kv head h / group (HF's repeat_kv): folding the group into the query length lets one
    // matmul per kv head serve all its query heads without copying keys and values.
    const auto grouped_q = q.reshape({batch, kv_heads, group * length, dim});
    auto scores = torch::matmul(grouped_q, k.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(dim)));
    scores = scores.view({batch, kv_heads, group, length, keys})
                 .masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
    const auto probs = torch::softmax(scores, -1, detail::accumulate_dtype(scores)).to(v.scalar_type());
    const auto out = torch::matmul(probs.view({batch, kv_heads, group * length, keys}), v)
                         .view({batch, heads, length, dim})
                         .transpose(1, 2)
                         .reshape({batch, length, heads * dim});
    return o_proj(out);
  }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};  ///< HF-named projections

 private:
  LlamaConfig config_;
};

/// SwiGLU MLP: down(silu(gate(x)) * up(x)).
class LlamaMLP : public torch::nn::Cloneable<LlamaMLP> {
 public:
  /// hidden_size -> intermediate_size -> hidden_size, no biases.
  explicit LlamaMLP(const LlamaConfig& config) : config_(config) { reset(); }
  /// (Re)creates the projections.
  void reset() override {
    const auto d = config_.hidden_size, m = config_.intermediate_size;
    gate_proj = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(d, m).bias(false)));
    up_proj = register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(d, m).bias(false)));
    down_proj = register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(m, d).bias(false)));
  }
  /// [B,L,d] -> [B,L,d].
  torch::Tensor forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};  ///< HF-named projections

 private:
  LlamaConfig config_;
};

/// One pre-norm decoder layer: h + attn(norm(h)), then h + mlp(norm(h)).
class LlamaDecoderLayer : public torch::nn::Cloneable<LlamaDecoderLayer> {
 public:
  /// A layer sized from `config`.
  explicit LlamaDecoderLayer(const LlamaConfig& config) : config_(config) { reset(); }
  /// (Re)creates the submodules.
  void reset() override {
    self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(config_));
    mlp = register_module("mlp", std::make_shared<LlamaMLP>(config_));
    input_layernorm =
        register_module("input_layernorm", std::make_shared<LlamaRMSNorm>(config_.hidden_size, config_.rms_norm_eps));
    post_attention_layernorm = register_module(
        "post_attention_layernorm", std::make_shared<LlamaRMSNorm>(config_.hidden_size, config_.rms_norm_eps));
  }
  /// [B,L,d] -> [B,L,d]; arguments as LlamaAttention::forward.
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed, KVCache* cache, std::size_t layer) {
    auto out = h + self_attn->forward(input_layernorm->forward(h), cos, sin, allowed, cache, layer);
    return out + mlp->forward(post_attention_layernorm->forward(out));
  }

  std::shared_ptr<LlamaAttention> self_attn;                                ///< attention block
  std::shared_ptr<LlamaMLP> mlp;                                            ///< MLP block
  std::shared_ptr<LlamaRMSNorm> input_layernorm, post_attention_layernorm;  ///< pre-norms

 private:
  LlamaConfig config_;
};

/// The decoder stack without the LM head (HF's LlamaModel, registered as "model"): embeddings, layers, final norm.
class LlamaBackbone : public torch::nn::Cloneable<LlamaBackbone> {
 public:
  /// A stack sized from `config`.
  explicit LlamaBackbone(const LlamaConfig& config) : config_(config) { reset(); }
  /// (Re)creates the submodules.
  void reset() override {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config_.vocab_size, config_.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < config_.num_hidden_layers; ++i)
      layers->push_back(std::make_shared<LlamaDecoderLayer>(config_));
    norm = register_module("norm", std::make_shared<LlamaRMSNorm>(config_.hidden_size, config_.rms_norm_eps));
  }

  /// Recompute each decoder layer's activations in the backward instead of keeping them (training without a cache
  /// only): activation memory of one layer instead of all, for one more forward of the layers.
  bool gradient_checkpointing = false;

  /// input_ids [B,L]; attention_mask [B,P+L] 0/1 or undefined; cache (P = cache->length) or nullptr.
  /// Returns the normed hidden states [B,L,d].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, KVCache* cache) {
    const std::string where = "grpo::LlamaModel::forward: ";
    if (!input_ids.defined() || input_ids.dim() != 2) {
      throw InvalidArgument(where + "input_ids must be [B,L], got shape " + detail::shape_string(input_ids));
    }
    if (input_ids.is_floating_point()) throw InvalidArgument(where + "input_ids must hold integer token ids");
    if (input_ids.numel() > 0) {
      const auto [low, high] = torch::aminmax(input_ids);
      const auto lowest = low.item<int64_t>(), highest = high.item<int64_t>();
      if (lowest < 0 || highest >= config_.vocab_size) {
        throw InvalidArgument(where + "input_ids holds id " + std::to_string(lowest < 0 ? lowest : highest) +
                              " outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
      }
    }
    const auto batch = input_ids.size(0), length = input_ids.size(1);
    const auto past = cache != nullptr ? cache->length : 0;
    const auto total = past + length;
    const auto device = input_ids.device();
    torch::Tensor mask;  // [B,S] bool over cached + current positions
    if (attention_mask.defined()) {
      detail::require_shape(where, "attention_mask", attention_mask, {batch, total}, "[B, cached + L]");
      mask = attention_mask.to(device) != 0;
    } else {
      mask = torch::ones({batch, total}, torch::TensorOptions().dtype(torch::kBool).device(device));
      if (past > 0 && cache->attention_mask.defined()) mask.slice(1, 0, past).copy_(cache->attention_mask != 0);
    }
    // Position of each token among its row's real tokens, so left padding does not shift positions.
    const auto positions = (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0).slice(1, past, total);

    auto h = embed_tokens(input_ids);
    const auto inv_freq = rope_inv_freq(config_, device);
    const auto freqs = positions.unsqueeze(-1).to(torch::kFloat) * inv_freq;  // [B,L,dim/2]
    const auto angles = torch::cat({freqs, freqs}, -1).unsqueeze(1);          // [B,1,L,dim]
    const auto cos = angles.cos().to(h.scalar_type()), sin = angles.sin().to(h.scalar_type());

    // Query i (absolute position past + i) sees real keys j <= past + i, and always itself so that rows of
    // padding stay finite (their outputs are never read).
    const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device);
    const auto key_index = torch::arange(total, long_options).unsqueeze(0);
    const auto query_index = torch::arange(past, total, long_options).unsqueeze(1);
    const auto causal = key_index <= query_index;                                                     // [L,S]
    const auto allowed = (mask.view({batch, 1, 1, 1, total}) & causal) | (key_index == query_index);  // [B,1,1,L,S]

    const bool recompute = gradient_checkpointing && cache == nullptr && torch::GradMode::is_enabled();
    for (std::size_t i = 0; i < layers->size(); ++i) {
      const auto layer = layers->ptr<LlamaDecoderLayer>(i);
      if (recompute) {  // the layer's activations recomputed in the backward (detail/activation_checkpoint.hpp)
        h = detail::checkpointed(
            [layer, cos, sin, allowed, i](const torch::Tensor& x) {
              return layer->forward(x, cos, sin, allowed, nullptr, i);
            },
            h, layer->parameters());
      } else {
        h = layer->forward(h, cos, sin, allowed, cache, i);
      }
    }
    if (cache != nullptr) {
      cache->advance(length);
      cache->attention_mask = mask.to(torch::kLong);
    }
    return norm->forward(h);
  }

  torch::nn::Embedding embed_tokens{nullptr};  ///< [V,d] token embeddings
  torch::nn::ModuleList layers{nullptr};       ///< num_hidden_layers LlamaDecoderLayer
  std::shared_ptr<LlamaRMSNorm> norm;          ///< final norm

 private:
  LlamaConfig config_;
};

/// The Llama-family causal LM (HF's LlamaForCausalLM / Qwen2ForCausalLM); parameter names equal HF's tensor names.
class LlamaModel : public torch::nn::Cloneable<LlamaModel> {
 public:
  /// A randomly initialised model (normal(0, 0.02) weights, zero biases, unit norms); validates `config`.
  explicit LlamaModel(const LlamaConfig& config) : config_(config) {
    config_.validate();
    reset();
  }

  /// (Re)creates and initialises the submodules.
  void reset() override {
    model = register_module("model", std::make_shared<LlamaBackbone>(config_));
    if (!config_.tie_word_embeddings) {
      lm_head = register_module(
          "lm_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
    } else {
      lm_head = torch::nn::Linear{nullptr};
    }
    if (!initialize_) return;  // from_pretrained / from_gguf: every parameter is about to be overwritten
    torch::NoGradGuard no_grad;
    for (auto& item : named_parameters()) {
      const auto& name = item.key();
      auto& p = item.value();
      if (name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0) continue;  // ones
      if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
        p.zero_();
      } else {
        p.normal_(0.0, 0.02);
      }
    }
  }

  /// Logits [B,L,V] for input_ids [B,L]; attention_mask [B,P+L] 0/1 over cached + current tokens (undefined: all
  /// ones); cache: nullptr or a KVCache this call extends by L positions (P = cache->length before the call).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        KVCache* cache = nullptr) {
    const auto h = model->forward(input_ids, attention_mask, cache);
    if (config_.tie_word_embeddings) return torch::linear(h, model->embed_tokens->weight);
    return lm_head(h);
  }

  /// Gradient checkpointing on or off (TRL's gradient_checkpointing; the optional member of the CausalLM trait that
  /// GRPOConfig::gradient_checkpointing turns on): decoder layers recompute their activations in the backward.
  /// Same gradients, less memory, about one more forward pass of time.
  void set_gradient_checkpointing(bool on) { model->gradient_checkpointing = on; }

  /// Logits [B,1,V] of the last position only (the cache, when given, extended by all L positions): generation's
  /// prefill reads no other position (the optional forward_last of the CausalLM trait).
  torch::Tensor forward_last(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                             KVCache* cache = nullptr) {
    const auto h = model->forward(input_ids, attention_mask, cache);
    return torch::linear(h.slice(1, h.size(1) - 1), lm_head_weight());
  }

  /// The final (normed) hidden states [B,L,H] of input_ids [B,L] (attention_mask as forward's, no cache): with
  /// lm_head_weight(), the optional hook of the CausalLM trait through which the trainer computes log-probs with
  /// the chunked LM head instead of full [B,L,V] logits.
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {}) {
    return model->forward(input_ids, attention_mask, nullptr);
  }
  /// The LM head's weight [V,H] (the embedding when tied); logits = hidden_states(...) @ lm_head_weight()^T.
  torch::Tensor lm_head_weight() const {
    return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
  }

  /// The configuration the model was built from.
  const LlamaConfig& config() const { return config_; }
  /// Positions the model was trained for (config.json's max_position_embeddings).
  int64_t max_positions() const { return config_.max_position_embeddings; }
  /// End-of-sequence ids from the configuration (config.json's eos_token_id; empty when it has none); generate()
  /// stops at them by default.
  std::vector<int64_t> eos_token_ids() const { return config_.eos_token_ids; }

  /// Copies `tensors` (HF names, any dtype: converted to the parameters' dtype) into the parameters. Every
  /// parameter must be present with its shape; a tensor that is not a parameter is an error, except lm_head.weight
  /// of a tied model and rotary inv_freq buffers. Errors name `source`, the tensor and both shapes.
  void load_weights(const TensorMap& tensors, const std::string& source) {
    const std::string where = "grpo::LlamaModel::load_weights: " + source + ": ";
    auto params = named_parameters();
    for (const auto& item : params) {
      const auto it = tensors.find(item.key());
      if (it == tensors.end()) {
        throw RuntimeError(where + "tensor \"" + item.key() + "\" is missing");
      }
      if (it->second.sizes() != item.value().sizes()) {
        std::ostringstream message;
        message << where << "tensor \"" << item.key() << "\" has shape " << it->second.sizes()
                << " but the model expects " << item.value().sizes();
        throw RuntimeError(message.str());
      }
    }
    for (const auto& [name, tensor] : tensors) {
      const bool ignorable = (config_.tie_word_embeddings && name == "lm_head.weight") ||
                             name.find("rotary_emb.inv_freq") != std::string::npos;
      if (!params.contains(name) && !ignorable) {
        throw RuntimeError(where + "unexpected tensor \"" + name + "\" (not a parameter of this " + config_.model_type +
                           " configuration)");
      }
    }
    torch::NoGradGuard no_grad;
    for (auto& item : params) item.value().copy_(tensors.at(item.key()));
  }

  /// Writes `dir`/config.json and `dir`/model.safetensors (parameters in their current dtype, HF names; the
  /// tied lm_head is not stored). Creates `dir`; each file is written atomically.
  void save_pretrained(const std::string& dir) const {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    TensorMap tensors;
    for (const auto& item : named_parameters()) tensors[item.key()] = item.value();
    auto config = config_;
    const auto dtype = tensors.begin()->second.scalar_type();
    config.torch_dtype = dtype == torch::kBFloat16 ? "bfloat16"
                         : dtype == torch::kHalf   ? "float16"
                         : dtype == torch::kDouble ? "float64"
                                                   : "float32";
    write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
    fs::remove(fs::path(dir) / safetensors_index_name);  // a stale shard index would take precedence on load
    config.save((fs::path(dir) / "config.json").string());
  }

  /// Copies the weights of a llama / qwen2 GGUF file (llama_gguf.hpp) into the parameters, one tensor at a time
  /// (dequantised to float32, q/k rows un-permuted, converted to the parameters' dtype), so that the whole model
  /// never exists twice in memory. Same checks as the TensorMap overload: every parameter present with its shape,
  /// no tensor that is not a parameter (except output.weight of a tied model and rope_freqs.weight). Errors name
  /// the file and both the GGUF and the Hugging Face tensor names.
  void load_weights(const GgufFile& file) {
    const std::string where = "grpo::LlamaModel::load_weights: " + file.path() + ": ";
    auto params = named_parameters();
    std::set<std::string> loaded;
    torch::NoGradGuard no_grad;
    for (const auto& info : file.tensors()) {
      if (info.name == "rope_freqs.weight") continue;  // RoPE scaling, read into the config
      const auto name = llama_hf_tensor_name(info.name);
      if (config_.tie_word_embeddings && name == "lm_head.weight") continue;
      auto* param = name.empty() ? nullptr : params.find(name);
      if (param == nullptr) {
        throw RuntimeError(where + "unexpected tensor \"" + info.name + "\"" +
                           (name.empty() ? std::string() : " (\"" + name + "\")") + " (not a parameter of this " +
                           config_.model_type + " configuration)");
      }
      if (torch::IntArrayRef(info.shape()) != param->sizes()) {
        std::ostringstream message;
        message << where << "tensor \"" << info.name << "\" (\"" << name << "\") has shape "
                << torch::IntArrayRef(info.shape()) << " but the model expects " << param->sizes();
        throw RuntimeError(message.str());
      }
      // Straight into a float32 parameter, without a temporary: permuted q/k weight rows one by one into their
      // Hugging Face places (GGUF row (head, i, half) -> HF row (head, half, i)).
      const auto heads = detail::llama_permuted_heads(info.name, config_);
      const bool direct = param->scalar_type() == torch::kFloat && param->is_contiguous() && param->device().is_cpu();
      if (direct && heads == 0) {
        file.dequantize_into(info, param->data_ptr<float>());
      } else if (direct && param->dim() == 2 && param->size(0) % (2 * heads) == 0) {
        const auto rows = param->size(0), half = rows / heads / 2, width = param->size(1);
        for (int64_t row = 0; row < rows; ++row) {
          const auto head = row / (2 * half), i = row % (2 * half) / 2, which = row % 2;
          file.dequantize_rows(info, row, 1, param->data_ptr<float>() + (head * 2 * half + which * half + i) * width);
        }
      } else {
        param->copy_(llama_tensor_from_gguf(file, info, config_));  // other dtypes, q/k biases
      }
      loaded.insert(name);
    }
    for (const auto& item : params) {
      if (loaded.count(item.key()) == 0) {
        throw RuntimeError(where + "tensor \"" + llama_gguf_tensor_name(item.key()) + "\" (\"" + item.key() +
                           "\") is missing");
      }
    }
  }

  /// Loads a model on the CPU from `path`: a Hugging Face checkpoint directory (config.json + model.safetensors or
  /// a sharded index), or a GGUF file (any regular file is read as GGUF, see from_gguf). `dtype` (default float32)
  /// is the parameters' dtype.
  static std::shared_ptr<LlamaModel> from_pretrained(const std::string& path,
                                                     std::optional<torch::ScalarType> dtype = std::nullopt) {
    namespace fs = std::filesystem;
    if (fs::is_regular_file(path)) return from_gguf(path, dtype);
    const auto config = LlamaConfig::load((fs::path(path) / "config.json").string());
    std::shared_ptr<LlamaModel> model(new LlamaModel(config, WeightsToFollow{}));
    if (dtype) model->to(*dtype);
    model->load_weights(read_safetensors_dir(path), path);
    return model;
  }

  /// Loads a llama / qwen2 GGUF file (llama.cpp's format; any of the types GgufFile dequantises) into a new model
  /// on the CPU: the configuration from its metadata (llama_config_from_gguf), the weights dequantised to float32
  /// and converted to `dtype` (default float32). The file is memory-mapped while loading and closed afterwards.
  static std::shared_ptr<LlamaModel> from_gguf(const std::string& path,
                                               std::optional<torch::ScalarType> dtype = std::nullopt) {
    const GgufFile file(path);
    std::shared_ptr<LlamaModel> model(new LlamaModel(llama_config_from_gguf(file), WeightsToFollow{}));
    if (dtype) model->to(*dtype);
    model->load_weights(file);
    return model;
  }

  std::shared_ptr<LlamaBackbone> model;  ///< decoder stack ("model.*" tensors)
  torch::nn::Linear lm_head{nullptr};    ///< [V,d] output projection; null when tied to model.embed_tokens

 private:
  // A model whose parameters the caller overwrites next: skips the random initialisation of reset() (a second of
  // normal_ draws for a 135M model); later reset() calls initialise as usual.
  struct WeightsToFollow {};
  LlamaModel(const LlamaConfig& config, WeightsToFollow) : config_(config), initialize_(false) {
    config_.validate();
    reset();
    initialize_ = true;
  }

  LlamaConfig config_;
  bool initialize_ = true;
};

static_assert(check_causal_lm<LlamaModel>());

/// Completion log-probs of a Llama-family model (grpo::LlamaModel or any model with the same members: `model`, a
/// backbone whose forward(ids, mask, nullptr) returns the normed hidden states [B,L,H]; `lm_head`, an
/// nn::Linear without bias, empty when tied; `model->embed_tokens`; `config().tie_word_embeddings`), equal to
/// Policy::completion_logps but through the chunked head and only at the T positions that predict completion
/// tokens (no logits for prompt positions). prompt_ids/prompt_mask [B,P] (left-padded, P >= 1),
/// completion_ids/completion_mask [B,T]; chunk_rows as lm_head_logps.
template <class LlamaLike>
LmHeadLogps llama_completion_logps_chunked(LlamaLike& model, const torch::Tensor& prompt_ids,
                                           const torch::Tensor& prompt_mask, const torch::Tensor& completion_ids,
                                           const torch::Tensor& completion_mask, double temperature = 1.0,
                                           int64_t chunk_rows = 0, bool want_entropy = false) {
  const std::string where = "grpo::llama_completion_logps_chunked: ";
  if (!prompt_ids.defined() || prompt_ids.dim() != 2 || prompt_ids.size(1) < 1) {
    throw InvalidArgument(where + "prompt_ids must be [B,P] with P >= 1, got shape " +
                          detail::shape_string(prompt_ids));
  }
  if (!completion_ids.defined() || completion_ids.dim() != 2 || completion_ids.size(0) != prompt_ids.size(0)) {
    throw InvalidArgument(where + "completion_ids has shape " + detail::shape_string(completion_ids) +
                          " but prompt_ids has shape " + detail::shape_string(prompt_ids) +
                          "; completion_ids must be [B,T] with the same B");
  }
  detail::require_shape(where, "prompt_mask", prompt_mask, prompt_ids.sizes(), "[B,P] like prompt_ids");
  detail::require_shape(where, "completion_mask", completion_mask, completion_ids.sizes(), "[B,T] like completion_ids");
  const auto prompt_length = prompt_ids.size(1), completion_length = completion_ids.size(1);
  const auto hidden = model.model->forward(torch::cat({prompt_ids, completion_ids}, 1),
                                           torch::cat({prompt_mask, completion_mask}, 1), nullptr);
  // The prediction for completion token t sits at position P - 1 + t (docs/math.md §2).
  const auto completion_hidden = hidden.slice(1, prompt_length - 1, prompt_length - 1 + completion_length);
  const bool tied = model.config().tie_word_embeddings;
  if (!tied && model.lm_head->bias.defined()) {
    throw InvalidArgument(where + "the LM head has a bias, which the chunked head does not support");
  }
  const auto& weight = tied ? model.model->embed_tokens->weight : model.lm_head->weight;
  return lm_head_logps_with_entropy(completion_hidden, weight, completion_ids, temperature, chunk_rows, want_entropy);
}

}  // namespace grpo
