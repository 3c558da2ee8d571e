#pragma once
// Reward functions: any callable of an accepted shape, held by a type-erased RewardFunction.
//
// Accepted shapes (detected at compile time; no base class needed):
//   batch:           f(const RewardInputs&) -> std::vector<std::optional<double>>   (or vector<double|float>, or
//                    vector<optional<float>>): one value per completion, nullopt/NaN = "none"
//   per completion:  f(std::string_view completion, const Row& row) -> std::optional<double> or a number
// By default RewardScorer calls every function on the calling thread, one call at a time, completions in batch
// order, so a functor may mutate state. With ScoringOptions::parallel, per-completion callables are called
// concurrently from several threads (and functions concurrently with one another): they must then be safe to
// call at the same time (a compiled std::regex or a read-only table is; a functor that mutates state is not).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/rewards/columns.hpp"

namespace grpo {

/// Where training is, for curriculum-style rewards.
struct TrainingProgress {
  /// Optimizer steps done so far.
  int64_t global_step = 0;
  /// Fractional epoch.
  double epoch = 0.0;
  /// Total optimizer steps of the run.
  int64_t max_steps = 0;
};

/// Everything a batch reward function receives for one generation batch of N completions.
struct RewardInputs {
  /// [N] the prompt of each completion (each prompt repeated num_generations times, consecutively), as text: for a
  /// conversation, the text the chat template rendered (generation prompt included).
  std::vector<std::string> prompts;
  /// [N] the prompt as a list of {"role", "content"} messages when the dataset row is a conversation, null for a
  /// text prompt (TRL's conversational format); empty when no prompt is a conversation.
  std::vector<nlohmann::json> prompt_messages;
  /// [N] decoded completions.
  std::vector<std::string> completions;
  /// [N] completion token ids, unpadded (EOS kept when generated).
  std::vector<std::vector<int64_t>> completion_ids;
  /// The dataset columns (kwargs), aligned with the completions.
  Columns columns;
  /// G: completions per prompt; group g is rows [g*G, (g+1)*G) of the generation batch.
  int num_generations = 1;
  /// Where these N rows sit in the generation batch: rows [row_offset, row_offset + N) of batch_rows (0: N, the
  /// whole batch). In a multi-process run each process scores its own slice, and a group may be split between
  /// processes (as in TRL): row i belongs to group (row_offset + i) / G.
  std::size_t row_offset = 0;
  std::size_t batch_rows = 0;
  /// Training progress.
  TrainingProgress trainer_state;
  /// Logs a scalar metric under `name` (averaged when logged several times); safe to call from any thread.
  std::function<void(const std::string& name, double value)> log_metric = [](const std::string&, double) {};

  /// N, the number of completions.
  std::size_t size() const { return completions.size(); }
  /// True when completion i's prompt is a conversation.
  bool is_conversational(std::size_t i) const { return i < prompt_messages.size() && prompt_messages[i].is_array(); }
  /// Completion i as TRL gives it for conversational data: [{"role": "assistant", "content": completions[i]}].
  nlohmann::json completion_messages(std::size_t i) const {
    return nlohmann::json::array({{{"role", "assistant"}, {"content", completions.at(i)}}});
  }
};

/// One completion's view of the batch, for per-completion reward functions.
class Row {
 public:
  Row(const RewardInputs& inputs, std::size_t index) : inputs_(&inputs), index_(index) {}
  /// Index of this completion in the batch.
  std::size_t index() const { return index_; }
  /// Index of this completion inside its group (0..G-1).
  std::size_t index_in_group() const {
    return (inputs_->row_offset + index_) % static_cast<std::size_t>(inputs_->num_generations);
  }
  /// The prompt.
  const std::string& prompt() const { return inputs_->prompts.at(index_); }
  /// The prompt's messages when it is a conversation, else null.
  const nlohmann::json& prompt_messages() const {
    static const nlohmann::json none;
    return inputs_->is_conversational(index_) ? inputs_->prompt_messages[index_] : none;
  }
  /// True when the prompt is a conversation.
  bool is_conversational() const { return inputs_->is_conversational(index_); }
  /// The completion as messages: [{"role": "assistant", "content": <completion>}].
  nlohmann::json completion_messages() const { return inputs_->completion_messages(index_); }
  /// The completion token ids.
  const std::vector<int64_t>& completion_ids() const { return inputs_->completion_ids.at(index_); }
  /// Whether the dataset has this column.
  bool contains(std::string_view column) const { return inputs_->columns.contains(column); }
  /// This completion's value of a column; throws MissingColumn naming the available columns.
  const nlohmann::json& operator[](std::string_view column) const { return inputs_->columns.value(column, index_); }
  /// This completion's value of a column, converted to T.
  template <class T>
  T get(std::string_view column) const {
    return inputs_->columns.get<T>(column, index_);
  }
  /// The whole batch (for the trainer state, num_generations, other completions of the group).
  const RewardInputs& inputs() const { return *inputs_; }

 private:
  const RewardInputs* inputs_;
  std::size_t index_;
};

namespace detail {

inline constexpr double none_reward = std::numeric_limits<double>::quiet_NaN();

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// A number or an optional number, converted to double with none = NaN.
template <class T>
double reward_value(const T& value) {
  if constexpr (is_optional<T>::value) {
    static_assert(std::is_arithmetic_v<typename T::value_type>, "a reward must be a number or an optional number");
    return value ? static_cast<double>(*value) : none_reward;
  } else {
    static_assert(std::is_arithmetic_v<T>, "a reward must be a number or an optional number");
    return static_cast<double>(value);
  }
}

template <class T>
struct is_single_reward : std::bool_constant<std::is_arithmetic_v<T>> {};
template <class T>
struct is_single_reward<std::optional<T>> : std::bool_constant<std::is_arithmetic_v<T>> {};

template <class T>
struct is_reward_vector : std::false_type {};
template <class T, class A>
struct is_reward_vector<std::vector<T, A>> : is_single_reward<T> {};

template <class F, class = void>
struct is_batch_shape : std::false_type {};
template <class F>
struct is_batch_shape<F, std::enable_if_t<std::is_invocable_v<F&, const RewardInputs&>>>
    : is_reward_vector<std::decay_t<std::invoke_result_t<F&, const RewardInputs&>>> {};

template <class F, class = void>
struct is_per_completion_shape : std::false_type {};
template <class F>
struct is_per_completion_shape<F, std::enable_if_t<std::is_invocable_v<F&, std::string_view, const Row&>>>
    : is_single_reward<std::decay_t<std::invoke_result_t<F&, std::string_view, const Row&>>> {};

}  // namespace detail

/// True when F is callable in one of the accepted reward shapes.
template <class F>
inline constexpr bool is_reward_callable_v =
    detail::is_batch_shape<std::decay_t<F>>::value || detail::is_per_completion_shape<std::decay_t<F>>::value;

/// A named reward function: any callable of an accepted shape plus the dataset columns it needs.
class RewardFunction {
 public:
  /// Batch function: [N] rewards, NaN = none (not yet validated: the scorer checks length and values).
  using BatchFn = std::function<std::vector<double>(const RewardInputs&)>;
  /// Per-completion function: one reward, NaN = none.
  using SingleFn = std::function<double(std::string_view, const Row&)>;

  /// Wraps `callable` (copied or moved in; move-only functors work too). `required_columns` are checked against
  /// the dataset before training starts.
  template <class F>
  RewardFunction(std::string name, F callable, std::vector<std::string> required_columns = {})
      : name_(std::move(name)), required_columns_(std::move(required_columns)) {
    using Fn = std::decay_t<F>;
    static_assert(is_reward_callable_v<Fn>,
                  "grpo::RewardFunction: the callable must be either\n"
                  "  f(const grpo::RewardInputs&) -> std::vector<std::optional<double>> (or vector<double|float>), or\n"
                  "  f(std::string_view completion, const grpo::Row& row) -> std::optional<double> or a number");
    if (name_.empty()) throw InvalidArgument("grpo::RewardFunction: the name must not be empty");
    auto shared = std::make_shared<Fn>(std::move(callable));
    if constexpr (detail::is_batch_shape<Fn>::value) {
      batch_ = [shared](const RewardInputs& inputs) {
        const auto values = (*shared)(inputs);
        std::vector<double> out;
        out.reserve(values.size());
        for (const auto& v : values) out.push_back(detail::reward_value(v));
        return out;
      };
    } else {
      single_ = [shared](std::string_view completion, const Row& row) {
        return detail::reward_value((*shared)(completion, row));
      };
    }
  }

  /// The name used in metrics (`rewards/<name>/mean`) and errors.
  const std::string& name() const { return name_; }
  /// Dataset columns the function reads.
  const std::vector<std::string>& required_columns() const { return required_columns_; }
  /// Whether the function scores one completion at a time (on the scorer's thread pool when it is parallel).
  bool is_per_completion() const { return static_cast<bool>(single_); }
  /// Calls a batch function (precondition: !is_per_completion()).
  std::vector<double> call_batch(const RewardInputs& inputs) const { return batch_(inputs); }
  /// Calls a per-completion function (precondition: is_per_completion()).
  double call_single(std::string_view completion, const Row& row) const { return single_(completion, row); }

 private:
  std::string name_;
  std::vector<std::string> required_columns_;
  BatchFn batch_;
  SingleFn single_;
};

/// Throws grpo::InvalidArgument listing every required column that `dataset_columns` lacks, per function.
inline void check_required_columns(const std::vector<RewardFunction>& functions,
                                   const std::vector<std::string>& dataset_columns) {
  std::string problems;
  for (const auto& f : functions) {
    std::string missing;
    for (const auto& column : f.required_columns()) {
      bool found = false;
      for (const auto& c : dataset_columns) found = found || c == column;
      if (!found) missing += (missing.empty() ? "\"" : ", \"") + column + "\"";
    }
    if (!missing.empty()) problems += "\n  reward function \"" + f.name() + "\" needs " + missing;
  }
  if (problems.empty()) return;
  std::string available;
  for (const auto& c : dataset_columns) available += (available.empty() ? "" : ", ") + c;
  throw InvalidArgument("grpo::check_required_columns: the dataset lacks columns that reward functions need:" +
                        problems + "\n  dataset columns: " + (available.empty() ? "(none besides prompt)" : available));
}

}  // namespace grpo
