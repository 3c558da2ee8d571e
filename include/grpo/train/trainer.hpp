#pragma once
// GRPOTrainer: the end-to-end GRPO loop with TRL's semantics (trl-grpo-survey.md §2.3, §2.11).
//
// One generation batch (per_device_train_batch_size x steps_per_generation rows, each prompt G times):
//   sample prompts -> generate (KV cache, seeded) -> decode -> score with the reward functions (the dataset's
//   columns are the kwargs) -> optional DAPO dynamic sampling -> group advantages -> old log-probs (only when
//   they can differ from the current ones) and reference log-probs (beta != 0) -> shuffle rows -> buffer.
// Then steps_per_generation x num_iterations micro-steps train on slices of the buffer; every
// gradient_accumulation_steps micro-steps the gradients are clipped and AdamW steps. Metrics go to the console,
// metrics.jsonl, completions.jsonl and an SVG chart; checkpoints are written atomically and resume exactly.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <torch/types.h>

#include "grpo/core/advantages.hpp"
#include "grpo/core/loss.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/data/sampler.hpp"
#include "grpo/detail/atomic_file.hpp"
#include "grpo/detail/padding.hpp"
#include "grpo/models/policy.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/rewards/scoring.hpp"
#include "grpo/tokenizers/tokenizer.hpp"
#include "grpo/train/callbacks.hpp"
#include "grpo/train/chart.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/logging.hpp"
#include "grpo/train/schedule.hpp"
#include "grpo/train/state.hpp"

namespace grpo {

/// Knobs of a trainer that are not training hyper-parameters.
struct TrainerOptions {
  /// Print the compact log line every logging_steps (to stdout).
  bool print_logs = true;
  /// Redraw a progress bar with ETA on stderr (only when stderr is a terminal).
  bool progress_bar = true;
  /// Threads that run per-completion reward functions (0 = all cores).
  std::size_t reward_threads = 0;
  /// Per-call reward timeout in seconds; unset = none.
  std::optional<double> reward_timeout_seconds;
  /// Completions per prompt in evaluate(); 1 with greedy decoding gives a deterministic accuracy.
  int eval_num_generations = 1;
  /// Greedy decoding in evaluate() (false: sample with the training temperature and filters).
  bool eval_greedy = true;
  /// LibTorch intra-op threads, set when the trainer is built: 0 = every core (LibTorch's CPU build may default
  /// to 1), n > 0 = n, negative = leave LibTorch's setting alone. It is process-wide (torch::set_num_threads).
  int torch_threads = 0;
};

/// What evaluate() and train() report at the end.
struct TrainResult {
  /// Optimizer steps done.
  int64_t global_step = 0;
  /// The last logged training metrics.
  std::map<std::string, double> last_metrics;
  /// The last evaluation metrics (empty without an eval dataset).
  std::map<std::string, double> last_eval_metrics;
};

namespace detail {

// splitmix64: decorrelates seeds derived from (base seed, counter).
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// State of LibTorch's default CPU generator (dropout, torch::rand in user code), saved in checkpoints.
inline torch::Tensor cpu_generator_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}
inline void set_cpu_generator_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

inline GRPOConfig validated(GRPOConfig config) {
  config.validate();
  return config;
}

// One scored completion before tensorisation (rows of several attempts can be combined: dynamic sampling).
struct Rollout {
  std::vector<int64_t> dataset_index;               // [N]
  std::vector<std::vector<int64_t>> prompt_ids;     // [N] left-truncated prompt tokens
  std::vector<std::vector<int64_t>> completion_ids; // [N] completion tokens (EOS included when generated)
  std::vector<bool> truncated;                      // [N] no EOS within max_completion_length
  std::vector<std::string> prompts, completions;    // [N] texts
  Eigen::MatrixXd rewards;                          // N x K, NaN = none
  std::map<std::string, double> reward_metrics;     // of the last attempt (user metrics, timeouts)
  std::vector<std::string> warnings;

  std::size_t size() const { return completions.size(); }
  // Appends group `g` (rows [g*G, (g+1)*G)) of `other`.
  void append_group(const Rollout& other, int64_t g, int num_generations) {
    const auto begin = static_cast<std::size_t>(g * num_generations);
    const auto end = begin + static_cast<std::size_t>(num_generations);
    Eigen::MatrixXd grown(rewards.rows() + num_generations, other.rewards.cols());
    if (rewards.rows() > 0) grown.topRows(rewards.rows()) = rewards;
    grown.bottomRows(num_generations) =
        other.rewards.middleRows(static_cast<Eigen::Index>(begin), num_generations);
    rewards = std::move(grown);
    for (std::size_t i = begin; i < end; ++i) {
      dataset_index.push_back(other.dataset_index[i]);
      prompt_ids.push_back(other.prompt_ids[i]);
      completion_ids.push_back(other.completion_ids[i]);
      truncated.push_back(other.truncated[i]);
      prompts.push_back(other.prompts[i]);
      completions.push_back(other.completions[i]);
    }
  }
};

// Named parameters of a model: HF-style names for torch::nn::Module, "parameters.<i>" otherwise.
template <class M>
TensorMap named_parameters_of(M& model) {
  TensorMap out;
  if constexpr (std::is_base_of_v<torch::nn::Module, M>) {
    for (const auto& item : model.named_parameters()) out[item.key()] = item.value();
  } else {
    std::size_t i = 0;
    for (const auto& p : model.parameters()) out["parameters." + std::to_string(i++)] = p;
  }
  return out;
}

}  // namespace detail

/// The GRPO trainer for a model meeting the CausalLM trait (grpo/models/causal_lm.hpp) and a tokenizer meeting
/// the Tokenizer trait (grpo/tokenizers/tokenizer.hpp).
template <class Model, class Tokenizer>
class GRPOTrainer {
  static_assert(check_causal_lm<Model>());
  static_assert(check_tokenizer<Tokenizer>());

 public:
  /// Validates everything up front: the config (naming the bad field), the reward weights, and that the train
  /// dataset has every column a reward function requires. The model's device is the training device.
  GRPOTrainer(std::shared_ptr<Model> model, Tokenizer tokenizer, std::vector<RewardFunction> reward_functions,
              GRPOConfig config, Dataset train_dataset, std::optional<Dataset> eval_dataset = std::nullopt,
              TrainerOptions options = {})
      : config_(detail::validated(std::move(config))),
        options_(std::move(options)),
        tokenizer_(std::move(tokenizer)),
        policy_(std::move(model)),
        train_(std::move(train_dataset)),
        eval_(std::move(eval_dataset)),
        scorer_(std::move(reward_functions), scoring_options(config_, options_)),
        sampler_(RepeatSampler::from_config(config_, static_cast<int64_t>(train_.size()))) {
    if (options_.torch_threads >= 0) {
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      torch::set_num_threads(options_.torch_threads == 0 ? static_cast<int>(cores) : options_.torch_threads);
    }
    if (config_.num_processes != 1) {
      throw std::invalid_argument("GRPOTrainer: num_processes = " + std::to_string(config_.num_processes) +
                                  ", but multi-process training is not implemented yet; use 1");
    }
    std::vector<std::string> columns;
    for (const auto& c : train_.column_names()) {
      if (c != "prompt") columns.push_back(c);
    }
    scorer_.check_columns(columns);
    if (eval_ && !eval_->empty()) {
      std::vector<std::string> eval_columns;
      for (const auto& c : eval_->column_names()) {
        if (c != "prompt") eval_columns.push_back(c);
      }
      scorer_.check_columns(eval_columns);
    }
    total_steps_ = resolve_total_steps(config_, static_cast<int64_t>(train_.size()));
    state_.max_steps = total_steps_;
    if (config_.beta != 0.0) reference_.emplace(policy_);
    torch::optim::AdamWOptions adam(config_.learning_rate);
    adam.betas({config_.adam_beta1, config_.adam_beta2}).eps(config_.adam_epsilon).weight_decay(config_.weight_decay);
    optimizer_ = std::make_unique<torch::optim::AdamW>(policy_.parameters(), adam);
    for (const auto& f : scorer_.functions()) reward_names_.push_back(f.name());
  }

  /// Runs training to max_steps (or num_train_epochs). Callbacks implement any of on_step_end(const
  /// TrainerState&), on_log(const TrainerState&, const std::map<std::string, double>&),
  /// on_save(const TrainerState&, const std::string& checkpoint_dir).
  template <class... Callbacks>
  TrainResult train(Callbacks&... callbacks) {
    check_callbacks<Callbacks...>();
    namespace fs = std::filesystem;
    fs::create_directories(config_.output_dir);
    save_config(config_, (fs::path(config_.output_dir) / "config.json").string());
    MetricsLog metrics((fs::path(config_.output_dir) / "metrics.jsonl").string());
    std::optional<CompletionsLog> completions;
    if (config_.log_completions) completions.emplace((fs::path(config_.output_dir) / "completions.jsonl").string());
    metrics_ = &metrics;
    completions_ = completions ? &*completions : nullptr;
    const auto start = std::chrono::steady_clock::now();
    const double elapsed_before = state_.elapsed_seconds;
    auto step_start = start;
    TrainResult result;
    const bool terminal = options_.progress_bar && ::isatty(STDERR_FILENO);

    while (state_.global_step < total_steps_) {
      const MicroStep plan = micro_step_schedule(config_, state_.micro_step);
      if (plan.generate || !buffer_.defined()) make_buffer(plan.generation);
      train_micro_step(plan);
      ++state_.micro_step;
      if (!plan.optimizer_step) continue;

      const double grad_norm = optimizer_step();
      ++state_.global_step;
      state_.epoch = sampler_.epoch_progress();
      const auto now = std::chrono::steady_clock::now();
      const double step_time = std::chrono::duration<double>(now - step_start).count();
      step_start = now;
      state_.elapsed_seconds = elapsed_before + std::chrono::duration<double>(now - start).count();
      metrics.add("grad_norm", grad_norm);
      metrics.add("step_time", step_time);
      if (config_.sync_ref_model && reference_ && state_.global_step % config_.ref_model_sync_steps == 0) {
        reference_->sync_from(policy_, config_.ref_model_mixup_alpha);
      }
      if (terminal) {
        std::fprintf(stderr, "\r%s", format_progress_bar(state_.global_step, total_steps_,
                                                        state_.elapsed_seconds - elapsed_before).c_str());
      }
      invoke_on_step_end(state_, callbacks...);

      const bool last = state_.global_step >= total_steps_;
      if (state_.global_step % config_.logging_steps == 0 || last) {
        std::map<std::string, double> extra{{"learning_rate", last_learning_rate_},
                                            {"num_tokens", static_cast<double>(state_.num_tokens)}};
        result.last_metrics = metrics.flush(state_.global_step, state_.epoch, extra);
        if (terminal) std::fprintf(stderr, "\r\033[K");
        if (options_.print_logs) {
          std::printf("%s\n", format_log_line(state_.global_step, total_steps_, result.last_metrics).c_str());
          std::fflush(stdout);
        }
        invoke_on_log(state_, result.last_metrics, callbacks...);
      }
      if (eval_ && !eval_->empty() && (state_.global_step % config_.effective_eval_steps() == 0 || last)) {
        result.last_eval_metrics = evaluate();
        metrics.write(state_.global_step, state_.epoch, result.last_eval_metrics);
        if (options_.print_logs) {
          const auto acc = result.last_eval_metrics.find("eval_accuracy");
          std::printf("step %lld/%lld | eval reward %.4f%s\n", static_cast<long long>(state_.global_step),
                      static_cast<long long>(total_steps_), result.last_eval_metrics.at("eval_reward"),
                      acc == result.last_eval_metrics.end()
                          ? ""
                          : (" | eval accuracy " + detail::printf_string("%.3f", acc->second)).c_str());
          std::fflush(stdout);
        }
        invoke_on_log(state_, result.last_eval_metrics, callbacks...);
      }
      if (state_.global_step % config_.logging_steps == 0 || last) {
        write_training_chart((fs::path(config_.output_dir) / "training_chart.svg").string(), metrics.history());
      }
      if (config_.save_steps > 0 && (state_.global_step % config_.save_steps == 0)) {
        const auto dir = save_checkpoint();
        invoke_on_save(state_, dir, callbacks...);
      }
    }
    if (terminal) std::fprintf(stderr, "\r\033[K");
    metrics_ = nullptr;
    completions_ = nullptr;
    result.global_step = state_.global_step;
    return result;
  }

  /// Generates one completion per eval prompt (greedy by default) and scores it: "eval_reward",
  /// "eval_rewards/<name>/mean", "eval_completions/mean_length" and, when a reward function is named "accuracy",
  /// "eval_accuracy". Uses the eval dataset, or `dataset` when given.
  std::map<std::string, double> evaluate(const std::optional<Dataset>& dataset = std::nullopt) {
    const Dataset* data = dataset ? &*dataset : (eval_ ? &*eval_ : nullptr);
    if (!data || data->empty()) throw std::invalid_argument("GRPOTrainer::evaluate: there is no eval dataset");
    const int g = std::max(1, options_.eval_num_generations);
    double reward_sum = 0, length_sum = 0;
    long reward_count = 0;
    std::map<std::string, std::pair<double, long>> per_function;
    const int64_t chunk = std::max<int64_t>(1, config_.generation_batch_size() / g);
    for (int64_t start = 0; start < static_cast<int64_t>(data->size()); start += chunk) {
      std::vector<int64_t> indices;
      for (int64_t i = start; i < std::min<int64_t>(start + chunk, static_cast<int64_t>(data->size())); ++i) {
        for (int r = 0; r < g; ++r) indices.push_back(i);
      }
      const auto rollout = generate_and_score(*data, indices, g, /*eval=*/true);
      const auto scores = weighted_rewards(rollout.rewards);
      for (std::size_t i = 0; i < rollout.size(); ++i) {
        if (!std::isnan(scores[i])) {
          reward_sum += scores[i];
          ++reward_count;
        }
        length_sum += static_cast<double>(rollout.completion_ids[i].size());
        for (std::size_t k = 0; k < reward_names_.size(); ++k) {
          const double v = rollout.rewards(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k));
          if (std::isnan(v)) continue;
          per_function[reward_names_[k]].first += v;
          per_function[reward_names_[k]].second += 1;
        }
      }
    }
    std::map<std::string, double> out;
    out["eval_reward"] = reward_count ? reward_sum / static_cast<double>(reward_count) : std::nan("");
    out["eval_completions/mean_length"] = length_sum / static_cast<double>(data->size() * static_cast<std::size_t>(g));
    for (const auto& name : reward_names_) {
      const auto it = per_function.find(name);
      out["eval_rewards/" + name + "/mean"] =
          it == per_function.end() ? std::nan("") : it->second.first / static_cast<double>(it->second.second);
    }
    if (out.count("eval_rewards/accuracy/mean")) out["eval_accuracy"] = out["eval_rewards/accuracy/mean"];
    return out;
  }

  /// Writes a checkpoint of the current state to output_dir/checkpoint-<step> (atomically) and prunes old ones
  /// to save_total_limit; returns its directory.
  std::string save_checkpoint() {
    namespace fs = std::filesystem;
    const auto dir = (fs::path(config_.output_dir) / checkpoint_name(state_.global_step)).string();
    write_checkpoint_dir(dir, [&](const std::string& tmp) {
      TensorMap weights;
      for (const auto& [name, tensor] : detail::named_parameters_of(policy_.model())) weights[name] = tensor.detach();
      write_safetensors((fs::path(tmp) / "model.safetensors").string(), weights);
      if (reference_) {
        TensorMap ref;
        for (const auto& [name, tensor] : detail::named_parameters_of(reference_->model())) ref[name] = tensor.detach();
        write_safetensors((fs::path(tmp) / "reference.safetensors").string(), ref);
      }
      torch::save(*optimizer_, (fs::path(tmp) / "optimizer.pt").string());
      TensorMap extra;
      extra["rng/cpu"] = detail::cpu_generator_state();
      if (buffer_.defined()) {
        for (const auto& [name, tensor] : buffer_.tensors()) extra["buffer/" + name] = tensor;
      }
      write_safetensors((fs::path(tmp) / "trainer_tensors.safetensors").string(), extra);
      nlohmann::json meta;
      meta["trainer_state"] = state_;
      meta["sampler_state"] = sampler_.state();
      meta["config"] = config_;
      meta["generation_calls"] = generation_calls_;
      meta["buffer"] = buffer_.meta();
      detail::atomic_write_file((fs::path(tmp) / "trainer_state.json").string(), meta.dump(2));
    });
    state_.last_checkpoint = dir;
    if (config_.save_total_limit) prune_checkpoints(config_.output_dir, *config_.save_total_limit);
    return dir;
  }

  /// Restores a checkpoint written by save_checkpoint(): weights, optimizer, reference model, sampler position,
  /// generation buffer, RNG and counters, so that train() continues the same trajectory. The trainer must have
  /// been built with the same config (output_dir and logging options may differ).
  void resume_from_checkpoint(const std::string& dir) {
    namespace fs = std::filesystem;
    const auto state_path = (fs::path(dir) / "trainer_state.json").string();
    std::ifstream in(state_path);
    if (!in) throw std::runtime_error("resume_from_checkpoint: cannot read " + state_path);
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("resume_from_checkpoint: " + state_path + " is not valid JSON: " + e.what());
    }
    check_same_trajectory(meta.at("config").get<GRPOConfig>(), state_path);
    load_parameters(policy_.model(), (fs::path(dir) / "model.safetensors").string());
    if (reference_) load_parameters(reference_->model(), (fs::path(dir) / "reference.safetensors").string());
    torch::load(*optimizer_, (fs::path(dir) / "optimizer.pt").string());
    const auto extra = read_safetensors((fs::path(dir) / "trainer_tensors.safetensors").string()).tensors;
    detail::set_cpu_generator_state(extra.at("rng/cpu"));
    state_ = meta.at("trainer_state").get<TrainerState>();
    state_.max_steps = total_steps_;
    sampler_.restore(meta.at("sampler_state").get<SamplerState>());
    generation_calls_ = meta.at("generation_calls").get<uint64_t>();
    buffer_.restore(meta.at("buffer"), extra, device());
  }

  /// Progress so far.
  const TrainerState& state() const { return state_; }
  /// The policy being trained.
  Policy<Model>& policy() { return policy_; }
  /// The reference model (present when beta != 0).
  std::optional<Reference<Model>>& reference() { return reference_; }
  /// The configuration in force.
  const GRPOConfig& config() const { return config_; }
  /// Total optimizer steps of the run.
  int64_t total_steps() const { return total_steps_; }

 private:
  // The generation batch being trained on, rows already shuffled.
  struct Buffer {
    torch::Tensor prompt_ids, prompt_mask, completion_ids, completion_mask, advantages, old_logps, ref_logps;
    std::vector<double> slice_tokens;  // active completion tokens per slice of B rows
    int64_t generation = -1;
    bool defined() const { return generation >= 0; }
    std::map<std::string, torch::Tensor> tensors() const {
      std::map<std::string, torch::Tensor> out{{"prompt_ids", prompt_ids},
                                               {"prompt_mask", prompt_mask},
                                               {"completion_ids", completion_ids},
                                               {"completion_mask", completion_mask},
                                               {"advantages", advantages}};
      if (old_logps.defined()) out["old_logps"] = old_logps.detach();
      if (ref_logps.defined()) out["ref_logps"] = ref_logps.detach();
      return out;
    }
    nlohmann::json meta() const { return {{"generation", generation}, {"slice_tokens", slice_tokens}}; }
    void restore(const nlohmann::json& meta, const TensorMap& tensors, const torch::Device& device) {
      generation = meta.at("generation").get<int64_t>();
      slice_tokens = meta.at("slice_tokens").get<std::vector<double>>();
      if (generation < 0) return;
      const auto get = [&](const char* name) {
        const auto it = tensors.find(std::string("buffer/") + name);
        return it == tensors.end() ? torch::Tensor() : it->second.to(device);
      };
      prompt_ids = get("prompt_ids");
      prompt_mask = get("prompt_mask");
      completion_ids = get("completion_ids");
      completion_mask = get("completion_mask");
      advantages = get("advantages");
      old_logps = get("old_logps");
      ref_logps = get("ref_logps");
    }
  };

  static ScoringOptions scoring_options(const GRPOConfig& config, const TrainerOptions& options) {
    ScoringOptions s;
    s.num_threads = options.reward_threads;
    s.weights = config.reward_weights;
    s.timeout_seconds = options.reward_timeout_seconds;
    return s;
  }

  torch::Device device() const {
    for (const auto& p : policy_.parameters()) return p.device();
    return torch::kCPU;
  }

  // Old log-probs are needed only when the policy can change between generation and use (TRL: GA is not a
  // multiple of steps_per_generation x num_iterations).
  bool needs_old_logps() const {
    return config_.gradient_accumulation_steps % config_.micro_steps_per_generation() != 0;
  }

  // Weighted nansum of each row's rewards (NaN for unscorable rows), as compute_advantages sums them.
  std::vector<double> weighted_rewards(const Eigen::MatrixXd& rewards) const {
    const auto& w = scorer_.weights();
    const Eigen::VectorXd sums =
        detail::weighted_nansum(rewards, Eigen::Map<const Eigen::VectorXd>(w.data(), static_cast<Eigen::Index>(w.size())));
    return std::vector<double>(sums.data(), sums.data() + sums.size());
  }

  // Prompt tokens, left-truncated to max_prompt_length (TRL keeps the end of the prompt).
  std::vector<int64_t> encode_prompt(const std::string& prompt) const {
    auto ids = tokenizer_.encode(prompt);
    if (ids.empty()) throw std::invalid_argument("GRPOTrainer: a prompt encodes to no tokens: \"" + prompt + "\"");
    if (static_cast<int64_t>(ids.size()) > config_.max_prompt_length) {
      ids.erase(ids.begin(), ids.end() - config_.max_prompt_length);
    }
    return ids;
  }

  GenerationOptions generation_options(bool eval) const {
    GenerationOptions o;
    o.max_new_tokens = config_.max_completion_length;
    o.temperature = config_.temperature;
    o.top_p = config_.top_p;
    o.top_k = config_.top_k;
    o.min_p = config_.min_p;
    o.repetition_penalty = config_.repetition_penalty;
    o.eos_token_ids = {tokenizer_.eos_token_id()};
    o.pad_token_id = tokenizer_.pad_token_id();
    o.do_sample = !(eval && options_.eval_greedy);
    o.seed = detail::mix_seed(config_.seed, eval ? 0xE7A1ULL + generation_calls_ : generation_calls_);
    return o;
  }

  // Generates completions for dataset rows `indices` (each prompt's copies consecutive) and scores them.
  detail::Rollout generate_and_score(const Dataset& data, const std::vector<int64_t>& indices, int group_size,
                                     bool eval) {
    detail::Rollout r;
    std::vector<nlohmann::json> rows;
    for (const auto i : indices) {
      r.dataset_index.push_back(i);
      r.prompts.push_back(data.prompt(static_cast<std::size_t>(i)));
      r.prompt_ids.push_back(encode_prompt(r.prompts.back()));
      rows.push_back(data.row(static_cast<std::size_t>(i)));
    }
    const auto [prompt_ids, prompt_mask] = detail::pad_rows(r.prompt_ids, tokenizer_.pad_token_id(), /*left=*/true);
    GenerationResult generated;
    {
      const auto options = generation_options(eval);
      if (!eval) ++generation_calls_;
      generated = policy_.generate(prompt_ids.to(device()), prompt_mask.to(device()), options);
    }
    const auto ids = generated.completion_ids.to(torch::kCPU).contiguous();
    const auto lengths = generated.lengths.to(torch::kCPU).contiguous();
    const auto truncated = generated.truncated.to(torch::kCPU).contiguous();
    const int64_t eos = tokenizer_.eos_token_id();
    for (int64_t b = 0; b < ids.size(0); ++b) {
      const auto length = lengths[b].item<int64_t>();
      std::vector<int64_t> tokens(ids[b].data_ptr<int64_t>(), ids[b].data_ptr<int64_t>() + length);
      r.truncated.push_back(truncated[b].item<bool>());
      std::vector<int64_t> text_tokens = tokens;
      if (!text_tokens.empty() && text_tokens.back() == eos) text_tokens.pop_back();
      r.completions.push_back(tokenizer_.decode(text_tokens));
      r.completion_ids.push_back(std::move(tokens));
    }
    RewardInputs inputs;
    inputs.prompts = r.prompts;
    inputs.completions = r.completions;
    inputs.completion_ids = r.completion_ids;
    inputs.columns = Columns::from_rows(rows);
    inputs.num_generations = group_size;
    inputs.trainer_state = TrainingProgress{state_.global_step, state_.epoch, total_steps_};
    auto scores = scorer_.score(inputs);
    r.rewards = std::move(scores.rewards_per_func);
    r.reward_metrics = std::move(scores.metrics);
    r.warnings = std::move(scores.warnings);
    for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    return r;
  }

  // Generates and scores the next generation batch, with DAPO dynamic sampling when enabled: groups whose
  // rewards are all equal are dropped and more batches are generated until the batch is full or the retries run
  // out; then the dropped groups fill the rest (logged), so every step trains on a full batch.
  detail::Rollout next_rollout() {
    const int g = config_.num_generations;
    auto rollout = generate_and_score(train_, sampler_.next_generation_batch(), g, false);
    if (!config_.dynamic_sampling) return rollout;
    const auto wanted = static_cast<int64_t>(rollout.size()) / g;
    DynamicSampling sampling(wanted, config_.max_dynamic_sampling_retries);
    detail::Rollout kept, spare;
    kept.rewards.resize(0, rollout.rewards.cols());
    spare.rewards.resize(0, rollout.rewards.cols());
    for (;;) {
      std::vector<bool> keep(static_cast<std::size_t>(rollout.size() / static_cast<std::size_t>(g)), false);
      for (const auto group : sampling.add_round(weighted_rewards(rollout.rewards), g)) {
        keep[static_cast<std::size_t>(group)] = true;
      }
      for (std::size_t group = 0; group < keep.size(); ++group) {
        (keep[group] ? kept : spare).append_group(rollout, static_cast<int64_t>(group), g);
      }
      kept.reward_metrics = rollout.reward_metrics;
      if (!sampling.more_rounds()) break;
      rollout = generate_and_score(train_, sampler_.next_generation_batch(), g, false);
    }
    int64_t filled = 0;
    for (; static_cast<int64_t>(kept.size()) / g < wanted; ++filled) kept.append_group(spare, filled, g);
    metrics_->add(sampling.metrics());
    metrics_->add("dynamic_sampling/zero_std_groups_used", static_cast<double>(filled));
    if (filled > 0) {
      std::fprintf(stderr,
                   "dynamic sampling: only %lld of %lld groups had differing rewards after %d extra generation "
                   "batches (max_dynamic_sampling_retries); %lld equal-reward groups fill the batch\n",
                   static_cast<long long>(wanted - filled), static_cast<long long>(wanted),
                   config_.max_dynamic_sampling_retries, static_cast<long long>(filled));
    }
    return kept;
  }

  void make_buffer(int64_t generation) {
    torch::NoGradGuard no_grad;
    const auto rollout = next_rollout();
    const auto n = static_cast<int64_t>(rollout.size());
    AdvantageOptions adv_options = config_.advantage_options();
    adv_options.weights = scorer_.weights();
    const Advantages adv = compute_advantages(rollout.rewards, adv_options);

    // Metrics of the generation batch (grpo-math.md §6).
    std::map<std::string, double> m = rollout.reward_metrics;
    m["reward"] = detail::nanmean(adv.rewards);
    m["reward_std"] = detail::nanstd(adv.rewards);
    for (std::size_t k = 0; k < reward_names_.size(); ++k) {
      const auto column = rollout.rewards.col(static_cast<Eigen::Index>(k));
      m["rewards/" + reward_names_[k] + "/mean"] = detail::nanmean(column);
      m["rewards/" + reward_names_[k] + "/std"] = detail::nanstd(column);
    }
    double zero_std = 0, clipped = 0, length_sum = 0, prompt_tokens = 0;
    double min_length = std::numeric_limits<double>::infinity(), max_length = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      zero_std += adv.zero_std[u] ? 1 : 0;
      clipped += rollout.truncated[u] ? 1 : 0;
      const auto length = static_cast<double>(rollout.completion_ids[u].size());
      length_sum += length;
      min_length = std::min(min_length, length);
      max_length = std::max(max_length, length);
      prompt_tokens += static_cast<double>(rollout.prompt_ids[u].size());
    }
    m["frac_reward_zero_std"] = zero_std / static_cast<double>(n);
    m["completions/clipped_ratio"] = clipped / static_cast<double>(n);
    m["completions/mean_length"] = length_sum / static_cast<double>(n);
    m["completions/min_length"] = min_length;
    m["completions/max_length"] = max_length;
    state_.num_tokens += static_cast<int64_t>(prompt_tokens + length_sum);
    metrics_->add(m);
    // Completions of the generation batch that opens each logging window (all of them with logging_steps = 1).
    if (completions_ && state_.global_step % config_.logging_steps == 0) {
      std::vector<double> advantages(adv.advantages.data(), adv.advantages.data() + n);
      completions_->write(state_.global_step, rollout.prompts, rollout.completions, reward_names_, rollout.rewards,
                          advantages);
    }

    // Tensors, rows shuffled (TRL shuffles the generation batch before slicing it).
    auto [prompt_ids, prompt_mask] = detail::pad_rows(rollout.prompt_ids, tokenizer_.pad_token_id(), true);
    auto [completion_ids, completion_mask] =
        detail::pad_rows(rollout.completion_ids, tokenizer_.pad_token_id(), false, 1);
    if (config_.mask_truncated_completions) {
      for (int64_t i = 0; i < n; ++i) {
        if (rollout.truncated[static_cast<std::size_t>(i)]) completion_mask[i].zero_();
      }
    }
    std::vector<int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(detail::mix_seed(config_.seed ^ 0x5A5A5A5AULL, static_cast<uint64_t>(generation)));
    for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates with our own draws: identical on every platform
      const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
      std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    const auto perm = torch::tensor(order, torch::kLong);
    const auto dev = device();
    buffer_ = Buffer{};
    buffer_.generation = generation;
    buffer_.prompt_ids = prompt_ids.index_select(0, perm).to(dev);
    buffer_.prompt_mask = prompt_mask.index_select(0, perm).to(dev);
    buffer_.completion_ids = completion_ids.index_select(0, perm).to(dev);
    buffer_.completion_mask = completion_mask.index_select(0, perm).to(dev);
    buffer_.advantages =
        torch::from_blob(const_cast<double*>(adv.advantages.data()), {n}, torch::kDouble).index_select(0, perm).to(dev,
                                                                                                    torch::kFloat);
    const int64_t rows_per_slice = config_.per_device_train_batch_size;
    const torch::Tensor tokens_per_row = buffer_.completion_mask.sum(1).to(torch::kCPU, torch::kDouble);
    for (int64_t s = 0; s * rows_per_slice < n; ++s) {
      buffer_.slice_tokens.push_back(tokens_per_row.slice(0, s * rows_per_slice, (s + 1) * rows_per_slice).sum().item<double>());
    }
    if (needs_old_logps()) {
      buffer_.old_logps = policy_.completion_logps(buffer_.prompt_ids, buffer_.prompt_mask, buffer_.completion_ids,
                                                   buffer_.completion_mask, config_.temperature, rows_per_slice)
                              .logps.detach();
    }
    if (reference_) {
      buffer_.ref_logps = reference_->completion_logps(buffer_.prompt_ids, buffer_.prompt_mask,
                                                       buffer_.completion_ids, buffer_.completion_mask,
                                                       config_.temperature, rows_per_slice)
                              .logps;
    }
  }

  // dapo/cispo normaliser: active tokens of this optimizer step's accumulation window (grpo-math.md §5, with
  // the correction of TRL issue 5619). Exact when the window lies inside one generation batch; otherwise TRL's
  // rescaled generation-batch count.
  double window_tokens(const MicroStep& plan) const {
    const int64_t ga = config_.gradient_accumulation_steps, spg = config_.effective_steps_per_generation();
    if (spg % ga == 0) {
      const int64_t first = (plan.slice / ga) * ga;
      double sum = 0;
      for (int64_t s = first; s < first + ga; ++s) sum += buffer_.slice_tokens[static_cast<std::size_t>(s)];
      return sum;
    }
    double total = 0;
    for (const double t : buffer_.slice_tokens) total += t;
    return total * static_cast<double>(ga) / static_cast<double>(spg);
  }

  void train_micro_step(const MicroStep& plan) {
    const int64_t b = config_.per_device_train_batch_size;
    const auto rows = torch::indexing::Slice(plan.slice * b, (plan.slice + 1) * b);
    const torch::Tensor mask = buffer_.completion_mask.index({rows});
    auto out = policy_.completion_logps(buffer_.prompt_ids.index({rows}), buffer_.prompt_mask.index({rows}),
                                        buffer_.completion_ids.index({rows}), mask, config_.temperature, b,
                                        /*want_entropy=*/true);
    LossBatch batch;
    batch.logps = out.logps;
    if (buffer_.old_logps.defined()) batch.old_logps = buffer_.old_logps.index({rows});
    if (buffer_.ref_logps.defined()) batch.ref_logps = buffer_.ref_logps.index({rows});
    batch.advantages = buffer_.advantages.index({rows});
    batch.mask = mask;
    batch.num_items_in_batch = window_tokens(plan);
    batch.num_processes = config_.num_processes;
    batch.grad_accum_steps = config_.gradient_accumulation_steps;
    auto result = policy_loss(batch, config_.loss_options());
    result.loss.backward();
    torch::NoGradGuard no_grad;
    const torch::Tensor entropies = out.entropies;
    const torch::Tensor fmask = mask.to(entropies.scalar_type());
    const double active = fmask.sum().item<double>();
    result.metrics["entropy"] = active > 0 ? (entropies * fmask).sum().item<double>() / active : std::nan("");
    result.metrics["loss"] = result.loss.template item<double>();
    metrics_->add(result.metrics);
  }

  // Clips, sets the scheduled learning rate, steps AdamW; returns the gradient norm before clipping.
  double optimizer_step() {
    auto params = policy_.parameters();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(params, config_.max_grad_norm);
    last_learning_rate_ = learning_rate_at(config_, state_.global_step, total_steps_);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(last_learning_rate_);
    }
    optimizer_->step();
    optimizer_->zero_grad();
    return grad_norm;
  }

  template <class M>
  static void load_parameters(M& model, const std::string& path) {
    const auto stored = read_safetensors(path).tensors;
    torch::NoGradGuard no_grad;
    for (auto& [name, param] : detail::named_parameters_of(model)) {
      const auto it = stored.find(name);
      if (it == stored.end()) throw std::runtime_error("resume_from_checkpoint: " + path + " lacks tensor " + name);
      if (it->second.sizes() != param.sizes()) {
        throw std::runtime_error("resume_from_checkpoint: " + path + ": tensor " + name + " has shape " +
                                 detail::shape_string(it->second) + " but the model's is " +
                                 detail::shape_string(param));
      }
      auto target = param;
      target.copy_(it->second.to(param.options()));
    }
  }

  void check_same_trajectory(GRPOConfig stored, const std::string& where) const {
    stored.output_dir = config_.output_dir;
    stored.logging_steps = config_.logging_steps;
    stored.save_steps = config_.save_steps;
    stored.save_total_limit = config_.save_total_limit;
    stored.eval_steps = config_.eval_steps;
    stored.log_completions = config_.log_completions;
    if (nlohmann::json(stored) != nlohmann::json(config_)) {
      const nlohmann::json a = stored, b = config_;
      std::string fields;
      for (const auto& item : a.items()) {
        if (!b.contains(item.key()) || b.at(item.key()) != item.value()) fields += " " + item.key();
      }
      throw std::invalid_argument("resume_from_checkpoint: " + where +
                                  " was written with a different config; differing fields:" + fields);
    }
  }

  GRPOConfig config_;
  TrainerOptions options_;
  Tokenizer tokenizer_;
  Policy<Model> policy_;
  std::optional<Reference<Model>> reference_;
  Dataset train_;
  std::optional<Dataset> eval_;
  RewardScorer scorer_;
  RepeatSampler sampler_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<std::string> reward_names_;
  TrainerState state_;
  int64_t total_steps_ = 0;
  uint64_t generation_calls_ = 0;
  double last_learning_rate_ = 0;
  Buffer buffer_;
  MetricsLog* metrics_ = nullptr;
  CompletionsLog* completions_ = nullptr;
};

}  // namespace grpo
