// The library's side of the side-by-side benchmark against TRL (benchmarks/trl_compare.py runs both sides):
// GRPOTrainer steps on a real or random checkpoint, or generation alone, printing one JSON object on stdout.
//
//   bench_trl_compare --model MODEL.gguf|HF_FOLDER --dataset prompts.jsonl [--steps 4] [--num-generations 8]
//       [--batch 8] [--max-prompt-length 128] [--max-completion-length 64] [--threads 2] [--beta 0]
//       [--loss-type dapo] [--learning-rate 1e-6] [--seed 0] [--gradient-checkpointing] [--bf16] [--full-logits]
//   bench_trl_compare --generate-only --model ... --dataset ... [--max-completion-length 64] [--num-generations 8]
//       [--repeats 3] [--threads 2]
//
// Training: per optimizer step, the step's seconds, the rollout (generation + rewards), the log-prob passes and
// the update (forward, loss, backward, AdamW), the completion tokens generated; the median step (the first one,
// a warm-up, left out) and peak RSS. The reward is TRL peer's `digit_fraction` (ASCII digits / characters), the
// same on both sides. --full-logits trains through the model's [B,T,V] logits instead of the chunked LM head (the
// memory the chunked head saves). Generation only: one prompt repeated G times (GRPO's group), sampled at
// temperature 1 with no EOS so that every row generates exactly max-completion-length tokens, as the peer's
// min_new_tokens does; tokens/s of the median of --repeats runs after a warm-up.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grpo/grpo.hpp"
#include "grpo/pretrained/pretrained.hpp"

namespace {

struct Args {
  std::string model, dataset;
  int64_t steps = 4, num_generations = 8, batch = 8, max_prompt_length = 128, max_completion_length = 64;
  int threads = 2, repeats = 3;
  double beta = 0.0, learning_rate = 1e-6;
  std::string loss_type = "dapo";
  uint64_t seed = 0;
  bool gradient_checkpointing = false, bf16 = false, full_logits = false, generate_only = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw grpo::InvalidArgument(key + " needs a value");
      return argv[++i];
    };
    if (key == "--model")
      a.model = value();
    else if (key == "--dataset")
      a.dataset = value();
    else if (key == "--steps")
      a.steps = std::stoll(value());
    else if (key == "--num-generations")
      a.num_generations = std::stoll(value());
    else if (key == "--batch")
      a.batch = std::stoll(value());
    else if (key == "--max-prompt-length")
      a.max_prompt_length = std::stoll(value());
    else if (key == "--max-completion-length")
      a.max_completion_length = std::stoll(value());
    else if (key == "--threads")
      a.threads = std::stoi(value());
    else if (key == "--repeats")
      a.repeats = std::stoi(value());
    else if (key == "--beta")
      a.beta = std::stod(value());
    else if (key == "--learning-rate")
      a.learning_rate = std::stod(value());
    else if (key == "--loss-type")
      a.loss_type = value();
    else if (key == "--seed")
      a.seed = std::stoull(value());
    else if (key == "--gradient-checkpointing")
      a.gradient_checkpointing = true;
    else if (key == "--bf16")
      a.bf16 = true;
    else if (key == "--full-logits")
      a.full_logits = true;
    else if (key == "--generate-only")
      a.generate_only = true;
    else
      throw grpo::InvalidArgument("unknown argument " + key + " (see the header of benchmarks/trl_compare.cpp)");
  }
  if (a.model.empty() || a.dataset.empty()) throw grpo::InvalidArgument("--model and --dataset are required");
  return a;
}

// A LlamaModel without the chunked-head hook: the trainer then computes log-probs from forward()'s full
// [B,T,V] logits, as TRL does. (Deleting hidden_states in the derived class hides the base's from detection.)
class FullLogitsLlama : public grpo::LlamaModel {
 public:
  using grpo::LlamaModel::LlamaModel;
  torch::Tensor hidden_states(const torch::Tensor&, const torch::Tensor&) = delete;
};
static_assert(!grpo::detail::has_chunked_head<FullLogitsLlama>::value);
static_assert(grpo::detail::has_chunked_head<grpo::LlamaModel>::value);

double rss_mb(const char* field) {  // "VmRSS:" or "VmHWM:" of /proc/self/status, in MB
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::strtod(line.c_str() + std::string(field).size(), nullptr) / 1024.0;
  }
  return 0;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// TRL peer's digit_fraction: ASCII digits / max(1, characters) of the completion text, characters counted as
// Python's len() counts them (code points: UTF-8 bytes that are not continuation bytes).
double digit_fraction(std::string_view completion, const grpo::Row&) {
  const auto digits = std::count_if(completion.begin(), completion.end(), [](char c) { return c >= '0' && c <= '9'; });
  const auto characters = std::count_if(completion.begin(), completion.end(),
                                        [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  return static_cast<double>(digits) / static_cast<double>(std::max<std::ptrdiff_t>(1, characters));
}

double parameter_count(grpo::LlamaModel& model) {
  double n = 0;
  for (const auto& p : model.parameters()) n += static_cast<double>(p.numel());
  return n;
}

nlohmann::json generate_only(const Args& args, grpo::Pretrained& pretrained, const grpo::Dataset& data) {
  torch::NoGradGuard no_grad;
  const auto prompt = pretrained.tokenizer.encode(data.prompt(0));
  const auto row = torch::tensor(prompt, torch::kLong).unsqueeze(0);
  const auto ids = row.expand({args.num_generations, row.size(1)}).contiguous();
  const auto mask = torch::ones_like(ids);
  grpo::GenerationOptions options;
  options.max_new_tokens = args.max_completion_length;
  options.temperature = 1.0;
  options.eos_token_ids = std::vector<int64_t>{};  // no EOS: every row generates max_new_tokens
  options.prompt_group_size = args.num_generations;
  std::vector<double> seconds;
  for (int r = 0; r <= args.repeats; ++r) {  // run 0 warms up
    options.seed = args.seed + static_cast<uint64_t>(r);
    const auto start = std::chrono::steady_clock::now();
    const auto out = grpo::generate(*pretrained.model, ids, mask, options);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (out.completion_ids.size(1) != args.max_completion_length) {
      throw grpo::RuntimeError("generation stopped early: " + std::to_string(out.completion_ids.size(1)) + " tokens");
    }
    if (r > 0) seconds.push_back(s);
  }
  const double tokens = static_cast<double>(args.num_generations * args.max_completion_length);
  std::vector<double> rates;
  for (double s : seconds) rates.push_back(tokens / s);
  return {{"mode", "generate"},
          {"prompt_tokens", prompt.size()},
          {"new_tokens_per_row", args.max_completion_length},
          {"rows", args.num_generations},
          {"seconds", seconds},
          {"median_tokens_per_second", median(rates)},
          {"peak_rss_mb", peak_rss_mb()}};
}

template <class Model>
nlohmann::json train_steps(const Args& args, std::shared_ptr<Model> model, grpo::BpeTokenizer tokenizer,
                           grpo::Dataset data, double rss_before) {
  grpo::GRPOConfig config;
  config.output_dir = "/tmp/bench_trl_compare";
  config.num_generations = static_cast<int>(args.num_generations);
  config.per_device_train_batch_size = static_cast<int>(args.batch);
  config.gradient_accumulation_steps = 1;
  config.max_prompt_length = args.max_prompt_length;
  config.max_completion_length = args.max_completion_length;
  config.temperature = 1.0;
  config.beta = args.beta;
  config.learning_rate = args.learning_rate;
  config.loss_type = nlohmann::json(args.loss_type).get<grpo::LossType>();
  config.gradient_checkpointing = args.gradient_checkpointing;
  config.bf16 = args.bf16;
  config.max_steps = args.steps;
  config.logging_steps = 1;
  config.save_steps = 0;
  config.shuffle_dataset = false;
  config.seed = args.seed;
  grpo::TrainerOptions options;
  options.default_reporters = false;
  options.torch_threads = args.threads;
  std::vector<grpo::RewardFunction> rewards;
  rewards.emplace_back("digit_fraction", digit_fraction);
  grpo::GRPOTrainer<Model, grpo::BpeTokenizer> trainer(model, std::move(tokenizer), std::move(rewards), config,
                                                       std::move(data), std::nullopt, options);
  nlohmann::json steps = nlohmann::json::array();
  const double rows = static_cast<double>(config.generation_batch_size());
  struct Recorder {
    nlohmann::json* steps;
    double rows;
    void on_log(const grpo::TrainerState& state, const std::map<std::string, double>& m) {
      const auto at = [&m](const char* key) { return m.count(key) ? m.at(key) : 0.0; };
      steps->push_back({{"step", state.global_step},
                        {"seconds", at("step_time")},
                        {"rollout_seconds", at("timing/rollout")},
                        {"log_prob_seconds", at("timing/log_probs")},
                        {"update_seconds", at("timing/update")},
                        {"completion_tokens", at("completions/mean_length") * rows},
                        {"loss", at("loss")}});
      std::fprintf(stderr, "step %lld: %.2f s\n", static_cast<long long>(state.global_step), at("step_time"));
    }
  } recorder{&steps, rows};
  trainer.train(recorder);
  std::vector<double> step_s, rollout_s, update_s, rates;
  for (std::size_t i = steps.size() > 1 ? 1 : 0; i < steps.size(); ++i) {  // step 1 warms up (when there are more)
    const auto& s = steps[i];
    step_s.push_back(s["seconds"]);
    rollout_s.push_back(s["rollout_seconds"]);
    update_s.push_back(s["log_prob_seconds"].get<double>() + s["update_seconds"].get<double>());
    rates.push_back(s["completion_tokens"].get<double>() / s["rollout_seconds"].get<double>());
  }
  return {{"mode", "train"},
          {"steps", steps},
          {"median_step_seconds", median(step_s)},
          {"median_rollout_seconds", median(rollout_s)},
          {"median_rollout_tokens_per_second", median(rates)},
          {"median_train_seconds", median(update_s)},
          {"rss_before_training_mb", rss_before},
          {"peak_rss_mb", peak_rss_mb()}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    torch::set_num_threads(args.threads);
    torch::manual_seed(args.seed);
    grpo::Pretrained pretrained = grpo::load_pretrained(args.model);
    grpo::Dataset data = grpo::load_dataset(args.dataset);
    nlohmann::json out = {{"peer", "grpo-cpp"},
                          {"torch_version", TORCH_VERSION},
                          {"threads", args.threads},
                          {"model", args.model},
                          {"parameters", parameter_count(*pretrained.model)},
                          {"config",
                           {{"num_generations", args.num_generations},
                            {"per_device_train_batch_size", args.batch},
                            {"max_prompt_length", args.max_prompt_length},
                            {"max_completion_length", args.max_completion_length},
                            {"beta", args.beta},
                            {"loss_type", args.loss_type},
                            {"learning_rate", args.learning_rate},
                            {"gradient_checkpointing", args.gradient_checkpointing},
                            {"bf16", args.bf16},
                            {"full_logits", args.full_logits}}}};
    if (args.generate_only) {
      out.update(generate_only(args, pretrained, data));
    } else if (args.full_logits) {
      auto model = std::make_shared<FullLogitsLlama>(pretrained.model->config());
      {
        torch::NoGradGuard no_grad;
        const auto source = pretrained.model->parameters();
        const auto target = model->parameters();
        for (std::size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
      }
      pretrained.model.reset();  // one copy of the weights, as in the chunked run
      out.update(train_steps(args, model, pretrained.tokenizer, std::move(data), rss_mb("VmRSS:")));
    } else {
      const double rss = rss_mb("VmRSS:");
      out.update(train_steps(args, pretrained.model, pretrained.tokenizer, std::move(data), rss));
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_trl_compare: %s\n", e.what());
    return 1;
  }
}
