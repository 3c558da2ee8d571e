#pragma once
// What a dataset row's "prompt" may be: a string, or a conversation as TRL has it (a non-empty list of
// {"role", "content"} messages with string values). Shared by data/dataset.hpp and rewards/inputs.hpp.

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace grpo::detail {

// Empty when `prompt` is a conversation: a non-empty array of objects with a string "role" and a string "content";
// otherwise what is wrong with it.
inline std::string messages_problem(const nlohmann::json& prompt) {
  if (prompt.empty()) return "\"prompt\" is an empty list of messages; a conversation needs at least one message";
  for (std::size_t m = 0; m < prompt.size(); ++m) {
    const auto& message = prompt[m];
    const std::string where = "\"prompt\" message " + std::to_string(m) + " ";
    if (!message.is_object()) {
      return where + "must be an object like {\"role\": \"user\", \"content\": \"...\"}, got " + message.type_name();
    }
    for (const char* key : {"role", "content"}) {
      const auto it = message.find(key);
      if (it == message.end()) return where + "has no \"" + key + "\"";
      if (!it->is_string()) {
        return where + "has a \"" + key + "\" that is " + it->type_name() + ", not a string: " + it->dump();
      }
    }
  }
  return {};
}

// Empty unless `row` is a JSON object whose "prompt" is a string or a conversation (messages_problem); otherwise
// what is wrong and how to fix it.
inline std::string row_problem(const nlohmann::json& row) {
  if (!row.is_object()) {
    return std::string("expected a JSON object like {\"prompt\": \"...\"}, got ") + row.type_name();
  }
  const auto prompt = row.find("prompt");
  if (prompt == row.end()) {
    return "row has no \"prompt\" field; every row needs a \"prompt\" (a string, or a list of "
           "{\"role\", \"content\"} messages)";
  }
  if (prompt->is_array()) return messages_problem(*prompt);
  if (!prompt->is_string()) {
    return std::string("\"prompt\" must be a string or a list of {\"role\", \"content\"} messages, got ") +
           prompt->type_name() + " " + prompt->dump();
  }
  return {};
}

}  // namespace grpo::detail
