#pragma once
// Building RewardInputs from the dataset rows of a generation batch and their completions, for users who score
// outside the trainer (evaluation scripts, examples, tests). Torch-free (grpo::core).

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/detail/prompt_row.hpp"
#include "grpo/error.hpp"
#include "grpo/rewards/columns.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// RewardInputs for `rows.size()` prompts with `num_generations` (G) completions each.
/// rows: the unique prompts' dataset rows, JSON objects with a "prompt" (a string, or a list of {"role",
/// "content"} messages) and any other columns.
/// completions: N = rows.size() * G strings, each prompt's G completions consecutive (row r owns [r*G, (r+1)*G)).
/// completion_ids: N unpadded token-id lists, or empty (then every completion gets an empty list).
/// Fills prompts (each repeated G times; a conversation's prompt text is its messages' JSON, since rendering needs
/// the model's chat template), prompt_messages (when some prompt is a conversation), completions, completion_ids,
/// columns (every column except "prompt", repeated G times; a row lacking a column another row has gets null there) and
/// num_generations; trainer_state and log_metric keep their defaults. Throws grpo::InvalidArgument naming the counts
/// when N != rows * G, and the row when it is not an object with a valid "prompt".
inline RewardInputs make_reward_inputs(const std::vector<nlohmann::json>& rows, std::vector<std::string> completions,
                                       int num_generations, std::vector<std::vector<int64_t>> completion_ids = {}) {
  const std::string where = "grpo::make_reward_inputs: ";
  if (num_generations < 1) {
    throw InvalidArgument(where + "num_generations must be >= 1, got " + std::to_string(num_generations));
  }
  const auto group = static_cast<std::size_t>(num_generations);
  const std::size_t n = rows.size() * group;
  if (completions.size() != n) {
    throw InvalidArgument(where + "got " + std::to_string(completions.size()) + " completions for " +
                          std::to_string(rows.size()) + " rows x num_generations " + std::to_string(num_generations) +
                          " = " + std::to_string(n) + " (each prompt's completions must be consecutive)");
  }
  if (!completion_ids.empty() && completion_ids.size() != n) {
    throw InvalidArgument(where + "got " + std::to_string(completion_ids.size()) + " completion_ids for " +
                          std::to_string(n) + " completions (pass one list per completion, or none)");
  }
  RewardInputs inputs;
  inputs.num_generations = num_generations;
  inputs.prompts.reserve(n);
  std::vector<nlohmann::json> repeated, messages;
  repeated.reserve(n);
  bool conversational = false;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (!row.is_object()) {
      throw InvalidArgument(where + "row " + std::to_string(r) + " is not a JSON object (got " + row.type_name() +
                            "); expected an object like {\"prompt\": \"...\", ...}");
    }
    const std::string problem = detail::row_problem(row);
    if (!problem.empty()) throw InvalidArgument(where + "row " + std::to_string(r) + ": " + problem);
    const auto& prompt = row.at("prompt");
    if (prompt.is_array()) conversational = true;
    for (std::size_t g = 0; g < group; ++g) {
      inputs.prompts.push_back(prompt.is_string() ? prompt.get<std::string>() : prompt.dump());
      messages.push_back(prompt.is_array() ? prompt : nlohmann::json());
      repeated.push_back(row);
    }
  }
  if (conversational) inputs.prompt_messages = std::move(messages);
  inputs.completions = std::move(completions);
  inputs.completion_ids = completion_ids.empty() ? std::vector<std::vector<int64_t>>(n) : std::move(completion_ids);
  inputs.columns = Columns::from_rows(repeated);
  return inputs;
}

}  // namespace grpo
