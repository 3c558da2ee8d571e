// Llama-family models from GGUF files: tiny llama / qwen2 files against transformers' logits and greedy tokens
// (tests/fixtures/gguf/make_fixtures.py), the metadata -> LlamaConfig mapping, RoPE scaling against transformers'
// inverse frequencies, and the real SmolLM2-135M-Instruct Q4_1 file against transformers when it is present.
#include "grpo/models/llama_gguf.hpp"

#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grpo/generation/generate.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "models/gguf_fixtures.hpp"
#include "models/model_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace {

// max |actual - expected| / max |expected|: the error relative to the largest logit.
double relative_to_max(const torch::Tensor& actual, const torch::Tensor& expected) {
  return (actual - expected).abs().max().item<double>() / expected.abs().max().item<double>();
}

// Greedy continuation that never stops early (no EOS), through the KV cache.
std::vector<int64_t> greedy(grpo::LlamaModel& model, const torch::Tensor& prompt, int64_t steps) {
  grpo::GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = steps;
  options.eos_token_ids = std::vector<int64_t>{};
  const auto ids = grpo::generate(model, prompt.unsqueeze(0), {}, options).completion_ids[0];
  return {ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel()};
}

std::vector<int64_t> as_vector(const torch::Tensor& ids) {
  const auto contiguous = ids.contiguous();
  return {contiguous.data_ptr<int64_t>(), contiguous.data_ptr<int64_t>() + contiguous.numel()};
}

}  // namespace

TEST_CASE("tiny llama and qwen2 GGUF files load and reproduce transformers' logits and greedy tokens", "[gguf]") {
  const auto reference = grpo::read_safetensors(grpo::testing::fixture_path("gguf/tiny_reference.safetensors")).tensors;
  const auto ids = reference.at("input_ids");
  torch::NoGradGuard no_grad;
  for (const std::string kind : {"llama", "qwen2"}) {
    INFO(kind);
    const auto path = grpo::testing::fixture_path("gguf/tiny_" + kind + ".gguf");
    const auto model = grpo::LlamaModel::from_pretrained(path);  // a regular file: read as GGUF
    const auto& c = model->config();
    CHECK(c.model_type == kind);
    CHECK(c.vocab_size == 64);
    CHECK(c.hidden_size == 32);
    CHECK(c.intermediate_size == 64);
    CHECK(c.num_hidden_layers == 2);
    CHECK(c.num_attention_heads == 4);
    CHECK(c.num_key_value_heads == 2);
    CHECK(c.head_dim == 8);
    CHECK(c.max_position_embeddings == 128);
    CHECK(c.rms_norm_eps == static_cast<double>(1e-5f));
    CHECK(c.rope_theta == (kind == "llama" ? 10000.0 : 1000000.0));
    CHECK(c.tie_word_embeddings == (kind == "qwen2"));
    CHECK(c.bos_token_id == 1);
    CHECK(c.eos_token_ids == std::vector<int64_t>{2});
    CHECK(c.pad_token_id == 3);
    CHECK_FALSE(c.rope_scaling);

    const auto logits = model->forward(ids.unsqueeze(0))[0];
    const auto expected = reference.at(kind + ".logits");
    const auto error = relative_to_max(logits, expected);
    INFO("max |logit - transformers| / max |logit| = " << error);
    CHECK(error < 1e-5);
    CHECK(greedy(*model, ids, 8) == as_vector(reference.at(kind + ".greedy")));

    // Loading in bfloat16 rounds the same values (the parameters take the copy path instead of direct decoding).
    const auto bf16 = grpo::LlamaModel::from_gguf(path, torch::kBFloat16);
    for (const auto& item : bf16->named_parameters()) {
      CHECK(torch::equal(item.value(), model->named_parameters()[item.key()].to(torch::kBFloat16)));
    }

    // The name mapping is a bijection over the file's tensors, and the whole-map loader agrees with the model.
    const grpo::GgufFile file(path);
    const auto weights = grpo::llama_weights_from_gguf(file, c);
    CHECK(weights.size() == model->named_parameters().size());
    for (const auto& info : file.tensors()) {
      const auto hf = grpo::llama_hf_tensor_name(info.name);
      CHECK(grpo::llama_gguf_tensor_name(hf) == info.name);
      CHECK(torch::equal(weights.at(hf), model->named_parameters()[hf]));
    }
  }
  CHECK(grpo::llama_hf_tensor_name("blk.12.ffn_down.weight") == "model.layers.12.mlp.down_proj.weight");
  CHECK(grpo::llama_hf_tensor_name("blk.0.attn_output.weight") == "model.layers.0.self_attn.o_proj.weight");
  CHECK(grpo::llama_hf_tensor_name("blk.01.attn_q.weight").empty());
  CHECK(grpo::llama_hf_tensor_name("blk.1.attn_qkv.weight").empty());
  CHECK(grpo::llama_gguf_tensor_name("model.layers.3.post_attention_layernorm.weight") == "blk.3.ffn_norm.weight");

  // The same llama weights under linear and llama3 RoPE scaling (set on the config; the GGUF has none).
  const grpo::GgufFile file(grpo::testing::fixture_path("gguf/tiny_llama.gguf"));
  for (const auto& scaling :
       {grpo::RopeScaling{"linear", 4.0, 1.0, 4.0, 8192}, grpo::RopeScaling{"llama3", 8.0, 1.0, 4.0, 16}}) {
    INFO(scaling.rope_type);
    auto config = grpo::llama_config_from_gguf(file);
    config.rope_scaling = scaling;
    grpo::LlamaModel model(config);
    model.load_weights(file);
    const auto error =
        relative_to_max(model.forward(ids.unsqueeze(0))[0], reference.at("llama.logits_" + scaling.rope_type));
    INFO("max |logit - transformers| / max |logit| = " << error);
    CHECK(error < 1e-5);
  }

  // Loading errors name the file and both tensor names.
  auto wrong = grpo::llama_config_from_gguf(file);
  wrong.num_hidden_layers = 3;
  grpo::LlamaModel deeper(wrong);
  CHECK_THROWS_WITH(deeper.load_weights(file),
                    Contains(file.path()) && Contains("tensor \"blk.2.attn_q.weight\" "
                                                      "(\"model.layers.2.self_attn.q_proj.weight\") is missing"));
  wrong.num_hidden_layers = 1;
  grpo::LlamaModel shallower(wrong);
  CHECK_THROWS_WITH(shallower.load_weights(file), Contains("unexpected tensor \"blk.1."));
  wrong = grpo::llama_config_from_gguf(file);
  wrong.intermediate_size = 96;
  grpo::LlamaModel wider(wrong);
  CHECK_THROWS_WITH(wider.load_weights(file), Contains("(\"model.layers.0.mlp.gate_proj.weight\") has shape [64, 32] "
                                                       "but the model expects [96, 32]"));
}

TEST_CASE("RoPE scaling reads from config.json and GGUF keys, and rope_inv_freq matches transformers", "[gguf]") {
  // transformers' inverse frequencies for default, linear and llama3 configurations, from both config styles.
  std::ifstream in(grpo::testing::fixture_path("gguf/rope_inv_freq.json"));
  const auto fixture = nlohmann::json::parse(in);
  double worst = 0;
  for (const auto& item : fixture.at("cases")) {
    INFO(item.at("name").get<std::string>());
    const auto expected = torch::tensor(item.at("inv_freq").get<std::vector<double>>(), torch::kFloat);
    for (const char* style : {"config_v4", "config_v5"}) {
      INFO(style);
      const auto config = item.at(style).get<grpo::LlamaConfig>();
      const auto inv_freq = grpo::rope_inv_freq(config);
      REQUIRE(inv_freq.sizes() == expected.sizes());
      const auto error = ((inv_freq - expected).abs() / expected).max().item<double>();
      worst = std::max(worst, error);
      CHECK(error <= 1.2e-7);                 // at most one float32 rounding (2^-23 relative) apart
      const nlohmann::json written = config;  // written back (transformers 4 style) and read again: the same
      CHECK(torch::equal(grpo::rope_inv_freq(written.get<grpo::LlamaConfig>()), inv_freq));
    }
  }
  INFO("worst relative difference " << worst);
  CHECK(worst <= 1.2e-7);

  // config.json: types other than linear and llama3 are rejected naming them; missing parameters are named.
  nlohmann::json base = grpo::testing::tiny_gqa();
  const auto rope_error = [&](const char* field, const nlohmann::json& value, const std::string& expected) {
    auto j = base;
    j[field] = value;
    INFO(value.dump());
    CHECK_THROWS_WITH(j.get<grpo::LlamaConfig>(),
                      Contains(std::string("field \"") + field + "\"") && Contains(expected));
  };
  rope_error("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}, "rope_type \"yarn\", which is not supported");
  rope_error("rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}, "rope_type \"dynamic\"");
  rope_error("rope_scaling", {{"rope_type", "linear"}}, "needs a number \"factor\"");
  rope_error("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}},
             "needs a number \"high_freq_factor\"");
  rope_error("rope_parameters", {{"rope_type", "longrope"}, {"rope_theta", 1e4}}, "rope_type \"longrope\"");
  rope_error("rope_parameters", {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}}, "partial_rotary_factor");
  rope_error("rope_scaling", "linear", "expected an object");
  auto llama3 = base;
  llama3["rope_scaling"] = {
      {"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0}, {"high_freq_factor", 1.0}};
  CHECK_THROWS_WITH(llama3.get<grpo::LlamaConfig>(), Contains("0 < low_freq_factor < high_freq_factor"));

  // GGUF: rope.scaling.type linear / none, other types rejected, Llama 3's rope_freqs.weight tensor.
  grpo::testing::TempDir tmp;
  const auto path = tmp.file("rope.gguf");
  const auto config_of = [&](const grpo::testing::GgufBuilder& builder) {
    grpo::testing::write_bytes(path, builder.bytes());
    return grpo::llama_config_from_gguf(grpo::GgufFile(path));
  };
  auto c = config_of(grpo::testing::tiny_llama_metadata()
                         .str("llama.rope.scaling.type", "linear")
                         .f32("llama.rope.scaling.factor", 2.5f)
                         .u32("tokenizer.ggml.eos_token_id", 5)
                         .u32("tokenizer.ggml.eot_token_id", 7)
                         .u32("tokenizer.ggml.eom_token_id", 5));
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "linear");
  CHECK(c.rope_scaling->factor == 2.5);
  CHECK(c.eos_token_ids == std::vector<int64_t>{5, 7});
  CHECK(c.tie_word_embeddings);
  CHECK_FALSE(c.bos_token_id);
  CHECK_FALSE(config_of(grpo::testing::tiny_llama_metadata().str("llama.rope.scaling.type", "none")).rope_scaling);
  CHECK(config_of(grpo::testing::tiny_llama_metadata().f32("llama.rope.scale_linear", 4.0f)).rope_scaling->factor ==
        4.0);
  CHECK_THROWS_WITH(config_of(grpo::testing::tiny_llama_metadata().str("llama.rope.scaling.type", "yarn")),
                    Contains(path) && Contains("\"llama.rope.scaling.type\" is \"yarn\", which is not supported"));
  CHECK_THROWS_WITH(config_of(grpo::testing::tiny_llama_metadata().u32("llama.rope.dimension_count", 4)),
                    Contains("\"llama.rope.dimension_count\" is 4 but the head dimension is 8"));
  CHECK_THROWS_WITH(config_of(grpo::testing::tiny_llama_metadata().u32("tokenizer.ggml.bos_token_id", 64)),
                    Contains(path) && Contains("bos_token_id 64 is outside [0, vocab_size=64)"));

  // rope_freqs.weight with Llama 3.1's divisors (factor 8) -> llama3 scaling; other divisors are an error.
  const grpo::RopeScaling llama31{"llama3", 8.0, 1.0, 4.0, 8192};
  const auto config_with_divisors = [&](std::vector<float> divisors) {
    auto builder = grpo::testing::tiny_llama_metadata("llama.rope.freq_base").f32("llama.rope.freq_base", 500000.0f);
    return config_of(builder.tensor_f32("rope_freqs.weight", {divisors.size()}, divisors));
  };
  const auto divisors = grpo::detail::llama3_frequency_divisors(500000.0, 8, llama31);
  c = config_with_divisors({divisors.begin(), divisors.end()});
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "llama3");
  CHECK(c.rope_scaling->factor == 8.0);
  CHECK(c.rope_scaling->original_max_position_embeddings == 8192);
  CHECK_THROWS_WITH(config_with_divisors({1.0f, 2.0f, 3.0f, 8.0f}),
                    Contains("\"rope_freqs.weight\" holds frequency divisors that are not Llama 3's"));
}

TEST_CASE("SmolLM2-135M-Instruct Q4_1 from GGUF matches transformers' logits and greedy tokens", "[gguf][smollm2]") {
  const auto path = grpo::testing::smollm2_gguf_path();
  if (!std::filesystem::exists(path)) {
    WARN("SKIPPED: " << path
                     << " is absent; run `cmake -DDEST=<build>/models -P cmake/fetch-smollm2.cmake` (make test does) "
                        "or set GRPO_SMOLLM2_GGUF");
    return;
  }
  const auto reference =
      grpo::read_safetensors(grpo::testing::fixture_path("smollm2/smollm2_logits.safetensors")).tensors;
  const auto start = std::chrono::steady_clock::now();
  const auto model = grpo::LlamaModel::from_pretrained(path);
  const auto loaded = std::chrono::steady_clock::now();
  const auto& c = model->config();
  CHECK(c.num_hidden_layers == 30);
  CHECK(c.hidden_size == 576);
  CHECK(c.num_attention_heads == 9);
  CHECK(c.num_key_value_heads == 3);
  CHECK(c.vocab_size == 49152);
  CHECK(c.rope_theta == 100000.0);
  CHECK(c.tie_word_embeddings);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});

  torch::NoGradGuard no_grad;
  const auto ids = reference.at("input_ids");
  const auto logits = model->forward(ids.unsqueeze(0))[0].index_select(0, reference.at("positions"));  // [3,V]
  const auto sampled = logits.index_select(1, reference.at("sample_ids"));
  const auto expected = reference.at("logits_sample");
  const auto error = relative_to_max(sampled, expected);
  // Whole rows: log-sum-exp, max |logit| and L2 norm over all 49152 logits, in float64.
  const auto rows = logits.to(torch::kDouble);
  const auto scale = reference.at("max_abs").max().item<double>();
  const auto lse_error = (rows.logsumexp(1) - reference.at("logsumexp")).abs().max().item<double>() / scale;
  const auto max_error = (rows.abs().amax(1) - reference.at("max_abs")).abs().max().item<double>() / scale;
  const auto l2_error = ((rows.norm(2, 1) - reference.at("l2")).abs() / reference.at("l2")).max().item<double>();
  const auto tokens = greedy(*model, ids, 16);
  const auto done = std::chrono::steady_clock::now();
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  WARN("SmolLM2 GGUF: load " << seconds(start, loaded) << " s, forward + 16 greedy tokens " << seconds(loaded, done)
                             << " s; max |logit - transformers| / max |logit| = " << error
                             << " (sampled), row logsumexp " << lse_error << ", max " << max_error << ", L2 "
                             << l2_error);
  CHECK(error < 1e-4);
  CHECK(lse_error < 1e-4);
  CHECK(max_error < 1e-4);
  CHECK(l2_error < 1e-4);
  CHECK(tokens == as_vector(reference.at("greedy_ids")));
}
