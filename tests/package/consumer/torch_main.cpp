// grpo-cpp with LibTorch: the default (dapo) loss on one on-policy micro-batch, and its gradient.
#include <cmath>
#include <cstdio>

#include <grpo/grpo.hpp>

int main() {
  grpo::LossBatch batch;
  batch.logps = torch::full({2, 3}, -1.0, torch::kFloat64).requires_grad_();
  batch.advantages = torch::tensor({1.0, -1.0}, torch::kFloat64);
  batch.mask = torch::ones({2, 3}, torch::kFloat64);
  batch.num_items_in_batch = 6;
  const auto result = grpo::policy_loss(batch, grpo::LossOptions{});
  result.loss.backward();
  // On-policy the ratio is 1: loss = -sum(A)/6 = 0 and d loss / d logp[i,t] = -A_i / 6.
  const double g00 = batch.logps.grad()[0][0].item<double>();
  const bool ok = std::abs(result.loss.item<double>()) < 1e-12 && std::abs(g00 + 1.0 / 6.0) < 1e-12;
  std::printf("consumer_torch: loss %.6f grad[0,0] %.6f -> %s\n", result.loss.item<double>(), g00, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
