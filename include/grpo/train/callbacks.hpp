#pragma once
// Trainer callbacks, duck-typed as in ensmallen: a callback object implements only the hooks it needs,
//   on_train_begin(const TrainerState&)                                        before the first step (after a resume:
//                                                                              the resumed state)
//   on_step_end(const TrainerState&)                                           after each optimizer step
//   on_log(const TrainerState&, const std::map<std::string, double>& metrics)  after each logged step
//   on_evaluate(const TrainerState&, const std::map<std::string, double>&)    after each evaluation ("eval_" metrics)
//   on_rollout(const TrainerState&, const RolloutRecord&)                      after a generation batch is scored
//   on_save(const TrainerState&, const std::string& checkpoint_dir)           after each checkpoint
//   on_warning(const TrainerState&, const std::string& message)               something the user should know
//   on_train_end(const TrainerState&)                                          after the last step (also after a stop)
// Each hook returns void or grpo::Control; Control::stop ends training after the current step (as Hugging Face's
// control.should_training_stop). Detection is at compile time; a type with none of the hooks is rejected with a
// readable message. CallbackList stores callbacks of any types: an lvalue is kept by reference, a temporary is
// moved in and owned. Torch-free.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "grpo/train/state.hpp"

namespace grpo {

/// What a hook asks of the loop.
enum class Control { proceed, stop };

/// One scored generation batch, as on_rollout sees it: N completions, K reward functions.
struct RolloutRecord {
  /// [N] prompts (each prompt's G rows consecutive) and completions, as text.
  const std::vector<std::string>& prompts;
  const std::vector<std::string>& completions;
  /// [K] reward function names.
  const std::vector<std::string>& reward_names;
  /// N x K rewards (NaN = the function returned none).
  const Eigen::MatrixXd& rewards;
  /// [N] advantages.
  const std::vector<double>& advantages;
};

namespace detail {

// The detection idiom: is_detected<Op, C> is true when Op<C> is a valid type.
template <class, template <class> class Op, class C>
struct detector : std::false_type {};
template <template <class> class Op, class C>
struct detector<std::void_t<Op<C>>, Op, C> : std::true_type {};
template <template <class> class Op, class C>
inline constexpr bool is_detected = detector<void, Op, C>::value;

// The call expression of each hook.
using MetricMap = std::map<std::string, double>;
template <class C>
using on_train_begin_t = decltype(std::declval<C&>().on_train_begin(std::declval<const TrainerState&>()));
template <class C>
using on_step_end_t = decltype(std::declval<C&>().on_step_end(std::declval<const TrainerState&>()));
template <class C>
using on_log_t =
    decltype(std::declval<C&>().on_log(std::declval<const TrainerState&>(), std::declval<const MetricMap&>()));
template <class C>
using on_evaluate_t =
    decltype(std::declval<C&>().on_evaluate(std::declval<const TrainerState&>(), std::declval<const MetricMap&>()));
template <class C>
using on_rollout_t =
    decltype(std::declval<C&>().on_rollout(std::declval<const TrainerState&>(), std::declval<const RolloutRecord&>()));
template <class C>
using on_save_t =
    decltype(std::declval<C&>().on_save(std::declval<const TrainerState&>(), std::declval<const std::string&>()));
template <class C>
using on_warning_t =
    decltype(std::declval<C&>().on_warning(std::declval<const TrainerState&>(), std::declval<const std::string&>()));
template <class C>
using on_train_end_t = decltype(std::declval<C&>().on_train_end(std::declval<const TrainerState&>()));

// A hook's result as a Control: void means proceed.
template <class F>
Control hook_result(F&& call) {
  if constexpr (std::is_void_v<decltype(call())>) {
    call();
    return Control::proceed;
  } else {
    static_assert(std::is_same_v<std::decay_t<decltype(call())>, Control>,
                  "a GRPOTrainer callback hook must return void or grpo::Control");
    return call();
  }
}

}  // namespace detail

/// True when Callback has at least one of the hooks above.
template <class Callback>
inline constexpr bool is_callback_v = [] {
  using C = std::remove_cv_t<std::remove_reference_t<Callback>>;
  using detail::is_detected;
  return is_detected<detail::on_train_begin_t, C> || is_detected<detail::on_step_end_t, C> ||
         is_detected<detail::on_log_t, C> || is_detected<detail::on_evaluate_t, C> ||
         is_detected<detail::on_rollout_t, C> || is_detected<detail::on_save_t, C> ||
         is_detected<detail::on_warning_t, C> || is_detected<detail::on_train_end_t, C>;
}();

/// Callbacks of any types, called in the order they were added.
class CallbackList {
 public:
  CallbackList() = default;
  CallbackList(CallbackList&&) = default;
  CallbackList& operator=(CallbackList&&) = default;

  /// Adds a callback: an lvalue is kept by reference (it must outlive the list's use), a temporary is owned.
  template <class C>
  CallbackList& add(C&& callback) {
    using T = std::remove_cv_t<std::remove_reference_t<C>>;
    static_assert(is_callback_v<T>,
                  "a GRPOTrainer callback must have at least one of on_train_begin, on_step_end, on_log, "
                  "on_evaluate, on_rollout, on_save, on_warning, on_train_end (see grpo/train/callbacks.hpp)");
    if constexpr (std::is_lvalue_reference_v<C>) {
      entries_.push_back(std::make_unique<Model<T&>>(callback));
    } else {
      entries_.push_back(std::make_unique<Model<T>>(std::move(callback)));
    }
    return *this;
  }

  /// Removes every callback of type T (e.g. the default ConsoleReporter); returns how many were removed.
  template <class T>
  std::size_t remove() {
    const auto before = entries_.size();
    std::vector<std::unique_ptr<Concept>> kept;
    for (auto& e : entries_) {
      if (e->type() != std::type_index(typeid(T))) kept.push_back(std::move(e));
    }
    entries_ = std::move(kept);
    return before - entries_.size();
  }

  /// Whether a callback of type T is in the list.
  template <class T>
  bool contains() const {
    for (const auto& e : entries_) {
      if (e->type() == std::type_index(typeid(T))) return true;
    }
    return false;
  }

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  // The hooks, called on every callback in order; the result is stop when any callback asked to stop. A
  // CallbackList is itself a callback, so one list can hold another (by reference, as the trainer does with its
  // default callbacks and those given to one train() call).
  Control on_train_begin(const TrainerState& s) {
    return all([&](Concept& c) { return c.train_begin(s); });
  }
  Control on_step_end(const TrainerState& s) {
    return all([&](Concept& c) { return c.step_end(s); });
  }
  Control on_log(const TrainerState& s, const std::map<std::string, double>& m) {
    return all([&](Concept& c) { return c.log(s, m); });
  }
  Control on_evaluate(const TrainerState& s, const std::map<std::string, double>& m) {
    return all([&](Concept& c) { return c.evaluate(s, m); });
  }
  Control on_rollout(const TrainerState& s, const RolloutRecord& r) {
    return all([&](Concept& c) { return c.rollout(s, r); });
  }
  Control on_save(const TrainerState& s, const std::string& dir) {
    return all([&](Concept& c) { return c.save(s, dir); });
  }
  Control on_warning(const TrainerState& s, const std::string& m) {
    return all([&](Concept& c) { return c.warning(s, m); });
  }
  Control on_train_end(const TrainerState& s) {
    return all([&](Concept& c) { return c.train_end(s); });
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual std::type_index type() const = 0;
    virtual Control train_begin(const TrainerState&) = 0;
    virtual Control step_end(const TrainerState&) = 0;
    virtual Control log(const TrainerState&, const std::map<std::string, double>&) = 0;
    virtual Control evaluate(const TrainerState&, const std::map<std::string, double>&) = 0;
    virtual Control rollout(const TrainerState&, const RolloutRecord&) = 0;
    virtual Control save(const TrainerState&, const std::string&) = 0;
    virtual Control warning(const TrainerState&, const std::string&) = 0;
    virtual Control train_end(const TrainerState&) = 0;
  };

  // Holds a callback by value (H = T) or by reference (H = T&) and calls the hooks it has.
  template <class H>
  struct Model final : Concept {
    using T = std::remove_reference_t<H>;
    template <class A>
    explicit Model(A&& callback) : c(std::forward<A>(callback)) {}
    std::type_index type() const override { return std::type_index(typeid(T)); }
    Control train_begin(const TrainerState& s) override {
      if constexpr (detail::is_detected<detail::on_train_begin_t, T>)
        return detail::hook_result([&] { return c.on_train_begin(s); });
      return Control::proceed;
    }
    Control step_end(const TrainerState& s) override {
      if constexpr (detail::is_detected<detail::on_step_end_t, T>)
        return detail::hook_result([&] { return c.on_step_end(s); });
      return Control::proceed;
    }
    Control log(const TrainerState& s, const std::map<std::string, double>& m) override {
      if constexpr (detail::is_detected<detail::on_log_t, T>)
        return detail::hook_result([&] { return c.on_log(s, m); });
      return Control::proceed;
    }
    Control evaluate(const TrainerState& s, const std::map<std::string, double>& m) override {
      if constexpr (detail::is_detected<detail::on_evaluate_t, T>)
        return detail::hook_result([&] { return c.on_evaluate(s, m); });
      return Control::proceed;
    }
    Control rollout(const TrainerState& s, const RolloutRecord& r) override {
      if constexpr (detail::is_detected<detail::on_rollout_t, T>)
        return detail::hook_result([&] { return c.on_rollout(s, r); });
      return Control::proceed;
    }
    Control save(const TrainerState& s, const std::string& dir) override {
      if constexpr (detail::is_detected<detail::on_save_t, T>)
        return detail::hook_result([&] { return c.on_save(s, dir); });
      return Control::proceed;
    }
    Control warning(const TrainerState& s, const std::string& m) override {
      if constexpr (detail::is_detected<detail::on_warning_t, T>)
        return detail::hook_result([&] { return c.on_warning(s, m); });
      return Control::proceed;
    }
    Control train_end(const TrainerState& s) override {
      if constexpr (detail::is_detected<detail::on_train_end_t, T>)
        return detail::hook_result([&] { return c.on_train_end(s); });
      return Control::proceed;
    }
    H c;
  };

  template <class F>
  Control all(F&& call) {
    Control result = Control::proceed;
    for (auto& e : entries_) {
      if (call(*e) == Control::stop) result = Control::stop;
    }
    return result;
  }

  std::vector<std::unique_ptr<Concept>> entries_;
};

}  // namespace grpo
