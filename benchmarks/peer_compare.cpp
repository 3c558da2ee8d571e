// C++ against its Python peer in one run: grpo-cpp (LibTorch) and benchmarks/peer/peer.py (eager PyTorch, run
// with Debian's /usr/bin/python3) time the same work on identical inputs, and this program prints both medians
// and the ratio. Compared:
//   - the policy loss (TRL's formulation, dapo default) forward + backward + clip metrics, float32, B x T in
//     {64x512, 64x1024, 256x1024}; the C++ side twice, as bench_loss_timer (this project's Release flags, -O3) and
//     bench_loss_timer_o2 (RelWithDebInfo's, -O2 -g), each in its own process, alternating with the Python peer
//     over --rounds rounds (the median of the rounds' medians is reported);
//   - the Llama model's forward (4 layers, width 256, vocab 1024, float32) on 8 x 128 tokens;
//   - a greedy generate loop with and without the KV cache (8 prompts of 32 tokens).
// The inputs, the weights (model.safetensors + config.json) and the C++ outputs go to a temporary directory that
// the Python side reads, so both sides see the same numbers; the run also reports how far their results agree.
// Each part is timed in C++ and then in Python right after (one peer.py call per part), never both at once.
//
// Usage: bench_peer_compare [--threads N] [--reps N] [--rounds N] [--python PATH] [--script PATH] [--keep-dir]
//        bench_peer_compare --check-logits   (test mode: Python forward == C++ forward within 1e-4; exit 77 =
//                                             skipped when the Python interpreter or its torch module is absent)
// --threads: LibTorch intra-op threads for both sides (default: every core; LibTorch here defaults to 1).
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <grpo/core/loss.hpp>
#include <grpo/generation/generate.hpp>
#include <grpo/models/llama.hpp>
#include <grpo/models/safetensors.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_models.hpp"

#ifndef GRPO_PEER_SCRIPT
#define GRPO_PEER_SCRIPT "benchmarks/peer/peer.py"
#endif
#ifndef GRPO_LOSS_TIMER_O3
#define GRPO_LOSS_TIMER_O3 "bench_loss_timer"
#endif
#ifndef GRPO_LOSS_TIMER_O2
#define GRPO_LOSS_TIMER_O2 "bench_loss_timer_o2"
#endif

namespace {

namespace fs = std::filesystem;

constexpr int kSkipped = 77;  // CTest SKIP_RETURN_CODE
constexpr double kLogitTolerance = 1e-4;

struct Args {
  bool check_logits = false;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int reps = 5;
  int rounds = 3;
  std::string python = "/usr/bin/python3";
  std::string script = GRPO_PEER_SCRIPT;
  bool keep_dir = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("missing value after " + key);
      return argv[++i];
    };
    if (key == "--check-logits")
      a.check_logits = true;
    else if (key == "--threads")
      a.threads = std::stoi(value());
    else if (key == "--reps")
      a.reps = std::max(1, std::stoi(value()));
    else if (key == "--rounds")
      a.rounds = std::max(1, std::stoi(value()));
    else if (key == "--python")
      a.python = value();
    else if (key == "--script")
      a.script = value();
    else if (key == "--keep-dir")
      a.keep_dir = true;
    else
      throw std::invalid_argument("unknown option " + key +
                                  " (options: --check-logits --threads N --reps N --rounds N --python PATH "
                                  "--script PATH --keep-dir)");
  }
  return a;
}

// The model of the comparison is grpo_bench::small_llama_config(), the generation benchmark's.
const std::vector<std::pair<int64_t, int64_t>> kLossShapes = {{64, 512}, {64, 1024}, {256, 1024}};
constexpr int64_t kForwardRows = 8, kForwardLength = 128;
constexpr int64_t kGenerateRows = 8, kPromptLength = 32;
constexpr int64_t kNewTokensCache = 64, kNewTokensNoCache = 32;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median wall seconds of `reps` calls after `warmup` untimed ones.
double median_seconds(const std::function<void()>& fn, int reps, int warmup = 1) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    samples.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median(samples);
}

// Runs `command`, returns (exit code, stdout). Exit code 127 or a signal count as failures.
std::pair<int, std::string> run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string out;
  char buffer[4096];
  while (const auto n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = ::pclose(pipe);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return {code, out};
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Model inputs [8,128] with the first two rows left-padded (3 and 17 pads), so masking and positions are exercised.
std::pair<torch::Tensor, torch::Tensor> forward_inputs(int64_t vocab) {
  auto ids = torch::randint(0, vocab, {kForwardRows, kForwardLength}, torch::kLong);
  auto mask = torch::ones({kForwardRows, kForwardLength}, torch::kLong);
  mask[0].slice(0, 0, 3).zero_();
  mask[1].slice(0, 0, 17).zero_();
  ids.masked_fill_(mask == 0, 0);
  return {ids, mask};
}

struct Row {
  std::string name;
  double cpp_ms, python_ms;
  std::string unit_note;
};

void print_table(const std::vector<Row>& rows) {
  std::printf("| measurement | C++ median | Python median | C++/Python time | speed-up |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::printf("| %s | %.3f ms%s | %.3f ms | %.2f | %.2fx |\n", r.name.c_str(), r.cpp_ms, r.unit_note.c_str(),
                r.python_ms, r.cpp_ms / r.python_ms, r.python_ms / r.cpp_ms);
  }
}

int run(const Args& args) {
  torch::set_num_threads(args.threads);
  torch::manual_seed(0);

  if (!fs::exists(args.python)) {
    std::printf("SKIPPED: %s not found (Debian: apt-get install python3-torch)\n", args.python.c_str());
    return kSkipped;
  }
  if (!fs::exists(args.script)) throw std::runtime_error("peer script not found: " + args.script);

  std::string dir_template = (fs::temp_directory_path() / "grpo_peer_XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  const fs::path dir = dir_template;
  struct Cleanup {
    fs::path dir;
    bool keep;
    ~Cleanup() {
      std::error_code ignored;
      if (!keep) fs::remove_all(dir, ignored);
    }
  } cleanup{dir, args.keep_dir};

  // Model and its weights on disk: the Python side loads exactly these.
  grpo::LlamaModel model(grpo_bench::small_llama_config());
  model.eval();
  model.save_pretrained(dir.string());

  grpo::TensorMap inputs;
  const auto [ids, mask] = forward_inputs(grpo_bench::small_llama_config().vocab_size);
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model.forward(ids, mask);
  }
  inputs["model/input_ids"] = ids;
  inputs["model/attention_mask"] = mask;
  inputs["model/cpp_logits"] = logits.contiguous();

  nlohmann::json run_info = {{"threads", args.threads},
                             {"reps", args.reps},
                             {"loss_reps", 10 * args.reps},  // a loss call is short: more samples, steadier medians
                             {"loss_shapes", nlohmann::json::array()},
                             {"new_tokens_cache", kNewTokensCache},
                             {"new_tokens_no_cache", kNewTokensNoCache}};

  // Loss inputs: per-row lengths between T/4 and T (right padding), ratios within about exp(+-0.2), advantages ~
  // N(0,1).
  for (const auto& [rows, tokens] : kLossShapes) {
    const std::string key = std::to_string(rows) + "x" + std::to_string(tokens) + "/";
    const auto logps = -torch::rand({rows, tokens}) * 3;
    const auto lengths = torch::randint(tokens / 4, tokens + 1, {rows, 1}, torch::kLong);
    inputs[key + "logps"] = logps;
    inputs[key + "old_logps"] = logps + (torch::rand({rows, tokens}) - 0.5) * 0.4;
    inputs[key + "advantages"] = torch::randn({rows});
    inputs[key + "mask"] = (torch::arange(tokens).unsqueeze(0) < lengths).to(torch::kFloat);
    run_info["loss_shapes"].push_back({rows, tokens});
  }

  // Generation prompts (no padding) and the C++ greedy completions, to report token agreement.
  const auto prompt_ids =
      torch::randint(0, grpo_bench::small_llama_config().vocab_size, {kGenerateRows, kPromptLength}, torch::kLong);
  const auto prompt_mask = torch::ones_like(prompt_ids);
  inputs["generate/prompt_ids"] = prompt_ids;
  inputs["generate/prompt_mask"] = prompt_mask;
  const auto greedy = [&](bool use_cache, int64_t new_tokens) {
    grpo::GenerationOptions options;
    options.do_sample = false;
    options.use_cache = use_cache;
    options.max_new_tokens = new_tokens;
    return grpo::generate(model, prompt_ids, prompt_mask, options).completion_ids;
  };
  if (!args.check_logits) {
    inputs["generate/cpp_kv_cache"] = greedy(true, kNewTokensCache);
    inputs["generate/cpp_no_cache"] = greedy(false, kNewTokensNoCache);
  }
  grpo::write_safetensors((dir / "inputs.safetensors").string(), inputs);
  std::ofstream((dir / "run.json").string()) << run_info.dump(2) << "\n";

  const std::string command = quote(args.python) + " " + quote(args.script) + " " + quote(dir.string()) +
                              (args.check_logits ? " --check-logits" : "");

  if (args.check_logits) {
    const auto [code, out] = run_command(command);
    if (code == kSkipped) {
      std::printf("SKIPPED: %s has no torch module (Debian: apt-get install python3-torch)\n", args.python.c_str());
      return kSkipped;
    }
    if (code != 0) throw std::runtime_error("the peer script failed (exit " + std::to_string(code) + "): " + command);
    const auto result = nlohmann::json::parse(out);
    const double diff = result.at("logits").at("max_abs_diff").get<double>();
    std::printf(
        "logits of the C++ and Python forward (%lld logits at real positions, |logit| <= %.3g): max abs diff "
        "%.3g (tolerance %.0e)\n",
        static_cast<long long>(result.at("logits").at("compared_logits").get<int64_t>()),
        result.at("logits").at("max_abs_logit").get<double>(), diff, kLogitTolerance);
    return diff <= kLogitTolerance ? 0 : 1;
  }

  // Each section is timed in C++ and then in Python (never both at once), so on a shared machine both sides of a
  // ratio see about the same load.
  nlohmann::json py;
  const auto run_peer = [&](const char* section) {
    const auto section_command = command + " --section " + section;
    std::fprintf(stderr, "running the Python peer: %s\n", section_command.c_str());
    const auto [code, out] = run_command(section_command);
    if (code == kSkipped) return false;
    if (code != 0) {
      throw std::runtime_error("the peer script failed (exit " + std::to_string(code) + "): " + section_command);
    }
    py.update(nlohmann::json::parse(out));
    return true;
  };

  // The loss: values from this process (for the agreement check), times from the two timer builds and the peer.
  std::vector<Row> rows;
  std::vector<double> cpp_loss_values, cpp_grad_sums;
  std::vector<std::map<std::string, double>> cpp_metrics;
  for (const auto& [n_rows, tokens] : kLossShapes) {
    const std::string key = std::to_string(n_rows) + "x" + std::to_string(tokens) + "/";
    grpo::LossBatch batch;
    batch.old_logps = inputs[key + "old_logps"];
    batch.advantages = inputs[key + "advantages"];
    batch.mask = inputs[key + "mask"];
    batch.num_items_in_batch = batch.mask.sum().item<double>();
    batch.logps = inputs[key + "logps"].clone().requires_grad_();
    const grpo::LossResult result = grpo::policy_loss(batch, grpo::LossOptions{});  // TRL's defaults
    result.loss.backward();
    cpp_loss_values.push_back(result.loss.item<double>());
    cpp_grad_sums.push_back(batch.logps.grad().abs().sum().item<double>());
    cpp_metrics.push_back(result.metrics);
  }
  const auto run_timer = [&](const char* binary) {
    const auto timer_command = quote(binary) + " " + quote(dir.string());
    std::fprintf(stderr, "running %s\n", timer_command.c_str());
    const auto [code, out] = run_command(timer_command);
    if (code != 0)
      throw std::runtime_error("the loss timer failed (exit " + std::to_string(code) + "): " + timer_command);
    return nlohmann::json::parse(out);
  };
  // [shape] -> one median per round, for -O3, -O2 and Python.
  std::vector<std::vector<double>> loss_o3(kLossShapes.size()), loss_o2(kLossShapes.size()),
      loss_python(kLossShapes.size());
  for (int round = 0; round < args.rounds; ++round) {
    const auto o3 = run_timer(GRPO_LOSS_TIMER_O3);
    const auto o2 = run_timer(GRPO_LOSS_TIMER_O2);
    if (!run_peer("loss")) {
      std::printf("SKIPPED: %s has no torch module (Debian: apt-get install python3-torch)\n", args.python.c_str());
      return kSkipped;
    }
    for (std::size_t i = 0; i < kLossShapes.size(); ++i) {
      const std::string key = std::to_string(kLossShapes[i].first) + "x" + std::to_string(kLossShapes[i].second);
      loss_o3[i].push_back(o3.at("loss").at(key).at("median_ms").get<double>());
      loss_o2[i].push_back(o2.at("loss").at(key).at("median_ms").get<double>());
      loss_python[i].push_back(py.at("loss").at(key).at("median_ms").get<double>());
    }
  }
  double cpp_forward_ms = 0;
  {
    torch::NoGradGuard no_grad;
    cpp_forward_ms = 1e3 * median_seconds([&] { model.forward(ids, mask); }, args.reps);
  }
  run_peer("forward");
  const double cpp_cache_ms = 1e3 * median_seconds([&] { greedy(true, kNewTokensCache); }, args.reps);
  const double cpp_no_cache_ms =
      1e3 * median_seconds([&] { greedy(false, kNewTokensNoCache); }, std::max(1, args.reps / 2));
  run_peer("generate");

  std::printf("C++ (grpo-cpp, LibTorch %s) vs Python peer (eager PyTorch %s, %s)\n", TORCH_VERSION,
              py.at("torch_version").get<std::string>().c_str(), args.python.c_str());
  std::printf(
      "intra-op threads: C++ %d, Python %d; medians of %d repetitions (policy loss: %d; no-cache generation: %d)\n\n",
      torch::get_num_threads(), py.at("threads").get<int>(), args.reps, 10 * args.reps, std::max(1, args.reps / 2));

  double worst_loss_diff = 0, worst_grad_rel = 0;
  bool metrics_equal = true;
  for (std::size_t i = 0; i < kLossShapes.size(); ++i) {
    const auto [n_rows, tokens] = kLossShapes[i];
    const std::string key = std::to_string(n_rows) + "x" + std::to_string(tokens);
    const auto& p = py.at("loss").at(key);
    const double python_ms = median(loss_python[i]);
    rows.push_back({"policy_loss fwd+bwd+metrics " + key + ", C++ -O3", median(loss_o3[i]), python_ms, ""});
    rows.push_back({"policy_loss fwd+bwd+metrics " + key + ", C++ -O2 -g", median(loss_o2[i]), python_ms, ""});
    worst_loss_diff = std::max(worst_loss_diff, std::abs(cpp_loss_values[i] - p.at("loss").get<double>()));
    worst_grad_rel = std::max(worst_grad_rel, std::abs(cpp_grad_sums[i] - p.at("grad_abs_sum").get<double>()) /
                                                  std::max(1e-30, std::abs(cpp_grad_sums[i])));
    for (const auto& [name, value] : cpp_metrics[i]) {
      if (std::abs(value - p.at("metrics").at(name).get<double>()) > 1e-6) metrics_equal = false;
    }
  }
  const double forward_tokens = static_cast<double>(kForwardRows * kForwardLength);
  rows.push_back({"model forward 8x128 (no grad)", cpp_forward_ms, py.at("forward").at("median_ms").get<double>(),
                  " (" + std::to_string(static_cast<int>(forward_tokens / cpp_forward_ms * 1e3)) + " tok/s)"});
  const auto& gen = py.at("generate");
  const auto gen_row = [&](const char* label, const char* name, double cpp_ms, int64_t new_tokens) {
    const double tokens = static_cast<double>(kGenerateRows * new_tokens);
    rows.push_back({name, cpp_ms, gen.at(label).at("median_ms").get<double>(),
                    " (" + std::to_string(static_cast<int>(tokens / cpp_ms * 1e3)) + " tok/s)"});
  };
  gen_row("kv_cache", "greedy generate, KV cache, 8x(32+64)", cpp_cache_ms, kNewTokensCache);
  gen_row("no_cache", "greedy generate, no cache, 8x(32+32)", cpp_no_cache_ms, kNewTokensNoCache);
  print_table(rows);
  std::printf("\npolicy_loss -O2 -g / -O3 time:");
  for (std::size_t i = 0; i < kLossShapes.size(); ++i) {
    std::printf(" %lldx%lld %.2f;", static_cast<long long>(kLossShapes[i].first),
                static_cast<long long>(kLossShapes[i].second), median(loss_o2[i]) / median(loss_o3[i]));
  }
  std::printf(" (medians of %d rounds; each round runs -O3, -O2 and Python one after another)\n", args.rounds);
  std::printf("\nC++/Python time < 1: C++ faster. Python tokens/s: generate with cache %.0f, without %.0f.\n",
              gen.at("kv_cache").at("tokens_per_s").get<double>(), gen.at("no_cache").at("tokens_per_s").get<double>());

  std::printf(
      "\nagreement: loss max |C++ - Python| %.3g; grad |.|-sum relative diff %.3g; clip metrics %s; logits "
      "max abs diff %.3g; greedy tokens equal: %.1f%% (cache), %.1f%% (no cache)\n",
      worst_loss_diff, worst_grad_rel, metrics_equal ? "equal" : "DIFFER",
      py.at("logits").at("max_abs_diff").get<double>(), 100 * gen.at("kv_cache").value("same_tokens_as_cpp", 0.0),
      100 * gen.at("no_cache").value("same_tokens_as_cpp", 0.0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_peer_compare: %s\n", e.what());
    return 1;
  }
}
