// The Llama-family decoder: KV-cache consistency, left-padding invariance, GQA / qkv-bias / tied variants,
// deep copies, and the CausalLM trait.
#include "grpo/models/llama.hpp"

#include <torch/types.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/models/causal_lm.hpp"
#include "models/model_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace {

struct NotAModel {
  int forward(int) { return 0; }
};

std::set<std::string> parameter_names(grpo::LlamaModel& model) {
  std::set<std::string> names;
  for (const auto& item : model.named_parameters()) names.insert(item.key());
  return names;
}

}  // namespace

static_assert(grpo::is_causal_lm_v<grpo::LlamaModel>);
static_assert(!grpo::is_causal_lm_v<NotAModel>);
static_assert(!grpo::is_causal_lm_v<int>);
static_assert(grpo::detail::has_eos_token_ids<grpo::LlamaModel>::value);
static_assert(!grpo::detail::has_eos_token_ids<NotAModel>::value);

TEST_CASE("llama logits with the KV cache equal logits without it, for GQA, qkv-bias and MHA configurations",
          "[llama]") {
  for (const auto& config :
       {grpo::testing::tiny_gqa(), grpo::testing::tiny_qwen2(), grpo::testing::tiny_llama_bias()}) {
    INFO("model_type " << config.model_type << " heads " << config.num_attention_heads << "/"
                       << config.num_key_value_heads << " tied " << config.tie_word_embeddings);
    grpo::LlamaModel model(config);
    const auto [ids, mask] = grpo::testing::left_pad({{5, 6, 7, 8, 9, 10, 11}, {12, 13, 14, 15, 16}, {3, 4}});
    const auto full = model.forward(ids, mask);
    REQUIRE(full.sizes() == torch::IntArrayRef({3, 7, config.vocab_size}));

    // Prefill 4 positions, then one position at a time.
    grpo::KVCache cache;
    std::vector<torch::Tensor> parts{model.forward(ids.slice(1, 0, 4), mask.slice(1, 0, 4), &cache)};
    for (int64_t t = 4; t < 7; ++t) {
      parts.push_back(model.forward(ids.slice(1, t, t + 1), mask.slice(1, 0, t + 1), &cache));
    }
    CHECK(cache.length == 7);
    CHECK(cache.keys.size() == static_cast<std::size_t>(config.num_hidden_layers));
    CHECK(cache.keys[0].size(1) == config.num_key_value_heads);
    const auto incremental = torch::cat(parts, 1);
    CHECK(torch::allclose(incremental, full, 1e-5, 1e-5));

    // A left-padded row has the logits of the same tokens alone.
    const auto alone = model.forward(grpo::testing::row_tensor({12, 13, 14, 15, 16}), {});
    CHECK(torch::allclose(full[1].slice(0, 2), alone[0], 1e-5, 1e-5));
    CHECK(torch::isfinite(full).all().item<bool>());
    CHECK_THROWS_WITH(model.forward(grpo::testing::row_tensor({1, config.vocab_size}), {}),
                      grpo_test::Contains("outside the vocabulary"));
    CHECK_THROWS_WITH(model.forward(ids, mask.slice(1, 1)), grpo_test::Contains("attention_mask has shape"));
  }
}

TEST_CASE("llama parameters carry Hugging Face names and the bias / tying layout of each model type", "[llama]") {
  grpo::LlamaModel gqa(grpo::testing::tiny_gqa());
  auto names = parameter_names(gqa);
  CHECK(names.count("model.embed_tokens.weight") == 1);
  CHECK(names.count("model.layers.1.self_attn.k_proj.weight") == 1);
  CHECK(names.count("model.layers.0.mlp.gate_proj.weight") == 1);
  CHECK(names.count("model.layers.0.input_layernorm.weight") == 1);
  CHECK(names.count("model.layers.0.post_attention_layernorm.weight") == 1);
  CHECK(names.count("model.norm.weight") == 1);
  CHECK(names.count("lm_head.weight") == 0);  // tied
  CHECK(names.count("model.layers.0.self_attn.q_proj.bias") == 0);
  CHECK(gqa.named_parameters()["model.layers.0.self_attn.k_proj.weight"].sizes() ==
        torch::IntArrayRef({2 * 16, 64}));  // 2 kv heads of 16

  grpo::LlamaModel qwen(grpo::testing::tiny_qwen2());
  names = parameter_names(qwen);
  CHECK(names.count("lm_head.weight") == 1);
  CHECK(names.count("model.layers.0.self_attn.q_proj.bias") == 1);
  CHECK(names.count("model.layers.0.self_attn.v_proj.bias") == 1);
  CHECK(names.count("model.layers.0.self_attn.o_proj.bias") == 0);

  grpo::LlamaModel biased(grpo::testing::tiny_llama_bias());
  names = parameter_names(biased);
  CHECK(names.count("model.layers.0.self_attn.o_proj.bias") == 1);
  CHECK(biased.named_parameters()["model.layers.0.self_attn.q_proj.weight"].sizes() ==
        torch::IntArrayRef({2 * 24, 64}));

  // clone() is a deep copy with equal outputs.
  auto copy = std::dynamic_pointer_cast<grpo::LlamaModel>(qwen.clone());
  REQUIRE(copy);
  const auto ids = grpo::testing::row_tensor({1, 2, 3, 4});
  CHECK(torch::equal(copy->forward(ids), qwen.forward(ids)));
  {
    torch::NoGradGuard no_grad;
    copy->named_parameters()["model.norm.weight"].add_(1.0);
  }
  CHECK_FALSE(torch::equal(copy->forward(ids), qwen.forward(ids)));
  CHECK(copy->config().model_type == "qwen2");

  CHECK_THROWS_WITH(grpo::LlamaModel([] {
                      auto c = grpo::testing::tiny_gqa();
                      c.num_key_value_heads = 3;
                      return c;
                    }()),
                    grpo_test::Contains("num_key_value_heads"));
}

TEST_CASE("llama forward matches a naive per-head implementation of the Hugging Face formulas", "[llama]") {
  auto config = grpo::testing::tiny_qwen2();
  config.num_hidden_layers = 1;
  config.num_key_value_heads = 2;
  grpo::LlamaModel model(config);
  auto p = model.named_parameters();
  const auto ids = grpo::testing::row_tensor({3, 9, 1, 30, 7});
  const int64_t L = 5, H = config.num_attention_heads, KV = config.num_key_value_heads, D = config.head_dim;
  torch::NoGradGuard no_grad;
  for (auto& item : p) item.value().normal_(0.0, 0.3);  // norms and biases too, so that each one matters
  const auto rms = [&](const torch::Tensor& x, const torch::Tensor& w) {
    return x / torch::sqrt(x.pow(2).mean(-1, true) + config.rms_norm_eps) * w;
  };
  const auto rope = [&](const torch::Tensor& x /*[L,D]*/) {
    auto out = torch::empty_like(x);
    for (int64_t pos = 0; pos < L; ++pos) {
      for (int64_t i = 0; i < D / 2; ++i) {
        const double angle = pos / std::pow(config.rope_theta, 2.0 * i / D);
        const auto a = x[pos][i], b = x[pos][i + D / 2];
        out[pos][i] = a * std::cos(angle) - b * std::sin(angle);
        out[pos][i + D / 2] = b * std::cos(angle) + a * std::sin(angle);
      }
    }
    return out;
  };
  const std::string layer = "model.layers.0.";
  auto h = p["model.embed_tokens.weight"].index_select(0, ids[0]);  // [L,d]
  const auto x = rms(h, p[layer + "input_layernorm.weight"]);
  const auto proj = [&](const std::string& name) {
    return torch::matmul(x, p[layer + "self_attn." + name + ".weight"].t()) + p[layer + "self_attn." + name + ".bias"];
  };
  const auto q = proj("q_proj"), k = proj("k_proj"), v = proj("v_proj");
  std::vector<torch::Tensor> heads;
  for (int64_t head = 0; head < H; ++head) {
    const auto kv = head / (H / KV);
    const auto qh = rope(q.slice(1, head * D, (head + 1) * D));
    const auto kh = rope(k.slice(1, kv * D, (kv + 1) * D));
    const auto vh = v.slice(1, kv * D, (kv + 1) * D);
    auto scores = torch::matmul(qh, kh.t()) / std::sqrt(static_cast<double>(D));
    scores = scores.masked_fill(torch::ones({L, L}, torch::kBool).triu(1), -1e30);
    heads.push_back(torch::matmul(torch::softmax(scores, -1), vh));
  }
  h = h + torch::matmul(torch::cat(heads, 1), p[layer + "self_attn.o_proj.weight"].t());
  const auto y = rms(h, p[layer + "post_attention_layernorm.weight"]);
  const auto gate = torch::matmul(y, p[layer + "mlp.gate_proj.weight"].t());
  const auto up = torch::matmul(y, p[layer + "mlp.up_proj.weight"].t());
  h = h + torch::matmul(gate * torch::sigmoid(gate) * up, p[layer + "mlp.down_proj.weight"].t());
  const auto expected = torch::matmul(rms(h, p["model.norm.weight"]), p["lm_head.weight"].t());
  CHECK(torch::allclose(model.forward(ids)[0], expected, 1e-4, 1e-5));
}

TEST_CASE("config.json's eos_token_id reads and writes as one id or a list, strictly, and reaches the model",
          "[llama]") {
  using grpo_test::Contains;
  using Ids = std::vector<int64_t>;
  const auto with_eos = [](const nlohmann::json& eos) {
    nlohmann::json j = grpo::testing::tiny_gqa();
    j["eos_token_id"] = eos;
    return j;
  };
  // Reading: an int, a list, a list of one, an empty list, null, absent.
  CHECK(with_eos(5).get<grpo::LlamaConfig>().eos_token_ids == Ids{5});
  CHECK(with_eos({5, 7}).get<grpo::LlamaConfig>().eos_token_ids == Ids{5, 7});
  CHECK(with_eos(nlohmann::json::array({3})).get<grpo::LlamaConfig>().eos_token_ids == Ids{3});
  CHECK(with_eos(nlohmann::json::array()).get<grpo::LlamaConfig>().eos_token_ids.empty());
  CHECK(with_eos(nullptr).get<grpo::LlamaConfig>().eos_token_ids.empty());
  auto absent = with_eos(nullptr);
  absent.erase("eos_token_id");
  CHECK(absent.get<grpo::LlamaConfig>().eos_token_ids.empty());

  // Writing: one id as an int, several as a list, none as null; each reads back equal.
  auto config = grpo::testing::tiny_gqa();
  for (const auto& ids : {Ids{5}, Ids{5, 7, 36}, Ids{}}) {
    config.eos_token_ids = ids;
    const nlohmann::json j = config;
    if (ids.empty()) {
      CHECK(j.at("eos_token_id").is_null());
    } else if (ids.size() == 1) {
      CHECK(j.at("eos_token_id") == 5);
    } else {
      CHECK(j.at("eos_token_id") == nlohmann::json({5, 7, 36}));
    }
    CHECK(j.get<grpo::LlamaConfig>().eos_token_ids == ids);
  }

  // Strict: wrong types and ids outside the vocabulary name the field.
  const auto error = [&](const nlohmann::json& eos, const std::string& expected) {
    INFO(eos.dump());
    CHECK_THROWS_WITH(with_eos(eos).get<grpo::LlamaConfig>(), Contains("eos_token_id") && Contains(expected));
  };
  error("2", "bad value \"2\"");
  error({2, "x"}, "expected an integer token id or a list of them");
  error(2.5, "bad value 2.5");
  error({{"id", 2}}, "bad value");
  error(37, "37 is outside [0, vocab_size=37)");
  error({1, -1}, "-1 is outside");

  // Through save_pretrained / from_pretrained, and as the model's optional eos_token_ids() member.
  grpo::testing::TempDir tmp;
  config.eos_token_ids = {4, 9};
  grpo::LlamaModel model(config);
  CHECK(model.eos_token_ids() == Ids{4, 9});
  CHECK(grpo::model_eos_token_ids(model) == Ids{4, 9});
  model.save_pretrained(tmp.file("checkpoint"));
  const auto loaded = grpo::LlamaModel::from_pretrained(tmp.file("checkpoint"));
  CHECK(loaded->eos_token_ids() == Ids{4, 9});
  CHECK(grpo::LlamaConfig::load(tmp.file("checkpoint") + "/config.json").eos_token_ids == Ids{4, 9});
  CHECK(grpo::model_eos_token_ids(NotAModel{}).empty());  // a model without the member has none
}
