#pragma once
// Trainer callbacks, duck-typed as in ensmallen: a callback object implements only the hooks it needs,
//   void on_step_end(const TrainerState&);                                     after each optimizer step
//   void on_log(const TrainerState&, const std::map<std::string, double>&);     after each logged step
//   void on_save(const TrainerState&, const std::string& checkpoint_dir);      after each checkpoint
// and the trainer calls, on every callback passed, exactly the hooks it has. Detection is at compile time.

#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "grpo/train/state.hpp"

namespace grpo {

namespace detail {
template <class C, class = void>
struct has_on_step_end : std::false_type {};
template <class C>
struct has_on_step_end<C, std::void_t<decltype(std::declval<C&>().on_step_end(std::declval<const TrainerState&>()))>>
    : std::true_type {};

template <class C, class = void>
struct has_on_log : std::false_type {};
template <class C>
struct has_on_log<C, std::void_t<decltype(std::declval<C&>().on_log(
                         std::declval<const TrainerState&>(), std::declval<const std::map<std::string, double>&>()))>>
    : std::true_type {};

template <class C, class = void>
struct has_on_save : std::false_type {};
template <class C>
struct has_on_save<C, std::void_t<decltype(std::declval<C&>().on_save(
                          std::declval<const TrainerState&>(), std::declval<const std::string&>()))>> : std::true_type {
};
}  // namespace detail

/// True when Callback has `on_step_end(const TrainerState&)`.
template <class Callback>
inline constexpr bool has_on_step_end_v = detail::has_on_step_end<std::remove_reference_t<Callback>>::value;
/// True when Callback has `on_log(const TrainerState&, const std::map<std::string, double>&)`.
template <class Callback>
inline constexpr bool has_on_log_v = detail::has_on_log<std::remove_reference_t<Callback>>::value;
/// True when Callback has `on_save(const TrainerState&, const std::string&)`.
template <class Callback>
inline constexpr bool has_on_save_v = detail::has_on_save<std::remove_reference_t<Callback>>::value;

/// True when Callback has at least one hook (the trainer static_asserts it, so a misspelled hook is caught).
template <class Callback>
inline constexpr bool is_callback_v = has_on_step_end_v<Callback> || has_on_log_v<Callback> || has_on_save_v<Callback>;

/// Calls on_step_end on each callback that has it, in order.
template <class... Callbacks>
void invoke_on_step_end(const TrainerState& state, Callbacks&... callbacks) {
  auto call = [&](auto& c) {
    if constexpr (has_on_step_end_v<decltype(c)>) c.on_step_end(state);
  };
  (call(callbacks), ...);
  (void)call;  // an empty pack leaves it unused
}

/// Calls on_log on each callback that has it, in order.
template <class... Callbacks>
void invoke_on_log(const TrainerState& state, const std::map<std::string, double>& metrics, Callbacks&... callbacks) {
  auto call = [&](auto& c) {
    if constexpr (has_on_log_v<decltype(c)>) c.on_log(state, metrics);
  };
  (call(callbacks), ...);
  (void)call;  // an empty pack leaves it unused
}

/// Calls on_save on each callback that has it, in order.
template <class... Callbacks>
void invoke_on_save(const TrainerState& state, const std::string& checkpoint_dir, Callbacks&... callbacks) {
  auto call = [&](auto& c) {
    if constexpr (has_on_save_v<decltype(c)>) c.on_save(state, checkpoint_dir);
  };
  (call(callbacks), ...);
  (void)call;  // an empty pack leaves it unused
}

/// The same for callbacks stored in a std::tuple (how a trainer keeps them).
template <class... Callbacks>
void invoke_on_step_end(const TrainerState& state, std::tuple<Callbacks...>& callbacks) {
  std::apply([&](auto&... c) { invoke_on_step_end(state, c...); }, callbacks);
}
template <class... Callbacks>
void invoke_on_log(const TrainerState& state, const std::map<std::string, double>& metrics,
                   std::tuple<Callbacks...>& callbacks) {
  std::apply([&](auto&... c) { invoke_on_log(state, metrics, c...); }, callbacks);
}
template <class... Callbacks>
void invoke_on_save(const TrainerState& state, const std::string& checkpoint_dir, std::tuple<Callbacks...>& callbacks) {
  std::apply([&](auto&... c) { invoke_on_save(state, checkpoint_dir, c...); }, callbacks);
}

/// Compile-time check with a readable message, for the trainer's constructor.
template <class... Callbacks>
constexpr void check_callbacks() {
  static_assert((is_callback_v<Callbacks> && ...),
                "a GRPOTrainer callback must have at least one of on_step_end(const TrainerState&), "
                "on_log(const TrainerState&, const std::map<std::string, double>&), "
                "on_save(const TrainerState&, const std::string&)");
}

}  // namespace grpo
