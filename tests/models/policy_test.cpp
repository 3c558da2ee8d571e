// Policy / Reference wrappers, a user-written torch::nn module through the CausalLM trait, and the char tokenizer.
#include "grpo/train/policy.hpp"

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <memory>
#include <vector>

#include "grpo/models/llama.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "models/model_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace {

// A user's own model: a bigram LM that ignores the attention mask and the cache.
struct BigramLM : torch::nn::Module {
  explicit BigramLM(int64_t vocab) {
    embed = register_module("embed", torch::nn::Embedding(vocab, 8));
    head = register_module("head", torch::nn::Linear(8, vocab));
  }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& /*attention_mask*/,
                        grpo::KVCache* /*cache*/) {
    return head(embed(input_ids));
  }
  torch::nn::Embedding embed{nullptr};
  torch::nn::Linear head{nullptr};
};

}  // namespace

static_assert(grpo::is_causal_lm_v<BigramLM>);

TEST_CASE("policy completion log-probs match a brute-force per-position computation, in any micro-batch size",
          "[policy]") {
  auto model = std::make_shared<grpo::LlamaModel>(grpo::testing::tiny_qwen2());
  model->train(true);
  grpo::Policy<grpo::LlamaModel> policy(model);
  CHECK_FALSE(model->is_training());  // dropout off during GRPO

  const std::vector<std::vector<int64_t>> prompt_rows = {{3, 4, 5, 6}, {7, 8}, {9, 10, 11}};
  const auto [prompt_ids, prompt_mask] = grpo::testing::left_pad(prompt_rows);
  const auto completion_ids = torch::tensor({{20, 21, 22}, {23, 24, 0}, {25, 0, 0}}, torch::kLong);
  const auto completion_mask = torch::tensor({{1, 1, 1}, {1, 1, 0}, {1, 0, 0}}, torch::kLong);
  const double temperature = 0.7;

  const auto full = policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, temperature, 0,
                                            /*want_entropy=*/true);
  REQUIRE(full.logps.sizes() == torch::IntArrayRef({3, 3}));
  REQUIRE(full.entropies.defined());
  CHECK(full.logps.requires_grad());
  CHECK_FALSE(full.entropies.requires_grad());
  const auto micro = policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, temperature, 2);
  CHECK(torch::allclose(micro.logps, full.logps, 1e-5, 1e-6));
  CHECK_FALSE(micro.entropies.defined());

  torch::NoGradGuard no_grad;
  for (int64_t b = 0; b < 3; ++b) {
    std::vector<int64_t> sequence = prompt_rows[static_cast<std::size_t>(b)];
    for (int64_t t = 0; t < 3; ++t) {
      if (completion_mask[b][t].item<int64_t>() == 0) break;
      INFO("row " << b << " token " << t);
      const auto logits = model->forward(grpo::testing::row_tensor(sequence), {})[0][-1] / temperature;
      const auto logp = torch::log_softmax(logits, -1);
      const auto token = completion_ids[b][t].item<int64_t>();
      CHECK(full.logps[b][t].item<double>() == Approx(logp[token].item<double>()).margin(1e-5));
      CHECK(full.entropies[b][t].item<double>() == Approx(-(logp.exp() * logp).sum().item<double>()).margin(1e-5));
      sequence.push_back(token);
    }
  }
}

TEST_CASE("the reference is a frozen copy made only when beta is non-zero, and sync_from mixes in the policy",
          "[policy]") {
  auto model = std::make_shared<grpo::LlamaModel>(grpo::testing::tiny_gqa());
  grpo::Policy<grpo::LlamaModel> policy(model);
  CHECK_FALSE(grpo::make_reference(policy, 0.0).has_value());
  auto reference = grpo::make_reference(policy, 0.04);
  REQUIRE(reference.has_value());
  for (const auto& p : reference->model().parameters()) CHECK_FALSE(p.requires_grad());
  CHECK_FALSE(reference->model().is_training());

  const auto [prompt_ids, prompt_mask] = grpo::testing::left_pad({{3, 4, 5}, {6}});
  const auto completion_ids = torch::tensor({{7, 8}, {9, 10}}, torch::kLong);
  const auto completion_mask = torch::ones({2, 2}, torch::kLong);
  const auto before = reference->completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask);
  CHECK_FALSE(before.logps.requires_grad());
  CHECK(torch::allclose(before.logps,
                        policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask).logps));

  // Training the policy leaves the reference alone.
  const auto ref_weight = reference->model().named_parameters()["model.norm.weight"].clone();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(0.05);
  }
  CHECK(torch::equal(reference->model().named_parameters()["model.norm.weight"], ref_weight));
  CHECK(torch::equal(reference->completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask).logps,
                     before.logps));

  reference->sync_from(policy, 0.6);
  const auto policy_weight = model->named_parameters()["model.norm.weight"];
  CHECK(torch::allclose(reference->model().named_parameters()["model.norm.weight"],
                        0.6 * policy_weight + 0.4 * ref_weight, 1e-6, 1e-7));
  CHECK_FALSE(reference->model().named_parameters()["model.norm.weight"].requires_grad());
  CHECK_THROWS_WITH(reference->sync_from(policy, 1.5), grpo_test::Contains("alpha"));
}

TEST_CASE("a user-written torch::nn module works as policy and generator without a KV cache", "[policy]") {
  auto model = std::make_shared<BigramLM>(17);
  grpo::Policy<BigramLM> policy(model);
  const auto [prompt_ids, prompt_mask] = grpo::testing::left_pad({{3, 4, 5}, {6}});
  grpo::GenerationOptions options;
  options.max_new_tokens = 5;
  options.seed = 1;
  const auto result = policy.generate(prompt_ids, prompt_mask, options);
  CHECK(result.completion_ids.sizes() == torch::IntArrayRef({2, 5}));
  options.use_cache = false;
  CHECK(torch::equal(policy.generate(prompt_ids, prompt_mask, options).completion_ids, result.completion_ids));
  const auto logps = policy.completion_logps(prompt_ids, prompt_mask, result.completion_ids, result.completion_mask);
  CHECK(logps.logps.sizes() == torch::IntArrayRef({2, 5}));
  logps.logps.sum().backward();
  CHECK(model->head->weight.grad().defined());
}

TEST_CASE("the char tokenizer round-trips its alphabet and maps other bytes to unk", "[tokenizer]") {
  const auto tokenizer = grpo::CharTokenizer::ascii();
  CHECK(tokenizer.vocab_size() == 100);
  const std::string text = "2 + 3 = 5\nok!";
  const auto ids = tokenizer.encode(text);
  CHECK(ids.size() == text.size());
  CHECK(tokenizer.decode(ids) == text);
  auto with_specials = ids;
  with_specials.insert(with_specials.begin(), tokenizer.bos_token_id().value());
  with_specials.push_back(tokenizer.eos_token_id());
  with_specials.push_back(tokenizer.pad_token_id());
  CHECK(tokenizer.decode(with_specials) == text);
  CHECK(tokenizer.encode("\t") == std::vector<int64_t>{grpo::CharTokenizer::unk_id});
  CHECK(tokenizer.decode({grpo::CharTokenizer::unk_id}) == "?");
  CHECK_THROWS_WITH(tokenizer.decode({100}), grpo_test::Contains("outside"));
  CHECK_THROWS_WITH(grpo::CharTokenizer("abca"), grpo_test::Contains("repeats"));
  const grpo::CharTokenizer digits("0123456789");
  CHECK(digits.encode("42") == std::vector<int64_t>{8, 6});
}

TEST_CASE("the policy's chunked LM-head path gives the full-logits path's log-probs and gradients", "[policy]") {
  static_assert(grpo::detail::has_chunked_head<grpo::LlamaModel>::value);
  static_assert(!grpo::detail::has_chunked_head<BigramLM>::value);  // no hook: full logits
  for (const bool tied : {true, false}) {
    INFO("tied " << tied);
    auto config = grpo::testing::tiny_qwen2();
    config.tie_word_embeddings = tied;
    torch::manual_seed(4);
    auto model = std::make_shared<grpo::LlamaModel>(config);
    grpo::Policy<grpo::LlamaModel> policy(model);
    const auto [prompt_ids, prompt_mask] = grpo::testing::left_pad({{3, 4, 5, 6}, {7, 8}});
    const auto completion_ids = torch::tensor({{20, 21, 22}, {23, 24, 0}}, torch::kLong);
    const auto completion_mask = torch::tensor({{1, 1, 1}, {1, 1, 0}}, torch::kLong);
    const auto weights = torch::tensor({{0.3, -1.0, 2.0}, {1.5, 0.7, 0.0}});

    const auto chunked =
        policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, 0.8, 0, true);
    (chunked.logps * weights).sum().backward();
    std::vector<torch::Tensor> chunked_grads;
    for (const auto& p : model->parameters()) chunked_grads.push_back(p.grad().clone());
    model->zero_grad();

    const auto logits = model->forward(torch::cat({prompt_ids, completion_ids}, 1),
                                       torch::cat({prompt_mask, completion_mask}, 1), nullptr);
    const auto full = grpo::completion_logps(logits, completion_ids, 0.8);
    (full * weights).sum().backward();
    CHECK(torch::allclose(chunked.logps, full, 1e-5, 1e-6));
    const auto params = model->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      INFO("parameter " << i);
      CHECK(torch::allclose(chunked_grads[i], params[i].grad(), 1e-4, 1e-6));
    }
    torch::NoGradGuard no_grad;
    const auto entropies = grpo::entropy_from_logits(grpo::completion_logits(logits, 3), 0.8);
    CHECK(torch::allclose(chunked.entropies, entropies, 1e-5, 1e-6));
  }
}

TEST_CASE("gradient checkpointing recomputes the layers in the backward and gives the same gradients", "[policy]") {
  static_assert(grpo::detail::has_gradient_checkpointing<grpo::LlamaModel>::value);
  torch::manual_seed(6);
  auto plain = std::make_shared<grpo::LlamaModel>(grpo::testing::tiny_qwen2());
  auto recomputing = std::dynamic_pointer_cast<grpo::LlamaModel>(plain->clone());
  REQUIRE(recomputing);
  recomputing->set_gradient_checkpointing(true);
  const auto [prompt_ids, prompt_mask] = grpo::testing::left_pad({{3, 4, 5, 6}, {7, 8}});
  const auto completion_ids = torch::tensor({{20, 21, 22}, {23, 24, 0}}, torch::kLong);
  const auto completion_mask = torch::tensor({{1, 1, 1}, {1, 1, 0}}, torch::kLong);
  const auto weights = torch::tensor({{0.3, -1.0, 2.0}, {1.5, 0.7, 0.0}});
  std::vector<std::vector<torch::Tensor>> grads;
  std::vector<torch::Tensor> logps;
  for (const auto& model : {plain, recomputing}) {
    grpo::Policy<grpo::LlamaModel> policy(model);
    const auto out = policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, 1.0, 0);
    (out.logps * weights).sum().backward({}, /*retain_graph=*/true);
    (out.logps * weights * 0.5).sum().backward();  // a second backward accumulates, as micro-steps do
    logps.push_back(out.logps.detach());
    std::vector<torch::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    grads.push_back(std::move(g));
  }
  CHECK(torch::equal(logps[0], logps[1]));
  REQUIRE(grads[0].size() == grads[1].size());
  for (std::size_t i = 0; i < grads[0].size(); ++i) {
    INFO("parameter " << i);
    REQUIRE(grads[0][i].defined());
    REQUIRE(grads[1][i].defined());
    CHECK(torch::allclose(grads[0][i], grads[1][i], 1e-5, 1e-7));
  }
  // Under no_grad (generation, old-policy log-probs) nothing is recomputed: the plain forward.
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(recomputing->forward(prompt_ids, prompt_mask, nullptr),
                     plain->forward(prompt_ids, prompt_mask, nullptr)));
}

TEST_CASE("mixed precision: bf16 matmuls under autocast, float32 parameters, gradients and log-probs", "[policy]") {
  torch::manual_seed(8);
  auto model = std::make_shared<grpo::LlamaModel>(grpo::testing::tiny_qwen2());
  const auto [prompt_ids, prompt_mask] = grpo::testing::left_pad({{3, 4, 5, 6}, {7, 8}});
  const auto completion_ids = torch::tensor({{20, 21, 22}, {23, 24, 0}}, torch::kLong);
  const auto completion_mask = torch::tensor({{1, 1, 1}, {1, 1, 0}}, torch::kLong);
  const auto weights = torch::tensor({{0.3, -1.0, 2.0}, {1.5, 0.7, 0.0}});
  const auto logps_and_grads = [&](grpo::Policy<grpo::LlamaModel>& policy) {
    policy.model().zero_grad();
    const auto out = policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, 0.9, 0, true);
    (out.logps * weights).sum().backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : policy.model().parameters()) grads.push_back(p.grad().clone());
    return std::make_tuple(out.logps.detach(), out.entropies, grads);
  };
  grpo::Policy<grpo::LlamaModel> full(model);
  const auto [logps32, entropies32, grads32] = logps_and_grads(full);

  auto mixed_model = std::dynamic_pointer_cast<grpo::LlamaModel>(model->clone());
  REQUIRE(mixed_model);
  grpo::Policy<grpo::LlamaModel> mixed(mixed_model);
  mixed.set_mixed_precision(torch::kBFloat16);
  const auto [logps16, entropies16, grads16] = logps_and_grads(mixed);
  // The loss sees float32 log-probs and entropies; bf16 matmuls make them differ from float32 by bf16's rounding.
  CHECK(logps16.scalar_type() == torch::kFloat);
  CHECK(entropies16.scalar_type() == torch::kFloat);
  const double logp_error = (logps16 - logps32).abs().max().item<double>();
  INFO("largest log-prob difference bf16 vs float32: " << logp_error);
  CHECK(logp_error > 0.0);
  CHECK(logp_error < 0.1);
  // Parameters (the master weights) and their gradients stay float32; the scope restored autocast.
  for (std::size_t i = 0; i < grads16.size(); ++i) {
    INFO("parameter " << i);
    CHECK(mixed_model->parameters()[i].scalar_type() == torch::kFloat);
    CHECK(grads16[i].scalar_type() == torch::kFloat);
    const double scale = grads32[i].abs().max().item<double>() + 1e-6;
    CHECK((grads16[i] - grads32[i]).abs().max().item<double>() / scale < 0.1);
  }
  CHECK_FALSE(grpo::detail::autocast_state(c10::DeviceType::CPU).enabled);

  // Gradient checkpointing recomputes under the forward's autocast state: the same gradients as without it.
  auto recomputing = std::dynamic_pointer_cast<grpo::LlamaModel>(model->clone());
  REQUIRE(recomputing);
  recomputing->set_gradient_checkpointing(true);
  grpo::Policy<grpo::LlamaModel> mixed_recomputing(recomputing);
  mixed_recomputing.set_mixed_precision(torch::kBFloat16);
  const auto [logps_r, entropies_r, grads_r] = logps_and_grads(mixed_recomputing);
  CHECK(torch::equal(logps_r, logps16));
  for (std::size_t i = 0; i < grads_r.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(grads_r[i], grads16[i], 1e-5, 1e-7));
  }

  // The reference model scores under the policy's setting.
  const grpo::Reference<grpo::LlamaModel> reference(mixed);
  CHECK(reference.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, 0.9).logps.equal(logps16));
}

TEST_CASE("the chunked LM head under autocast multiplies in bf16 and normalises in float32", "[policy]") {
  torch::manual_seed(9);
  const auto hidden = torch::randn({5, 16}, torch::requires_grad());
  const auto weight = torch::randn({40, 16}, torch::requires_grad());
  const auto targets = torch::tensor({1, 7, 39, 0, 22}, torch::kLong);
  grpo::LmHeadLogps chunked;
  {
    const grpo::detail::AutocastScope autocast(c10::DeviceType::CPU, {true, torch::kBFloat16});
    chunked = grpo::lm_head_logps_with_entropy(hidden, weight, targets, 0.7, /*chunk_rows=*/2, true);
  }
  // The head scales the hidden rows by 1/T before the product (cheaper than scaling the logits).
  const auto scaled = (hidden.detach() / 0.7).to(torch::kBFloat16);
  const auto logits = torch::mm(scaled, weight.detach().to(torch::kBFloat16).t()).to(torch::kFloat);
  const auto expected = torch::log_softmax(logits, -1).gather(1, targets.unsqueeze(1)).squeeze(1);
  CHECK(chunked.logps.scalar_type() == torch::kFloat);
  CHECK(torch::allclose(chunked.logps, expected, 1e-4, 1e-4));
  const auto exact = torch::log_softmax(torch::mm(hidden, weight.t()) / 0.7, -1).gather(1, targets.unsqueeze(1));
  CHECK_FALSE(torch::allclose(chunked.logps, exact.squeeze(1), 1e-6, 1e-6));  // bf16 products, not float32 ones
  chunked.logps.sum().backward();
  CHECK(hidden.grad().scalar_type() == torch::kFloat);
  CHECK(weight.grad().scalar_type() == torch::kFloat);
  CHECK(torch::isfinite(weight.grad()).all().item<bool>());
}
