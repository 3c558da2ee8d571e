// JSON round trips and strictness of the kernel's option structs.
#include "support/catch.hpp"

#include "grpo/core/advantages.hpp"
#include "grpo/core/loss_options.hpp"

using grpo_test::Contains;

TEST_CASE("LossOptions round-trips through JSON with TRL's option names", "[options]") {
  grpo::LossOptions o;
  o.loss_type = grpo::LossType::dr_grpo;
  o.epsilon_high = 0.28;
  o.delta = 2.0;
  o.beta = 0.04;
  o.importance_sampling_level = grpo::ImportanceSampling::sequence;
  o.use_bias_correction_kl = true;
  const nlohmann::json j = o;
  CHECK(j.at("loss_type") == "dr_grpo");
  CHECK(j.at("importance_sampling_level") == "sequence");
  const auto back = j.get<grpo::LossOptions>();
  CHECK(back.loss_type == grpo::LossType::dr_grpo);
  CHECK(back.epsilon_high == 0.28);
  CHECK(back.delta == 2.0);
  CHECK(back.beta == 0.04);
  CHECK(back.use_bias_correction_kl);
  CHECK(nlohmann::json(back) == j);

  const auto defaults = nlohmann::json::parse(R"({"epsilon_high": null})").get<grpo::LossOptions>();
  CHECK_FALSE(defaults.epsilon_high.has_value());
  CHECK(defaults.loss_type == grpo::LossType::dapo);
}

TEST_CASE("option JSON rejects unknown keys, unknown enum names and wrong types", "[options]") {
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"epsilon_hgih": 0.3})").get<grpo::LossOptions>(),
                    Contains("unknown field \"epsilon_hgih\""));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"loss_type": "ppo"})").get<grpo::LossOptions>(),
                    Contains("unknown loss_type \"ppo\"") && Contains("\"dr_grpo\""));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"beta": "high"})").get<grpo::LossOptions>(),
                    Contains("field \"beta\" has a bad value"));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"scale_rewards": "rank"})").get<grpo::AdvantageOptions>(),
                    Contains("unknown scale_rewards \"rank\""));
}

TEST_CASE("AdvantageOptions round-trips through JSON", "[options]") {
  grpo::AdvantageOptions o;
  o.num_generations = 4;
  o.scale_rewards = grpo::ScaleRewards::batch;
  o.aggregation = grpo::RewardAggregation::normalize_then_sum;
  o.weights = {1.0, 0.5};
  const nlohmann::json j = o;
  CHECK(j.at("multi_objective_aggregation") == "normalize_then_sum");
  const auto back = j.get<grpo::AdvantageOptions>();
  CHECK(back.num_generations == 4);
  CHECK(back.scale_rewards == grpo::ScaleRewards::batch);
  CHECK(back.aggregation == grpo::RewardAggregation::normalize_then_sum);
  CHECK(back.weights == std::vector<double>{1.0, 0.5});
}

TEST_CASE("LossOptions::validate names the bad field", "[options]") {
  grpo::LossOptions o;
  o.epsilon_high = -0.1;
  CHECK_THROWS_WITH(o.validate(), Contains("epsilon_high must be finite and >= 0"));
  o.epsilon_high = 0.28;
  o.delta = 1.2;
  CHECK_THROWS_WITH(o.validate(), Contains("delta must be > 1 + epsilon_high = 1.28") && Contains("got 1.2"));
  o.delta = 1.28;
  CHECK_THROWS_AS(o.validate(), std::invalid_argument);  // equal is not enough
  o.delta = 1.5;
  CHECK_NOTHROW(o.validate());
  o.max_completion_length = 0;
  CHECK_THROWS_WITH(o.validate(), Contains("max_completion_length must be >= 1"));
}
