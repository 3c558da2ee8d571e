// The chunked LM head against log_softmax(hidden @ W^T / T) gathered: values, gradients, the GRPO loss end to end,
// the Llama convenience against Policy::completion_logps, and input validation.
#include "grpo/core/chunked_lm_head.hpp"

#include <torch/types.h>

#include <cstdint>
#include <memory>

#include "grpo/core/loss.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/train/policy.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace lm_head_test {

inline torch::Tensor full_logps(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                                double temperature) {
  const auto logits = torch::matmul(hidden, weight.t()) / temperature;
  return torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
}

// Relative error max|a - b| / max|b|.
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace lm_head_test

using lm_head_test::full_logps;
using lm_head_test::relative_error;

TEST_CASE("chunked LM-head log-probs and gradients equal the full-logits computation for any chunk size", "[lm_head]") {
  const int64_t rows = 3, tokens = 5, width = 16, vocab = 37;
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    const double tolerance = dtype == torch::kFloat32 ? 1e-6 : 1e-12;
    const auto opts = torch::TensorOptions().dtype(dtype);
    const auto hidden = torch::randn({rows, tokens, width}, opts);
    const auto weight = torch::randn({vocab, width}, opts) * 0.5;
    const auto targets = torch::randint(0, vocab, {rows, tokens}, torch::kLong);
    const auto upstream = torch::randn({rows, tokens}, opts);
    for (const double temperature : {1.0, 0.7}) {
      auto h_full = hidden.clone().requires_grad_();
      auto w_full = weight.clone().requires_grad_();
      const auto expected = full_logps(h_full, w_full, targets, temperature);
      (expected * upstream).sum().backward();
      for (const int64_t chunk : {1, 4, 7, 15, 1000, 0}) {
        INFO("dtype " << dtype << " temperature " << temperature << " chunk " << chunk);
        auto h = hidden.clone().requires_grad_();
        auto w = weight.clone().requires_grad_();
        const auto got = grpo::lm_head_logps(h, w, targets, temperature, chunk);
        REQUIRE(got.sizes() == expected.sizes());
        CHECK(got.scalar_type() == dtype);
        CHECK(relative_error(got, expected) < tolerance);
        (got * upstream).sum().backward();
        CHECK(relative_error(h.grad(), h_full.grad()) < tolerance);
        CHECK(relative_error(w.grad(), w_full.grad()) < tolerance);
      }
    }
  }
}

TEST_CASE("chunked LM head accepts [N,H] rows and returns entropies without gradient", "[lm_head]") {
  const auto hidden = torch::randn({11, 8}, torch::kFloat64).requires_grad_();
  const auto weight = torch::randn({23, 8}, torch::kFloat64);
  const auto targets = torch::randint(0, 23, {11}, torch::kLong);
  const auto result = grpo::lm_head_logps_with_entropy(hidden, weight, targets, 1.3, 3);
  REQUIRE(result.entropies.defined());
  CHECK(result.logps.requires_grad());
  CHECK_FALSE(result.entropies.requires_grad());
  const auto logp = torch::log_softmax(torch::matmul(hidden, weight.t()) / 1.3, -1);
  CHECK(relative_error(result.entropies, -(logp.exp() * logp).sum(-1)) < 1e-12);
  CHECK(relative_error(result.logps, logp.gather(1, targets.unsqueeze(1)).squeeze(1)) < 1e-12);
  // Only hidden requires grad: the weight gets none and hidden's gradient still matches.
  result.logps.sum().backward();
  CHECK_FALSE(weight.grad().defined());
  auto h = hidden.detach().clone().requires_grad_();
  full_logps(h, weight, targets, 1.3).sum().backward();
  CHECK(relative_error(hidden.grad(), h.grad()) < 1e-12);
  CHECK_FALSE(grpo::lm_head_logps_with_entropy(hidden, weight, targets, 1.0, 0, false).entropies.defined());

  // No positions at all: empty log-probs and zero gradients.
  auto empty_hidden = torch::randn({2, 0, 8}, torch::kFloat64).requires_grad_();
  auto w = weight.clone().requires_grad_();
  const auto empty = grpo::lm_head_logps(empty_hidden, w, torch::zeros({2, 0}, torch::kLong));
  CHECK(empty.sizes() == torch::IntArrayRef({2, 0}));
  empty.sum().backward();
  REQUIRE(w.grad().defined());
  CHECK(w.grad().abs().sum().item<double>() == 0.0);
}

TEST_CASE("the GRPO loss through the chunked head has the gradients of the full-logits path", "[lm_head]") {
  const int64_t rows = 4, tokens = 6, width = 12, vocab = 29;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto hidden = torch::randn({rows, tokens, width}, opts);
  const auto weight = torch::randn({vocab, width}, opts) * 0.3;
  const auto targets = torch::randint(0, vocab, {rows, tokens}, torch::kLong);
  const double temperature = 0.9;
  grpo::LossBatch batch;
  {
    torch::NoGradGuard no_grad;
    const auto logps = full_logps(hidden, weight, targets, temperature);
    batch.old_logps = logps + (torch::rand({rows, tokens}, opts) - 0.5) * 0.6;
    batch.ref_logps = logps + (torch::rand({rows, tokens}, opts) - 0.5) * 0.6;
  }
  batch.advantages = torch::randn({rows}, opts);
  auto mask = torch::ones({rows, tokens}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(3, torch::indexing::None)}, 0);
  mask.index_put_({3, torch::indexing::Slice(1, torch::indexing::None)}, 0);
  batch.mask = mask;
  batch.num_items_in_batch = mask.sum().item<double>();
  for (const auto loss_type : {grpo::LossType::dapo, grpo::LossType::grpo}) {
    for (const auto level : {grpo::ImportanceSampling::token, grpo::ImportanceSampling::sequence}) {
      grpo::LossOptions options;
      options.loss_type = loss_type;
      options.importance_sampling_level = level;
      options.beta = 0.04;
      INFO("loss " << grpo::to_string(loss_type) << " sequence level "
                   << (level == grpo::ImportanceSampling::sequence));
      auto h_full = hidden.clone().requires_grad_();
      auto w_full = weight.clone().requires_grad_();
      auto full_batch = batch;
      full_batch.logps = full_logps(h_full, w_full, targets, temperature);
      const auto full = grpo::policy_loss(full_batch, options);
      full.loss.backward();
      auto h = hidden.clone().requires_grad_();
      auto w = weight.clone().requires_grad_();
      auto chunked_batch = batch;
      chunked_batch.logps = grpo::lm_head_logps(h, w, targets, temperature, 5);
      const auto chunked = grpo::policy_loss(chunked_batch, options);
      chunked.loss.backward();
      CHECK(chunked.loss.item<double>() == Approx(full.loss.item<double>()).epsilon(1e-12));
      CHECK(relative_error(h.grad(), h_full.grad()) < 1e-11);
      CHECK(relative_error(w.grad(), w_full.grad()) < 1e-11);
      CHECK(chunked.metrics.at("kl") == Approx(full.metrics.at("kl")).epsilon(1e-12));
    }
  }
}

TEST_CASE("bfloat16 inputs compute in float32 and stay close to the float32 result", "[lm_head]") {
  const auto hidden = torch::randn({2, 3, 16});
  const auto weight = torch::randn({40, 16}) * 0.2;
  const auto targets = torch::randint(0, 40, {2, 3}, torch::kLong);
  const auto h = hidden.to(torch::kBFloat16).requires_grad_();
  const auto w = weight.to(torch::kBFloat16).requires_grad_();
  const auto got = grpo::lm_head_logps(h, w, targets, 1.0, 4);
  CHECK(got.scalar_type() == torch::kBFloat16);
  CHECK(torch::allclose(got.to(torch::kFloat32), full_logps(hidden, weight, targets, 1.0), 0.05, 0.05));
  got.sum().backward();
  CHECK(h.grad().scalar_type() == torch::kBFloat16);
  CHECK(w.grad().scalar_type() == torch::kBFloat16);
}

TEST_CASE("the chunked Llama completion log-probs equal Policy::completion_logps", "[lm_head]") {
  for (const bool tied : {true, false}) {
    INFO("tied embeddings " << tied);
    torch::manual_seed(3);
    auto config = grpo::LlamaConfig::tiny(37);
    config.tie_word_embeddings = tied;
    auto model = std::make_shared<grpo::LlamaModel>(config);
    const grpo::Policy<grpo::LlamaModel> policy(model);
    const auto prompt_ids = torch::randint(1, 37, {3, 4}, torch::kLong);
    auto prompt_mask = torch::ones({3, 4}, torch::kLong);
    prompt_mask.index_put_({1, torch::indexing::Slice(0, 2)}, 0);  // left padding
    const auto completion_ids = torch::randint(1, 37, {3, 5}, torch::kLong);
    auto completion_mask = torch::ones({3, 5}, torch::kLong);
    completion_mask.index_put_({2, torch::indexing::Slice(3, torch::indexing::None)}, 0);
    const double temperature = 0.8;

    const auto expected =
        policy.completion_logps(prompt_ids, prompt_mask, completion_ids, completion_mask, temperature, 0, true);
    expected.logps.sum().backward();
    std::vector<torch::Tensor> expected_grads;
    for (const auto& p : model->parameters()) expected_grads.push_back(p.grad().clone());
    model->zero_grad();

    const auto got = grpo::llama_completion_logps_chunked(*model, prompt_ids, prompt_mask, completion_ids,
                                                          completion_mask, temperature, 4, true);
    REQUIRE(got.logps.sizes() == expected.logps.sizes());
    CHECK(torch::allclose(got.logps, expected.logps, 1e-5, 1e-6));
    CHECK(torch::allclose(got.entropies, expected.entropies, 1e-5, 1e-6));
    got.logps.sum().backward();
    const auto params = model->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      INFO("parameter " << i);
      CHECK(torch::allclose(params[i].grad(), expected_grads[i], 1e-4, 1e-6));
    }
    CHECK_THROWS_WITH(grpo::llama_completion_logps_chunked(*model, prompt_ids, prompt_mask,
                                                           completion_ids.slice(0, 0, 2), completion_mask),
                      Contains("completion_ids has shape [2, 5]") && Contains("prompt_ids has shape [3, 4]"));
  }
}

TEST_CASE("chunked LM head rejects bad shapes naming the tensor and both shapes", "[lm_head]") {
  const auto hidden = torch::randn({2, 3, 8});
  const auto weight = torch::randn({10, 8});
  const auto targets = torch::randint(0, 10, {2, 3}, torch::kLong);
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, torch::randn({10, 6}), targets),
                    Contains("weight has shape [10, 6]") && Contains("hidden has shape [2, 3, 8]"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, weight, torch::zeros({3, 2}, torch::kLong)),
                    Contains("targets has shape [3, 2]") && Contains("hidden has shape [2, 3, 8]"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(torch::randn({8}), weight, targets), Contains("hidden must be"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, weight, targets.to(torch::kFloat32)), Contains("integer"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, weight, targets + 10), Contains("outside the vocabulary [0, 10)"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, weight.to(torch::kFloat64), targets), Contains("weight is Double"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, weight, targets, 0.0), Contains("temperature"));
  CHECK_THROWS_WITH(grpo::lm_head_logps(hidden, weight, targets, 1.0, -1), Contains("chunk_rows"));
}
