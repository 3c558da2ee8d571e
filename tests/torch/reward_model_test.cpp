// A small torch module with a scalar head, used as a reward function.
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "grpo/rewards/reward_model.hpp"
#include "grpo/rewards/scoring.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace {

// Embedding + scalar head: one score per position, [B,L,1]. Records whether it ran with gradient tracking.
struct ScalarHeadModel : torch::nn::Module {
  torch::nn::Embedding embed{nullptr};
  torch::nn::Linear head{nullptr};
  bool saw_grad_mode = false;
  int calls = 0;
  ScalarHeadModel() {
    embed = register_module("embed", torch::nn::Embedding(16, 4));
    head = register_module("head", torch::nn::Linear(4, 1));
  }
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask) {
    saw_grad_mode = saw_grad_mode || torch::GradMode::is_enabled();
    ++calls;
    // A causal running mean of embeddings, so that a position's score depends on what came before it.
    const auto e = embed(ids) * mask.unsqueeze(2).to(torch::kFloat);
    const auto counts = mask.cumsum(1).clamp_min(1).unsqueeze(2).to(torch::kFloat);
    return head(e.cumsum(1) / counts);
  }
};

// Characters 'a'.. map to ids 1..; no padding id collides with a real token.
std::vector<int64_t> encode(const std::string& text) {
  std::vector<int64_t> ids;
  for (char c : text) ids.push_back(1 + (c - 'a') % 15);
  return ids;
}

}  // namespace

TEST_CASE("a scalar-head module scores prompt + completion at its last non-pad token, without grad", "[rewards]") {
  auto model = std::make_shared<ScalarHeadModel>();
  grpo::RewardInputs in;
  in.prompts = {"ab", "ab", "cde", "cde"};
  in.completions = {"c", "cccccc", "a", "bb"};
  in.completion_ids = {{1}, {1}, {1}, {1}};
  in.num_generations = 2;

  std::vector<double> expected;
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < 4; ++i) {
      const auto ids = torch::tensor(encode(in.prompts[i] + in.completions[i]), torch::kLong).unsqueeze(0);
      const auto scores = model->forward(ids, torch::ones_like(ids));
      expected.push_back(scores[0][ids.size(1) - 1][0].item<double>());
    }
  }
  model->saw_grad_mode = false;
  for (const int64_t batch_size : {1, 3, 8}) {
    INFO("batch_size " << batch_size);
    grpo::RewardModelOptions options;
    options.encode = encode;
    options.batch_size = batch_size;
    grpo::RewardScorer scorer({grpo::reward_model_function(model, options)});
    model->calls = 0;
    const auto s = scorer.score(in);
    CHECK(model->calls == (4 + batch_size - 1) / batch_size);
    for (Eigen::Index i = 0; i < 4; ++i)
      CHECK(s.rewards_per_func(i, 0) == Approx(expected[static_cast<std::size_t>(i)]).epsilon(1e-6));
    CHECK(s.metrics.count("rewards/reward_model/mean") == 1);
  }
  CHECK_FALSE(model->saw_grad_mode);
  CHECK(expected[0] != Approx(expected[1]));  // different completions, different scores
}

TEST_CASE("the reward-model adapter reports a missing tokenizer and empty encodings", "[rewards]") {
  auto model = std::make_shared<ScalarHeadModel>();
  CHECK_THROWS_WITH(grpo::reward_model_function(model, grpo::RewardModelOptions{}),
                    Contains("options.encode (the tokenizer) is required"));
  grpo::RewardModelOptions options;
  options.encode = [](const std::string&) { return std::vector<int64_t>{}; };
  grpo::RewardScorer scorer({grpo::reward_model_function(model, options)});
  grpo::RewardInputs in;
  in.prompts = {"x"};
  in.completions = {"y"};
  in.completion_ids = {{}};
  CHECK_THROWS_WITH(scorer.score(in), Contains("prompt + completion of sample 0 encodes to no tokens"));
}
