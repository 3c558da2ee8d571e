// Completion log-probs + GRPO loss + backward from hidden states [B,T,H] and an LM head [V,H]: the chunked head
// (grpo::lm_head_logps) against full logits (torch::linear, then grpo::selective_log_softmax, as Policy does).
//
// Time: Google Benchmark's real time per step (forward, policy_loss with default options, backward to hidden and
// weight), LibTorch at 2 intra-op threads (torch::set_num_threads(2)); cpu_s_per_step is the process CPU time of a
// step (all threads), a steadier comparison than wall time on a shared machine. Ratios divide by the median of the
// full-logits repetitions of the same V in the same run.
// Peak memory: each (path, V) runs once more in a child process (this program re-executed with
// GRPO_LM_HEAD_MEMORY_CHILD set): it builds the inputs, runs one warm-up step, frees everything the step made,
// returns free heap pages to the system (malloc_trim), resets the kernel's peak-RSS mark (write "5" to
// /proc/self/clear_refs), runs one step and reports VmHWM - VmRSS-before-the-step: the extra resident memory of
// one step at its peak, including the gradients of hidden and weight. glibc's mmap threshold is pinned to 1 MiB in
// the child so that freed blocks are unmapped and a later allocation cannot hide in already-resident heap pages.
// LibTorch's CPU allocator does not cache, so RSS sees every tensor.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/chunked_lm_head.hpp"
#include "grpo/grpo.hpp"

namespace {

constexpr int64_t kRows = 8, kTokens = 256, kWidth = 512;  // B x T = 2048 positions, H = 512
constexpr int kThreads = 2;

enum Path : int64_t { full_logits = 0, chunked = 1 };

struct Step {
  torch::Tensor hidden, weight, targets;
  grpo::LossBatch batch;
  grpo::LossOptions options;
};

Step make_step(int64_t vocab) {
  torch::manual_seed(0);
  Step s;
  s.hidden = torch::randn({kRows, kTokens, kWidth}).requires_grad_();
  s.weight = (torch::randn({vocab, kWidth}) * 0.05).requires_grad_();
  s.targets = torch::randint(0, vocab, {kRows, kTokens}, torch::kLong);
  s.batch.old_logps = -torch::rand({kRows, kTokens}) * 3;
  s.batch.advantages = torch::randn({kRows});
  s.batch.mask = torch::ones({kRows, kTokens});
  s.batch.num_items_in_batch = static_cast<double>(kRows * kTokens);
  return s;
}

void run_step(Step& s, Path path, int64_t chunk_rows = 0) {
  s.batch.logps = path == chunked ? grpo::lm_head_logps(s.hidden, s.weight, s.targets, 1.0, chunk_rows)
                                  : grpo::selective_log_softmax(torch::linear(s.hidden, s.weight), s.targets);
  auto loss = grpo::policy_loss(s.batch, s.options).loss;
  loss.backward();
  s.batch.logps = torch::Tensor();
}

void clear_grads(Step& s) {
  s.hidden.mutable_grad() = torch::Tensor();
  s.weight.mutable_grad() = torch::Tensor();
}

int64_t status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  throw std::runtime_error("no " + field + " in /proc/self/status");
}

// The child's work: prints the extra peak resident memory of one step in bytes.
int memory_child(const std::string& spec) {
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  torch::set_num_threads(kThreads);
  std::istringstream fields(spec);
  int64_t path_index = 0, vocab = 0, chunk_rows = 0;
  char colon = ':';
  fields >> path_index >> colon >> vocab >> colon >> chunk_rows;
  const auto path = static_cast<Path>(path_index);
  auto step = make_step(vocab);
  run_step(step, path, chunk_rows);  // warm-up: thread pools and BLAS buffers are not the step's memory
  clear_grads(step);
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
  const auto before = status_kib("VmRSS");
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto faults_before = usage.ru_minflt;
  run_step(step, path, chunk_rows);
  const auto peak = status_kib("VmHWM");
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%lld %lld\n", static_cast<long long>((peak - before) * 1024),
              static_cast<long long>(usage.ru_minflt - faults_before));
  return 0;
}

struct MemoryUse {
  double extra_peak_bytes = 0;
  double page_faults = 0;  // minor page faults of the step: fresh pages the step touched
};

// Runs the child for (path, vocab, chunk_rows) once and caches its answer.
MemoryUse memory_use(Path path, int64_t vocab, int64_t chunk_rows) {
  static std::map<std::string, MemoryUse> cache;
  const auto key =
      std::to_string(static_cast<int64_t>(path)) + ":" + std::to_string(vocab) + ":" + std::to_string(chunk_rows);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  const std::string command = "GRPO_LM_HEAD_MEMORY_CHILD=" + key + " /proc/" + std::to_string(getpid()) + "/exe";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  long long bytes = -1, faults = -1;
  if (!pipe || std::fscanf(pipe.get(), "%lld %lld", &bytes, &faults) != 2 || bytes < 0) {
    throw std::runtime_error("memory child failed: " + command);
  }
  return cache[key] = MemoryUse{static_cast<double>(bytes), static_cast<double>(faults)};
}

// Per-step {wall, process CPU} seconds of the full-logits path, per V, over its repetitions (they run before the
// chunked ones).
struct Times {
  std::vector<double> wall, cpu;
};
std::map<int64_t, Times>& full_times() {
  static std::map<int64_t, Times> times;
  return times;
}

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void lm_head_logps_loss_backward(benchmark::State& state) {
  const auto path = static_cast<Path>(state.range(0));
  const int64_t vocab = state.range(1), chunk_rows = state.range(2);
  torch::set_num_threads(kThreads);
  auto step = make_step(vocab);
  double wall = 0, cpu = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const auto cpu_start = process_cpu_seconds();
    run_step(step, path, chunk_rows);
    benchmark::DoNotOptimize(step.weight.grad().data_ptr<float>());
    cpu += process_cpu_seconds() - cpu_start;
    wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    clear_grads(step);
  }
  const auto iterations = static_cast<double>(state.iterations());
  const double per_step = wall / iterations, cpu_per_step = cpu / iterations;
  const auto memory = memory_use(path, vocab, chunk_rows);
  const double peak = memory.extra_peak_bytes;
  state.counters["peak_extra_MiB"] = peak / (1024.0 * 1024.0);
  state.counters["page_faults"] = memory.page_faults;
  state.counters["cpu_s_per_step"] = cpu_per_step;
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(kRows * kTokens) / per_step);
  if (path == full_logits) {
    full_times()[vocab].wall.push_back(per_step);
    full_times()[vocab].cpu.push_back(cpu_per_step);
  } else if (!full_times()[vocab].wall.empty()) {
    state.counters["time_vs_full"] = per_step / median(full_times()[vocab].wall);
    state.counters["cpu_vs_full"] = cpu_per_step / median(full_times()[vocab].cpu);
    state.counters["memory_vs_full"] = peak / memory_use(full_logits, vocab, 0).extra_peak_bytes;
  }
  state.SetLabel(std::string(path == chunked ? "chunked" : "full logits") + " B*T=" + std::to_string(kRows * kTokens) +
                 " H=" + std::to_string(kWidth) + " V=" + std::to_string(vocab) +
                 (path == chunked ? " chunk_rows=" + std::to_string(grpo::lm_head_chunk_rows(vocab, chunk_rows)) : "") +
                 " threads=" + std::to_string(kThreads));
}

// The memory child runs before main (and before Google Benchmark parses the command line) and exits.
const bool memory_child_done = [] {
  if (const char* spec = std::getenv("GRPO_LM_HEAD_MEMORY_CHILD")) std::exit(memory_child(spec));
  return true;
}();

}  // namespace

// Args: {path (0 full logits, 1 chunked), V, chunk_rows (0: automatic)}; the full path of a V runs before its
// chunked paths (for the ratios). The last rows sweep the chunk size at V = 32768 (automatic: 256 rows).
BENCHMARK(lm_head_logps_loss_backward)
    ->ArgNames({"chunked", "V", "chunk_rows"})
    ->Args({full_logits, 4096, 0})
    ->Args({chunked, 4096, 0})
    ->Args({full_logits, 32768, 0})
    ->Args({chunked, 32768, 0})
    ->Args({chunked, 32768, 32})
    ->Args({chunked, 32768, 128})
    ->Args({chunked, 32768, 512})
    ->Args({chunked, 32768, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
