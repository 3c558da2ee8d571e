// JSON round trips and strictness of the kernel's option structs.
#include "support/catch.hpp"

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

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
                    Contains("LossOptions: field \"beta\" must be a number, got \"high\""));
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

namespace grpo_options_json_test {
template <class T>
std::string json_error(const std::string& text) {
  try {
    (void)nlohmann::json::parse(text).get<T>();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

template <class T>
std::set<std::string> json_keys(const T& value) {
  std::set<std::string> keys;
  const nlohmann::json j = value;
  for (const auto& item : j.items()) keys.insert(item.key());
  return keys;
}

// A struct whose field list names one key twice: a programming error that to_json reports.
struct TwiceNamed {
  int first = 0;
  int second = 0;
  template <class Self, class Visit>
  static void visit_fields(Self& self, Visit&& visit) {
    visit("first", self.first);
    visit("first", self.second);
  }
};
}  // namespace grpo_options_json_test

TEST_CASE("kernel option JSON holds exactly TRL's option names", "[options]") {
  using grpo_options_json_test::json_keys;
  CHECK(json_keys(grpo::LossOptions{}) == std::set<std::string>{"loss_type", "epsilon", "epsilon_high", "delta", "beta",
                                                                "importance_sampling_level", "max_completion_length",
                                                                "sapo_temperature_pos", "sapo_temperature_neg",
                                                                "use_bias_correction_kl"});
  CHECK(json_keys(grpo::AdvantageOptions{}) ==
        std::set<std::string>{"num_generations", "scale_rewards", "multi_objective_aggregation", "reward_weights"});
  const nlohmann::json defaults = grpo::LossOptions{};
  CHECK(defaults.at("epsilon_high").is_null());  // unset optionals are written as null
  CHECK(defaults.at("delta").is_null());
  nlohmann::json twice;
  CHECK_THROWS_AS(grpo::detail::write_fields(twice, grpo_options_json_test::TwiceNamed{}, "TwiceNamed"),
                  std::logic_error);
}

TEST_CASE("kernel option JSON rejects fractional, boolean, negative and string values naming the field", "[options]") {
  using grpo_options_json_test::json_error;
  CHECK(json_error<grpo::LossOptions>(R"({"max_completion_length": 0.5})") ==
        "grpo::LossOptions: field \"max_completion_length\" must be an integer, got 0.5");
  CHECK(json_error<grpo::LossOptions>(R"({"max_completion_length": false})") ==
        "grpo::LossOptions: field \"max_completion_length\" must be an integer, got false");
  CHECK(json_error<grpo::LossOptions>(R"({"use_bias_correction_kl": 1})") ==
        "grpo::LossOptions: field \"use_bias_correction_kl\" must be true or false, got 1");
  CHECK(json_error<grpo::LossOptions>(R"({"epsilon": true})") ==
        "grpo::LossOptions: field \"epsilon\" must be a number, got true");
  CHECK(json_error<grpo::LossOptions>(R"({"epsilon_high": "0.28"})") ==
        "grpo::LossOptions: field \"epsilon_high\" must be a number, got \"0.28\"");
  CHECK(json_error<grpo::LossOptions>(R"({"importance_sampling_level": 1})") ==
        "grpo::LossOptions: field \"importance_sampling_level\" must be a string, got 1");
  CHECK(json_error<grpo::AdvantageOptions>(R"({"num_generations": 2.5})") ==
        "grpo::AdvantageOptions: field \"num_generations\" must be an integer, got 2.5");
  CHECK(json_error<grpo::AdvantageOptions>(R"({"num_generations": true})") ==
        "grpo::AdvantageOptions: field \"num_generations\" must be an integer, got true");
  CHECK(json_error<grpo::AdvantageOptions>(R"({"num_generations": -3000000000})") ==
        "grpo::AdvantageOptions: field \"num_generations\" must be an integer in [-2147483648, 2147483647], got "
        "-3000000000");
  CHECK(json_error<grpo::AdvantageOptions>(R"({"reward_weights": [0.5, true]})") ==
        "grpo::AdvantageOptions: field \"reward_weights[1]\" must be a number, got true");
  CHECK(json_error<grpo::AdvantageOptions>(R"({"multi_objective_aggregation": 0})") ==
        "grpo::AdvantageOptions: field \"multi_objective_aggregation\" must be a string, got 0");
  CHECK(json_error<grpo::AdvantageOptions>(R"([1, 2])") == "grpo::AdvantageOptions: expected a JSON object, got array");

  // An exactly integral number is an integer; an integer is a number.
  const auto o =
      nlohmann::json::parse(R"({"max_completion_length": 256.0, "epsilon": 0, "delta": 2})").get<grpo::LossOptions>();
  CHECK(o.max_completion_length == 256);
  CHECK(o.epsilon == 0.0);
  CHECK(o.delta == 2.0);
}
