#pragma once
// Accuracy reward: extract the final answer from a completion and compare it with the dataset's ground truth.

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "grpo/rewards/reward_function.hpp"

namespace grpo {

namespace detail {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Content of the last balanced \boxed{...} (nested braces allowed); nullopt if none is closed.
inline std::optional<std::string> last_boxed(std::string_view text) {
  const std::string_view key = "\\boxed{";
  const auto start = text.rfind(key);
  if (start == std::string_view::npos) return std::nullopt;
  int depth = 1;
  for (std::size_t i = start + key.size(); i < text.size(); ++i) {
    if (text[i] == '{') ++depth;
    if (text[i] == '}' && --depth == 0) return std::string(text.substr(start + key.size(), i - start - key.size()));
  }
  return std::nullopt;
}

// Strict parse of a whole string as a number: "-1,234.5", "1e3", "3/4", "\frac{3}{4}", "$5", "50%", "42.".
inline std::optional<double> parse_number(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '$') text = trim(text.substr(1));
  if (!text.empty() && text.back() == '%') text = trim(text.substr(0, text.size() - 1));
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  if (text.size() > 6 && text.substr(0, 6) == "\\frac{") {
    const auto mid = text.find("}{");
    if (mid != std::string_view::npos && text.back() == '}') {
      const auto num = parse_number(text.substr(6, mid - 6));
      const auto den = parse_number(text.substr(mid + 2, text.size() - mid - 3));
      if (num && den && *den != 0) return *num / *den;
    }
    return std::nullopt;
  }
  const auto slash = text.find('/');
  if (slash != std::string_view::npos) {
    const auto num = parse_number(text.substr(0, slash));
    const auto den = parse_number(text.substr(slash + 1));
    if (num && den && *den != 0) return *num / *den;
    return std::nullopt;
  }
  std::string cleaned;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // Thousands separators: a comma between digits.
    if (text[i] == ',' && i > 0 && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
      continue;
    }
    cleaned += text[i];
  }
  if (cleaned.empty()) return std::nullopt;
  const char c0 = cleaned[0];
  if (!(std::isdigit(static_cast<unsigned char>(c0)) || c0 == '-' || c0 == '+' || c0 == '.')) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(cleaned.c_str(), &end);
  if (end != cleaned.c_str() + cleaned.size() || errno == ERANGE || !std::isfinite(value)) return std::nullopt;
  return value;
}

// The last number written in free text ("... so the total is -1,250.5 apples" -> "-1,250.5").
inline std::optional<std::string> last_number(std::string_view text) {
  std::optional<std::string> found;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    std::size_t start = i;
    if (start > 0 && text[start - 1] == '-' &&
        (start < 2 || !std::isalnum(static_cast<unsigned char>(text[start - 2])))) {
      --start;
    }
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) ||
            (text[i] == ',' && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1]))) ||
            (text[i] == '.' && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1]))))) {
      ++i;
    }
    found = std::string(text.substr(start, i - start));
  }
  return found;
}

}  // namespace detail

/// The final answer of a completion: the content of the last closed <answer>...</answer> tag, else of the last
/// \boxed{...}, else the last number in the text; nullopt when there is none.
inline std::optional<std::string> extract_answer(std::string_view completion) {
  const auto open = completion.rfind("<answer>");
  if (open != std::string_view::npos) {
    const auto close = completion.find("</answer>", open);
    if (close != std::string_view::npos) {
      const auto inner = completion.substr(open + 8, close - open - 8);
      if (auto boxed = detail::last_boxed(inner)) return std::string(detail::trim(*boxed));
      return std::string(detail::trim(inner));
    }
  }
  if (auto boxed = detail::last_boxed(completion)) return std::string(detail::trim(*boxed));
  return detail::last_number(completion);
}

/// How the extracted answer is compared with the ground truth.
enum class AnswerComparison {
  automatic,  ///< numeric when the ground truth is a number (or parses as one), else exact string
  exact,      ///< trimmed strings must be equal
  numeric     ///< both must parse as numbers; equal within the tolerance; unparseable ground truth = none
};

/// Accuracy reward: 1 when the answer matches the ground-truth column, 0 when not (or no answer is found), none
/// when the ground truth is null or (numeric comparison) unparseable.
struct AccuracyReward {
  /// Ground-truth column.
  std::string column = "answer";
  /// Comparison mode.
  AnswerComparison comparison = AnswerComparison::automatic;
  /// Numbers match when |answer - truth| <= tolerance * max(1, |truth|).
  double tolerance = 1e-6;

  std::optional<double> operator()(std::string_view completion, const Row& row) const {
    const nlohmann::json& truth = row[column];
    if (truth.is_null()) return std::nullopt;
    const std::string truth_text = truth.is_string() ? truth.get<std::string>() : truth.dump();
    std::optional<double> truth_number;
    if (truth.is_number()) {
      truth_number = truth.get<double>();
    } else if (comparison != AnswerComparison::exact) {
      truth_number = detail::parse_number(truth_text);
    }
    if (comparison == AnswerComparison::numeric && !truth_number) return std::nullopt;
    const auto answer = extract_answer(completion);
    if (!answer) return 0.0;
    if (comparison == AnswerComparison::exact || !truth_number) {
      return detail::trim(*answer) == detail::trim(truth_text) ? 1.0 : 0.0;
    }
    auto value = detail::parse_number(*answer);
    if (!value) {  // "<answer>The total is 42</answer>": fall back to the last number inside the answer
      const auto inner = detail::last_number(*answer);
      if (inner) value = detail::parse_number(*inner);
    }
    if (!value) return 0.0;
    return std::abs(*value - *truth_number) <= tolerance * std::max(1.0, std::abs(*truth_number)) ? 1.0 : 0.0;
  }
};

/// The accuracy reward as a RewardFunction named "accuracy" that requires its ground-truth column.
inline RewardFunction accuracy_reward(AccuracyReward options = {}) {
  const std::string column = options.column;
  return RewardFunction("accuracy", std::move(options), {column});
}

}  // namespace grpo
