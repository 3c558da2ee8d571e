#pragma once
// TrainerState: where a training run stands, as callbacks and checkpoints see it. Torch-free.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "grpo/detail/json_fields.hpp"

namespace grpo {

/// Progress of a run; the trainer updates it, callbacks read it.
struct TrainerState {
  /// Optimizer steps completed.
  int64_t global_step = 0;
  /// Passes over the prompt dataset, fractional (2.5 = halfway through the third epoch).
  double epoch = 0.0;
  /// Total optimizer steps of the run.
  int64_t max_steps = 0;
  /// Micro-steps (forward/backward passes) completed.
  int64_t micro_step = 0;
  /// Prompt + completion tokens processed so far (TRL's `num_tokens`).
  int64_t num_tokens = 0;
  /// Seconds since training started (excluding time before a resume).
  double elapsed_seconds = 0.0;
  /// Directory of the most recent checkpoint; empty before the first.
  std::string last_checkpoint;
  /// This process's rank and the number of processes of a data-parallel run (not saved: they describe the
  /// process, not the run). Rank 0 alone writes logs and checkpoints.
  int process_index = 0;
  int num_processes = 1;
  /// Whether this is rank 0 (Hugging Face's name).
  bool is_world_process_zero() const { return process_index == 0; }
};

inline void to_json(nlohmann::json& j, const TrainerState& s) {
  j = nlohmann::json{
      {"global_step", s.global_step},        {"epoch", s.epoch},           {"max_steps", s.max_steps},
      {"micro_step", s.micro_step},          {"num_tokens", s.num_tokens}, {"elapsed_seconds", s.elapsed_seconds},
      {"last_checkpoint", s.last_checkpoint}};
}
inline void from_json(const nlohmann::json& j, TrainerState& s) {
  detail::JsonFields f(j, "grpo::TrainerState");
  f.read("global_step", s.global_step);
  f.read("epoch", s.epoch);
  f.read("max_steps", s.max_steps);
  f.read("micro_step", s.micro_step);
  f.read("num_tokens", s.num_tokens);
  f.read("elapsed_seconds", s.elapsed_seconds);
  f.read("last_checkpoint", s.last_checkpoint);
  f.finish();
}

}  // namespace grpo
