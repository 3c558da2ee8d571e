// The built-in reward functions on tricky inputs.
#include <string>

#include "support/catch.hpp"

#include "core/rewards_support.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/rewards/builtin/format.hpp"
#include "grpo/rewards/builtin/repetition.hpp"
#include "grpo/rewards/builtin/soft_overlong_punishment.hpp"
#include "grpo/rewards/scoring.hpp"

using grpo_test::Contains;

namespace {

// One completion with one ground-truth value in column "answer".
grpo::RewardInputs one(const std::string& completion, const nlohmann::json& truth, std::size_t ids = 0) {
  grpo::RewardInputs in;
  in.prompts = {"q"};
  in.completions = {completion};
  in.completion_ids = {std::vector<int64_t>(ids, 7)};
  in.columns = grpo::Columns::from_rows({{{"answer", truth}}});
  return in;
}

std::optional<double> accuracy(const std::string& completion, const nlohmann::json& truth,
                               grpo::AnswerComparison mode = grpo::AnswerComparison::automatic) {
  const auto in = one(completion, truth);
  grpo::AccuracyReward reward;
  reward.comparison = mode;
  return reward(in.completions[0], grpo::Row(in, 0));
}

}  // namespace

TEST_CASE("answers are extracted from the answer tag, then boxed, then the last number", "[rewards][builtin]") {
  CHECK(grpo::extract_answer("<think>2+2 is 4, or 5?</think><answer> 4 </answer>") == "4");
  CHECK(grpo::extract_answer("<answer>1</answer> no wait <answer>2</answer>") == "2");  // the last tag
  CHECK(grpo::extract_answer("so \\boxed{\\frac{1}{2}} it is") == "\\frac{1}{2}");      // nested braces
  CHECK(grpo::extract_answer("<answer>\\boxed{7}</answer>") == "7");
  CHECK(grpo::extract_answer("we get 3 apples, then -1,250.5 pears.") == "-1,250.5");
  CHECK(grpo::extract_answer("x-3 and 10") == "10");
  CHECK(grpo::extract_answer("item-7") == "7");                // a hyphen after a letter is not a sign
  CHECK(grpo::extract_answer("<answer>unclosed 12") == "12");  // falls back to the last number
  CHECK_FALSE(grpo::extract_answer("no numbers here").has_value());
  CHECK_FALSE(grpo::extract_answer("\\boxed{never closed").has_value());
}

TEST_CASE("accuracy compares numbers with tolerance and strings exactly", "[rewards][builtin]") {
  CHECK(accuracy("<answer>40</answer>", 40) == 1.0);
  CHECK(accuracy("<answer>40.0000001</answer>", 40) == 1.0);  // within 1e-6 relative
  CHECK(accuracy("<answer>40.1</answer>", 40) == 0.0);
  CHECK(accuracy("<answer>1,234</answer>", "1234") == 1.0);
  CHECK(accuracy("\\boxed{\\frac{3}{4}}", "0.75") == 1.0);
  CHECK(accuracy("<answer>3/4</answer>", 0.75) == 1.0);
  CHECK(accuracy("<answer>$12.</answer>", "12") == 1.0);
  CHECK(accuracy("<answer>The total is 42 apples</answer>", 42) == 1.0);
  CHECK(accuracy("I don't know", 42) == 0.0);
  CHECK(accuracy("<answer>Paris</answer>", "Paris") == 1.0);  // not numeric: exact string
  CHECK(accuracy("<answer>paris</answer>", "Paris") == 0.0);
  CHECK(accuracy("<answer>5</answer>", "5.0", grpo::AnswerComparison::exact) == 0.0);
  CHECK(accuracy("<answer>5</answer>", "5.0", grpo::AnswerComparison::numeric) == 1.0);
}

TEST_CASE("accuracy is none when the ground truth is missing or unparseable", "[rewards][builtin]") {
  CHECK_FALSE(accuracy("<answer>5</answer>", nullptr).has_value());
  CHECK_FALSE(accuracy("<answer>5</answer>", "five-ish", grpo::AnswerComparison::numeric).has_value());
  const auto f = grpo::accuracy_reward();
  CHECK(f.name() == "accuracy");
  CHECK(f.required_columns() == std::vector<std::string>{"answer"});
}

TEST_CASE("the think/answer format requires exactly the two tags in order", "[rewards][builtin]") {
  CHECK(grpo::is_think_answer_format("<think>a\nb</think>\n<answer>4</answer>"));
  CHECK(grpo::is_think_answer_format("<think></think><answer></answer>"));
  CHECK_FALSE(grpo::is_think_answer_format(" <think>a</think><answer>4</answer>"));  // leading text
  CHECK_FALSE(grpo::is_think_answer_format("<think>a</think><answer>4</answer> trailing"));
  CHECK_FALSE(grpo::is_think_answer_format("<think>a</think>"));
  CHECK_FALSE(grpo::is_think_answer_format("<answer>4</answer><think>a</think>"));
  CHECK_FALSE(grpo::is_think_answer_format("<think>a<think>b</think><answer>4</answer>"));
  // Long completions are fine (linear scan).
  CHECK(grpo::is_think_answer_format("<think>" + std::string(200000, 'x') + "</think><answer>1</answer>"));

  grpo::RewardScorer scorer({grpo::format_reward(R"(^<answer>\d+</answer>$)", "digits_only")}, grpo_test::scoring(1));
  auto in = one("<answer>42</answer>", 0);
  CHECK(scorer.score(in).rewards_per_func(0, 0) == 1.0);
  in.completions[0] = "<answer>42</answer>\n";
  CHECK(scorer.score(in).rewards_per_func(0, 0) == 0.0);  // a full match, not a search
  CHECK_THROWS_WITH(grpo::format_reward("(unclosed"), Contains("invalid regex \"(unclosed\""));
}

TEST_CASE("soft overlong punishment follows DAPO's ramp", "[rewards][builtin]") {
  const grpo::SoftOverlongPunishment p{20, 5};  // safe up to 15 tokens, -1 beyond 20
  auto length = [&](std::size_t n) {
    const auto in = one("", 0, n);
    return p("", grpo::Row(in, 0));
  };
  CHECK(length(0) == 0.0);
  CHECK(length(15) == 0.0);
  CHECK(length(16) == Approx(-0.2));
  CHECK(length(20) == Approx(-1.0));
  CHECK(length(21) == -1.0);
  CHECK_THROWS_WITH(grpo::soft_overlong_punishment_reward(20, 0), Contains("soft_punish_cache must be in [1, 20]"));
}

TEST_CASE("the repetition penalty scales the share of repeated n-grams", "[rewards][builtin]") {
  const grpo::RepetitionPenalty p{2, -1.0};
  const auto in = one("", 0);
  const grpo::Row row(in, 0);
  CHECK(p("the cat sat on the mat", row) == 0.0);  // 5 distinct bigrams
  CHECK(p("a b a b a b", row) == Approx(-(1.0 - 2.0 / 5.0)));
  CHECK(p("Go GO go", row) == Approx(-(1.0 - 1.0 / 2.0)));  // case-insensitive
  CHECK(p("single", row) == 0.0);                           // fewer words than n
  CHECK(p("", row) == 0.0);
  CHECK_THROWS_WITH(grpo::repetition_penalty_reward(3, 0.5), Contains("max_penalty must be <= 0"));
}
