// Generation throughput (new tokens per second) with and without the KV cache against completion length.
// With the cache each new token costs one single-position forward plus attention over the cache, so tokens/s
// stays nearly flat as completions grow; without it every token recomputes the whole sequence.
#include <benchmark/benchmark.h>

#include <grpo/generation/generate.hpp>
#include <grpo/models/llama.hpp>

#include "bench_models.hpp"

namespace {

// Args: {completion length, use_cache}. Batch of 8 prompts of 32 tokens, sampling at temperature 1, no EOS.
void generate_tokens(benchmark::State& state) {
  const int64_t completion_length = state.range(0);
  const bool use_cache = state.range(1) != 0;
  torch::manual_seed(0);
  grpo::LlamaModel model(grpo_bench::small_llama_config());
  model.eval();
  const int64_t batch = 8, prompt_length = 32;
  const auto prompts = torch::randint(0, 1024, {batch, prompt_length}, torch::kLong);
  grpo::GenerationOptions options;
  options.max_new_tokens = completion_length;
  options.use_cache = use_cache;
  options.seed = 0;
  for (auto _ : state) {
    const auto result = grpo::generate(model, prompts, {}, options);
    benchmark::DoNotOptimize(result.completion_ids.data_ptr<int64_t>());
  }
  state.SetItemsProcessed(state.iterations() * batch * completion_length);
  state.SetLabel(use_cache ? "kv_cache" : "no_cache");
}

// The demo's model (LlamaConfig::tiny over 16 ids), batch 32 (8 prompts x 4 generations), prompts of 8 tokens.
void generate_tokens_tiny(benchmark::State& state) {
  const int64_t completion_length = state.range(0);
  torch::manual_seed(0);
  grpo::LlamaModel model(grpo::LlamaConfig::tiny(16));
  model.eval();
  const auto prompts = torch::randint(0, 16, {32, 8}, torch::kLong);
  grpo::GenerationOptions options;
  options.max_new_tokens = completion_length;
  options.seed = 0;
  for (auto _ : state) {
    const auto result = grpo::generate(model, prompts, {}, options);
    benchmark::DoNotOptimize(result.completion_ids.data_ptr<int64_t>());
  }
  state.SetItemsProcessed(state.iterations() * 32 * completion_length);
}

}  // namespace

BENCHMARK(generate_tokens_tiny)->ArgName("new_tokens")->Arg(8)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK(generate_tokens)
    ->ArgNames({"new_tokens", "cache"})
    ->Args({32, 1})
    ->Args({128, 1})
    ->Args({512, 1})
    ->Args({32, 0})
    ->Args({128, 0})  // 512 without the cache takes minutes here (measured once: see RESULTS.md)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
