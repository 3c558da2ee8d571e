#pragma once
// Batches shared by the reward tests.

#include <string>
#include <vector>

#include "grpo/rewards/scoring.hpp"

namespace grpo_test {

// Two prompts x G = 2 completions with an "answer" column (already repeated per completion) and a "difficulty".
inline grpo::RewardInputs arithmetic_inputs() {
  grpo::RewardInputs in;
  in.prompts = {"What is 2+3?", "What is 2+3?", "What is 10*4?", "What is 10*4?"};
  in.completions = {"<answer>5</answer>", "it is 6", "<answer>40</answer>", "\\boxed{41}"};
  in.completion_ids = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}, {10}};
  in.columns = grpo::Columns::from_rows({{{"prompt", "What is 2+3?"}, {"answer", "5"}, {"difficulty", 1}},
                                         {{"prompt", "What is 2+3?"}, {"answer", "5"}, {"difficulty", 1}},
                                         {{"prompt", "What is 10*4?"}, {"answer", 40}, {"difficulty", 2}},
                                         {{"prompt", "What is 10*4?"}, {"answer", 40}, {"difficulty", 2}}});
  in.num_generations = 2;
  return in;
}

// Scoring options with a thread count and optional weights.
inline grpo::ScoringOptions scoring(std::size_t threads, std::vector<double> weights = {}) {
  grpo::ScoringOptions options;
  options.num_threads = threads;
  options.weights = std::move(weights);
  return options;
}

}  // namespace grpo_test
