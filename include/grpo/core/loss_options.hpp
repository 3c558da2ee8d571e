#pragma once
// Options of the clipped-ratio policy loss (docs/math.md §3-§5). Torch-free, so configs can hold them.

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "grpo/detail/json_fields.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Per-token loss and aggregation variant, spelled as TRL's `loss_type`.
enum class LossType { grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo };

/// Whether the importance ratio is per token or one geometric mean per sequence (GSPO).
enum class ImportanceSampling { token, sequence };

/// Options of policy_loss; defaults are TRL's.
struct LossOptions {
  /// Per-token loss and aggregation (docs/math.md §4-§5).
  LossType loss_type = LossType::dapo;
  /// epsilon_low: lower clip 1 - epsilon.
  double epsilon = 0.2;
  /// Upper clip 1 + epsilon_high (unset: epsilon). For cispo, the absolute cap on the ratio (recommended 5.0).
  std::optional<double> epsilon_high;
  /// Two-sided clip: the unclipped ratio is capped at delta (must exceed 1 + epsilon_high). Unset: off.
  std::optional<double> delta;
  /// KL coefficient against the reference model (k3 estimator); 0 disables the KL term.
  double beta = 0.0;
  /// Token-level ratio [B,T] or sequence-level geometric-mean ratio [B,1].
  ImportanceSampling importance_sampling_level = ImportanceSampling::token;
  /// Completion-length budget, the dr_grpo normaliser.
  int64_t max_completion_length = 512;
  /// sapo temperatures for positive and non-positive advantages.
  double sapo_temperature_pos = 1.0, sapo_temperature_neg = 1.05;
  /// Multiply the k3 KL by the importance ratio (corrects its bias off-policy).
  bool use_bias_correction_kl = false;

  /// Calls visit(json_key, member) for every field, keys spelled as TRL's options: the one list from which the
  /// JSON conversion (and GRPOConfig's) is generated. Self is LossOptions or const LossOptions (or a derived type).
  template <class Self, class Visit>
  static void visit_fields(Self& self, Visit&& visit) {
    visit("loss_type", self.loss_type);
    visit("epsilon", self.epsilon);
    visit("epsilon_high", self.epsilon_high);
    visit("delta", self.delta);
    visit("beta", self.beta);
    visit("importance_sampling_level", self.importance_sampling_level);
    visit("max_completion_length", self.max_completion_length);
    visit("sapo_temperature_pos", self.sapo_temperature_pos);
    visit("sapo_temperature_neg", self.sapo_temperature_neg);
    visit("use_bias_correction_kl", self.use_bias_correction_kl);
  }

  /// The effective upper clip: epsilon_high if set, else epsilon.
  double epsilon_high_or_low() const { return epsilon_high.value_or(epsilon); }

  /// Throws grpo::InvalidArgument naming the first bad field.
  void validate() const {
    const std::string where = "grpo::LossOptions: ";
    if (!std::isfinite(epsilon) || epsilon < 0) {
      throw InvalidArgument(where + "epsilon must be finite and >= 0, got " + std::to_string(epsilon));
    }
    if (epsilon_high && (!std::isfinite(*epsilon_high) || *epsilon_high < 0)) {
      throw InvalidArgument(where + "epsilon_high must be finite and >= 0, got " + std::to_string(*epsilon_high));
    }
    if (delta && !(*delta > 1.0 + epsilon_high_or_low())) {
      throw InvalidArgument(where + "delta must be > 1 + epsilon_high = " +
                            std::to_string(1.0 + epsilon_high_or_low()) + ", got " + std::to_string(*delta));
    }
    if (!std::isfinite(beta)) throw InvalidArgument(where + "beta must be finite");
    if (max_completion_length < 1) {
      throw InvalidArgument(where + "max_completion_length must be >= 1, got " + std::to_string(max_completion_length));
    }
    if (!(sapo_temperature_pos > 0) || !(sapo_temperature_neg > 0)) {
      throw InvalidArgument(where + "sapo_temperature_pos and sapo_temperature_neg must be > 0");
    }
  }
};

namespace detail {
inline constexpr std::array<std::pair<LossType, const char*>, 7> loss_type_names{{{LossType::grpo, "grpo"},
                                                                                  {LossType::bnpo, "bnpo"},
                                                                                  {LossType::dr_grpo, "dr_grpo"},
                                                                                  {LossType::dapo, "dapo"},
                                                                                  {LossType::cispo, "cispo"},
                                                                                  {LossType::sapo, "sapo"},
                                                                                  {LossType::luspo, "luspo"}}};
inline constexpr std::array<std::pair<ImportanceSampling, const char*>, 2> importance_sampling_names{
    {{ImportanceSampling::token, "token"}, {ImportanceSampling::sequence, "sequence"}}};
}  // namespace detail

inline const char* to_string(LossType v) {
  return detail::enum_to_string(detail::loss_type_names, v, "grpo::LossType");
}
inline const char* to_string(ImportanceSampling v) {
  return detail::enum_to_string(detail::importance_sampling_names, v, "grpo::ImportanceSampling");
}
inline void to_json(nlohmann::json& j, LossType v) { j = to_string(v); }
inline void from_json(const nlohmann::json& j, LossType& v) {
  v = detail::enum_from_string(detail::loss_type_names, j.get<std::string>(), "grpo::LossType", "loss_type");
}
inline void to_json(nlohmann::json& j, ImportanceSampling v) { j = to_string(v); }
inline void from_json(const nlohmann::json& j, ImportanceSampling& v) {
  v = detail::enum_from_string(detail::importance_sampling_names, j.get<std::string>(), "grpo::ImportanceSampling",
                               "importance_sampling_level");
}

// JSON keys are TRL's option names (the list is LossOptions::visit_fields); unknown keys and wrong types are errors.
inline void to_json(nlohmann::json& j, const LossOptions& o) { detail::write_fields(j, o, "grpo::LossOptions"); }
inline void from_json(const nlohmann::json& j, LossOptions& o) { detail::read_fields(j, o, "grpo::LossOptions"); }

}  // namespace grpo
