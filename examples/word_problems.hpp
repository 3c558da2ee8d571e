#pragma once
// The real-model demo's task: short arithmetic word problems ("Tom has 3 apples and buys 4 more. How many apples
// does Tom have now?") drawn from a seeded generator, with the answer in a ground-truth column, and the scoring
// that the rewards and the evaluation share. The model must end its reply with the line "Answer: <number>".
// Example code, not part of the library; torch-free.

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <grpo/rewards/builtin/accuracy.hpp>
#include <grpo/rewards/reward_function.hpp>

namespace grpo_examples {

/// One word problem: the question, its integer answer and the kind of operation ("add", "sub", "mul").
struct WordProblem {
  /// The question as the user asks it.
  std::string question;
  /// The ground truth.
  int64_t answer = 0;
  /// "add", "sub" or "mul" (for per-kind statistics).
  std::string kind;
};

/// Which problems word_problems() draws.
struct WordProblemOptions {
  /// Largest operand of additions and subtractions (operands start at 2).
  int64_t max_operand = 10;
  /// Largest factor of multiplications (factors start at 2).
  int64_t max_factor = 5;
};

namespace detail {

// An integer uniformly in [low, high], from a generator whose sequence is fixed by the standard (mt19937_64), so
// that the same seed gives the same problems with every standard library; std::uniform_int_distribution is not
// specified that precisely. The modulo bias is below 1e-17 for these ranges.
inline int64_t uniform(std::mt19937_64& rng, int64_t low, int64_t high) {
  return low + static_cast<int64_t>(rng() % static_cast<uint64_t>(high - low + 1));
}

// One of `values`, uniformly.
template <class T>
const T& pick(std::mt19937_64& rng, const std::vector<T>& values) {
  return values[static_cast<std::size_t>(uniform(rng, 0, static_cast<int64_t>(values.size()) - 1))];
}

inline std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

// The whole of `text` as an integer ("12", "-3"); nullopt for anything else ("12.5", "1,000", "twelve", "").
inline std::optional<int64_t> parse_integer(std::string_view text) {
  const std::size_t first_digit = !text.empty() && text.front() == '-' ? 1 : 0;
  if (text.size() == first_digit || text.size() > 18) return std::nullopt;  // empty, or maybe beyond int64
  for (std::size_t i = first_digit; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
  }
  return std::stoll(std::string(text));
}

}  // namespace detail

/// `count` problems drawn with `seed` (the same seed gives the same problems): additions, subtractions (never
/// negative) and multiplications, each phrased in one of a few ways, with random names and objects.
inline std::vector<WordProblem> word_problems(std::size_t count, uint64_t seed,
                                              const WordProblemOptions& options = {}) {
  static const std::vector<std::string> names{"Tom", "Anna", "Sam",  "Lily", "Ben",  "Maya",
                                              "Leo", "Emma", "Jack", "Sara", "Noah", "Mia"};
  static const std::vector<std::string> objects{"apples",  "books", "marbles", "pencils", "stickers",
                                                "cookies", "coins", "cards",   "shells",  "balloons"};
  std::mt19937_64 rng(seed);
  std::vector<WordProblem> problems;
  problems.reserve(count);
  const auto number = [&](int64_t low, int64_t high) { return detail::uniform(rng, low, high); };
  while (problems.size() < count) {
    const std::string& name = detail::pick(rng, names);
    std::string other = detail::pick(rng, names);
    while (other == name) other = detail::pick(rng, names);
    const std::string& things = detail::pick(rng, objects);
    const int64_t a = number(2, options.max_operand), b = number(2, options.max_operand);
    const int64_t big = std::max(a, b), small = std::min(a, b);
    const int64_t f = number(2, options.max_factor), g = number(2, options.max_factor);
    const auto n = [](int64_t v) { return std::to_string(v); };
    switch (number(0, 5)) {
      case 0:
        problems.push_back({name + " has " + n(a) + " " + things + " and buys " + n(b) + " more. How many " + things +
                                " does " + name + " have now?",
                            a + b, "add"});
        break;
      case 1:
        problems.push_back({name + " has " + n(a) + " " + things + " and " + other + " has " + n(b) + ". How many " +
                                things + " do they have together?",
                            a + b, "add"});
        break;
      case 2:
        problems.push_back({name + " has " + n(big) + " " + things + " and gives " + n(small) + " to " + other +
                                ". How many " + things + " does " + name + " have left?",
                            big - small, "sub"});
        break;
      case 3:
        problems.push_back({name + " has " + n(big) + " " + things + ". " + other + " has " + n(small) +
                                ". How many more " + things + " does " + name + " have than " + other + "?",
                            big - small, "sub"});
        break;
      case 4:
        problems.push_back({name + " buys " + n(f) + " bags with " + n(g) + " " + things + " in each bag. How many " +
                                things + " does " + name + " buy?",
                            f * g, "mul"});
        break;
      default:
        problems.push_back({name + " has " + n(f) + " boxes. Each box holds " + n(g) + " " + things + ". How many " +
                                things + " are there in all?",
                            f * g, "mul"});
        break;
    }
  }
  return problems;
}

/// The number of the reply's required last line "Answer: <integer>" (spaces, a final period and **bold** markers
/// around it are tolerated); nullopt when the last non-empty line is not of that form.
inline std::optional<int64_t> final_answer(std::string_view reply) {
  const std::string_view text = detail::trim(reply);
  std::string_view line = detail::trim(text.substr(text.rfind('\n') + 1));  // npos + 1 == 0: the whole text
  const auto strip_bold = [&line] {
    if (line.substr(0, 2) == "**") line.remove_prefix(2);
    if (line.size() >= 2 && line.substr(line.size() - 2) == "**") line.remove_suffix(2);
  };
  strip_bold();  // "**Answer: 5**"
  const std::string_view key = "Answer:";
  if (line.substr(0, key.size()) != key) return std::nullopt;
  line.remove_prefix(key.size());
  strip_bold();  // "**Answer:** 5"
  line = detail::trim(line);
  if (!line.empty() && line.back() == '.') line.remove_suffix(1);
  return detail::parse_integer(line);
}

/// How one reply scores against its ground truth.
struct ReplyScore {
  /// The reply is in the required format: some working, then the last line "Answer: <integer>". A bare
  /// "Answer: 8" is not: with the format rewarded without working, GRPO taught the model to guess at once.
  bool formatted = false;
  /// The number of the last line "Answer: <integer>" is the ground truth, with or without working (the accuracy
  /// the demo trains and reports).
  bool correct = false;
  /// The last number anywhere in the reply is the ground truth, whatever the format (a diagnostic only: it tells
  /// whether a gain in accuracy comes from the format alone).
  bool last_number_correct = false;
};

/// Scores `reply` against `answer`.
inline ReplyScore score_reply(std::string_view reply, int64_t answer) {
  ReplyScore s;
  const auto stated = final_answer(reply);
  const bool has_working = detail::trim(reply).find('\n') != std::string_view::npos;  // a line above the last
  s.formatted = stated && has_working;
  s.correct = stated == answer;
  const auto last = grpo::extract_answer(reply);  // accuracy_reward's extraction: here the last number
  s.last_number_correct = last && detail::parse_integer(*last) == answer;
  return s;
}

/// Reward "format": 1 when the reply shows some working and ends with the line "Answer: <integer>", else 0.
inline grpo::RewardFunction answer_format_reward() {
  return grpo::RewardFunction(
      "format", [](std::string_view reply, const grpo::Row&) { return score_reply(reply, 0).formatted ? 1.0 : 0.0; });
}

/// Reward "correct": 1 when the reply's "Answer:" line holds the dataset's "answer" column, else 0.
inline grpo::RewardFunction correct_answer_reward() {
  return grpo::RewardFunction(
      "correct",
      [](std::string_view reply, const grpo::Row& row) {
        return score_reply(reply, row.get<int64_t>("answer")).correct ? 1.0 : 0.0;
      },
      std::vector<std::string>{"answer"});
}

}  // namespace grpo_examples
