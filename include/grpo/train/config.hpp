#pragma once
// GRPOConfig: every option of a GRPO training run, with TRL's names and defaults (docs/math.md §7). Torch-free:
// the trainer reads it, users load and save it as JSON.

#include <array>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <istream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/advantages.hpp"
#include "grpo/core/loss_options.hpp"
#include "grpo/detail/atomic_file.hpp"
#include "grpo/detail/json_depth.hpp"
#include "grpo/detail/json_fields.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Learning-rate schedule after warmup, spelled as Hugging Face's `lr_scheduler_type`.
enum class LrSchedulerType { constant, linear, cosine };

namespace detail {
// "grpo_output", from a noexcept function: with an initializer that cannot throw, `GRPOConfig c{}` (aggregate
// initialization of a struct with bases) has no exception path that destroys the bases, which is where g++ 12 at
// -O3 reports a false -Wmaybe-uninitialized in the caller's code. The text fits every std::string's small buffer.
inline std::string default_output_dir() noexcept { return "grpo_output"; }
}  // namespace detail

/// Options of a GRPO run. Defaults are TRL's GRPOConfig defaults unless a comment says otherwise.
///
/// The kernel's knobs are not copied but inherited, so the config and the kernel cannot drift; loss_options() and
/// advantage_options() are these base slices, and a GRPOConfig can be passed where either is expected. Inherited
/// fields, with what they also mean to the trainer:
/// - from AdvantageOptions: `num_generations` (G: completions sampled per prompt, >= 2; each prompt's G rows are
///   consecutive), `scale_rewards`, `aggregation` (TRL's `multi_objective_aggregation`), `weights` (TRL's
///   `reward_weights`: one per reward function, empty means all ones);
/// - from LossOptions: `loss_type`, `epsilon`, `epsilon_high`, `delta`, `beta` (0 also means no reference model is
///   loaded), `importance_sampling_level`, `max_completion_length` (also the most tokens generated per prompt),
///   `sapo_temperature_pos`, `sapo_temperature_neg`, `use_bias_correction_kl`.
/// Their defaults are the same as TRL's GRPOConfig's.
struct GRPOConfig : LossOptions, AdvantageOptions {
  // ---- generation (num_generations and max_completion_length are inherited) ----
  /// Prompt tokens kept; longer prompts are truncated from the left (their end is kept).
  int64_t max_prompt_length = 512;
  /// Sampling temperature (> 0); also divides the logits of every log-prob computation (docs/math.md §2).
  double temperature = 1.0;
  /// Nucleus sampling mass in (0, 1]; 1 disables it.
  double top_p = 1.0;
  /// Keep only the top_k most likely tokens; 0 disables it.
  int64_t top_k = 0;
  /// Drop tokens whose probability is below min_p times the top token's, in [0, 1]; unset disables it.
  std::optional<double> min_p;
  /// Penalty (> 0) dividing the logits of tokens already present; 1 disables it.
  double repetition_penalty = 1.0;

  // ---- algorithm (docs/math.md §3-§5; the loss and advantage knobs are inherited) ----
  /// mu: optimisation passes over each generation batch (old log-probs are computed when > 1).
  int num_iterations = 1;
  /// Rows that did not end with EOS get an all-zero completion mask (DAPO overlong filtering).
  bool mask_truncated_completions = false;
  /// TR-DPO: mix the policy into the reference model every ref_model_sync_steps steps (needs beta != 0).
  bool sync_ref_model = false;
  /// alpha of ref <- alpha * policy + (1 - alpha) * ref, in [0, 1].
  double ref_model_mixup_alpha = 0.6;
  /// Optimizer steps between reference-model syncs.
  int64_t ref_model_sync_steps = 512;

  // ---- optimizer and schedule (AdamW) ----
  /// Peak learning rate (TRL overrides Hugging Face's 5e-5 with 1e-6).
  double learning_rate = 1e-6;
  /// AdamW beta1.
  double adam_beta1 = 0.9;
  /// AdamW beta2.
  double adam_beta2 = 0.999;
  /// AdamW epsilon.
  double adam_epsilon = 1e-8;
  /// AdamW decoupled weight decay.
  double weight_decay = 0.0;
  /// Schedule after warmup: constant, linear decay to 0, or cosine decay to 0 (Hugging Face default: linear).
  LrSchedulerType lr_scheduler_type = LrSchedulerType::linear;
  /// Linear warmup steps from 0 to learning_rate; when 0, warmup_ratio decides.
  int64_t warmup_steps = 0;
  /// Warmup as a fraction of the total optimizer steps, in [0, 1] (used when warmup_steps is 0).
  double warmup_ratio = 0.0;
  /// Clip the global gradient norm to this value; 0 disables clipping.
  double max_grad_norm = 1.0;
  /// Recompute the decoder layers' activations in the backward instead of keeping them (less memory, about one
  /// more forward of time); needs a model with set_gradient_checkpointing(bool) (LlamaModel has it).
  bool gradient_checkpointing = false;
  /// Mixed precision (Hugging Face's bf16): generation and every forward run under autocast to bfloat16 on the
  /// model's device (matmuls in bf16), while the parameters, gradients and AdamW state stay float32 (master
  /// weights) and the loss is computed in float32. Needs a CPU or CUDA model; worth it where the device has fast
  /// bf16 matmuls (recent GPUs, CPUs with AMX/AVX512-BF16), slower elsewhere.
  bool bf16 = false;

  // ---- batching ----
  /// Completions (rows) per micro-batch per process.
  int per_device_train_batch_size = 8;
  /// Rows per forward of the no-gradient log-prob passes (old policy, reference model); 0: the same as
  /// per_device_train_batch_size. Larger is faster where memory allows (no activations are kept for a backward).
  int log_prob_micro_batch_size = 0;
  /// Micro-batches whose gradients accumulate into one optimizer step.
  int gradient_accumulation_steps = 1;
  /// Micro-batches per generation batch; unset means gradient_accumulation_steps.
  std::optional<int> steps_per_generation;
  /// When a prompt (after max_prompt_length) plus max_completion_length exceeds the model's positions
  /// (max_position_embeddings): false, an error naming the dataset row and the lengths; true, keep the prompt's
  /// last (positions - max_completion_length) tokens, with one warning.
  bool truncate_prompts_to_model_positions = false;
  /// Data-parallel processes (P); the generation batch spans all of them. The trainer sets it to its process
  /// group's size (torchrun's WORLD_SIZE); a different value other than 1 is an error.
  int num_processes = 1;
  /// Seconds a process waits for the others in a collective (and at the rendezvous) before failing with an error
  /// naming the ranks that did not arrive (Hugging Face's ddp_timeout; 30 minutes). Must exceed any rank's lead
  /// over another (generation lengths differ between ranks).
  int64_t ddp_timeout = 1800;
  /// Shuffle the prompts each epoch (with `seed`); false keeps the dataset order.
  bool shuffle_dataset = true;

  // ---- length of the run ----
  /// Total optimizer steps; -1 means derive them from num_train_epochs.
  int64_t max_steps = -1;
  /// Passes over the prompt dataset when max_steps is -1 (fractions allowed).
  double num_train_epochs = 3.0;
  /// Seed of the prompt shuffle, sampling and initialisation.
  uint64_t seed = 42;

  // ---- DAPO dynamic sampling (off in TRL; docs/math.md §8) ----
  /// Drop groups whose rewards are all equal and generate more until the generation batch is full.
  bool dynamic_sampling = false;
  /// Extra generation rounds per step before training on a partly filled batch (the shortfall is logged).
  int max_dynamic_sampling_retries = 4;

  // ---- logging, evaluation, checkpoints ----
  /// Optimizer steps between log lines and metrics.jsonl records.
  int64_t logging_steps = 10;
  /// Optimizer steps between checkpoints; 0 disables periodic checkpoints.
  int64_t save_steps = 500;
  /// Keep at most this many checkpoints (oldest removed first); unset keeps all.
  std::optional<int> save_total_limit;
  /// Optimizer steps between evaluations when the trainer has an eval dataset; unset means logging_steps.
  std::optional<int64_t> eval_steps;
  /// Directory of metrics.jsonl, completions.jsonl, the chart, the config and checkpoints.
  std::string output_dir = detail::default_output_dir();
  /// Append every completion with its rewards and advantage to completions.jsonl (TRL's default is false).
  bool log_completions = true;

  /// Calls visit(json_key, member) for every field, the inherited ones first (through the bases' own lists, so
  /// a knob added to LossOptions or AdvantageOptions reaches the config's JSON by itself); keys are TRL's option
  /// names. The one list from which to_json and from_json are generated.
  template <class Self, class Visit>
  static void visit_fields(Self& self, Visit&& visit) {
    LossOptions::visit_fields(self, visit);
    AdvantageOptions::visit_fields(self, visit);
    visit("max_prompt_length", self.max_prompt_length);
    visit("temperature", self.temperature);
    visit("top_p", self.top_p);
    visit("top_k", self.top_k);
    visit("min_p", self.min_p);
    visit("repetition_penalty", self.repetition_penalty);
    visit("num_iterations", self.num_iterations);
    visit("mask_truncated_completions", self.mask_truncated_completions);
    visit("sync_ref_model", self.sync_ref_model);
    visit("ref_model_mixup_alpha", self.ref_model_mixup_alpha);
    visit("ref_model_sync_steps", self.ref_model_sync_steps);
    visit("learning_rate", self.learning_rate);
    visit("adam_beta1", self.adam_beta1);
    visit("adam_beta2", self.adam_beta2);
    visit("adam_epsilon", self.adam_epsilon);
    visit("weight_decay", self.weight_decay);
    visit("lr_scheduler_type", self.lr_scheduler_type);
    visit("warmup_steps", self.warmup_steps);
    visit("warmup_ratio", self.warmup_ratio);
    visit("max_grad_norm", self.max_grad_norm);
    visit("gradient_checkpointing", self.gradient_checkpointing);
    visit("bf16", self.bf16);
    visit("per_device_train_batch_size", self.per_device_train_batch_size);
    visit("log_prob_micro_batch_size", self.log_prob_micro_batch_size);
    visit("gradient_accumulation_steps", self.gradient_accumulation_steps);
    visit("steps_per_generation", self.steps_per_generation);
    visit("truncate_prompts_to_model_positions", self.truncate_prompts_to_model_positions);
    visit("num_processes", self.num_processes);
    visit("ddp_timeout", self.ddp_timeout);
    visit("shuffle_dataset", self.shuffle_dataset);
    visit("max_steps", self.max_steps);
    visit("num_train_epochs", self.num_train_epochs);
    visit("seed", self.seed);
    visit("dynamic_sampling", self.dynamic_sampling);
    visit("max_dynamic_sampling_retries", self.max_dynamic_sampling_retries);
    visit("logging_steps", self.logging_steps);
    visit("save_steps", self.save_steps);
    visit("save_total_limit", self.save_total_limit);
    visit("eval_steps", self.eval_steps);
    visit("output_dir", self.output_dir);
    visit("log_completions", self.log_completions);
  }

  /// Micro-batches per generation batch: steps_per_generation, or gradient_accumulation_steps when unset.
  int effective_steps_per_generation() const { return steps_per_generation.value_or(gradient_accumulation_steps); }
  /// Rows (completions) of one generation batch over all processes: per_device * steps_per_generation * P.
  int64_t generation_batch_size() const {
    return static_cast<int64_t>(per_device_train_batch_size) * effective_steps_per_generation() * num_processes;
  }
  /// Rows per forward of the no-gradient log-prob passes (log_prob_micro_batch_size, or
  /// per_device_train_batch_size when 0).
  int64_t effective_log_prob_micro_batch_size() const {
    return log_prob_micro_batch_size > 0 ? log_prob_micro_batch_size : per_device_train_batch_size;
  }
  /// Unique prompts per generation batch: generation_batch_size / num_generations.
  int64_t prompts_per_generation() const { return generation_batch_size() / num_generations; }
  /// Micro-steps that use one generation batch: steps_per_generation * num_iterations (TRL's generate_every).
  int64_t micro_steps_per_generation() const {
    return static_cast<int64_t>(effective_steps_per_generation()) * num_iterations;
  }
  /// Evaluation interval in optimizer steps (eval_steps, or logging_steps when unset).
  int64_t effective_eval_steps() const { return eval_steps.value_or(logging_steps); }

  /// The policy-loss options of this run (for grpo::policy_loss): the LossOptions base, not a copy.
  const LossOptions& loss_options() const { return *this; }
  LossOptions& loss_options() { return *this; }

  /// The advantage options of this run (for grpo::compute_advantages): the AdvantageOptions base, not a copy.
  const AdvantageOptions& advantage_options() const { return *this; }
  AdvantageOptions& advantage_options() { return *this; }

  /// Throws grpo::InvalidArgument naming the first bad field, its value and how to fix it. Checks every field,
  /// the inherited loss options included (LossOptions::validate, which this hides, is called from here).
  void validate() const;
};

namespace detail {
inline constexpr std::array<std::pair<LrSchedulerType, const char*>, 3> lr_scheduler_type_names{
    {{LrSchedulerType::constant, "constant"},
     {LrSchedulerType::linear, "linear"},
     {LrSchedulerType::cosine, "cosine"}}};

// Shortest text that reads back as the same double ("0.1", not "0.100000").
inline std::string format_number(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  std::string text = out.str();
  for (int precision = 1; precision < 17; ++precision) {
    std::ostringstream shorter;
    shorter.precision(precision);
    shorter << value;
    if (std::stod(shorter.str()) == value || std::isnan(value)) return shorter.str();
  }
  return text;
}

[[noreturn]] inline void config_error(const std::string& message) {
  throw InvalidArgument("grpo::GRPOConfig: " + message);
}
}  // namespace detail

inline const char* to_string(LrSchedulerType v) {
  return detail::enum_to_string(detail::lr_scheduler_type_names, v, "grpo::LrSchedulerType");
}
inline void to_json(nlohmann::json& j, LrSchedulerType v) { j = to_string(v); }
inline void from_json(const nlohmann::json& j, LrSchedulerType& v) {
  v = detail::enum_from_string(detail::lr_scheduler_type_names, j.get<std::string>(), "grpo::LrSchedulerType",
                               "lr_scheduler_type");
}

inline void GRPOConfig::validate() const {
  using detail::config_error;
  using detail::format_number;
  auto positive = [](const char* name, int64_t value) {
    if (value < 1) config_error(std::string(name) + " must be >= 1, got " + std::to_string(value));
  };
  if (num_generations < 2) {
    config_error("num_generations must be >= 2 (advantages compare completions of the same prompt), got " +
                 std::to_string(num_generations));
  }
  positive("per_device_train_batch_size", per_device_train_batch_size);
  if (log_prob_micro_batch_size < 0) {
    config_error("log_prob_micro_batch_size must be >= 0 (0: per_device_train_batch_size), got " +
                 std::to_string(log_prob_micro_batch_size));
  }
  positive("gradient_accumulation_steps", gradient_accumulation_steps);
  if (steps_per_generation) positive("steps_per_generation", *steps_per_generation);
  positive("num_processes", num_processes);
  positive("ddp_timeout", ddp_timeout);
  positive("num_iterations", num_iterations);
  positive("max_prompt_length", max_prompt_length);
  positive("max_completion_length", max_completion_length);
  if (generation_batch_size() % num_generations != 0) {
    config_error("the generation batch (per_device_train_batch_size * steps_per_generation * num_processes = " +
                 std::to_string(per_device_train_batch_size) + " * " +
                 std::to_string(effective_steps_per_generation()) + " * " + std::to_string(num_processes) + " = " +
                 std::to_string(generation_batch_size()) + ") must be divisible by num_generations = " +
                 std::to_string(num_generations) + "; change per_device_train_batch_size, steps_per_generation " +
                 "(or gradient_accumulation_steps) or num_generations");
  }
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    config_error("temperature must be finite and > 0, got " + format_number(temperature));
  }
  if (!(top_p > 0 && top_p <= 1)) config_error("top_p must be in (0, 1], got " + format_number(top_p));
  if (top_k < 0) config_error("top_k must be >= 0 (0 disables it), got " + std::to_string(top_k));
  if (min_p && !(*min_p >= 0 && *min_p <= 1)) {
    config_error("min_p must be in [0, 1] or null, got " + format_number(*min_p));
  }
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)) {
    config_error("repetition_penalty must be finite and > 0 (1 disables it), got " + format_number(repetition_penalty));
  }
  if (!(beta >= 0) || !std::isfinite(beta)) config_error("beta must be finite and >= 0, got " + format_number(beta));
  if (sync_ref_model && beta == 0) {
    config_error("sync_ref_model = true needs a reference model, but beta = 0; set beta > 0 or sync_ref_model = false");
  }
  if (!(ref_model_mixup_alpha >= 0 && ref_model_mixup_alpha <= 1)) {
    config_error("ref_model_mixup_alpha must be in [0, 1], got " + format_number(ref_model_mixup_alpha));
  }
  positive("ref_model_sync_steps", ref_model_sync_steps);
  // Named by the JSON key (TRL's reward_weights), which is what a config file holds.
  for (std::size_t k = 0; k < weights.size(); ++k) {
    if (!std::isfinite(weights[k])) {
      config_error("reward_weights[" + std::to_string(k) + "] must be finite, got " + format_number(weights[k]));
    }
  }
  if (!(learning_rate >= 0) || !std::isfinite(learning_rate)) {
    config_error("learning_rate must be finite and >= 0, got " + format_number(learning_rate));
  }
  if (!(adam_beta1 >= 0 && adam_beta1 < 1))
    config_error("adam_beta1 must be in [0, 1), got " + format_number(adam_beta1));
  if (!(adam_beta2 >= 0 && adam_beta2 < 1))
    config_error("adam_beta2 must be in [0, 1), got " + format_number(adam_beta2));
  if (!(adam_epsilon > 0)) config_error("adam_epsilon must be > 0, got " + format_number(adam_epsilon));
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay)) {
    config_error("weight_decay must be finite and >= 0, got " + format_number(weight_decay));
  }
  if (warmup_steps < 0) config_error("warmup_steps must be >= 0, got " + std::to_string(warmup_steps));
  if (!(warmup_ratio >= 0 && warmup_ratio <= 1)) {
    config_error("warmup_ratio must be in [0, 1], got " + format_number(warmup_ratio));
  }
  if (!(max_grad_norm >= 0)) {
    config_error("max_grad_norm must be >= 0 (0 disables clipping), got " + format_number(max_grad_norm));
  }
  if (max_steps == 0 || max_steps < -1) {
    config_error("max_steps must be >= 1, or -1 to train for num_train_epochs, got " + std::to_string(max_steps));
  }
  if (max_steps == -1 && !(num_train_epochs > 0 && std::isfinite(num_train_epochs))) {
    config_error("max_steps = -1 and num_train_epochs = " + format_number(num_train_epochs) +
                 ": the run has no length; set max_steps >= 1 or num_train_epochs > 0");
  }
  if (dynamic_sampling && max_dynamic_sampling_retries < 0) {
    config_error("max_dynamic_sampling_retries must be >= 0, got " + std::to_string(max_dynamic_sampling_retries));
  }
  positive("logging_steps", logging_steps);
  if (save_steps < 0)
    config_error("save_steps must be >= 0 (0 disables checkpoints), got " + std::to_string(save_steps));
  if (save_total_limit) positive("save_total_limit", *save_total_limit);
  if (eval_steps) positive("eval_steps", *eval_steps);
  if (output_dir.empty()) config_error("output_dir must not be empty");
  try {
    loss_options().validate();
  } catch (const std::invalid_argument& e) {
    config_error(std::string("loss options: ") + e.what());
  }
}

// JSON keys are TRL's option names (the list is GRPOConfig::visit_fields); every field is written, null for unset
// optionals, enums as TRL's strings.
inline void to_json(nlohmann::json& j, const GRPOConfig& c) { detail::write_fields(j, c, "grpo::GRPOConfig"); }

// Missing keys keep their defaults; an unknown key or a wrong type (0.1 or true for an integer, a negative seed,
// a number for a string, ...) is an error naming the key and the value. Call validate() after.
inline void from_json(const nlohmann::json& j, GRPOConfig& c) { detail::read_fields(j, c, "grpo::GRPOConfig"); }

namespace detail {
// load_config over a stream; `path` names the source in messages (the fuzz target parses from memory).
inline GRPOConfig parse_config(std::istream& in, const std::string& path) {
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (json_nesting_depth(text) > max_json_depth) {  // copying and printing it would recurse as deep
    throw InvalidArgument("grpo::load_config: '" + path + "': the JSON nests arrays and objects more than " +
                          std::to_string(detail::max_json_depth) + " deep");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // a parse_error, or out_of_range for a number such as 1e400
    throw InvalidArgument("grpo::load_config: '" + path + "' is not valid JSON: " + e.what());
  }
  GRPOConfig config;
  try {
    config = j.get<GRPOConfig>();
    config.validate();
  } catch (const std::invalid_argument& e) {
    throw InvalidArgument("grpo::load_config: '" + path + "': " + e.what());
  }
  return config;
}
}  // namespace detail

/// Reads a GRPOConfig from a JSON file (strict keys) and validates it; errors name the file.
inline GRPOConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RuntimeError("grpo::load_config: cannot open '" + path + "'");
  return detail::parse_config(in, path);
}

/// Writes the config as indented JSON, atomically (a crash leaves the old file or the new one).
inline void save_config(const GRPOConfig& config, const std::string& path) {
  detail::atomic_write_file(path, nlohmann::json(config).dump(2) + "\n", "grpo::save_config: ");
}

}  // namespace grpo
