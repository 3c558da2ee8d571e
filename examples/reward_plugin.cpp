// A reward plugin for grpo-train: a shared library with one factory, built with the package's CMake helper
//   grpo_add_reward_plugin(my_rewards SOURCES reward_plugin.cpp)        (after find_package(grpo))
// and named in a run file:
//   {"type": "plugin", "library": "build/examples/libreward_plugin.so", "factory": "make_answer_length_reward",
//    "options": {"target": 2}, "columns": {"solution": "answer"}}
#include <cmath>
#include <string>
#include <string_view>

#include <grpo/rewards/plugin.hpp>

// Rewards completions whose length is close to the length of the ground truth (column "solution", which the run
// file can bind to any dataset column), plus `target` characters of slack: 0 at the right length, down to -1.
GRPO_REWARD_PLUGIN(make_answer_length_reward, options) {
  const double target = options.value("target", 0.0);
  if (target < 0) throw std::invalid_argument("\"target\" must be >= 0, got " + std::to_string(target));
  return grpo::RewardFunction(
      "answer_length",
      [target](std::string_view completion, const grpo::Row& row) {
        const auto truth = row.get<std::string>("solution");
        const double off = std::abs(static_cast<double>(completion.size()) - static_cast<double>(truth.size()));
        return -std::min(1.0, std::max(0.0, off - target) / 10.0);
      },
      {"solution"});
}

// A factory whose reward throws, for the tests of error reporting.
GRPO_REWARD_PLUGIN(make_throwing_reward, options) {
  (void)options;
  return grpo::RewardFunction("throws", [](std::string_view, const grpo::Row&) -> double {
    throw std::runtime_error("this reward always fails");
  });
}
