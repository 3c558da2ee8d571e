// Writing reward functions: a functor that reads the dataset's ground-truth column, a per-completion lambda,
// and a built-in, scored together with weights and turned into group advantages. Torch-free (grpo::core).
#include <cctype>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include <grpo/core/advantages.hpp>
#include <grpo/rewards/builtin/format.hpp>
#include <grpo/rewards/scoring.hpp>

// A stateful functor: exact-match accuracy against the "solution" column, case-insensitive, with a lookup of
// accepted synonyms. Returns none (std::nullopt) when the row has no solution, so it does not count.
struct CapitalCityReward {
  std::map<std::string, std::string> synonyms{{"nyc", "new york"}, {"bombay", "mumbai"}};

  std::optional<double> operator()(std::string_view completion, const grpo::Row& row) const {
    if (row["solution"].is_null()) return std::nullopt;
    std::string answer = lower(completion.substr(completion.rfind(' ') + 1));
    if (const auto it = synonyms.find(answer); it != synonyms.end()) answer = it->second;
    return answer == lower(row.get<std::string>("solution")) ? 1.0 : 0.0;
  }

  static std::string lower(std::string_view text) {
    std::string out;
    for (char c : text) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }
};

int main() {
  // A generation batch: 2 prompts x G = 3 completions; the dataset columns arrive repeated per completion.
  std::vector<nlohmann::json> rows;
  const std::vector<std::pair<std::string, nlohmann::json>> prompts{{"Largest city of India?", "Mumbai"},
                                                                    {"Largest city of the USA?", "New York"}};
  grpo::RewardInputs inputs;
  inputs.num_generations = 3;
  inputs.completions = {"It is Bombay", "It is Delhi", "It is Mumbai", "It is NYC", "It is LA", "Chicago"};
  for (const auto& [prompt, solution] : prompts) {
    for (int g = 0; g < 3; ++g) {
      inputs.prompts.push_back(prompt);
      rows.push_back({{"prompt", prompt}, {"solution", solution}});
    }
  }
  for (const auto& c : inputs.completions) inputs.completion_ids.emplace_back(c.size(), 0);
  inputs.columns = grpo::Columns::from_rows(rows);

  std::vector<grpo::RewardFunction> functions;
  functions.emplace_back("capital", CapitalCityReward{}, std::vector<std::string>{"solution"});
  // A per-completion lambda: prefer answers phrased as "It is ...".
  functions.emplace_back("phrasing", [](std::string_view completion, const grpo::Row&) {
    return completion.rfind("It is ", 0) == 0 ? 1.0 : 0.0;
  });
  functions.push_back(grpo::format_reward(R"(It is [A-Za-z ]+)", "format"));

  grpo::ScoringOptions options;
  options.weights = {1.0, 0.2, 0.1};
  grpo::RewardScorer scorer(std::move(functions), options);
  scorer.check_columns({"solution"});  // before training: every required column exists
  const grpo::RewardScores scores = scorer.score(inputs);

  grpo::AdvantageOptions adv_options;
  adv_options.num_generations = inputs.num_generations;
  adv_options.weights = scores.weights;
  const grpo::Advantages adv = grpo::compute_advantages(scores.rewards_per_func, adv_options);

  std::printf("%-14s %8s %8s %8s %10s\n", "completion", "capital", "phrasing", "format", "advantage");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto r = scores.rewards_per_func.row(static_cast<Eigen::Index>(i));
    std::printf("%-14s %8.1f %8.1f %8.1f %+10.3f\n", inputs.completions[i].c_str(), r[0], r[1], r[2],
                adv.advantages[static_cast<Eigen::Index>(i)]);
  }
  for (const auto& [name, value] : scores.metrics) std::printf("  %-24s %.4f\n", name.c_str(), value);
  // The correct answers must get the highest advantage of their group.
  const bool ok = adv.advantages[0] > adv.advantages[1] && adv.advantages[2] > adv.advantages[1] &&
                  adv.advantages[3] > adv.advantages[4] && adv.advantages[3] > adv.advantages[5];
  std::printf("%s\n", ok ? "correct answers are preferred" : "UNEXPECTED ADVANTAGES");
  return ok ? 0 : 1;
}
