// One full GRPO optimizer step of the demo configuration through grpo::GRPOTrainer: generation (KV cache, 8
// completions per prompt), reward scoring, advantages, log-probs, policy loss, backward and AdamW. Reports
// ms/step and tokens/s (prompt + completion tokens, TRL's num_tokens) with 1 and 2 LibTorch intra-op threads.
//
// Timing: each repetition builds a fresh trainer with max_steps = warm-up + measured steps and runs train() once;
// a callback stamps the end of every optimizer step, the first kWarmupSteps steps are dropped and every later
// step is one benchmark iteration (manual time), so the numbers are steady-state steps without start-up costs.
// Run with --benchmark_repetitions=N for N fresh trainers (medians across them).
#include <benchmark/benchmark.h>
#include <torch/types.h>

#include <chrono>
#include <filesystem>
#include <grpo/models/llama.hpp>
#include <grpo/rewards/builtin/accuracy.hpp>
#include <grpo/rewards/builtin/format.hpp>
#include <grpo/tokenizers/char_tokenizer.hpp>
#include <grpo/train/trainer.hpp>
#include <memory>
#include <string>
#include <vector>
#include "arithmetic_task.hpp"

namespace {

constexpr int64_t kWarmupSteps = 2;
constexpr int64_t kMeasuredSteps = 8;

// Wall time and token count of every optimizer step.
struct StepClock {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  int64_t last_tokens = 0;
  std::vector<double> seconds;
  std::vector<int64_t> tokens;

  void on_step_end(const grpo::TrainerState& state) {
    const auto now = std::chrono::steady_clock::now();
    seconds.push_back(std::chrono::duration<double>(now - last).count());
    tokens.push_back(state.num_tokens - last_tokens);
    last = now;
    last_tokens = state.num_tokens;
  }
};

// Arg: LibTorch intra-op threads.
void grpo_step_demo(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  torch::manual_seed(0);
  const auto tokenizer = grpo::CharTokenizer("0123456789+=");
  auto model = std::make_shared<grpo::LlamaModel>(grpo::LlamaConfig::tiny(tokenizer.vocab_size()));

  grpo::GRPOConfig config;
  config.output_dir = (std::filesystem::temp_directory_path() / "grpo_step_bench").string();
  config.seed = 0;
  config.num_generations = 8;
  config.per_device_train_batch_size = 256;  // 32 prompts x 8 completions
  config.max_completion_length = 4;
  config.learning_rate = 2e-4;
  config.epsilon_high = 0.28;
  config.max_steps = kWarmupSteps + kMeasuredSteps;
  config.logging_steps = 1000;  // the only log line is written after the last step, outside the timed steps
  config.save_steps = 0;
  config.log_completions = false;
  config.weights = {1.0, 0.1};
  std::vector<grpo::RewardFunction> rewards;
  rewards.push_back(grpo::accuracy_reward());
  rewards.push_back(grpo::format_reward("[0-9]+", "format"));

  grpo::TrainerOptions options;
  options.torch_threads = threads;
  options.default_reporters = false;  // no console, no files: only the steps are timed
  grpo::GRPOTrainer<grpo::LlamaModel, grpo::CharTokenizer> trainer(model, tokenizer, std::move(rewards), config,
                                                                   grpo_examples::arithmetic_dataset({0, 29, "+"}),
                                                                   std::nullopt, options);

  StepClock clock;
  trainer.train(clock);

  std::size_t step = kWarmupSteps;
  int64_t tokens = 0;
  for (auto _ : state) {
    state.SetIterationTime(clock.seconds.at(step));
    tokens += clock.tokens.at(step);
    ++step;
  }
  state.SetItemsProcessed(tokens);  // items/s = prompt + completion tokens per second
  state.counters["threads"] = static_cast<double>(torch::get_num_threads());
  state.counters["tokens_per_step"] =
      static_cast<double>(tokens) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.SetLabel("demo: tiny Llama, 256 completions of <= 4 tokens");
}

}  // namespace

BENCHMARK(grpo_step_demo)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(kMeasuredSteps)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
