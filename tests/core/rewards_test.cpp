// Reward functions: accepted callable shapes, the columns (kwargs) interface, validation and scoring.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/catch.hpp"

#include "core/rewards_support.hpp"
#include "grpo/core/advantages.hpp"
#include "grpo/rewards/inputs.hpp"
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
  grpo::RewardScorer scorer({grpo::RewardFunction(
      "needs_solution", [](std::string_view, const grpo::Row& row) { return row.get<double>("solution"); })});
  CHECK_THROWS_WITH(scorer.score(grpo_test::arithmetic_inputs()),
                    Contains("reward function \"needs_solution\" failed at sample 0") &&
                        Contains("column \"solution\" is not in the dataset") &&
                        Contains("available columns: answer, difficulty"));
}

TEST_CASE("required columns are checked against the dataset before training", "[rewards]") {
  grpo::RewardScorer scorer(
      {grpo::RewardFunction("acc", [](std::string_view, const grpo::Row&) { return 1.0; }, {"solution", "answer"}),
       grpo::RewardFunction("judge", [](std::string_view, const grpo::Row&) { return 1.0; }, {"rubric"})});
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
  grpo::RewardScorer nan_scorer({grpo::RewardFunction(
      "nan", [](std::string_view, const grpo::Row& row) { return row.index() == 2 ? std::nan("") : 1.0; })});
  const auto s = nan_scorer.score(grpo_test::arithmetic_inputs());
  CHECK(std::isnan(at(s, 2, 0)));
  CHECK(at(s, 1, 0) == 1.0);

  grpo::RewardScorer inf_scorer({grpo::RewardFunction(
      "inf", [](std::string_view, const grpo::Row& row) { return row.index() == 3 ? -INFINITY : 0.0; })});
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
  grpo::RewardScorer scorer({grpo::RewardFunction("first",
                                                  [](std::string_view, const grpo::Row& row) -> std::optional<double> {
                                                    if (row.index() == 0) return std::nullopt;
                                                    return static_cast<double>(row.index());
                                                  }),
                             grpo::RewardFunction("second",
                                                  [](std::string_view, const grpo::Row& row) -> std::optional<double> {
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

TEST_CASE("metrics report each function's mean and std over non-none values and what functions log", "[rewards]") {
  grpo::RewardScorer scorer(
      {grpo::RewardFunction("acc",
                            [](const grpo::RewardInputs& in) {
                              in.log_metric("custom/seen", static_cast<double>(in.size()));
                              return std::vector<std::optional<double>>{1.0, 0.0, std::nullopt, 1.0};
                            }),
       grpo::RewardFunction("len",
                            [](std::string_view c, const grpo::Row& row) {
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

TEST_CASE("results are identical sequentially and in parallel, whatever the number of threads", "[rewards]") {
  grpo::RewardInputs in;
  in.num_generations = 4;
  for (int i = 0; i < 64; ++i) {
    in.prompts.push_back("p" + std::to_string(i / 4));
    in.completions.push_back(std::string(static_cast<std::size_t>(i % 7), 'x') + std::to_string(i * 37 % 11));
    in.completion_ids.push_back(std::vector<int64_t>(static_cast<std::size_t>(i % 5)));
  }
  auto make = [](std::size_t threads, bool parallel = true) {
    auto options = grpo_test::scoring(threads);
    options.parallel = parallel;
    return grpo::RewardScorer(
        {grpo::RewardFunction("digits",
                              [](std::string_view c, const grpo::Row& row) {
                                std::this_thread::sleep_for(std::chrono::microseconds(200 * (row.index() % 3)));
                                // Logged in call order, which varies with threads; the mean must not.
                                row.inputs().log_metric("digits/tenth", 0.1 * static_cast<double>(row.index()) + 1e-7);
                                return static_cast<double>(c.size() * 3 + row.index() % 4);
                              }),
         grpo::RewardFunction("batch",
                              [](const grpo::RewardInputs& inputs) {
                                std::vector<double> out;
                                for (const auto& ids : inputs.completion_ids)
                                  out.push_back(static_cast<double>(ids.size()));
                                return out;
                              })},
        options);
  };
  auto sequential = make(8, false), one = make(1), two = make(2), eight = make(8);
  CHECK_FALSE(sequential.parallel());
  CHECK(sequential.num_threads() == 1);  // num_threads is ignored without parallel
  CHECK(eight.parallel());
  CHECK(eight.num_threads() == 8);
  const auto s = sequential.score(in), a = one.score(in), b = two.score(in), c = eight.score(in);
  for (Eigen::Index i = 0; i < 64; ++i) {
    const auto row = static_cast<std::size_t>(i);
    CHECK(s.rewards_per_func(i, 0) == static_cast<double>(in.completions[row].size() * 3 + row % 4));
    CHECK(s.rewards_per_func(i, 1) == static_cast<double>(in.completion_ids[row].size()));
  }
  CHECK(s.rewards_per_func == a.rewards_per_func);
  CHECK(a.rewards_per_func == b.rewards_per_func);
  CHECK(a.rewards_per_func == c.rewards_per_func);
  CHECK(s.metrics.at("digits/tenth") == Approx(0.1 * 63 / 2 + 1e-7));
  CHECK(s.metrics == a.metrics);  // exactly, logged metrics included
  CHECK(s.metrics == b.metrics);
  CHECK(s.metrics == c.metrics);
}

TEST_CASE("a call that exceeds the timeout yields none, or an error when asked", "[rewards]") {
  // The slow call sleeps long past the timeout, and the timeout is long enough for a fast call to finish on a
  // loaded machine (a 50 ms timeout sometimes expired for fast calls under a load of 4 on 2 cores).
  const auto slow = [](std::string_view, const grpo::Row& row) {
    if (row.index() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return 1.0;
  };
  for (const bool parallel : {false, true}) {
    INFO("parallel " << parallel);
    grpo::ScoringOptions options;
    options.parallel = parallel;
    options.num_threads = 2;
    options.timeout_seconds = 0.25;
    grpo::RewardScorer scorer({grpo::RewardFunction("slow", slow)}, options);
    const auto s = scorer.score(grpo_test::arithmetic_inputs());
    CHECK(std::isnan(at(s, 1, 0)));  // had scoring waited for the call, this would be 1
    CHECK(at(s, 0, 0) == 1.0);
    CHECK(at(s, 3, 0) == 1.0);
    CHECK(s.metrics.at("rewards/slow/timeouts") == 1.0);
  }

  grpo::ScoringOptions options;
  options.timeout_seconds = 0.25;
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

TEST_CASE("by default reward calls run one at a time on the calling thread, in function and batch order", "[rewards]") {
  auto in = grpo_test::arithmetic_inputs();
  for (int copy = 0; copy < 15; ++copy) {  // 64 completions: enough for a pool to split them into chunks
    const auto base = grpo_test::arithmetic_inputs();
    in.prompts.insert(in.prompts.end(), base.prompts.begin(), base.prompts.end());
    in.completions.insert(in.completions.end(), base.completions.begin(), base.completions.end());
    in.completion_ids.insert(in.completion_ids.end(), base.completion_ids.begin(), base.completion_ids.end());
  }
  std::vector<nlohmann::json> rows;
  for (std::size_t i = 0; i < in.size(); ++i) rows.push_back({{"prompt", in.prompts[i]}, {"answer", "5"}});
  in.columns = grpo::Columns::from_rows(rows);
  const std::size_t n = in.size();
  REQUIRE(n == 64);

  // State shared by all three functions, unsynchronised unless `locking`: a call log, a counter, the threads seen.
  std::vector<std::string> log;
  long counter = 0;
  std::vector<std::thread::id> threads;
  bool locking = false;
  std::mutex guard;
  const auto record = [&](const std::string& entry) {
    std::unique_lock<std::mutex> lock(guard, std::defer_lock);
    if (locking) lock.lock();
    log.push_back(entry);
    const long before = counter;
    std::this_thread::sleep_for(std::chrono::microseconds(20));  // widens the window a concurrent call would hit
    counter = before + 1;
    threads.push_back(std::this_thread::get_id());
  };
  auto make = [&](bool parallel) {
    grpo::ScoringOptions options;
    options.parallel = parallel;
    options.num_threads = 4;
    return grpo::RewardScorer({grpo::RewardFunction("first",
                                                    [&](std::string_view c, const grpo::Row& row) {
                                                      record("first " + std::to_string(row.index()));
                                                      return static_cast<double>(c.size());
                                                    }),
                               grpo::RewardFunction("batch",
                                                    [&](const grpo::RewardInputs& inputs) {
                                                      record("batch");
                                                      return std::vector<double>(inputs.size(), 0.5);
                                                    }),
                               grpo::RewardFunction("second",
                                                    [&](std::string_view, const grpo::Row& row) {
                                                      record("second " + std::to_string(row.index()));
                                                      return static_cast<double>(row.index());
                                                    })},
                              options);
  };

  auto sequential = make(false);
  CHECK_FALSE(sequential.parallel());
  const auto s = sequential.score(in);
  std::vector<std::string> expected;
  for (std::size_t i = 0; i < n; ++i) expected.push_back("first " + std::to_string(i));
  expected.push_back("batch");
  for (std::size_t i = 0; i < n; ++i) expected.push_back("second " + std::to_string(i));
  CHECK(log == expected);
  CHECK(counter == static_cast<long>(2 * n + 1));  // no lost update
  CHECK(std::all_of(threads.begin(), threads.end(), [](auto id) { return id == std::this_thread::get_id(); }));
  CHECK(s.rewards_per_func(3, 0) == static_cast<double>(in.completions[3].size()));
  CHECK(s.rewards_per_func(63, 1) == 0.5);
  CHECK(s.rewards_per_func(63, 2) == 63.0);

  // Opting into parallel scoring (the functions must then synchronise) runs the calls on the pool's workers and
  // gives the same scores.
  log.clear();
  threads.clear();
  counter = 0;
  locking = true;
  auto parallel = make(true);
  CHECK(parallel.parallel());
  CHECK(parallel.num_threads() == 4);
  const auto p = parallel.score(in);
  CHECK(p.rewards_per_func == s.rewards_per_func);
  CHECK(p.metrics == s.metrics);
  CHECK(counter == static_cast<long>(2 * n + 1));
  std::sort(log.begin(), log.end());
  std::sort(expected.begin(), expected.end());
  CHECK(log == expected);  // every call once, in some order
  CHECK(std::none_of(threads.begin(), threads.end(), [](auto id) { return id == std::this_thread::get_id(); }));
}

TEST_CASE("make_reward_inputs repeats each row's prompt and columns for its consecutive completions", "[rewards]") {
  const std::vector<nlohmann::json> rows = {{{"prompt", "What is 2+3?"}, {"answer", "5"}, {"difficulty", 1}},
                                            {{"prompt", "What is 10*4?"}, {"answer", 40}, {"source", "gsm"}}};
  const std::vector<std::string> completions = {"5", "6", "40", "41", "4", "400"};
  const auto in = grpo::make_reward_inputs(rows, completions, 3, {{1}, {2}, {3, 4}, {5}, {6}, {7, 8, 9}});
  CHECK(in.num_generations == 3);
  CHECK(in.size() == 6);
  CHECK(in.completions == completions);
  CHECK(in.prompts == std::vector<std::string>{"What is 2+3?", "What is 2+3?", "What is 2+3?", "What is 10*4?",
                                               "What is 10*4?", "What is 10*4?"});
  CHECK(in.completion_ids[5] == std::vector<int64_t>{7, 8, 9});
  CHECK(in.columns.names() == std::vector<std::string>{"answer", "difficulty", "source"});
  CHECK(in.columns.size() == 6);
  CHECK(in.columns.get<std::string>("answer", 2) == "5");
  CHECK(in.columns.get<int>("answer", 3) == 40);
  CHECK(in.columns.value("difficulty", 4).is_null());  // the second row has no difficulty
  CHECK(in.columns.value("source", 0).is_null());
  CHECK(in.columns.get<std::string>("source", 5) == "gsm");
  const grpo::Row row(in, 4);
  CHECK(row.index_in_group() == 1);
  CHECK(row.prompt() == "What is 10*4?");

  // Without completion_ids every completion gets an empty list, and the scorer accepts the batch.
  const auto no_ids = grpo::make_reward_inputs(rows, completions, 3);
  REQUIRE(no_ids.completion_ids.size() == 6);
  CHECK(no_ids.completion_ids[0].empty());
  grpo::RewardScorer scorer({grpo::RewardFunction("exact", [](std::string_view c, const grpo::Row& r) {
    const auto& answer = r["answer"];
    return (answer.is_string() ? answer.get<std::string>() : answer.dump()) == c ? 1.0 : 0.0;
  })});
  const auto s = scorer.score(no_ids);
  CHECK(s.rewards_per_func(0, 0) == 1.0);  // "5" == "5"
  CHECK(s.rewards_per_func(1, 0) == 0.0);
  CHECK(s.rewards_per_func(3, 0) == 0.0);  // "41" vs 40
}

TEST_CASE("make_reward_inputs errors name the counts and the bad row", "[rewards]") {
  const std::vector<nlohmann::json> rows = {{{"prompt", "a"}}, {{"prompt", "b"}}};
  CHECK_THROWS_WITH(grpo::make_reward_inputs(rows, {"1", "2", "3", "4", "5"}, 3),
                    Contains("got 5 completions for 2 rows x num_generations 3 = 6"));
  CHECK_THROWS_WITH(grpo::make_reward_inputs(rows, {"1", "2", "3", "4"}, 2, {{1}, {2}, {3}}),
                    Contains("got 3 completion_ids for 4 completions"));
  CHECK_THROWS_WITH(grpo::make_reward_inputs(rows, {}, 0), Contains("num_generations must be >= 1, got 0"));
  CHECK_THROWS_WITH(grpo::make_reward_inputs({{{"prompt", "a"}}, {{"question", "b"}, {"answer", 1}}}, {"1", "2"}, 1),
                    Contains("row 1: row has no \"prompt\" field"));
  CHECK_THROWS_WITH(
      grpo::make_reward_inputs({{{"prompt", 7}}}, {"1"}, 1),
      Contains("row 0: \"prompt\" must be a string or a list of {\"role\", \"content\"} messages, got number 7"));
  CHECK_THROWS_WITH(grpo::make_reward_inputs({nlohmann::json::array({1, 2})}, {"1"}, 1),
                    Contains("row 0 is not a JSON object"));
}

TEST_CASE("make_reward_inputs keeps conversational prompts as messages and gives completions as messages",
          "[rewards][chat]") {
  const nlohmann::json messages = {{{"role", "user"}, {"content", "2+2?"}}};
  const auto inputs = grpo::make_reward_inputs({{{"prompt", messages}, {"answer", "4"}}, {{"prompt", "3+3?"}}},
                                               {"4", "5", "6", "7"}, 2);
  REQUIRE(inputs.prompt_messages.size() == 4);
  CHECK(inputs.is_conversational(0));
  CHECK(inputs.is_conversational(1));
  CHECK_FALSE(inputs.is_conversational(2));
  CHECK(inputs.prompt_messages[1] == messages);
  CHECK(inputs.prompts[2] == "3+3?");
  const grpo::Row row(inputs, 1);
  CHECK(row.is_conversational());
  CHECK(row.prompt_messages() == messages);
  CHECK(row.completion_messages() == nlohmann::json::parse(R"([{"role": "assistant", "content": "5"}])"));
  CHECK(grpo::Row(inputs, 3).prompt_messages().is_null());
  const auto plain = grpo::make_reward_inputs({{{"prompt", "a"}}}, {"x"}, 1);
  CHECK(plain.prompt_messages.empty());
  CHECK_FALSE(grpo::Row(plain, 0).is_conversational());
}
