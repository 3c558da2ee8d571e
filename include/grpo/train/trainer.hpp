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
// With P processes (a ProcessGroup, distributed/; launched by torchrun) the same loop runs on every rank: rollouts
// are split and gathered (train/rollout_exchange.hpp), each rank trains on its rows of every micro-batch
// (train/buffer.hpp), gradients are averaged before each optimizer step (distributed/data_parallel.hpp), metrics
// are averaged, and rank 0 alone writes logs and checkpoints.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "grpo/core/advantages.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/data/sampler.hpp"
#include "grpo/distributed/data_parallel.hpp"
#include "grpo/distributed/process_group.hpp"
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
  /// they can also be removed one by one from callbacks(). Rank 0 only in a multi-process run.
  bool default_reporters = true;
  /// The processes of a data-parallel run; unset: ProcessGroup::from_environment() (the run torchrun launched
  /// this process into, with GRPOConfig::ddp_timeout), or none for a single process. Pass one explicitly to
  /// build several trainers in one process (each group holds MASTER_PORT).
  std::shared_ptr<ProcessGroup> process_group;
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
      : group_(resolve_group(options, config)),
        config_(validated(std::move(config), group_.get())),
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
    rollouts_.set_process_group(group_.get());
    state_.process_index = group_ ? group_->rank() : 0;
    state_.num_processes = config_.num_processes;
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
    if (group_) start_replicas();  // rank 0's weights everywhere, before the reference copies them
    if (config_.beta != 0.0) reference_.emplace(policy_);
    optimizer_ = make_optimizer();
    if (options_.default_reporters && state_.is_world_process_zero()) {
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
    if (!group_) return train_loop(hooks);
    try {
      return train_loop(hooks);
    } catch (const std::exception& e) {
      group_->report_failure("rank " + std::to_string(group_->rank()) + " stopped with: " + e.what());
      throw;
    }
  }

  /// Scores the eval dataset (or `dataset`) with the current policy: "eval_reward", "eval_rewards/<name>/mean",
  /// "eval_completions/mean_length" and, with TrainerOptions::eval.accuracy_reward, "eval_accuracy". With P
  /// processes a collective: every rank calls it, generates a slice and gets the same metrics.
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
  /// save_total_limit, and returns its directory. With P processes a collective; rank 0 writes.
  std::string save_checkpoint() {
    const auto dir = (std::filesystem::path(config_.output_dir) / checkpoint_name(state_.global_step)).string();
    const std::string previous = state_.last_checkpoint;
    state_.last_checkpoint = dir;
    try {
      write_trainer_checkpoint(dir, policy_, reference_, *optimizer_, buffer_,
                               TrainerProgress{state_, sampler_.state(), generation_calls_}, config_, group_.get());
    } catch (const std::exception& e) {
      state_.last_checkpoint = previous;
      throw RuntimeError("grpo::GRPOTrainer::save_checkpoint: writing " + dir + " failed (" +
                         detail::exception_text(e) +
                         "); its temporary folder was removed, and the last complete checkpoint " +
                         (previous.empty() ? std::string("(none yet)") : previous) + " is intact");
    }
    if (state_.is_world_process_zero() && config_.save_total_limit) {
      prune_checkpoints(config_.output_dir, *config_.save_total_limit);
    }
    if (group_) group_->barrier("checkpoint " + dir + " written");
    return dir;
  }

  /// Restores a checkpoint written by save_checkpoint(): weights, optimizer, reference model, sampler position,
  /// generation buffer, RNG and counters, so that train() continues the same trajectory. The trainer must have
  /// been built with the same config (output_dir, logging, evaluation and checkpoint options may differ, and so
  /// may the number of processes when per_device_train_batch_size * num_processes is the same). With P processes
  /// every rank reads the checkpoint (a folder all of them see).
  void resume_from_checkpoint(const std::string& dir) {
    // All or nothing: everything is read and checked before the trainer changes, so a failed resume leaves it
    // exactly as it was.
    const TrainerCheckpoint c = read_trainer_checkpoint(dir, reference_.has_value());
    check_same_trajectory(c.config, c.dir + "/trainer_state.json");
    const auto model_path = (std::filesystem::path(dir) / "model.safetensors").string();
    const auto reference_path = (std::filesystem::path(dir) / "reference.safetensors").string();
    detail::check_parameters(policy_.model(), c.model, model_path);
    if (reference_) detail::check_parameters(reference_->model(), c.reference, reference_path);
    std::unique_ptr<torch::optim::Optimizer> optimizer = make_optimizer();
    const auto optimizer_path = (std::filesystem::path(dir) / "optimizer.pt").string();
    try {
      torch::load(*optimizer, optimizer_path);
    } catch (const std::exception& e) {
      throw RuntimeError("grpo::GRPOTrainer::resume_from_checkpoint: " + optimizer_path +
                         " cannot be loaded into the optimizer: " + detail::exception_text(e));
    }
    RepeatSampler sampler = sampler_;
    sampler.restore(c.progress.sampler);
    GenerationBuffer buffer =
        GenerationBuffer::restore(c.meta.at("buffer"), c.extra, config_, policy_.device(), replica());
    detail::set_cpu_generator_state(c.extra.at("rng/cpu"));  // the first change; it throws only on a bad state
    detail::load_parameters(policy_.model(), c.model, model_path);
    if (reference_) detail::load_parameters(reference_->model(), c.reference, reference_path);
    optimizer_ = std::move(optimizer);
    const int process_index = state_.process_index, num_processes = state_.num_processes;
    state_ = c.progress.state;
    state_.max_steps = total_steps_;
    state_.process_index = process_index;
    state_.num_processes = num_processes;
    sampler_ = std::move(sampler);
    generation_calls_ = c.progress.generation_calls;
    buffer_ = std::move(buffer);
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
  /// The processes of this run (null for a single process).
  const std::shared_ptr<ProcessGroup>& process_group() const { return group_; }

 private:
  TrainResult train_loop(CallbackList& hooks) {
    if (state_.is_world_process_zero()) {
      std::filesystem::create_directories(config_.output_dir);
      save_config(config_, (std::filesystem::path(config_.output_dir) / "config.json").string());
    }
    MetricAverager metrics;  // the current logging window
    TrainResult result;
    const auto start = std::chrono::steady_clock::now();
    const double elapsed_before = state_.elapsed_seconds;
    auto step_start = start;
    bool stop = hooks.on_train_begin(state_) == Control::stop;

    double update_seconds = 0;  // forward, loss and backward of this step's micro-steps, and the optimizer step
    if (group_) stop = group_->any(stop, "stop request at the start of training");
    while (!stop && state_.global_step < total_steps_) {
      const MicroStep plan = micro_step_schedule(config_, state_.micro_step);
      if (plan.generate || !buffer_.defined()) {
        stop |= load_generation_batch(plan.generation, metrics, hooks);
        if (group_) stop = group_->any(stop, "stop request after generation batch " + std::to_string(plan.generation));
      }
      const auto update_start = std::chrono::steady_clock::now();
      metrics.add(run_micro_step(policy_, buffer_, plan, config_));
      ++state_.micro_step;
      if (!plan.optimizer_step) {
        update_seconds += seconds_since(update_start);
        continue;
      }

      learning_rate_ = learning_rate_at(config_, state_.global_step, total_steps_);
      if (group_) {
        const auto reduce_start = std::chrono::steady_clock::now();
        all_reduce_gradients(*group_, policy_.parameters(),
                             "gradients of step " + std::to_string(state_.global_step + 1));
        metrics.add("timing/gradient_all_reduce", seconds_since(reduce_start));
      }
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
        result.last_metrics = mean_over_ranks(metrics.take(), "metrics of step " + std::to_string(state_.global_step));
        result.last_metrics["learning_rate"] = learning_rate_;
        result.last_metrics["num_tokens"] = static_cast<double>(state_.num_tokens);
        stop |= hooks.on_log(state_, result.last_metrics) == Control::stop;
      }
      if (eval_ && !eval_->empty() && (last || state_.global_step % config_.effective_eval_steps() == 0)) {
        result.last_eval_metrics = evaluate();
        stop |= hooks.on_evaluate(state_, result.last_eval_metrics) == Control::stop;
      }
      if (config_.save_steps > 0 && state_.global_step % config_.save_steps == 0) {
        stop |= hooks.on_save(state_, save_checkpoint()) == Control::stop;
      }
      if (group_) stop = group_->any(stop, "stop request after step " + std::to_string(state_.global_step));
    }
    hooks.on_train_end(state_);
    if (group_) group_->barrier("end of training");
    result.global_step = state_.global_step;
    result.stopped_early = state_.global_step < total_steps_;
    return result;
  }

  static std::shared_ptr<ProcessGroup> resolve_group(const TrainerOptions& options, const GRPOConfig& config) {
    if (options.process_group) return options.process_group->size() > 1 ? options.process_group : nullptr;
    ProcessGroupOptions o;
    o.timeout = std::chrono::seconds(std::max<int64_t>(1, config.ddp_timeout));
    return ProcessGroup::from_environment(o);
  }

  // The config with num_processes set to the group's size.
  static GRPOConfig validated(GRPOConfig config, const ProcessGroup* group) {
    const int world = group ? group->size() : 1;
    if (config.num_processes != 1 && config.num_processes != world) {
      throw InvalidArgument("grpo::GRPOTrainer: num_processes = " + std::to_string(config.num_processes) +
                            " but this run has " + std::to_string(world) +
                            " process(es) (launch them with `torchrun --nproc-per-node N`, which sets WORLD_SIZE, or "
                            "pass TrainerOptions::process_group); leave num_processes at 1 to take the run's size");
    }
    config.num_processes = world;
    config.validate();
    return config;
  }

  std::unique_ptr<torch::optim::Optimizer> make_optimizer() {
    auto optimizer = options_.optimizer ? options_.optimizer(policy_.parameters(), config_)
                                        : make_adamw(policy_.parameters(), config_);
    if (!optimizer) throw InvalidArgument("grpo::GRPOTrainer: the optimizer factory returned null");
    return optimizer;
  }

  ReplicaSlot replica() const { return ReplicaSlot{state_.process_index, config_.num_processes}; }

  // Every rank must run the same config on the same data from rank 0's weights: checked, then broadcast.
  void start_replicas() {
    const std::string config_text = trajectory_fields(config_).dump();
    const auto configs = group_->all_gather_bytes(config_text, "check that every rank has the same config");
    for (std::size_t r = 1; r < configs.size(); ++r) {
      if (configs[r] == configs[0]) continue;
      const auto a = nlohmann::json::parse(configs[0]), b = nlohmann::json::parse(configs[r]);
      std::string fields;
      for (const auto& item : a.items()) {
        if (!b.contains(item.key()) || b.at(item.key()) != item.value()) fields += " " + item.key();
      }
      throw InvalidArgument("grpo::GRPOTrainer: rank " + std::to_string(r) +
                            "'s config differs from rank 0's; differing fields:" + fields);
    }
    uint64_t data_hash = 1469598103934665603ULL;
    for (std::size_t i = 0; i < train_.size(); ++i) {
      for (const char c : train_.row(i).dump()) data_hash = (data_hash ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
    }
    const std::string data_text = std::to_string(train_.size()) + " rows, hash " + std::to_string(data_hash);
    const auto datasets = group_->all_gather_bytes(data_text, "check that every rank has the same training data");
    for (std::size_t r = 1; r < datasets.size(); ++r) {
      if (datasets[r] != datasets[0]) {
        throw InvalidArgument("grpo::GRPOTrainer: rank " + std::to_string(r) + "'s training dataset (" + datasets[r] +
                              ") differs from rank 0's (" + datasets[0] + ")");
      }
    }
    std::vector<torch::Tensor> tensors;
    std::vector<std::string> names;
    for (const auto& [name, tensor] : detail::named_parameters_of(policy_.model())) {
      tensors.push_back(tensor);
      names.push_back(name);
    }
    if constexpr (std::is_base_of_v<torch::nn::Module, Model>) {
      for (const auto& item : policy_.model().named_buffers()) {
        tensors.push_back(item.value());
        names.push_back(item.key());
      }
    }
    broadcast_tensors(*group_, tensors, "broadcast of rank 0's parameters");
    check_replicas_equal(*group_, tensors, names, "parameters after the broadcast");
  }

  // Each metric's mean over the ranks that report it (NaN when none does).
  std::map<std::string, double> mean_over_ranks(const std::map<std::string, double>& metrics, const std::string& what) {
    if (!group_) return metrics;
    const nlohmann::json mine = metrics;
    const auto packed = nlohmann::json::to_cbor(mine);
    std::map<std::string, std::pair<double, int>> sums;
    for (const auto& bytes : group_->all_gather_bytes(std::string(packed.begin(), packed.end()), what)) {
      for (const auto& [name, value] : nlohmann::json::from_cbor(bytes).get<std::map<std::string, double>>()) {
        auto& sum = sums[name];
        if (std::isnan(value)) continue;
        sum.first += value;
        sum.second += 1;
      }
    }
    std::map<std::string, double> out;
    for (const auto& [name, sum] : sums) out[name] = sum.second ? sum.first / sum.second : std::nan("");
    return out;
  }

  // The config's fields that shape the trajectory: logging, evaluation, checkpoint and timeout options cleared,
  // and the processes folded into the rows per micro-step (per_device_train_batch_size * num_processes).
  static nlohmann::json trajectory_fields(GRPOConfig c) {
    const GRPOConfig defaults;
    c.output_dir = defaults.output_dir;
    c.logging_steps = defaults.logging_steps;
    c.save_steps = defaults.save_steps;
    c.save_total_limit = defaults.save_total_limit;
    c.eval_steps = defaults.eval_steps;
    c.log_completions = defaults.log_completions;
    c.ddp_timeout = defaults.ddp_timeout;
    c.per_device_train_batch_size *= c.num_processes;
    c.num_processes = 1;
    return c;
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
    buffer_ = GenerationBuffer::build(rollout, adv, generation, config_, policy_, reference_, replica());
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

  void check_same_trajectory(const GRPOConfig& stored, const std::string& where) const {
    // Options that do not change the trajectory may differ.
    const nlohmann::json a = trajectory_fields(stored), b = trajectory_fields(config_);
    if (a == b) return;
    std::string fields;
    for (const auto& item : a.items()) {
      if (!b.contains(item.key()) || b.at(item.key()) != item.value()) fields += " " + item.key();
    }
    throw InvalidArgument("grpo::GRPOTrainer::resume_from_checkpoint: " + where +
                          " was written with a different config; differing fields:" + fields);
  }

  std::shared_ptr<ProcessGroup> group_;  // null for a single process; declared first: the config depends on it
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
