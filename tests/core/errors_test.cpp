// Every exception grpo-cpp throws is a grpo::Error and still its standard exception; messages start with "grpo::".
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "support/catch.hpp"

#include "core/rewards_support.hpp"
#include "grpo/core/advantages.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/error.hpp"
#include "grpo/rewards/columns.hpp"
#include "grpo/rewards/scoring.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/train/config.hpp"
#include "support/error_checks.hpp"
#include "support/scoped_temp_dir.hpp"

using Catch::Matchers::StartsWith;
using grpo_test::Contains;

// One std::exception base each (no ambiguity), the standard type each always was, and the common mixin.
static_assert(std::is_abstract_v<grpo::Error> && !std::is_base_of_v<std::exception, grpo::Error>,
              "grpo::Error is a mixin, not a second std::exception");
static_assert(std::is_convertible_v<const grpo::InvalidArgument*, const std::exception*> &&
                  std::is_convertible_v<const grpo::RuntimeError*, const std::exception*> &&
                  std::is_convertible_v<const grpo::OutOfRange*, const std::exception*> &&
                  std::is_convertible_v<const grpo::LogicError*, const std::exception*> &&
                  std::is_convertible_v<const grpo::RewardError*, const std::exception*> &&
                  std::is_convertible_v<const grpo::MissingColumn*, const std::exception*>,
              "each grpo exception converts to std::exception unambiguously");
static_assert(std::is_base_of_v<std::invalid_argument, grpo::InvalidArgument> &&
                  std::is_base_of_v<std::runtime_error, grpo::RuntimeError> &&
                  std::is_base_of_v<std::out_of_range, grpo::OutOfRange> &&
                  std::is_base_of_v<std::logic_error, grpo::LogicError> &&
                  std::is_base_of_v<grpo::RuntimeError, grpo::RewardError> &&
                  std::is_base_of_v<grpo::OutOfRange, grpo::MissingColumn>,
              "each grpo exception is still the standard exception it was");
static_assert(std::is_convertible_v<const grpo::RewardError*, const grpo::Error*> &&
                  std::is_convertible_v<const grpo::MissingColumn*, const grpo::Error*>,
              "the library's own exception classes are grpo::Errors");

namespace grpo_errors_test {
// The four ways to catch it all work, and the message starts with `prefix` (which starts with "grpo::").
void check_caught(const grpo_test::CaughtError& e, const std::string& prefix) {
  INFO(e.message);
  CHECK(e.as_grpo_error);
  CHECK(e.error_is_std_type);
  CHECK(e.as_std_type);
  CHECK(e.as_std_exception);
  CHECK_THAT(e.message, StartsWith("grpo::"));
  CHECK_THAT(e.message, StartsWith(prefix));
}

// A struct whose field list names a key twice: to_json reports the bug as a grpo::LogicError.
struct TwiceNamed {
  int value = 0;
  template <class Self, class Visit>
  static void visit_fields(Self& self, Visit&& visit) {
    visit("value", self.value);
    visit("value", self.value);
  }
};
}  // namespace grpo_errors_test

TEST_CASE("grpo::Error catches what the library throws; the standard types and std::exception still do", "[errors]") {
  using grpo_errors_test::check_caught;
  using grpo_test::catch_error;
  grpo_test::ScopedTempDir dir;

  // Configuration: validate(), the JSON mapping, the file.
  grpo::GRPOConfig config;
  config.num_generations = 1;
  auto e = catch_error<std::invalid_argument>([&] { config.validate(); });
  check_caught(e, "grpo::GRPOConfig: num_generations must be >= 2");
  e = catch_error<std::invalid_argument>(
      [] { (void)nlohmann::json::parse(R"({"num_generation": 4})").get<grpo::GRPOConfig>(); });
  check_caught(e, "grpo::GRPOConfig: unknown field \"num_generation\"");
  e = catch_error<std::invalid_argument>([] { (void)nlohmann::json("ppo").get<grpo::LossType>(); });
  check_caught(e, "grpo::LossType: unknown loss_type \"ppo\"");
  e = catch_error<std::runtime_error>([&] { (void)grpo::load_config(dir.file("missing.json")); });
  check_caught(e, "grpo::load_config: cannot open");
  CHECK_THAT(e.message, Contains("missing.json"));
  const std::string bad_config = dir.write("bad.json", R"({"learning_rate": "fast"})");
  e = catch_error<std::invalid_argument>([&] { (void)grpo::load_config(bad_config); });
  check_caught(e, "grpo::load_config: '" + bad_config + "': grpo::GRPOConfig: field \"learning_rate\"");
  e = catch_error<std::runtime_error>([&] { grpo::save_config(grpo::GRPOConfig{}, dir.file("no/dir/c.json")); });
  check_caught(e, "grpo::save_config: cannot create temporary file for");
  e = catch_error<std::logic_error>([] {
    nlohmann::json j;
    grpo::detail::write_fields(j, grpo_errors_test::TwiceNamed{}, "grpo::TwiceNamed");
  });
  check_caught(e, "grpo::TwiceNamed: visit_fields names \"value\" twice");

  // Dataset files: the file, the line, the index.
  const std::string malformed = dir.write("bad.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\",}\n");
  e = catch_error<std::invalid_argument>([&] { (void)grpo::load_dataset(malformed); });
  check_caught(e, "grpo::load_jsonl: " + malformed + ":2: invalid JSON");
  const std::string not_array = dir.write("object.json", "{\"prompt\": \"a\"}");
  e = catch_error<std::invalid_argument>([&] { (void)grpo::load_dataset(not_array); });
  check_caught(e, "grpo::load_json_array: " + not_array + ": expected a JSON array");
  e = catch_error<std::runtime_error>([&] { (void)grpo::load_dataset(dir.file("missing.jsonl")); });
  check_caught(e, "grpo::load_jsonl: cannot open");
  const grpo::Dataset data = grpo::Dataset::from_rows({nlohmann::json{{"prompt", "x"}}});
  e = catch_error<std::out_of_range>([&] { (void)data.row(3); });
  check_caught(e, "grpo::Dataset::row: index 3");

  // Rewards: a failing reward function, a missing column, a bad scorer, the advantages.
  grpo::RewardScorer throwing({grpo::RewardFunction(
      "parser", [](std::string_view, const grpo::Row&) -> double { throw std::runtime_error("cannot parse"); })});
  e = catch_error<std::runtime_error>([&] { (void)throwing.score(grpo_test::arithmetic_inputs()); });
  check_caught(e, "grpo::RewardScorer::score: reward function \"parser\" failed at sample 0");
  CHECK_THROWS_AS(throwing.score(grpo_test::arithmetic_inputs()), grpo::RewardError);
  e = catch_error<std::out_of_range>([] { (void)grpo_test::arithmetic_inputs().columns.at("solution"); });
  check_caught(e, "grpo::Columns: column \"solution\" is not in the dataset");
  CHECK_THROWS_AS(grpo_test::arithmetic_inputs().columns.at("solution"), grpo::MissingColumn);
  e = catch_error<std::invalid_argument>([] { grpo::RewardScorer none{std::vector<grpo::RewardFunction>{}}; });
  check_caught(e, "grpo::RewardScorer: at least one reward function is required");
  e = catch_error<std::invalid_argument>([] {
    grpo::AdvantageOptions options;
    options.num_generations = 2;
    (void)grpo::compute_advantages(Eigen::MatrixXd::Zero(3, 1), options);
  });
  check_caught(e, "grpo::compute_advantages: rewards_per_func has N = 3 rows");

  // Tokenizers.
  e = catch_error<std::out_of_range>([] { (void)grpo::CharTokenizer("ab").decode({99}); });
  check_caught(e, "grpo::CharTokenizer::decode: id 99");
}
