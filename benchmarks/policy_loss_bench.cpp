// policy_loss forward + backward, float32, default options (dapo, off-policy ratios), at B x T.
#include <benchmark/benchmark.h>

#include <grpo/grpo.hpp>

namespace {

void policy_loss_forward_backward(benchmark::State& state) {
  const int64_t rows = state.range(0), tokens = state.range(1);
  torch::manual_seed(0);
  grpo::LossBatch batch;
  const auto logps = -torch::rand({rows, tokens}) * 3;
  batch.old_logps = logps + (torch::rand({rows, tokens}) - 0.5) * 0.4;
  batch.advantages = torch::randn({rows});
  batch.mask = torch::ones({rows, tokens});
  batch.num_items_in_batch = static_cast<double>(rows * tokens);
  const grpo::LossOptions options;
  for (auto _ : state) {
    batch.logps = logps.clone().requires_grad_();
    auto result = grpo::policy_loss(batch, options);
    result.loss.backward();
    benchmark::DoNotOptimize(batch.logps.grad().data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * rows * tokens);
}

}  // namespace

BENCHMARK(policy_loss_forward_backward)
    ->Args({64, 512})
    ->Args({64, 1024})
    ->Args({256, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
