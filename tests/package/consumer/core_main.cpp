// Torch-free use of grpo-cpp: group advantages of two prompts with two completions each.
#include <cmath>
#include <cstdio>

#include <grpo/core/advantages.hpp>

int main() {
  Eigen::MatrixXd rewards(4, 1);
  rewards << 1.0, 0.0, 2.0, 2.0;
  grpo::AdvantageOptions options;
  options.num_generations = 2;
  const auto result = grpo::compute_advantages(rewards, options);
  // Group 1: mean 0.5, std sqrt(0.5); group 2 has zero spread.
  const double expected = 0.5 / (std::sqrt(0.5) + 1e-4);
  const bool ok =
      std::abs(result.advantages[0] - expected) < 1e-12 && result.advantages[2] == 0.0 && result.zero_std[2];
  std::printf("consumer_core: advantages %.6f %.6f %.6f %.6f -> %s\n", result.advantages[0], result.advantages[1],
              result.advantages[2], result.advantages[3], ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
