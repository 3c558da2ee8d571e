// The GRPO math kernel on plain tensors: rewards -> group advantages -> log-probs -> clipped loss -> gradient.
// Two prompts, G = 4 completions each, 6 completion tokens, a 16-token vocabulary.
#include <cmath>
#include <cstdio>

#include <grpo/grpo.hpp>

int main() {
  const int G = 4, N = 8, T = 6, V = 16;
  torch::manual_seed(0);

  // 1. Rewards of K = 2 functions for N completions (NaN = "none": the function does not apply to that row).
  Eigen::MatrixXd rewards(N, 2);
  const double none = std::nan("");
  rewards << 1, 1,  //
      0, 1,         //
      0, 0,         //
      1, none,      //
      1, 0,         //
      1, 1,         //
      1, 1,         //
      1, 1;
  grpo::AdvantageOptions adv_options;
  adv_options.num_generations = G;
  adv_options.weights = {1.0, 0.5};  // accuracy counts double the format reward
  const grpo::Advantages adv = grpo::compute_advantages(rewards, adv_options);

  // 2. Completion log-probs from a model's logits over prompt + completion (here random "model outputs").
  const auto policy_logits = torch::randn({N, 10 + T, V}, torch::requires_grad());
  const auto completion_ids = torch::randint(0, V, {N, T}, torch::kLong);
  const auto logps = grpo::completion_logps(policy_logits, completion_ids, /*temperature=*/1.0);

  // 3. The log-probs under the policy that sampled them (one update ago), and the completion mask.
  const auto old_logps = (logps.detach() + 0.1 * torch::randn({N, T})).clone();
  auto mask = torch::ones({N, T});
  mask.index_put_({torch::indexing::Slice(0, 4), torch::indexing::Slice(4, T)}, 0);  // 4 shorter completions

  // 4. The loss (DAPO by default) and its metrics.
  grpo::LossBatch batch;
  batch.logps = logps;
  batch.old_logps = old_logps;
  batch.advantages = torch::from_blob(const_cast<double*>(adv.advantages.data()), {N}, torch::kFloat64).clone();
  batch.mask = mask;
  batch.num_items_in_batch = mask.sum().item<double>();
  grpo::LossOptions options;
  options.epsilon_high = 0.28;  // DAPO clip-higher
  const grpo::LossResult result = grpo::policy_loss(batch, options);
  result.loss.backward();

  std::printf("advantages:");
  for (int i = 0; i < N; ++i) std::printf(" %+.3f", adv.advantages[i]);
  std::printf("\nloss %.6f, |grad of logits| %.6f\n", result.loss.item<double>(),
              policy_logits.grad().norm().item<double>());
  for (const auto& [name, value] : result.metrics) std::printf("  %-24s %.4f\n", name.c_str(), value);
  return 0;
}
