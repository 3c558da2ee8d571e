#pragma once
// Group-relative advantages from an N x K reward matrix (docs/math.md §1). Torch-free: Eigen only.

#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "grpo/detail/json_fields.hpp"
#include "grpo/detail/nan_stats.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Which standard deviation divides the centred rewards: the group's, the whole batch's, or none (Dr. GRPO).
enum class ScaleRewards { group, batch, none };

/// How several reward functions combine: weighted sum then group z-score (default), or per-function group
/// z-scores summed then a batch z-score (GDPO).
enum class RewardAggregation { sum_then_normalize, normalize_then_sum };

/// Options of compute_advantages; defaults are TRL's.
struct AdvantageOptions {
  /// G: completions per prompt; each group is G consecutive rows.
  int num_generations = 8;
  /// Divisor of the centred rewards (sum_then_normalize only).
  ScaleRewards scale_rewards = ScaleRewards::group;
  /// Multi-reward aggregation mode.
  RewardAggregation aggregation = RewardAggregation::sum_then_normalize;
  /// One weight per reward function (K); empty means all ones.
  std::vector<double> weights;

  /// Calls visit(json_key, member) for every field, keys spelled as TRL's options (`aggregation` is TRL's
  /// "multi_objective_aggregation", `weights` its "reward_weights"): the one list from which the JSON conversion
  /// (and GRPOConfig's) is generated. Self is AdvantageOptions or const AdvantageOptions (or a derived type).
  template <class Self, class Visit>
  static void visit_fields(Self& self, Visit&& visit) {
    visit("num_generations", self.num_generations);
    visit("scale_rewards", self.scale_rewards);
    visit("multi_objective_aggregation", self.aggregation);
    visit("reward_weights", self.weights);
  }
};

/// Result of compute_advantages, one entry per row of the generation batch.
struct Advantages {
  /// [N] advantages; NaN (unscorable rows, groups with < 2 scorable rows) replaced by 0.
  Eigen::VectorXd advantages;
  /// [N] weighted sum of the raw rewards (NaN for unscorable rows); what TRL logs as `reward`.
  Eigen::VectorXd rewards;
  /// [N] the sigma used (or, for scale_rewards = none, computed for logging) for each row.
  Eigen::VectorXd std;
  /// [N] |sigma| <= 1e-8 (feeds frac_reward_zero_std).
  std::vector<bool> zero_std;
};

namespace detail {
inline constexpr std::array<std::pair<ScaleRewards, const char*>, 3> scale_rewards_names{
    {{ScaleRewards::group, "group"}, {ScaleRewards::batch, "batch"}, {ScaleRewards::none, "none"}}};
inline constexpr std::array<std::pair<RewardAggregation, const char*>, 2> reward_aggregation_names{
    {{RewardAggregation::sum_then_normalize, "sum_then_normalize"},
     {RewardAggregation::normalize_then_sum, "normalize_then_sum"}}};
// TRL's epsilon added to every standard deviation before dividing.
inline constexpr double advantage_std_epsilon = 1e-4;
}  // namespace detail

inline const char* to_string(ScaleRewards v) {
  return detail::enum_to_string(detail::scale_rewards_names, v, "grpo::ScaleRewards");
}
inline const char* to_string(RewardAggregation v) {
  return detail::enum_to_string(detail::reward_aggregation_names, v, "grpo::RewardAggregation");
}
inline void to_json(nlohmann::json& j, ScaleRewards v) { j = to_string(v); }
inline void from_json(const nlohmann::json& j, ScaleRewards& v) {
  v = detail::enum_from_string(detail::scale_rewards_names, j.get<std::string>(), "grpo::ScaleRewards",
                               "scale_rewards");
}
inline void to_json(nlohmann::json& j, RewardAggregation v) { j = to_string(v); }
inline void from_json(const nlohmann::json& j, RewardAggregation& v) {
  v = detail::enum_from_string(detail::reward_aggregation_names, j.get<std::string>(), "grpo::RewardAggregation",
                               "multi_objective_aggregation");
}

// JSON keys are TRL's option names (the list is AdvantageOptions::visit_fields); unknown keys and wrong types are
// errors.
inline void to_json(nlohmann::json& j, const AdvantageOptions& o) {
  detail::write_fields(j, o, "grpo::AdvantageOptions");
}
inline void from_json(const nlohmann::json& j, AdvantageOptions& o) {
  detail::read_fields(j, o, "grpo::AdvantageOptions");
}

namespace detail {

inline void validate_advantage_inputs(const Eigen::MatrixXd& rewards_per_func, const AdvantageOptions& options) {
  const std::string where = "grpo::compute_advantages: ";
  if (options.num_generations < 1) {
    throw InvalidArgument(where + "num_generations must be >= 1, got " + std::to_string(options.num_generations));
  }
  const auto n = rewards_per_func.rows();
  const auto k = rewards_per_func.cols();
  if (n % options.num_generations != 0) {
    throw InvalidArgument(
        where + "rewards_per_func has N = " + std::to_string(n) +
        " rows, which is not divisible by num_generations = " + std::to_string(options.num_generations) +
        " (each prompt's completions must form a full group)");
  }
  if (!options.weights.empty() && static_cast<Eigen::Index>(options.weights.size()) != k) {
    throw InvalidArgument(where + "weights has " + std::to_string(options.weights.size()) +
                          " entries but rewards_per_func has K = " + std::to_string(k) +
                          " columns (one weight per reward function)");
  }
  for (std::size_t w = 0; w < options.weights.size(); ++w) {
    if (!std::isfinite(options.weights[w])) {
      throw InvalidArgument(where + "weights[" + std::to_string(w) + "] is not finite");
    }
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index c = 0; c < k; ++c) {
      if (std::isinf(rewards_per_func(i, c))) {
        throw InvalidArgument(where + "rewards_per_func(" + std::to_string(i) + ", " + std::to_string(c) +
                              ") is infinite; use NaN for \"none\"");
      }
    }
  }
}

// Weighted nansum of each row; NaN when every term of the row is NaN (the row is unscorable).
inline Eigen::VectorXd weighted_nansum(const Eigen::MatrixXd& values, const Eigen::VectorXd& weights) {
  Eigen::VectorXd sums(values.rows());
  for (Eigen::Index i = 0; i < values.rows(); ++i) {
    double sum = 0.0;
    bool any = false;
    for (Eigen::Index c = 0; c < values.cols(); ++c) {
      if (!std::isnan(values(i, c))) {
        sum += weights[c] * values(i, c);
        any = true;
      }
    }
    sums[i] = any ? sum : nan;
  }
  return sums;
}

}  // namespace detail

/// Advantages of one generation batch (docs/math.md §1).
/// `rewards_per_func`: N x K, row i = completion i (groups of G consecutive rows), column k = reward function k,
/// NaN = "none". Statistics are over the whole matrix: pass the global batch when training on several processes.
inline Advantages compute_advantages(const Eigen::MatrixXd& rewards_per_func, const AdvantageOptions& options) {
  detail::validate_advantage_inputs(rewards_per_func, options);
  const Eigen::Index n = rewards_per_func.rows();
  const Eigen::Index k = rewards_per_func.cols();
  const Eigen::Index g = options.num_generations;
  const Eigen::VectorXd weights = options.weights.empty()
                                      ? Eigen::VectorXd::Ones(k)
                                      : Eigen::Map<const Eigen::VectorXd>(options.weights.data(), k).eval();

  Advantages out;
  out.rewards = detail::weighted_nansum(rewards_per_func, weights);
  out.advantages.resize(n);
  out.std.resize(n);

  if (options.aggregation == RewardAggregation::sum_then_normalize) {
    const double batch_std = detail::nanstd(out.rewards);
    for (Eigen::Index start = 0; start < n; start += g) {
      const auto group = out.rewards.segment(start, g);
      const double mean = detail::nanmean(group);
      const double sigma = options.scale_rewards == ScaleRewards::batch ? batch_std : detail::nanstd(group);
      for (Eigen::Index i = start; i < start + g; ++i) {
        const double centred = out.rewards[i] - mean;
        out.advantages[i] =
            options.scale_rewards == ScaleRewards::none ? centred : centred / (sigma + detail::advantage_std_epsilon);
        out.std[i] = sigma;
      }
    }
  } else {
    // GDPO: z-score each function inside its group, weighted nansum, then a z-score over the batch.
    Eigen::MatrixXd z(n, k);
    for (Eigen::Index c = 0; c < k; ++c) {
      for (Eigen::Index start = 0; start < n; start += g) {
        const auto group = rewards_per_func.col(c).segment(start, g);
        const double mean = detail::nanmean(group);
        const double sigma = detail::nanstd(group);
        for (Eigen::Index i = 0; i < g; ++i) {
          z(start + i, c) = (group[i] - mean) / (sigma + detail::advantage_std_epsilon);
        }
      }
    }
    Eigen::VectorXd summed = detail::weighted_nansum(z, weights);
    for (Eigen::Index i = 0; i < n; ++i) {
      // A scorable row whose z-scores are all NaN (its group had < 2 values) sums to 0, as nansum does;
      // only rows with no raw reward at all stay NaN.
      if (std::isnan(summed[i]) && !std::isnan(out.rewards[i])) summed[i] = 0.0;
    }
    const double mean = detail::nanmean(summed);
    const double sigma = detail::nanstd(summed);
    for (Eigen::Index i = 0; i < n; ++i) {
      out.advantages[i] = (summed[i] - mean) / (sigma + detail::advantage_std_epsilon);
      out.std[i] = sigma;
    }
  }

  out.zero_std.resize(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) {
    out.zero_std[static_cast<std::size_t>(i)] = std::abs(out.std[i]) <= 1e-8;  // false for NaN
    if (std::isnan(out.advantages[i])) out.advantages[i] = 0.0;
  }
  return out;
}

}  // namespace grpo
