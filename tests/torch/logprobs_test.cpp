// Chunked log-probs, entropies and the completion alignment against plain full-tensor computations.
#include <torch/types.h>

#include "grpo/core/logprobs.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

TEST_CASE("selective_log_softmax equals log_softmax(logits / T) gathered, for any chunk size", "[logprobs]") {
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    const auto logits = torch::randn({3, 5, 11}, torch::TensorOptions().dtype(dtype)) * 4;
    const auto ids = torch::randint(0, 11, {3, 5}, torch::kLong);
    for (const double temperature : {1.0, 0.7}) {
      const auto expected = torch::log_softmax(logits / temperature, -1).gather(2, ids.unsqueeze(2)).squeeze(2);
      for (const int64_t chunk : {1, 4, 15, 1000}) {
        INFO("dtype " << dtype << " temperature " << temperature << " chunk " << chunk);
        const auto got = grpo::selective_log_softmax(logits, ids, temperature, chunk);
        CHECK(got.sizes() == expected.sizes());
        CHECK(got.scalar_type() == dtype);
        CHECK(torch::allclose(got, expected, 1e-5, 1e-6));
      }
    }
  }
}

TEST_CASE("selective_log_softmax has the gradient of the full computation", "[logprobs]") {
  const auto base = torch::randn({2, 4, 7}, torch::kFloat64);
  const auto ids = torch::randint(0, 7, {2, 4}, torch::kLong);
  const auto weights = torch::randn({2, 4}, torch::kFloat64);
  auto a = base.clone().requires_grad_();
  (grpo::selective_log_softmax(a, ids, 0.9, 3) * weights).sum().backward();
  auto b = base.clone().requires_grad_();
  (torch::log_softmax(b / 0.9, -1).gather(2, ids.unsqueeze(2)).squeeze(2) * weights).sum().backward();
  CHECK(torch::allclose(a.grad(), b.grad(), 1e-12, 1e-14));
}

TEST_CASE("half-precision logits use the log_softmax path and stay close to float32", "[logprobs]") {
  const auto logits = torch::randn({2, 3, 9});
  const auto ids = torch::randint(0, 9, {2, 3}, torch::kLong);
  const auto reference = grpo::selective_log_softmax(logits, ids);
  const auto bf16 = grpo::selective_log_softmax(logits.to(torch::kBFloat16), ids);
  CHECK(bf16.scalar_type() == torch::kBFloat16);
  CHECK(torch::allclose(bf16.to(torch::kFloat32), reference, 0.05, 0.05));
}

TEST_CASE("entropy_from_logits equals -sum p log p of the tempered distribution", "[logprobs]") {
  const auto logits = torch::randn({2, 6, 13}, torch::kFloat64) * 3;
  const auto logp = torch::log_softmax(logits / 1.3, -1);
  const auto expected = -(logp.exp() * logp).sum(-1);
  CHECK(torch::allclose(grpo::entropy_from_logits(logits, 1.3, 5), expected, 1e-12, 1e-12));
  // A uniform distribution over V tokens has entropy log V.
  CHECK(grpo::entropy_from_logits(torch::zeros({1, 1, 8}))[0][0].item<double>() == Approx(std::log(8.0)));
}

TEST_CASE("completion log-probs align position p - 1 + t of the logits with completion token t", "[logprobs]") {
  // Prompt of 4 tokens, completion of 3: logits over 7 positions.
  const int64_t prompt = 4, completion = 3, vocab = 10;
  const auto logits = torch::randn({2, prompt + completion, vocab}, torch::kFloat64);
  const auto ids = torch::randint(0, vocab, {2, completion}, torch::kLong);
  const auto got = grpo::completion_logps(logits, ids, 1.0);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < completion; ++t) {
      // Brute force: the logits at position prompt - 1 + t predict completion token t.
      const auto row = torch::log_softmax(logits[b][prompt - 1 + t], -1);
      CHECK(got[b][t].item<double>() == Approx(row[ids[b][t].item<int64_t>()].item<double>()).epsilon(1e-12));
    }
  }
  const auto aligned = grpo::completion_logits(logits, completion);
  CHECK(aligned.size(0) == 2);
  CHECK(aligned.size(1) == completion);
  CHECK(torch::equal(aligned, logits.slice(1, prompt - 1, prompt - 1 + completion)));
}

TEST_CASE("log-prob helpers reject bad shapes, ids and temperatures", "[logprobs]") {
  const auto logits = torch::randn({2, 3, 5});
  CHECK_THROWS_WITH(grpo::selective_log_softmax(logits, torch::zeros({2, 4}, torch::kLong)),
                    Contains("index has shape [2, 4]") && Contains("[B,T] like logits = [2, 3]"));
  auto ids = torch::zeros({2, 3}, torch::kLong);
  ids[1][2] = 5;
  CHECK_THROWS_WITH(grpo::selective_log_softmax(logits, ids),
                    Contains("index is outside the vocabulary [0, 5) (5) at [1, 2]"));
  CHECK_THROWS_WITH(grpo::selective_log_softmax(logits, torch::zeros({2, 3}, torch::kLong), 0.0),
                    Contains("temperature must be > 0"));
  CHECK_THROWS_WITH(grpo::selective_log_softmax(torch::randn({2, 3}), torch::zeros({2, 3}, torch::kLong)),
                    Contains("logits must be [B,T,V], got shape [2, 3]"));
  CHECK_THROWS_WITH(grpo::completion_logits(logits, 3),
                    Contains("a completion of 3 tokens needs at least 4 positions"));
}
