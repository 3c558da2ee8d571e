// Reward functions: accepted callable shapes, the columns (kwargs) interface, validation and scoring.
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <regex>
#include <thread>
#include <unordered_map>

#include "support/catch.hpp"

#include "core/rewards_support.hpp"
#include "grpo/core/advantages.hpp"
#include "grpo/rewards/scoring.hpp"

using grpo_test::Contains;

namespace {

// A stateful functor: a compiled regex and a lookup table, scoring one completion at a time.
struct KeywordReward {
  std::regex word{"[0-9]+"};
  std::unordered_map<std::string, double> bonus{{"5", 1.0}, {"40", 2.0}};
  std::optional<double> operator()(std::string_view completion, const grpo::Row& row) const {
    std::match_results<std::string_view::const_iterator> m;
    if (!std::regex_search(completion.begin(), completion.end(), m, word)) return std::nullopt;
    const auto it = bonus.find(m.str());
    return it == bonus.end() ? 0.0 : it->second * row.get<int>("difficulty");
  }
};

// A move-only batch functor.
struct MoveOnlyLength {
  std::unique_ptr<double> scale = std::make_unique<double>(0.5);
  std::vector<float> operator()(const grpo::RewardInputs& in) const {
    std::vector<float> out;
    for (const auto& ids : in.completion_ids) out.push_back(static_cast<float>(ids.size() * *scale));
    return out;
  }
};

double at(const grpo::RewardScores& s, Eigen::Index i, Eigen::Index k) { return s.rewards_per_func(i, k); }

}  // namespace

TEST_CASE("every accepted callable shape is scored into its own column", "[rewards]") {
  const auto in = grpo_test::arithmetic_inputs();
  std::vector<grpo::RewardFunction> functions;
  functions.emplace_back("batch_optional", [](const grpo::RewardInputs& inputs) {
    std::vector<std::optional<double>> out(inputs.size());
    out[1] = 1.5;  // the others are none
    return out;
  });
  functions.emplace_back("batch_double",
                         [](const grpo::RewardInputs& inputs) { return std::vector<double>(inputs.size(), 2.0); });
  functions.emplace_back("batch_float_move_only", MoveOnlyLength{});
  functions.emplace_back("single_optional", KeywordReward{}, std::vector<std::string>{"difficulty"});
  functions.emplace_back("single_number", [](std::string_view completion, const grpo::Row& row) {
    return static_cast<int>(completion.size() + row.index());
  });
  grpo::RewardScorer scorer(std::move(functions), grpo_test::scoring(2));
  const auto s = scorer.score(in);
  REQUIRE(s.rewards_per_func.rows() == 4);
  REQUIRE(s.rewards_per_func.cols() == 5);
  CHECK(std::isnan(at(s, 0, 0)));
  CHECK(at(s, 1, 0) == 1.5);
  CHECK(at(s, 3, 1) == 2.0);
  CHECK(at(s, 2, 2) == 2.0);  // 4 ids * 0.5
  CHECK(at(s, 0, 3) == 1.0);  // "5", difficulty 1
  CHECK(at(s, 2, 3) == 4.0);  // "40", difficulty 2
  CHECK(at(s, 1, 3) == 0.0);  // "6" is not in the table
  CHECK(at(s, 3, 4) == Approx(10 + 3));
  STATIC_REQUIRE(grpo::is_reward_callable_v<KeywordReward>);
  STATIC_REQUIRE(grpo::is_reward_callable_v<MoveOnlyLength>);
  STATIC_REQUIRE_FALSE(grpo::is_reward_callable_v<int (*)(int)>);
  STATIC_REQUIRE_FALSE(grpo::is_reward_callable_v<std::string (*)(const grpo::RewardInputs&)>);
}

TEST_CASE("columns give typed access to the dataset's values for each completion", "[rewards]") {
  const auto in = grpo_test::arithmetic_inputs();
  CHECK(in.columns.names() == std::vector<std::string>{"answer", "difficulty"});
  CHECK_FALSE(in.columns.contains("prompt"));
  CHECK(in.columns.get<std::string>("answer", 1) == "5");
  CHECK(in.columns.get<int>("answer", 2) == 40);
  CHECK(in.columns.get<double>("difficulty", 3) == 2.0);
  CHECK_THROWS_WITH(in.columns.get<int>("answer", 0), Contains("column \"answer\" at index 0 holds \"5\""));
  const grpo::Row row(in, 3);
  CHECK(row.index_in_group() == 1);
  CHECK(row.prompt() == "What is 10*4?");
  CHECK(row.completion_ids().size() == 1);
  CHECK(row["answer"] == 40);
}

TEST_CASE("a missing column names the reward function, the column and the available columns", "[rewards]") {
  grpo::RewardScorer scorer({grpo::RewardFunction("needs_solution", [](std::string_view, const grpo::Row& row) {
    return row.get<double>("solution");
  })});
  CHECK_THROWS_WITH(scorer.score(grpo_test::arithmetic_inputs()),
                    Contains("reward function \"needs_solution\" failed at sample 0") &&
                        Contains("column \"solution\" is not in the dataset") &&
                        Contains("available columns: answer, difficulty"));
}

TEST_CASE("required columns are checked against the dataset before training", "[rewards]") {
  grpo::RewardScorer scorer({grpo::RewardFunction(
                                 "acc", [](std::string_view, const grpo::Row&) { return 1.0; }, {"solution", "answer"}),
                             grpo::RewardFunction(
                                 "judge", [](std::string_view, const grpo::Row&) { return 1.0; }, {"rubric"})});
  CHECK_THROWS_WITH(scorer.check_columns({"answer", "difficulty"}),
                    Contains("reward function \"acc\" needs \"solution\"") &&
                        Contains("reward function \"judge\" needs \"rubric\"") &&
                        Contains("dataset columns: answer, difficulty"));
  CHECK_NOTHROW(scorer.check_columns({"answer", "solution", "rubric"}));
}

TEST_CASE("a wrong number of returned values is an error naming the function and both counts", "[rewards]") {
  grpo::RewardScorer scorer({grpo::RewardFunction("short", [](const grpo::RewardInputs&) {
    return std::vector<double>{1.0};  // TRL once broadcast this silently
  })});
  CHECK_THROWS_WITH(scorer.score(grpo_test::arithmetic_inputs()),
                    Contains("reward function \"short\" failed on the batch of 4 completions") &&
                        Contains("returned 1 values for 4 completions"));
}

TEST_CASE("NaN means none, an infinite reward is an error, and exceptions carry sample and prompt", "[rewards]") {
  grpo::RewardScorer nan_scorer({grpo::RewardFunction("nan", [](std::string_view, const grpo::Row& row) {
    return row.index() == 2 ? std::nan("") : 1.0;
  })});
  const auto s = nan_scorer.score(grpo_test::arithmetic_inputs());
  CHECK(std::isnan(at(s, 2, 0)));
  CHECK(at(s, 1, 0) == 1.0);

  grpo::RewardScorer inf_scorer({grpo::RewardFunction("inf", [](std::string_view, const grpo::Row& row) {
    return row.index() == 3 ? -INFINITY : 0.0;
  })});
  CHECK_THROWS_WITH(inf_scorer.score(grpo_test::arithmetic_inputs()),
                    Contains("reward function \"inf\" failed at sample 3") && Contains("infinite reward"));

  grpo::RewardScorer throwing({grpo::RewardFunction("parser", [](std::string_view, const grpo::Row& row) -> double {
    if (row.index() == 2) throw std::runtime_error("cannot parse the expression");
    return 0.0;
  })});
  CHECK_THROWS_AS(throwing.score(grpo_test::arithmetic_inputs()), grpo::RewardError);
  CHECK_THROWS_WITH(throwing.score(grpo_test::arithmetic_inputs()),
                    Contains("reward function \"parser\" failed at sample 2 (prompt \"What is 10*4?\")") &&
                        Contains("cannot parse the expression"));
}

TEST_CASE("none rewards flow into compute_advantages: unscorable rows get advantage 0", "[rewards]") {
  grpo::RewardScorer scorer(
      {grpo::RewardFunction("first", [](std::string_view, const grpo::Row& row) -> std::optional<double> {
         if (row.index() == 0) return std::nullopt;
         return static_cast<double>(row.index());
       }),
       grpo::RewardFunction("second", [](std::string_view, const grpo::Row& row) -> std::optional<double> {
         if (row.index() <= 1) return std::nullopt;
         return 1.0;
       })},
      grpo_test::scoring(1, {1.0, 2.0}));
  const auto s = scorer.score(grpo_test::arithmetic_inputs());
  grpo::AdvantageOptions options;
  options.num_generations = 2;
  options.weights = s.weights;
  const auto adv = grpo::compute_advantages(s.rewards_per_func, options);
  CHECK(std::isnan(adv.rewards[0]));  // unscorable
  CHECK(adv.advantages[0] == 0.0);
  CHECK(adv.advantages[1] == 0.0);     // its group has one scorable row
  CHECK(adv.rewards[2] == 2.0 + 2.0);  // 2 + 2*1
  CHECK(adv.advantages[2] < 0);
  REQUIRE(s.warnings.size() == 1);  // once per batch, naming the row's columns
  CHECK_THAT(s.warnings[0], Contains("All reward functions returned None") && Contains("answer: \"5\"") &&
                                Contains("difficulty: 1") && Contains("1 of 4 completions"));
}

TEST_CASE("metrics report each function's mean and std over non-none values and what functions log",
          "[rewards]") {
  grpo::RewardScorer scorer(
      {grpo::RewardFunction("acc",
                            [](const grpo::RewardInputs& in) {
                              in.log_metric("custom/seen", static_cast<double>(in.size()));
                              return std::vector<std::optional<double>>{1.0, 0.0, std::nullopt, 1.0};
                            }),
       grpo::RewardFunction("len", [](std::string_view c, const grpo::Row& row) {
         row.inputs().log_metric("custom/len", static_cast<double>(c.size()));
         return 0.5;
       })},
      grpo_test::scoring(2, {0.7, 0.3}));
  const auto s = scorer.score(grpo_test::arithmetic_inputs());
  CHECK(s.metrics.at("rewards/acc/mean") == Approx(2.0 / 3.0));
  CHECK(s.metrics.at("rewards/acc/std") == Approx(std::sqrt(1.0 / 3.0)));
  CHECK(s.metrics.at("rewards/len/std") == 0.0);
  CHECK(s.metrics.at("reward") == Approx((0.85 + 0.15 + 0.15 + 0.85) / 4));  // weighted sums, none skipped
  CHECK(s.metrics.at("custom/seen") == 4.0);
  CHECK(s.metrics.at("custom/len") == Approx((18 + 7 + 19 + 10) / 4.0));
}

TEST_CASE("results are identical whatever the number of threads", "[rewards]") {
  grpo::RewardInputs in;
  in.num_generations = 4;
  for (int i = 0; i < 64; ++i) {
    in.prompts.push_back("p" + std::to_string(i / 4));
    in.completions.push_back(std::string(static_cast<std::size_t>(i % 7), 'x') + std::to_string(i * 37 % 11));
    in.completion_ids.push_back(std::vector<int64_t>(static_cast<std::size_t>(i % 5)));
  }
  auto make = [](std::size_t threads) {
    return grpo::RewardScorer(
        {grpo::RewardFunction("digits",
                              [](std::string_view c, const grpo::Row& row) {
                                std::this_thread::sleep_for(std::chrono::microseconds(200 * (row.index() % 3)));
                                return static_cast<double>(c.size() * 3 + row.index() % 4);
                              }),
         grpo::RewardFunction("batch", [](const grpo::RewardInputs& inputs) {
           std::vector<double> out;
           for (const auto& ids : inputs.completion_ids) out.push_back(static_cast<double>(ids.size()));
           return out;
         })},
        grpo_test::scoring(threads));
  };
  auto one = make(1), two = make(2), eight = make(8);
  CHECK(eight.num_threads() == 8);
  const auto a = one.score(in), b = two.score(in), c = eight.score(in);
  CHECK(a.rewards_per_func == b.rewards_per_func);
  CHECK(a.rewards_per_func == c.rewards_per_func);
  CHECK(a.metrics == c.metrics);
}

TEST_CASE("a call that exceeds the timeout yields none, or an error when asked", "[rewards]") {
  const auto slow = [](std::string_view, const grpo::Row& row) {
    if (row.index() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(400));
    return 1.0;
  };
  grpo::ScoringOptions options;
  options.num_threads = 2;
  options.timeout_seconds = 0.05;
  grpo::RewardScorer scorer({grpo::RewardFunction("slow", slow)}, options);
  const auto s = scorer.score(grpo_test::arithmetic_inputs());
  CHECK(std::isnan(at(s, 1, 0)));  // had scoring waited for the call, this would be 1
  CHECK(at(s, 0, 0) == 1.0);
  CHECK(s.metrics.at("rewards/slow/timeouts") == 1.0);

  options.on_timeout = grpo::TimeoutAction::error;
  grpo::RewardScorer strict({grpo::RewardFunction("slow", slow)}, options);
  CHECK_THROWS_WITH(strict.score(grpo_test::arithmetic_inputs()),
                    Contains("reward function \"slow\" failed") && Contains("exceeded the timeout"));
}

TEST_CASE("scorer construction and input errors are explicit", "[rewards]") {
  const auto one = [](std::string_view, const grpo::Row&) { return 1.0; };
  CHECK_THROWS_WITH(grpo::RewardScorer(std::vector<grpo::RewardFunction>{}), Contains("at least one reward function"));
  CHECK_THROWS_WITH(grpo::RewardScorer({grpo::RewardFunction("a", one), grpo::RewardFunction("a", one)}),
                    Contains("two reward functions are named \"a\""));
  CHECK_THROWS_WITH(grpo::RewardScorer({grpo::RewardFunction("a", one)}, grpo_test::scoring(1, {1.0, 2.0})),
                    Contains("weights has 2 entries for 1 reward functions"));
  grpo::RewardScorer scorer({grpo::RewardFunction("a", one)});
  auto in = grpo_test::arithmetic_inputs();
  in.prompts.pop_back();
  CHECK_THROWS_WITH(scorer.score(in), Contains("prompts has 3 entries but there are 4 completions"));
  in = grpo_test::arithmetic_inputs();
  in.num_generations = 3;
  CHECK_THROWS_WITH(scorer.score(in), Contains("do not form groups of num_generations = 3"));
}
