#pragma once
// GRPOTrainer: the GRPO loop with TRL's semantics (docs/math.md §9; its deliberate differences from TRL: §10),
// composed of
//   train/rollout.hpp         generate, decode, score (the dataset's columns are the kwargs), dynamic sampling
//   core/advantages.hpp       group advantages
//   train/buffer.hpp          the shuffled generation batch, old / reference log-probs, micro-batch slices
//   train/micro_step.hpp      log-probs, loss, backward
//   train/optimizer_step.hpp  clip, learning rate, step (any torch::optim::Optimizer; AdamW by default)
//   train/evaluate.hpp        evaluation
//   train/trainer_checkpoint.hpp  atomic checkpoints, exact resume
// and reporting through callbacks (train/callbacks.hpp; the defaults in train/reporting.hpp).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "grpo/core/advantages.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/data/sampler.hpp"
#include "grpo/error.hpp"
#include "grpo/rewards/scoring.hpp"
#include "grpo/tokenizers/chat_template.hpp"
#include "grpo/tokenizers/tokenizer.hpp"
#include "grpo/train/batching.hpp"
#include "grpo/train/buffer.hpp"
#include "grpo/train/callbacks.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/evaluate.hpp"
#include "grpo/train/logging.hpp"
#include "grpo/train/micro_step.hpp"
#include "grpo/train/optimizer_step.hpp"
#include "grpo/train/policy.hpp"
#include "grpo/train/prompt_renderer.hpp"
#include "grpo/train/reporting.hpp"
#include "grpo/train/rollout.hpp"
#include "grpo/train/schedule.hpp"
#include "grpo/train/state.hpp"
#include "grpo/train/trainer_checkpoint.hpp"

namespace grpo {

/// Builds the optimizer from the trainable parameters and the config.
using OptimizerFactory =
    std::function<std::unique_ptr<torch::optim::Optimizer>(const std::vector<torch::Tensor>&, const GRPOConfig&)>;

/// Knobs of a trainer that are not training hyper-parameters.
struct TrainerOptions {
  /// Run per-completion reward functions concurrently on reward_threads threads (they must then be thread-safe);
  /// false (the default): one call after another.
  bool parallel_rewards = false;
  /// Threads for parallel_rewards (0 = all cores).
  std::size_t reward_threads = 0;
  /// Per-call reward timeout in seconds; unset = none.
  std::optional<double> reward_timeout_seconds;
  /// How evaluate() samples, and which reward function it reports as eval_accuracy.
  EvalOptions eval;
  /// LibTorch intra-op threads, set when the trainer is built (process-wide, torch::set_num_threads): 0 = every
  /// core, n > 0 = n; unset (the default) leaves LibTorch's setting alone.
  std::optional<int> torch_threads;
  /// The optimizer; unset: AdamW with the config's learning rate, betas, epsilon and weight decay (make_adamw).
  /// The trainer sets each group's learning rate from the schedule before every step.
  OptimizerFactory optimizer;
  /// The chat template that turns conversational prompts (rows whose "prompt" is a list of {"role", "content"}
  /// messages) into text, with the generation prompt; required when a dataset has such rows. grpo::load_pretrained
  /// gives the model's. Text prompts are used as they are.
  std::optional<ChatTemplate> chat_template;
  /// Extra variables for the chat template (TRL's chat_template_kwargs), a JSON object: {"enable_thinking": false}.
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  /// Install the default reporters (train/reporting.hpp: console, metrics.jsonl, completions.jsonl, the chart);
  /// they can also be removed one by one from callbacks().
  bool default_reporters = true;
};

/// What train() reports at the end.
struct TrainResult {
  /// Optimizer steps done.
  int64_t global_step = 0;
  /// The last logged training metrics.
  std::map<std::string, double> last_metrics;
  /// The last evaluation metrics (empty without an eval dataset).
  std::map<std::string, double> last_eval_metrics;
  /// A callback asked to stop before max_steps.
  bool stopped_early = false;
};

/// The GRPO trainer for a model meeting the CausalLM trait (grpo/models/causal_lm.hpp) and a tokenizer meeting
/// the Tokenizer trait (grpo/tokenizers/tokenizer.hpp). Not copyable or movable (its parts refer to each other).
template <class Model, class Tokenizer>
class GRPOTrainer {
  static_assert(check_causal_lm<Model>());
  static_assert(check_tokenizer<Tokenizer>());

 public:
  /// Validates everything up front: the config (naming the bad field), the reward weights, and that the datasets
  /// have every column a reward function requires. The model's device is the training device.
  GRPOTrainer(std::shared_ptr<Model> model, Tokenizer tokenizer, std::vector<RewardFunction> reward_functions,
              GRPOConfig config, Dataset train_dataset, std::optional<Dataset> eval_dataset = std::nullopt)
      : GRPOTrainer(std::move(model), std::move(tokenizer), std::move(reward_functions), std::move(config),
                    std::move(train_dataset), std::move(eval_dataset), TrainerOptions()) {}
  /// The same with options (a separate overload rather than a default argument: g++ 12 reports a false
  /// -Wmaybe-uninitialized for a defaulted TrainerOptions temporary in callers that catch the constructor's errors).
  GRPOTrainer(std::shared_ptr<Model> model, Tokenizer tokenizer, std::vector<RewardFunction> reward_functions,
              GRPOConfig config, Dataset train_dataset, std::optional<Dataset> eval_dataset, TrainerOptions options)
      : config_(validated(std::move(config))),
        options_(std::move(options)),
        tokenizer_(std::move(tokenizer)),
        policy_(std::move(model)),
        train_(std::move(train_dataset)),
        eval_(std::move(eval_dataset)),
        scorer_(std::move(reward_functions), scoring_options(config_, options_)),
        sampler_(make_sampler(config_, static_cast<int64_t>(train_.size()))),
        renderer_(options_.chat_template, options_.chat_template_kwargs),
        rollouts_(policy_, tokenizer_, scorer_, config_, renderer_) {
    if (options_.torch_threads) {
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      torch::set_num_threads(*options_.torch_threads == 0 ? static_cast<int>(cores) : *options_.torch_threads);
    }
    if (config_.num_processes != 1) {
      throw InvalidArgument("grpo::GRPOTrainer: num_processes = " + std::to_string(config_.num_processes) +
                            ", but multi-process training is not implemented yet; use 1");
    }
    scorer_.check_columns(reward_columns(train_));
    check_prompts(train_, "train");
    if (eval_ && !eval_->empty()) {
      scorer_.check_columns(reward_columns(*eval_));
      check_prompts(*eval_, "eval");
    }
    for (const auto& f : scorer_.functions()) reward_names_.push_back(f.name());
    const auto& accuracy = options_.eval.accuracy_reward;
    if (!accuracy.empty() && std::find(reward_names_.begin(), reward_names_.end(), accuracy) == reward_names_.end()) {
      throw InvalidArgument("grpo::GRPOTrainer: eval accuracy_reward \"" + accuracy +
                            "\" is not one of the reward functions");
    }
    total_steps_ = resolve_total_steps(config_, static_cast<int64_t>(train_.size()));
    state_.max_steps = total_steps_;
    if (config_.gradient_checkpointing) {
      if constexpr (detail::has_gradient_checkpointing<Model>::value) {
        policy_.model().set_gradient_checkpointing(true);
      } else {
        throw InvalidArgument(
            "grpo::GRPOTrainer: gradient_checkpointing is true but the model type has no "
            "set_gradient_checkpointing(bool)");
      }
    }
    if (config_.bf16) policy_.set_mixed_precision(torch::kBFloat16);  // before the reference copies the setting
    if (config_.beta != 0.0) reference_.emplace(policy_);
    optimizer_ = options_.optimizer ? options_.optimizer(policy_.parameters(), config_)
                                    : make_adamw(policy_.parameters(), config_);
    if (!optimizer_) throw InvalidArgument("grpo::GRPOTrainer: the optimizer factory returned null");
    if (options_.default_reporters) {
      callbacks_ = default_reporters(config_.output_dir, config_.logging_steps, config_.log_completions);
    }
  }
  GRPOTrainer(const GRPOTrainer&) = delete;
  GRPOTrainer& operator=(const GRPOTrainer&) = delete;

  /// Runs training to max_steps (or num_train_epochs), or until a callback returns Control::stop. `callbacks`
  /// (see train/callbacks.hpp) join the trainer's own callbacks() for this call: lvalues by reference, temporaries
  /// moved in.
  template <class... Callbacks>
  TrainResult train(Callbacks&&... callbacks) {
    CallbackList hooks;
    hooks.add(callbacks_);
    (hooks.add(std::forward<Callbacks>(callbacks)), ...);
    std::filesystem::create_directories(config_.output_dir);
    save_config(config_, (std::filesystem::path(config_.output_dir) / "config.json").string());
    MetricAverager metrics;  // the current logging window
    TrainResult result;
    const auto start = std::chrono::steady_clock::now();
    const double elapsed_before = state_.elapsed_seconds;
    auto step_start = start;
    bool stop = hooks.on_train_begin(state_) == Control::stop;

    double update_seconds = 0;  // forward, loss and backward of this step's micro-steps, and the optimizer step
    while (!stop && state_.global_step < total_steps_) {
      const MicroStep plan = micro_step_schedule(config_, state_.micro_step);
      if (plan.generate || !buffer_.defined()) stop |= load_generation_batch(plan.generation, metrics, hooks);
      const auto update_start = std::chrono::steady_clock::now();
      metrics.add(run_micro_step(policy_, buffer_, plan, config_));
      ++state_.micro_step;
      if (!plan.optimizer_step) {
        update_seconds += seconds_since(update_start);
        continue;
      }

      learning_rate_ = learning_rate_at(config_, state_.global_step, total_steps_);
      metrics.add("grad_norm",
                  optimizer_step(*optimizer_, policy_.parameters(), config_.max_grad_norm, learning_rate_));
      metrics.add("timing/update", update_seconds + seconds_since(update_start));
      update_seconds = 0;
      ++state_.global_step;
      state_.epoch = sampler_.epoch_progress();
      const auto now = std::chrono::steady_clock::now();
      metrics.add("step_time", std::chrono::duration<double>(now - step_start).count());
      step_start = now;
      state_.elapsed_seconds = elapsed_before + std::chrono::duration<double>(now - start).count();
      if (config_.sync_ref_model && reference_ && state_.global_step % config_.ref_model_sync_steps == 0) {
        reference_->sync_from(policy_, config_.ref_model_mixup_alpha);
      }
      stop |= hooks.on_step_end(state_) == Control::stop;

      const bool last = state_.global_step >= total_steps_;
      if (last || state_.global_step % config_.logging_steps == 0) {
        result.last_metrics =
            metrics.take({{"learning_rate", learning_rate_}, {"num_tokens", static_cast<double>(state_.num_tokens)}});
        stop |= hooks.on_log(state_, result.last_metrics) == Control::stop;
      }
      if (eval_ && !eval_->empty() && (last || state_.global_step % config_.effective_eval_steps() == 0)) {
        result.last_eval_metrics = evaluate();
        stop |= hooks.on_evaluate(state_, result.last_eval_metrics) == Control::stop;
      }
      if (config_.save_steps > 0 && state_.global_step % config_.save_steps == 0) {
        stop |= hooks.on_save(state_, save_checkpoint()) == Control::stop;
      }
    }
    hooks.on_train_end(state_);
    result.global_step = state_.global_step;
    result.stopped_early = state_.global_step < total_steps_;
    return result;
  }

  /// Scores the eval dataset (or `dataset`) with the current policy: "eval_reward", "eval_rewards/<name>/mean",
  /// "eval_completions/mean_length" and, with TrainerOptions::eval.accuracy_reward, "eval_accuracy".
  std::map<std::string, double> evaluate(const std::optional<Dataset>& dataset = std::nullopt) {
    const Dataset* data = dataset ? &*dataset : (eval_ ? &*eval_ : nullptr);
    if (!data || data->empty()) throw InvalidArgument("grpo::GRPOTrainer::evaluate: there is no eval dataset");
    if (dataset) {
      scorer_.check_columns(reward_columns(*dataset));
      check_prompts(*dataset, "eval");
    }
    torch::NoGradGuard no_grad;
    return evaluate_rollouts(rollouts_, *data, reward_names_, options_.eval, config_.generation_batch_size(),
                             eval_calls_, progress());
  }

  /// Writes a checkpoint of the current state to output_dir/checkpoint-<step> (atomically), prunes old ones to
  /// save_total_limit, and returns its directory.
  std::string save_checkpoint() {
    const auto dir = (std::filesystem::path(config_.output_dir) / checkpoint_name(state_.global_step)).string();
    state_.last_checkpoint = dir;
    write_trainer_checkpoint(dir, policy_, reference_, *optimizer_, buffer_,
                             TrainerProgress{state_, sampler_.state(), generation_calls_}, config_);
    if (config_.save_total_limit) prune_checkpoints(config_.output_dir, *config_.save_total_limit);
    return dir;
  }

  /// Restores a checkpoint written by save_checkpoint(): weights, optimizer, reference model, sampler position,
  /// generation buffer, RNG and counters, so that train() continues the same trajectory. The trainer must have
  /// been built with the same config (output_dir, logging, evaluation and checkpoint options may differ).
  void resume_from_checkpoint(const std::string& dir) {
    const TrainerCheckpoint c = read_trainer_checkpoint(dir, reference_.has_value());
    check_same_trajectory(c.config, c.dir + "/trainer_state.json");
    detail::load_parameters(policy_.model(), c.model, dir + "/model.safetensors");
    if (reference_) detail::load_parameters(reference_->model(), c.reference, dir + "/reference.safetensors");
    torch::load(*optimizer_, (std::filesystem::path(dir) / "optimizer.pt").string());
    detail::set_cpu_generator_state(c.extra.at("rng/cpu"));
    state_ = c.progress.state;
    state_.max_steps = total_steps_;
    sampler_.restore(c.progress.sampler);
    generation_calls_ = c.progress.generation_calls;
    buffer_ = GenerationBuffer::restore(c.meta.at("buffer"), c.extra, config_, policy_.device());
  }

  /// The callbacks every train() call uses (the default reporters unless TrainerOptions::default_reporters is
  /// false): add or remove them here.
  CallbackList& callbacks() { return callbacks_; }
  /// Progress so far.
  const TrainerState& state() const { return state_; }
  /// The policy being trained.
  Policy<Model>& policy() { return policy_; }
  /// The reference model (present when beta != 0).
  std::optional<Reference<Model>>& reference() { return reference_; }
  /// The optimizer.
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  /// The configuration in force.
  const GRPOConfig& config() const { return config_; }
  /// Total optimizer steps of the run.
  int64_t total_steps() const { return total_steps_; }

 private:
  static GRPOConfig validated(GRPOConfig config) {
    config.validate();
    return config;
  }

  static ScoringOptions scoring_options(const GRPOConfig& config, const TrainerOptions& options) {
    ScoringOptions s;
    s.parallel = options.parallel_rewards;
    s.num_threads = options.reward_threads;
    s.weights = config.weights;
    s.timeout_seconds = options.reward_timeout_seconds;
    return s;
  }

  static std::vector<std::string> reward_columns(const Dataset& data) {
    std::vector<std::string> columns;
    for (const auto& c : data.column_names()) {
      if (c != "prompt") columns.push_back(c);
    }
    return columns;
  }

  // Conversational rows need a chat template: checked before any training.
  void check_prompts(const Dataset& data, const char* which) const {
    const auto row = data.first_conversational_row();
    if (row < data.size() && !renderer_.has_chat_template()) {
      throw InvalidArgument(std::string("grpo::GRPOTrainer: row ") + std::to_string(row) + " of the " + which +
                            " dataset is a conversation (its \"prompt\" is a list of messages), but no chat "
                            "template was given: set TrainerOptions::chat_template (grpo::load_pretrained gives "
                            "the model's)");
    }
  }

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  TrainingProgress progress() const { return TrainingProgress{state_.global_step, state_.epoch, total_steps_}; }

  // Makes generation batch `generation`: rollout, advantages, buffer; reports its metrics, completions and
  // warnings. Returns whether a callback asked to stop.
  bool load_generation_batch(int64_t generation, MetricAverager& metrics, CallbackList& hooks) {
    torch::NoGradGuard no_grad;
    std::map<std::string, double> sampling_metrics;
    const auto rollout_start = std::chrono::steady_clock::now();
    const Rollout rollout = rollouts_.next(train_, sampler_, generation_calls_, progress(), sampling_metrics);
    metrics.add("timing/rollout", seconds_since(rollout_start));
    AdvantageOptions adv_options = config_.advantage_options();
    adv_options.weights = scorer_.weights();
    const Advantages adv = compute_advantages(rollout.rewards, adv_options);
    const auto log_probs_start = std::chrono::steady_clock::now();
    buffer_ = GenerationBuffer::build(rollout, adv, generation, config_, policy_, reference_);
    metrics.add("timing/log_probs", seconds_since(log_probs_start));
    metrics.add(sampling_metrics);
    metrics.add(rollout_metrics(rollout, adv, reward_names_));
    state_.num_tokens += rollout.prompt_mask.sum().item<int64_t>() + rollout.completion_mask.sum().item<int64_t>();
    bool stop = false;
    for (const auto& warning : rollout.warnings) stop |= hooks.on_warning(state_, warning) == Control::stop;
    const std::vector<double> advantages(adv.advantages.data(), adv.advantages.data() + adv.advantages.size());
    stop |= hooks.on_rollout(state_, RolloutRecord{rollout.prompts, rollout.completions, reward_names_, rollout.rewards,
                                                   advantages}) == Control::stop;
    return stop;
  }

  void check_same_trajectory(GRPOConfig stored, const std::string& where) const {
    // Options that do not change the trajectory may differ.
    stored.output_dir = config_.output_dir;
    stored.logging_steps = config_.logging_steps;
    stored.save_steps = config_.save_steps;
    stored.save_total_limit = config_.save_total_limit;
    stored.eval_steps = config_.eval_steps;
    stored.log_completions = config_.log_completions;
    const nlohmann::json a = stored, b = config_;
    if (a == b) return;
    std::string fields;
    for (const auto& item : a.items()) {
      if (!b.contains(item.key()) || b.at(item.key()) != item.value()) fields += " " + item.key();
    }
    throw InvalidArgument("grpo::GRPOTrainer::resume_from_checkpoint: " + where +
                          " was written with a different config; differing fields:" + fields);
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
  PromptRenderer renderer_;
  RolloutGenerator<Model, Tokenizer> rollouts_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  CallbackList callbacks_;
  std::vector<std::string> reward_names_;
  TrainerState state_;
  int64_t total_steps_ = 0;
  uint64_t generation_calls_ = 0, eval_calls_ = 0;
  double learning_rate_ = 0;
  GenerationBuffer buffer_;
};

}  // namespace grpo
