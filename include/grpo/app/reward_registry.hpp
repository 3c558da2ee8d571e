#pragma once
// Reward functions described in a config file (grpo-train's "rewards" list): built-ins by type, plugins compiled by
// the user (rewards/plugin.hpp), each with an optional name, weight and column bindings. Torch-free.
//
//   {"type": "accuracy", "column": "answer", "comparison": "numeric", "weight": 1.0}
//   {"type": "regex_format", "pattern": "^Answer: -?[0-9]+$", "name": "format", "weight": 0.5}
//   {"type": "think_answer_format"}
//   {"type": "soft_overlong_punishment", "max_completion_length": 256, "soft_punish_cache": 64}
//   {"type": "repetition_penalty", "ngram_size": 3, "max_penalty": -1.0}
//   {"type": "code_execution", "column": "tests", "timeout_seconds": 5, "memory_mb": 512, "interpreter": ["python3"]}
//   {"type": "plugin", "library": "./libmy_reward.so", "factory": "make_my_reward", "options": {...},
//    "columns": {"solution": "answer"}}
//
// "columns" binds the column names a reward reads to the dataset's columns ({"solution": "answer"}: the reward's
// row["solution"] is the dataset's "answer"). "weight" defaults to 1. Unknown keys and types are errors naming the
// entry.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/rewards/builtin/code_execution.hpp"
#include "grpo/rewards/builtin/format.hpp"
#include "grpo/rewards/builtin/repetition.hpp"
#include "grpo/rewards/builtin/soft_overlong_punishment.hpp"
#include "grpo/rewards/plugin.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// A reward function built from a config entry, with its weight.
struct ConfiguredReward {
  RewardFunction function;
  double weight = 1.0;
};

/// The built-in reward types reward_from_config knows.
inline const std::vector<std::string>& builtin_reward_types() {
  static const std::vector<std::string> types = {
      "accuracy",       "regex_format", "think_answer_format", "soft_overlong_punishment", "repetition_penalty",
      "code_execution", "plugin"};
  return types;
}

/// `function` under another name (for metrics and errors), same behaviour and columns.
inline RewardFunction renamed_reward(RewardFunction function, const std::string& name) {
  auto shared = std::make_shared<RewardFunction>(std::move(function));
  if (shared->is_per_completion()) {
    return RewardFunction(
        name, [shared](std::string_view completion, const Row& row) { return shared->call_single(completion, row); },
        shared->required_columns());
  }
  return RewardFunction(
      name, [shared](const RewardInputs& inputs) { return shared->call_batch(inputs); }, shared->required_columns());
}

/// `function` reading dataset column `bindings[c]` wherever it reads column c. The result is a batch function
/// (bound per-completion functions are called one after another).
inline RewardFunction bind_reward_columns(RewardFunction function, const std::map<std::string, std::string>& bindings) {
  if (bindings.empty()) return function;
  auto shared = std::make_shared<RewardFunction>(std::move(function));
  std::vector<std::string> required;
  for (const auto& column : shared->required_columns()) {
    const auto it = bindings.find(column);
    required.push_back(it == bindings.end() ? column : it->second);
  }
  return RewardFunction(
      shared->name(),
      [shared, bindings](const RewardInputs& inputs) {
        RewardInputs bound = inputs;
        for (const auto& [name, column] : bindings) bound.columns.set(name, inputs.columns.at(column));
        if (!shared->is_per_completion()) return shared->call_batch(bound);
        std::vector<double> out;
        out.reserve(bound.size());
        for (std::size_t i = 0; i < bound.size(); ++i)
          out.push_back(shared->call_single(bound.completions[i], Row(bound, i)));
        return out;
      },
      required);
}

namespace detail {

// Checks that `entry` has only `allowed` keys (plus the common ones), naming the entry.
inline void check_reward_keys(const nlohmann::json& entry, std::vector<std::string> allowed, const std::string& where) {
  for (const char* common : {"type", "name", "weight", "columns"}) allowed.emplace_back(common);
  for (const auto& item : entry.items()) {
    if (std::find(allowed.begin(), allowed.end(), item.key()) != allowed.end()) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    throw InvalidArgument(where + "unknown key \"" + item.key() + "\" (this type takes: " + list + ")");
  }
}

template <class T>
T reward_option(const nlohmann::json& entry, const char* key, T fallback, const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InvalidArgument(where + "\"" + key + "\" has the wrong type: " + it->dump());
  }
}

}  // namespace detail

/// The reward function of config entry `entry` (see the top of this file); `where` prefixes errors (e.g.
/// "run.json: rewards[1]: "); `max_completion_length` is soft_overlong_punishment's default.
inline ConfiguredReward reward_from_config(const nlohmann::json& entry, const std::string& where,
                                           int64_t max_completion_length) {
  using detail::reward_option;
  if (!entry.is_object()) throw InvalidArgument(where + "a reward must be a JSON object, got " + entry.dump());
  const auto type = reward_option<std::string>(entry, "type", "", where);
  std::optional<RewardFunction> function;
  if (type == "accuracy") {
    detail::check_reward_keys(entry, {"column", "comparison", "tolerance"}, where);
    AccuracyReward options;
    options.column = reward_option<std::string>(entry, "column", options.column, where);
    options.tolerance = reward_option<double>(entry, "tolerance", options.tolerance, where);
    const auto comparison = reward_option<std::string>(entry, "comparison", "automatic", where);
    if (comparison == "automatic") {
      options.comparison = AnswerComparison::automatic;
    } else if (comparison == "exact") {
      options.comparison = AnswerComparison::exact;
    } else if (comparison == "numeric") {
      options.comparison = AnswerComparison::numeric;
    } else {
      throw InvalidArgument(where + "\"comparison\" must be \"automatic\", \"exact\" or \"numeric\", got \"" +
                            comparison + "\"");
    }
    function = accuracy_reward(options);
  } else if (type == "regex_format") {
    detail::check_reward_keys(entry, {"pattern"}, where);
    if (!entry.contains("pattern")) throw InvalidArgument(where + "regex_format needs a \"pattern\"");
    function = format_reward(reward_option<std::string>(entry, "pattern", "", where));
  } else if (type == "think_answer_format") {
    detail::check_reward_keys(entry, {}, where);
    function = think_answer_format_reward();
  } else if (type == "soft_overlong_punishment") {
    detail::check_reward_keys(entry, {"max_completion_length", "soft_punish_cache"}, where);
    function = soft_overlong_punishment_reward(
        reward_option<int64_t>(entry, "max_completion_length", max_completion_length, where),
        reward_option<int64_t>(entry, "soft_punish_cache", max_completion_length / 4, where));
  } else if (type == "repetition_penalty") {
    detail::check_reward_keys(entry, {"ngram_size", "max_penalty"}, where);
    function = repetition_penalty_reward(reward_option<int>(entry, "ngram_size", 3, where),
                                         reward_option<double>(entry, "max_penalty", -1.0, where));
  } else if (type == "code_execution") {
    // Sandbox options (rewards/sandbox.hpp) under their own names; "timeout_seconds" is per test.
    detail::check_reward_keys(entry,
                              {"column", "interpreter", "program_file", "timeout_seconds", "cpu_seconds", "memory_mb",
                               "file_size_mb", "max_processes", "require_isolation", "temp_parent"},
                              where);
    CodeExecutionReward options;
    options.column = reward_option<std::string>(entry, "column", options.column, where);
    options.name = reward_option<std::string>(entry, "name", options.name, where);
    const auto interpreter = entry.find("interpreter");
    if (interpreter != entry.end() && interpreter->is_string()) {
      options.interpreter = {interpreter->get<std::string>()};
    } else {
      options.interpreter = reward_option<std::vector<std::string>>(entry, "interpreter", options.interpreter, where);
    }
    options.program_file = reward_option<std::string>(entry, "program_file", options.program_file, where);
    auto& sandbox = options.sandbox;
    sandbox.timeout_seconds = reward_option<double>(entry, "timeout_seconds", sandbox.timeout_seconds, where);
    sandbox.cpu_seconds = reward_option<int>(entry, "cpu_seconds", sandbox.cpu_seconds, where);
    sandbox.memory_mb = reward_option<int64_t>(entry, "memory_mb", sandbox.memory_mb, where);
    sandbox.file_size_mb = reward_option<int64_t>(entry, "file_size_mb", sandbox.file_size_mb, where);
    sandbox.max_processes = reward_option<int>(entry, "max_processes", sandbox.max_processes, where);
    sandbox.require_isolation = reward_option<bool>(entry, "require_isolation", sandbox.require_isolation, where);
    sandbox.temp_parent = reward_option<std::string>(entry, "temp_parent", sandbox.temp_parent, where);
    try {
      function = code_execution_reward(std::move(options));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(where + e.what());
    }
  } else if (type == "plugin") {
    detail::check_reward_keys(entry, {"library", "factory", "options"}, where);
    if (!entry.contains("library") || !entry.contains("factory")) {
      throw InvalidArgument(where + "a plugin needs \"library\" (a shared library path) and \"factory\"");
    }
    try {
      function = load_reward_plugin(reward_option<std::string>(entry, "library", "", where),
                                    reward_option<std::string>(entry, "factory", "", where),
                                    entry.value("options", nlohmann::json::object()));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(where + e.what());
    }
  } else {
    std::string known;
    for (const auto& t : builtin_reward_types()) known += (known.empty() ? "" : ", ") + t;
    throw InvalidArgument(where + (type.empty() ? std::string("no \"type\"") : "unknown reward type \"" + type + "\"") +
                          " (known: " + known + ")");
  }
  ConfiguredReward out{std::move(*function), reward_option<double>(entry, "weight", 1.0, where)};
  if (entry.contains("name"))
    out.function = renamed_reward(std::move(out.function), entry.at("name").get<std::string>());
  if (entry.contains("columns")) {
    const auto& columns = entry.at("columns");
    if (!columns.is_object()) throw InvalidArgument(where + "\"columns\" must be an object {\"reads\": \"column\"}");
    std::map<std::string, std::string> bindings;
    for (const auto& item : columns.items()) {
      if (!item.value().is_string()) throw InvalidArgument(where + "\"columns\" values must be column names (strings)");
      bindings[item.key()] = item.value().get<std::string>();
    }
    out.function = bind_reward_columns(std::move(out.function), bindings);
  }
  return out;
}

}  // namespace grpo
