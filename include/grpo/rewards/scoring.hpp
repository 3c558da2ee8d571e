#pragma once
// Scoring a generation batch with K reward functions: the N x K reward matrix (NaN = none), per-function metrics,
// validation of what the functions return, optional parallel scoring on a thread pool, and optional per-call
// timeouts.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "grpo/core/advantages.hpp"
#include "grpo/detail/nan_stats.hpp"
#include "grpo/detail/thread_pool.hpp"
#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// What a reward call that exceeds the timeout yields.
enum class TimeoutAction {
  none,  ///< the reward is "none" for the affected completions, counted in rewards/<name>/timeouts
  error  ///< scoring throws RewardError
};

/// Options of RewardScorer.
struct ScoringOptions {
  /// false (default): every reward call runs on the calling thread, one at a time: function by function in list
  /// order, and a per-completion function completion by completion in batch order, so a functor may mutate its
  /// state (or state it shares with other functions) without locks, as in TRL. true: calls run on a pool of
  /// num_threads workers: a per-completion function on chunks of completions at once, and the K functions (batch
  /// ones included) concurrently with one another; opt in only when every function is safe to call concurrently
  /// with itself and with the others. The scores and metrics do not depend on this choice.
  bool parallel = false;
  /// Worker threads when `parallel` (0 = hardware concurrency); ignored otherwise.
  std::size_t num_threads = 0;
  /// One weight per function (empty = all ones); forwarded to compute_advantages by the trainer.
  std::vector<double> weights;
  /// Per-call timeout in seconds (one completion, or one whole batch call); unset = none. With a timeout each call
  /// runs on a thread of its own (still one at a time unless `parallel`). A call that times out is abandoned: it
  /// keeps running on a detached thread (C++ cannot stop a thread), so it must not touch state that dies with the
  /// caller, and it may still run while later calls of the same function do; the scorer keeps its inputs alive
  /// for it.
  std::optional<double> timeout_seconds;
  /// What a timed-out call yields.
  TimeoutAction on_timeout = TimeoutAction::none;
};

/// A reward function failed: its name, the sample (or the batch) and a prompt excerpt are in the message.
/// A grpo::RuntimeError, so also a std::runtime_error.
class RewardError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

/// The result of scoring one generation batch.
struct RewardScores {
  /// N x K rewards, row = completion, column = function, NaN = none.
  Eigen::MatrixXd rewards_per_func;
  /// K weights (all ones when none were given).
  std::vector<double> weights;
  /// rewards/<name>/mean|std over non-none values, reward and reward_std of the weighted sum, values logged by the
  /// functions through log_metric (averaged), rewards/<name>/timeouts when a timeout is set.
  std::map<std::string, double> metrics;
  /// Human-readable warnings (at most one all-none warning per batch).
  std::vector<std::string> warnings;
};

namespace detail {

inline std::string excerpt(const std::string& text, std::size_t max_chars = 60) {
  std::string out;
  for (char c : text.substr(0, max_chars)) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return "\"" + out + (text.size() > max_chars ? "...\"" : "\"");
}

// Thread-safe accumulator behind RewardInputs::log_metric. It keeps every value and averages them in sorted order,
// so the mean does not depend on the order in which (parallel) calls logged them.
struct MetricSink {
  std::mutex mutex;
  std::map<std::string, std::vector<double>> values;
  void add(const std::string& name, double value) {
    if (std::isnan(value)) return;
    std::lock_guard<std::mutex> lock(mutex);
    values[name].push_back(value);
  }
  // name -> mean of its values.
  std::map<std::string, double> means() {
    std::lock_guard<std::mutex> lock(mutex);
    std::map<std::string, double> out;
    for (auto& [name, logged] : values) {
      std::sort(logged.begin(), logged.end());
      double sum = 0.0;
      for (const double v : logged) sum += v;
      out[name] = sum / static_cast<double>(logged.size());
    }
    return out;
  }
};

// Runs call() on its own thread and waits at most `seconds`; nullopt when it timed out (the thread is detached).
// Exceptions thrown by call() are rethrown here.
template <class R, class Call>
std::optional<R> call_with_timeout(Call call, double seconds) {
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::optional<R> value;
    std::exception_ptr error;
  };
  auto state = std::make_shared<State>();
  std::thread worker([state, call = std::move(call)]() mutable {
    std::optional<R> value;
    std::exception_ptr error;
    try {
      value = call();
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->value = std::move(value);
    state->error = error;
    state->done = true;
    state->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(state->mutex);
  const bool finished = state->cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return state->done; });
  lock.unlock();
  if (!finished) {
    worker.detach();
    return std::nullopt;
  }
  worker.join();
  if (state->error) std::rethrow_exception(state->error);
  return std::move(state->value);
}

// One failure, ordered by (function, sample) so the reported one does not depend on thread timing.
struct Failure {
  std::size_t function = 0;
  std::size_t sample = 0;  // N for "the whole batch"
  std::string message;
  bool operator<(const Failure& other) const {
    return function != other.function ? function < other.function : sample < other.sample;
  }
};

}  // namespace detail

/// Scores generation batches with a fixed list of reward functions.
class RewardScorer {
 public:
  /// `functions` in column order; throws if there are none, if two share a name, or if the weights do not match.
  explicit RewardScorer(std::vector<RewardFunction> functions, ScoringOptions options = {})
      : functions_(std::move(functions)), options_(std::move(options)) {
    if (functions_.empty()) throw InvalidArgument("grpo::RewardScorer: at least one reward function is required");
    for (std::size_t a = 0; a < functions_.size(); ++a) {
      for (std::size_t b = a + 1; b < functions_.size(); ++b) {
        if (functions_[a].name() == functions_[b].name()) {
          throw InvalidArgument("grpo::RewardScorer: two reward functions are named \"" + functions_[a].name() +
                                "\"; names must be unique (they key the metrics)");
        }
      }
    }
    if (options_.weights.empty()) options_.weights.assign(functions_.size(), 1.0);
    if (options_.weights.size() != functions_.size()) {
      throw InvalidArgument("grpo::RewardScorer: weights has " + std::to_string(options_.weights.size()) +
                            " entries for " + std::to_string(functions_.size()) + " reward functions");
    }
    for (std::size_t k = 0; k < options_.weights.size(); ++k) {
      if (!std::isfinite(options_.weights[k])) {
        throw InvalidArgument("grpo::RewardScorer: the weight of \"" + functions_[k].name() + "\" is not finite");
      }
    }
    if (options_.timeout_seconds && !(*options_.timeout_seconds > 0)) {
      throw InvalidArgument("grpo::RewardScorer: timeout_seconds must be > 0");
    }
    if (options_.parallel) pool_ = std::make_unique<detail::ThreadPool>(options_.num_threads);
  }

  /// The functions, in column order.
  const std::vector<RewardFunction>& functions() const { return functions_; }
  /// The K weights.
  const std::vector<double>& weights() const { return options_.weights; }
  /// Number of threads that run reward calls: the pool's size when parallel, else 1 (the calling thread).
  std::size_t num_threads() const { return pool_ ? pool_->size() : 1; }
  /// Whether reward calls run concurrently on a thread pool (ScoringOptions::parallel).
  bool parallel() const { return static_cast<bool>(pool_); }
  /// Throws, listing what is missing, unless the dataset has every column some function requires.
  void check_columns(const std::vector<std::string>& dataset_columns) const {
    check_required_columns(functions_, dataset_columns);
  }

  /// Scores one batch. Throws RewardError when a function throws, returns the wrong number of values or an
  /// infinite value, or times out under TimeoutAction::error.
  RewardScores score(const RewardInputs& inputs) {
    validate(inputs);
    const std::size_t n = inputs.size(), k_count = functions_.size();
    auto sink = std::make_shared<detail::MetricSink>();
    // The functions see a shared copy whose log_metric feeds the sink; it also stays alive for calls abandoned
    // after a timeout.
    auto shared = std::make_shared<RewardInputs>(inputs);
    shared->log_metric = [sink](const std::string& name, double value) { sink->add(name, value); };
    const RewardInputs* view = shared.get();

    Eigen::MatrixXd matrix = Eigen::MatrixXd::Constant(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(k_count),
                                                       detail::none_reward);
    std::vector<long> timeouts(k_count, 0);
    std::mutex failures_mutex;
    std::vector<detail::Failure> failures;
    const auto fail = [&](std::size_t k, std::size_t sample, std::string message) {
      std::lock_guard<std::mutex> lock(failures_mutex);
      failures.push_back({k, sample, std::move(message)});
    };

    std::vector<std::function<void()>> tasks;
    // Sequential scoring runs each function as one task; the pool gets about 4 chunks per worker and function.
    const std::size_t chunk = pool_ ? std::max<std::size_t>(1, n / (pool_->size() * 4)) : std::max<std::size_t>(1, n);
    for (std::size_t k = 0; k < k_count; ++k) {
      const RewardFunction& f = functions_[k];
      if (f.is_per_completion()) {
        for (std::size_t start = 0; start < n; start += chunk) {
          tasks.emplace_back([&, k, start, f] {
            for (std::size_t i = start; i < std::min(n, start + chunk); ++i) {
              try {
                std::optional<double> value;
                if (options_.timeout_seconds) {
                  value = detail::call_with_timeout<double>(
                      [f, shared, i] { return f.call_single(shared->completions[i], Row(*shared, i)); },
                      *options_.timeout_seconds);
                } else {
                  value = f.call_single(view->completions[i], Row(*view, i));
                }
                if (!value) {
                  std::lock_guard<std::mutex> lock(failures_mutex);
                  ++timeouts[k];
                  continue;
                }
                matrix(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)) = *value;
              } catch (const std::exception& e) {
                fail(k, i, e.what());
              } catch (...) {
                fail(k, i, "unknown exception");
              }
            }
          });
        }
      } else {
        tasks.emplace_back([&, k, f] {
          try {
            std::optional<std::vector<double>> values;
            if (options_.timeout_seconds) {
              values = detail::call_with_timeout<std::vector<double>>([f, shared] { return f.call_batch(*shared); },
                                                                      *options_.timeout_seconds);
            } else {
              values = f.call_batch(*view);
            }
            if (!values) {
              std::lock_guard<std::mutex> lock(failures_mutex);
              timeouts[k] += static_cast<long>(n);
              return;
            }
            if (values->size() != n) {
              fail(k, n,
                   "returned " + std::to_string(values->size()) + " values for " + std::to_string(n) +
                       " completions (it must return exactly one value per completion; use std::nullopt for "
                       "\"none\")");
              return;
            }
            for (std::size_t i = 0; i < n; ++i)
              matrix(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)) = (*values)[i];
          } catch (const std::exception& e) {
            fail(k, n, e.what());
          } catch (...) {
            fail(k, n, "unknown exception");
          }
        });
      }
    }
    if (pool_) {
      pool_->run_all(std::move(tasks));
    } else {
      for (auto& task : tasks) task();  // in order: function by function, completions ascending
    }

    // Values: NaN is "none"; an infinite reward is an error.
    for (std::size_t k = 0; k < k_count; ++k) {
      for (std::size_t i = 0; i < n; ++i) {
        if (std::isinf(matrix(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)))) {
          failures.push_back({k, i, "returned an infinite reward; return a finite number or std::nullopt"});
          break;
        }
      }
      if (timeouts[k] > 0 && options_.on_timeout == TimeoutAction::error) {
        failures.push_back({k, n,
                            "exceeded the timeout of " + std::to_string(*options_.timeout_seconds) + " s (" +
                                std::to_string(timeouts[k]) + " completions)"});
      }
    }
    if (!failures.empty()) {
      const auto& first = *std::min_element(failures.begin(), failures.end());
      const auto& name = functions_[first.function].name();
      const std::string where = first.sample < n
                                    ? "at sample " + std::to_string(first.sample) + " (prompt " +
                                          detail::excerpt(inputs.prompts[first.sample]) + ")"
                                    : "on the batch of " + std::to_string(n) + " completions (first prompt " +
                                          (n ? detail::excerpt(inputs.prompts[0]) : std::string("none")) + ")";
      throw RewardError("grpo::RewardScorer::score: reward function \"" + name + "\" failed " + where + ": " +
                        first.message);
    }

    RewardScores scores;
    scores.rewards_per_func = std::move(matrix);
    scores.weights = options_.weights;
    fill_metrics(scores, timeouts, *sink);
    add_all_none_warning(scores, inputs);
    return scores;
  }

 private:
  void validate(const RewardInputs& inputs) const {
    const std::size_t n = inputs.completions.size();
    const auto count = [&](const char* what, std::size_t size) {
      if (size != n) {
        throw InvalidArgument(std::string("grpo::RewardScorer::score: ") + what + " has " + std::to_string(size) +
                              " entries but there are " + std::to_string(n) + " completions");
      }
    };
    count("prompts", inputs.prompts.size());
    count("completion_ids", inputs.completion_ids.size());
    if (!inputs.columns.names().empty()) count("columns", inputs.columns.size());
    const std::size_t batch = inputs.batch_rows == 0 ? n : inputs.batch_rows;
    if (inputs.num_generations < 1 || batch % static_cast<std::size_t>(inputs.num_generations) != 0) {
      throw InvalidArgument(
          "grpo::RewardScorer::score: " + std::to_string(batch) +
          " completions do not form groups of num_generations = " + std::to_string(inputs.num_generations));
    }
    if (inputs.row_offset + n > batch) {
      throw InvalidArgument("grpo::RewardScorer::score: rows [" + std::to_string(inputs.row_offset) + ", " +
                            std::to_string(inputs.row_offset + n) +
                            ") lie outside a batch of batch_rows = " + std::to_string(batch));
    }
  }

  void fill_metrics(RewardScores& scores, const std::vector<long>& timeouts, detail::MetricSink& sink) const {
    const auto& m = scores.rewards_per_func;
    const Eigen::VectorXd weighted = detail::weighted_nansum(
        m, Eigen::Map<const Eigen::VectorXd>(scores.weights.data(), static_cast<Eigen::Index>(scores.weights.size())));
    for (std::size_t k = 0; k < functions_.size(); ++k) {
      const auto column = m.col(static_cast<Eigen::Index>(k));
      scores.metrics["rewards/" + functions_[k].name() + "/mean"] = detail::nanmean(column);
      scores.metrics["rewards/" + functions_[k].name() + "/std"] = detail::nanstd(column);
      if (options_.timeout_seconds) {
        scores.metrics["rewards/" + functions_[k].name() + "/timeouts"] = static_cast<double>(timeouts[k]);
      }
    }
    scores.metrics["reward"] = detail::nanmean(weighted);
    scores.metrics["reward_std"] = detail::nanstd(weighted);
    for (const auto& [name, mean] : sink.means()) scores.metrics[name] = mean;
  }

  static void add_all_none_warning(RewardScores& scores, const RewardInputs& inputs) {
    const auto& m = scores.rewards_per_func;
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      if (!m.row(i).array().isNaN().all()) continue;
      const auto row = static_cast<std::size_t>(i);
      std::string text = "All reward functions returned None for the following kwargs: prompt: " +
                         detail::excerpt(inputs.prompts[row]) +
                         ", completion: " + detail::excerpt(inputs.completions[row]);
      for (const auto& column : inputs.columns.names()) {
        text += ", " + column + ": " + inputs.columns.value(column, row).dump();
      }
      long count = 0;
      for (Eigen::Index j = 0; j < m.rows(); ++j) count += m.row(j).array().isNaN().all() ? 1 : 0;
      text += " (" + std::to_string(count) + " of " + std::to_string(m.rows()) + " completions are unscorable)";
      scores.warnings.push_back(std::move(text));
      return;
    }
  }

  std::vector<RewardFunction> functions_;
  ScoringOptions options_;
  std::unique_ptr<detail::ThreadPool> pool_;  // null unless options_.parallel
};

}  // namespace grpo
