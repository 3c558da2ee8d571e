#pragma once
// Prompt datasets: rows are JSON objects with a "prompt" (text, or a conversation: a list of {role, content}
// messages) and any other columns (answers, test cases, ...) that reach the reward functions as keyword columns.
// Loaded from JSONL or a JSON array. Torch-free.

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <istream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "grpo/detail/json_depth.hpp"
#include "grpo/detail/prompt_row.hpp"
#include "grpo/detail/random.hpp"
#include "grpo/error.hpp"

namespace grpo {

namespace detail {

// Line and column (1-based) of a byte offset in `text`, for parse errors of whole files.
inline std::pair<std::size_t, std::size_t> line_column(const std::string& text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

inline bool is_blank(const std::string& line) { return line.find_first_not_of(" \t\r\n") == std::string::npos; }

}  // namespace detail

/// An in-memory prompt dataset. Every row is a JSON object with a "prompt": a string (plain text the model
/// continues), or a conversation as TRL has it, a list of {"role", "content"} messages (system, user, earlier
/// turns) that the trainer renders with the model's chat template and the generation prompt. Other columns are
/// free; they reach the reward functions.
class Dataset {
 public:
  Dataset() = default;

  /// Builds a dataset from rows (for built-in tasks); a row that is not an object with a valid "prompt" is a
  /// grpo::InvalidArgument naming its index.
  static Dataset from_rows(std::vector<nlohmann::json> rows) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::string problem = detail::row_problem(rows[i]);
      if (!problem.empty()) throw InvalidArgument("grpo::Dataset: row " + std::to_string(i) + ": " + problem);
    }
    Dataset dataset;
    dataset.rows_ = std::move(rows);
    return dataset;
  }

  /// Number of rows (prompts).
  std::size_t size() const { return rows_.size(); }
  /// True when there are no rows.
  bool empty() const { return rows_.empty(); }
  /// Row `i` (a JSON object); out of range is a grpo::OutOfRange naming the index and the size.
  const nlohmann::json& row(std::size_t i) const {
    if (i >= rows_.size()) {
      throw OutOfRange("grpo::Dataset::row: index " + std::to_string(i) + " but the dataset has " +
                       std::to_string(rows_.size()) + " rows");
    }
    return rows_[i];
  }
  /// The prompt text of row `i`; a conversation is a grpo::InvalidArgument (see prompt_value and is_conversational).
  const std::string& prompt(std::size_t i) const {
    const auto& value = row(i).at("prompt");
    if (!value.is_string()) {
      throw InvalidArgument("grpo::Dataset::prompt: row " + std::to_string(i) +
                            " holds a conversation (a list of messages), not a text prompt; render it with a "
                            "grpo::ChatTemplate (the trainer does when TrainerOptions::chat_template is set)");
    }
    return value.get_ref<const std::string&>();
  }
  /// The "prompt" of row `i` as stored: a string, or a list of {"role", "content"} messages.
  const nlohmann::json& prompt_value(std::size_t i) const { return row(i).at("prompt"); }
  /// True when row `i`'s prompt is a conversation (a list of messages).
  bool is_conversational(std::size_t i) const { return prompt_value(i).is_array(); }
  /// The index of the first row whose prompt is a conversation, or size() when there is none.
  std::size_t first_conversational_row() const {
    for (std::size_t i = 0; i < rows_.size(); ++i) {
      if (rows_[i].at("prompt").is_array()) return i;
    }
    return rows_.size();
  }
  /// All rows, in order.
  const std::vector<nlohmann::json>& rows() const { return rows_; }
  /// Union of the column names of all rows, sorted ("prompt" is always among them when non-empty).
  std::vector<std::string> column_names() const {
    std::set<std::string> names;
    for (const auto& r : rows_) {
      for (const auto& item : r.items()) names.insert(item.key());
    }
    return {names.begin(), names.end()};
  }

  /// Splits into {train, eval}: eval gets round(eval_fraction * size) rows chosen by a seeded shuffle (identical
  /// on every platform); both keep the original relative order. eval_fraction must be in [0, 1].
  std::pair<Dataset, Dataset> split(double eval_fraction, uint64_t seed) const {
    if (!(eval_fraction >= 0.0 && eval_fraction <= 1.0)) {
      throw InvalidArgument("grpo::Dataset::split: eval_fraction must be in [0, 1], got " +
                            std::to_string(eval_fraction));
    }
    const auto n = static_cast<int64_t>(rows_.size());
    const auto n_eval = static_cast<int64_t>(eval_fraction * static_cast<double>(n) + 0.5);
    const std::vector<int64_t> order = detail::seeded_permutation(n, seed);
    std::vector<bool> is_eval(rows_.size(), false);
    for (int64_t k = 0; k < n_eval; ++k) is_eval[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = true;
    Dataset train, eval;
    for (std::size_t i = 0; i < rows_.size(); ++i) (is_eval[i] ? eval : train).rows_.push_back(rows_[i]);
    return {std::move(train), std::move(eval)};
  }

 private:
  std::vector<nlohmann::json> rows_;
};

namespace detail {

// load_jsonl over a stream; `path` names the source in messages (the fuzz target parses from memory).
inline Dataset parse_jsonl(std::istream& in, const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (detail::is_blank(line)) continue;
    const std::string where = "grpo::load_jsonl: " + path + ":" + std::to_string(line_number) + ": ";
    if (detail::json_nesting_depth(line) > detail::max_json_depth) {
      throw InvalidArgument(where + "the JSON nests arrays and objects more than " +
                            std::to_string(detail::max_json_depth) + " deep");
    }
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // a parse_error, or out_of_range for a number such as 1e400
      throw InvalidArgument(where + "invalid JSON (" + e.what() + "); each line must hold one JSON object");
    }
    const std::string problem = detail::row_problem(row);
    if (!problem.empty()) throw InvalidArgument(where + problem);
    rows.push_back(std::move(row));
  }
  if (in.bad()) throw RuntimeError("grpo::load_jsonl: read error on '" + path + "'");
  return Dataset::from_rows(std::move(rows));
}

// load_json_array over the file's text; `path` names the source in messages.
inline Dataset parse_json_array(const std::string& text, const std::string& path) {
  if (detail::json_nesting_depth(text) > detail::max_json_depth) {
    throw InvalidArgument("grpo::load_json_array: " + path + ": the JSON nests arrays and objects more than " +
                          std::to_string(detail::max_json_depth) + " deep");
  }
  nlohmann::json array;
  try {
    array = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const auto [line, column] = detail::line_column(text, e.byte > 0 ? e.byte - 1 : 0);
    throw InvalidArgument("grpo::load_json_array: " + path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                          ": invalid JSON (" + e.what() + ")");
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number beyond double (1e400); names the number
    throw InvalidArgument("grpo::load_json_array: " + path + ": invalid JSON (" + e.what() + ")");
  }
  if (!array.is_array()) {
    throw InvalidArgument("grpo::load_json_array: " + path + ": expected a JSON array of row objects, got " +
                          std::string(array.type_name()) + " (for one object per line, use a .jsonl file)");
  }
  std::vector<nlohmann::json> rows;
  rows.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string problem = detail::row_problem(array[i]);
    if (!problem.empty()) {
      throw InvalidArgument("grpo::load_json_array: " + path + ": element " + std::to_string(i) + ": " + problem);
    }
    rows.push_back(std::move(array[i]));
  }
  return Dataset::from_rows(std::move(rows));
}

}  // namespace detail

/// Loads a JSON Lines file: one JSON object per line, blank lines skipped. A malformed line, a non-object, a
/// missing or malformed "prompt" is a grpo::InvalidArgument starting with "grpo::load_jsonl: <path>:<line>: ".
inline Dataset load_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RuntimeError("grpo::load_jsonl: cannot open '" + path + "'");
  return detail::parse_jsonl(in, path);
}

/// Loads a file holding one JSON array of row objects. A parse error names "<path>:<line>:<column>"; a bad
/// element names its index ("grpo::load_json_array: <path>: element 3: ...").
inline Dataset load_json_array(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError("grpo::load_json_array: cannot open '" + path + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return detail::parse_json_array(text, path);
}

/// Loads a dataset by extension: ".jsonl" as JSON Lines, ".json" as a JSON array; anything else, and a file without
/// rows, is an error naming the file.
inline Dataset load_dataset(const std::string& path) {
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (!ends_with(".jsonl") && !ends_with(".json")) {
    throw InvalidArgument("grpo::load_dataset: '" + path +
                          "' has an unknown extension; use .jsonl (one object per line) or .json (an array)");
  }
  Dataset dataset = ends_with(".jsonl") ? load_jsonl(path) : load_json_array(path);
  if (dataset.empty()) throw InvalidArgument("grpo::load_dataset: " + path + " has no rows");
  return dataset;
}

}  // namespace grpo
