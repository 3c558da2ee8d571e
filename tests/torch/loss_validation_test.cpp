// policy_loss rejects bad input with messages that name the tensor, its shape and the position.
#include <limits>

#include "support/loss_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

TEST_CASE("shape mismatches name the tensor and both shapes", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.mask = torch::ones({2, 4});
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("mask has shape [2, 4]") && Contains("[B,T] like logps = [2, 3]"));
  batch = grpo_test::small_batch(torch::kFloat64);
  batch.advantages = torch::ones({3});
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("advantages has shape [3]") && Contains("[B] = [2]"));
  batch = grpo_test::small_batch(torch::kFloat64);
  batch.old_logps = torch::zeros({2, 2});
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}), Contains("old_logps has shape [2, 2]"));
  batch = grpo_test::small_batch(torch::kFloat64);
  batch.logps = torch::zeros({2, 3, 1});
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("logps must be [B,T], got shape [2, 3, 1]"));
  batch = grpo_test::small_batch(torch::kFloat64);
  batch.ref_logps = torch::zeros({1, 3});
  grpo::LossOptions with_kl;
  with_kl.beta = 0.1;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, with_kl), Contains("ref_logps has shape [1, 3]"));
}

TEST_CASE("beta != 0 without reference log-probs is an error", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.ref_logps = torch::Tensor();
  grpo::LossOptions options;
  options.beta = 0.04;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, options), Contains("beta = 0.04") && Contains("needs ref_logps"));
  options.beta = 0.0;
  CHECK_NOTHROW(grpo::policy_loss(batch, options));
}

TEST_CASE("non-finite log-probs on active tokens are reported with their position", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  auto logps = batch.logps.detach().clone();
  logps[1][1] = std::numeric_limits<double>::quiet_NaN();
  batch.logps = logps.requires_grad_();
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("logps is not finite on an active token (nan) at [1, 1]"));
  batch = grpo_test::small_batch(torch::kFloat64);
  auto old = batch.old_logps.clone();
  old[0][2] = -std::numeric_limits<double>::infinity();
  batch.old_logps = old;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("old_logps is not finite on an active token (-inf) at [0, 2]"));
}

TEST_CASE("bad options are rejected before any work", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  grpo::LossOptions options;
  options.epsilon_high = -0.5;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, options), Contains("epsilon_high must be finite and >= 0"));
  options.epsilon_high = 0.28;
  options.delta = 1.1;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, options), Contains("delta must be > 1 + epsilon_high"));
}

TEST_CASE("a dapo token count smaller than the micro-batch's own is an error", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.num_items_in_batch = 0;  // forgotten: the default
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("num_items_in_batch = 0") && Contains("has 5 active tokens"));
  grpo::LossOptions bnpo;
  bnpo.loss_type = grpo::LossType::bnpo;  // does not use it
  CHECK_NOTHROW(grpo::policy_loss(batch, bnpo));
}

TEST_CASE("mask values other than 0 and 1, and bad batch counts, are errors", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.mask = torch::tensor({{1.0, 0.5, 1.0}, {1.0, 1.0, 0.0}});
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    Contains("mask has a value other than 0 or 1 (0.5) at [0, 1]"));
  batch = grpo_test::small_batch(torch::kFloat64);
  batch.grad_accum_steps = 0;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}), Contains("grad_accum_steps must be >= 1"));
  batch.grad_accum_steps = 1;
  batch.num_processes = 0;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}), Contains("num_processes must be >= 1"));
}
