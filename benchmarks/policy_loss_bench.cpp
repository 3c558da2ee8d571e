// policy_loss forward + backward + metrics, float32, default options (dapo, off-policy ratios, full mask), at
// B x T, with 1 and 2 intra-op threads, and at 64 x 1024 on one thread with the KL term (beta 0.04, reference
// log-probs) and with sequence-level importance sampling (GSPO): the fused kernel (grpo::policy_loss) against the
// composed LibTorch ops (grpo::detail::policy_loss_composed), and against the memory-bandwidth floor: the bytes the
// loss must move (logps, old_logps, mask and advantages read once, the gradient written once) divided by the bandwidth
// of a stream triad a[i] = b[i] + s c[i] measured in this run with the same thread count.
#include <algorithm>
#include <chrono>
#include <map>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <grpo/grpo.hpp>

namespace {

using Clock = std::chrono::steady_clock;

// Triad bandwidth in bytes/s (STREAM's count: two arrays read, one written), best of several sweeps over
// arrays of 16 Mi floats each (3 x 64 MiB, far beyond the caches), split over the intra-op threads.
double triad_bandwidth(int threads) {
  static std::map<int, double> cache;
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  at::set_num_threads(threads);
  const int64_t n = int64_t{1} << 24;
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  double best = 1e30;
  for (int sweep = 0; sweep < 12; ++sweep) {
    const auto start = Clock::now();
    at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
    });
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return cache[threads] = 3.0 * static_cast<double>(n) * sizeof(float) / best;
}

void stream_triad(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(triad_bandwidth(threads));
  state.counters["bandwidth"] =
      benchmark::Counter(triad_bandwidth(threads), benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
}

// Mean seconds per iteration of the composed path, by (rows, tokens, threads), for the fused path's speed-up.
std::map<std::vector<int64_t>, double>& composed_seconds() {
  static std::map<std::vector<int64_t>, double> seconds;
  return seconds;
}

// What the options add to the default dapo loss.
enum class Variant { dapo, kl, sequence };

void policy_loss(benchmark::State& state, bool fused, Variant variant = Variant::dapo) {
  const int64_t rows = state.range(0), tokens = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const double bandwidth = triad_bandwidth(threads);
  at::set_num_threads(threads);
  torch::manual_seed(0);
  grpo::LossBatch batch;
  const auto logps = -torch::rand({rows, tokens}) * 3;
  batch.old_logps = logps + (torch::rand({rows, tokens}) - 0.5) * 0.4;
  batch.advantages = torch::randn({rows});
  batch.mask = torch::ones({rows, tokens});
  batch.num_items_in_batch = static_cast<double>(rows * tokens);
  grpo::LossOptions options;
  if (variant == Variant::kl) {
    options.beta = 0.04;
    batch.ref_logps = logps + (torch::rand({rows, tokens}) - 0.5) * 0.4;
  }
  if (variant == Variant::sequence) options.importance_sampling_level = grpo::ImportanceSampling::sequence;
  double total = 0;
  for (auto _ : state) {
    batch.logps = logps.clone().requires_grad_();  // a fresh leaf, outside the timed region
    const auto start = Clock::now();
    auto result = fused ? grpo::policy_loss(batch, options) : grpo::detail::policy_loss_composed(batch, options);
    result.loss.backward();
    benchmark::DoNotOptimize(batch.logps.grad().data_ptr<float>());
    benchmark::DoNotOptimize(result.metrics);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    total += seconds;
  }
  const double mean = total / static_cast<double>(state.iterations());
  const double bytes = static_cast<double>(((variant == Variant::kl ? 5 : 4) * rows * tokens + rows) *
                                           static_cast<int64_t>(sizeof(float)));
  const double floor = bytes / bandwidth;
  state.SetItemsProcessed(state.iterations() * rows * tokens);
  state.counters["bytes_moved"] = benchmark::Counter(bytes, benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  state.counters["bandwidth"] =
      benchmark::Counter(bandwidth, benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
  state.counters["floor_us"] = floor * 1e6;
  state.counters["time/floor"] = mean / floor;
  const std::vector<int64_t> key{rows, tokens, threads, static_cast<int64_t>(variant)};
  if (!fused) {
    composed_seconds()[key] = mean;
  } else if (auto it = composed_seconds().find(key); it != composed_seconds().end()) {
    state.counters["speedup_vs_composed"] = it->second / mean;
  }
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    for (const auto& [rows, tokens] : std::vector<std::pair<int64_t, int64_t>>{{64, 512}, {64, 1024}, {256, 1024}}) {
      b->Args({rows, tokens, threads});
    }
  }
  b->ArgNames({"B", "T", "threads"})->Unit(benchmark::kMillisecond)->UseManualTime();
}

void one_shape(benchmark::internal::Benchmark* b) {
  b->Args({64, 1024, 1})->ArgNames({"B", "T", "threads"})->Unit(benchmark::kMillisecond)->UseManualTime();
}

}  // namespace

BENCHMARK(stream_triad)->Arg(1)->Arg(2)->ArgName("threads")->Iterations(1);
BENCHMARK_CAPTURE(policy_loss, composed, false)->Apply(shapes);
BENCHMARK_CAPTURE(policy_loss, fused, true)->Apply(shapes);
BENCHMARK_CAPTURE(policy_loss, composed_kl, false, Variant::kl)->Apply(one_shape);
BENCHMARK_CAPTURE(policy_loss, fused_kl, true, Variant::kl)->Apply(one_shape);
BENCHMARK_CAPTURE(policy_loss, composed_sequence, false, Variant::sequence)->Apply(one_shape);
BENCHMARK_CAPTURE(policy_loss, fused_sequence, true, Variant::sequence)->Apply(one_shape);
