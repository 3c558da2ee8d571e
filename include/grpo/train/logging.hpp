#pragma once
// Training observability: per-step metric averaging (NaN dropped, as TRL does), metrics.jsonl and
// completions.jsonl writers, and the console line and progress bar as pure string functions. Torch-free.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "grpo/detail/atomic_file.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// One logged record: the optimizer step and its averaged metrics (NaN = no value).
struct MetricRecord {
  /// Optimizer step the record belongs to.
  int64_t step = 0;
  /// Fractional epoch at that step.
  double epoch = 0.0;
  /// Metric name (docs/math.md §6, eval metrics prefixed "eval_") -> value.
  std::map<std::string, double> metrics;
};

namespace detail {

// A finite number as JSON, NaN and infinities as null (JSON has no NaN).
inline nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

// Appends one JSON value per line to a file, flushing each line so a crash loses at most the line being written.
// `owner` is the public class that writes ("grpo::MetricsLog"); it starts every error message.
class JsonlAppender {
 public:
  JsonlAppender() = default;
  JsonlAppender(std::string path, std::string owner) : path_(std::move(path)), owner_(std::move(owner)) {
    out_.open(path_, std::ios::out | std::ios::app);
    if (!out_) {
      throw RuntimeError(owner_ + ": cannot open '" + path_ + "' for appending (does the directory exist?)");
    }
  }
  bool is_open() const { return out_.is_open(); }
  const std::string& path() const { return path_; }
  void append(const nlohmann::json& value) {
    out_ << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out_.flush();
    if (!out_) throw RuntimeError(owner_ + ": cannot write to '" + path_ + "'");
  }

 private:
  std::string path_;
  std::string owner_;
  std::ofstream out_;
};

inline std::string printf_string(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

}  // namespace detail

/// Averages metrics over the micro-steps of a logging window, NaN values dropped (a metric not applicable to a
/// micro-step), as TRL does.
class MetricAverager {
 public:
  /// Adds one value of `name`; a NaN is dropped.
  void add(const std::string& name, double value) {
    auto& acc = pending_[name];
    if (!std::isnan(value)) {
      acc.first += value;
      acc.second += 1;
    }
  }
  /// Adds every metric of a map (the loss's metrics, the rollout's, ...).
  void add(const std::map<std::string, double>& metrics) {
    for (const auto& [name, value] : metrics) add(name, value);
  }
  /// Mean of each metric over the values added since the last take (NaN when all its values were NaN).
  std::map<std::string, double> averages() const {
    std::map<std::string, double> out;
    for (const auto& [name, acc] : pending_) {
      out[name] = acc.second > 0 ? acc.first / static_cast<double>(acc.second) : std::nan("");
    }
    return out;
  }
  /// The averages, merged with `extra` (which wins on equal names); then starts a new window.
  std::map<std::string, double> take(const std::map<std::string, double>& extra = {}) {
    std::map<std::string, double> metrics = averages();
    for (const auto& [name, value] : extra) metrics[name] = value;
    pending_.clear();
    return metrics;
  }
  /// Whether nothing was added since the last take.
  bool empty() const { return pending_.empty(); }

 private:
  std::map<std::string, std::pair<double, int64_t>> pending_;  // name -> (sum, count) of non-NaN values
};

namespace detail {

// The JSON lines of `path` (none when it does not exist), each parsed; a line that is not JSON is an error starting
// with `where` (the public caller, "grpo::truncate_jsonl_after_step: ") and naming the file and the line.
inline std::vector<nlohmann::json> read_jsonl(const std::string& path, const std::string& where) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {  // also out_of_range: a number such as 1e400
      throw RuntimeError(where + path + ":" + std::to_string(number) + " is not a JSON line: " + e.what());
    }
  }
  return out;
}

}  // namespace detail

/// Keeps the records of a JSONL log (metrics.jsonl, completions.jsonl) whose "step" is at most `last_step` and
/// rewrites the file atomically: a run resumed from the checkpoint of `last_step` then appends the steps it runs
/// again without duplicating them. Returns the kept records; a missing file stays missing.
inline std::vector<nlohmann::json> truncate_jsonl_after_step(const std::string& path, int64_t last_step) {
  const std::string where = "grpo::truncate_jsonl_after_step: ";
  std::vector<nlohmann::json> kept;
  bool dropped = false;
  for (auto& record : detail::read_jsonl(path, where)) {
    const auto step = record.find("step");
    if (step != record.end() && step->is_number() && step->get<int64_t>() > last_step) {
      dropped = true;
    } else {
      kept.push_back(std::move(record));
    }
  }
  if (dropped) {
    std::string text;
    for (const auto& record : kept)
      text += record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    detail::atomic_write_file(path, text, where);
  }
  return kept;
}

/// The metric records of a metrics.jsonl (null values read back as NaN), e.g. to redraw a chart after a resume.
inline std::vector<MetricRecord> metric_records(const std::vector<nlohmann::json>& lines) {
  std::vector<MetricRecord> out;
  for (const auto& line : lines) {
    MetricRecord r;
    r.step = line.value("step", int64_t{0});
    r.epoch = line.value("epoch", 0.0);
    for (const auto& item : line.items()) {
      if (item.key() == "step" || item.key() == "epoch") continue;
      r.metrics[item.key()] = item.value().is_number() ? item.value().get<double>() : std::nan("");
    }
    out.push_back(std::move(r));
  }
  return out;
}

/// Appends one record per logged step to metrics.jsonl: {"step": s, "epoch": e, "<metric>": value or null, ...},
/// and keeps them (history()); add()/flush() average a logging window's metrics before writing them.
class MetricsLog {
 public:
  /// With an empty path nothing is written to disk (history() is still kept, e.g. for the chart).
  explicit MetricsLog(const std::string& metrics_jsonl_path = "") {
    if (!metrics_jsonl_path.empty()) file_ = detail::JsonlAppender(metrics_jsonl_path, "grpo::MetricsLog");
  }

  /// Adds one value of `name` to the current window; NaN values are dropped.
  void add(const std::string& name, double value) { window_.add(name, value); }
  /// Adds every metric of one micro-step.
  void add(const std::map<std::string, double>& metrics) { window_.add(metrics); }
  /// Mean of each metric over the current window.
  std::map<std::string, double> averages() const { return window_.averages(); }

  /// Averages the window, merges `extra` (it wins on equal names), writes the record, starts a new window and
  /// returns the record's metrics.
  std::map<std::string, double> flush(int64_t step, double epoch, const std::map<std::string, double>& extra = {}) {
    auto metrics = window_.take(extra);
    write(step, epoch, metrics);
    return metrics;
  }

  /// Writes a record as is (e.g. eval metrics at an eval step) and appends it to history().
  void write(int64_t step, double epoch, const std::map<std::string, double>& metrics) {
    if (file_.is_open()) {
      nlohmann::json line = nlohmann::json::object();
      line["step"] = step;
      line["epoch"] = epoch;
      for (const auto& [name, value] : metrics) {
        if (name != "step" && name != "epoch") line[name] = detail::number_or_null(value);
      }
      file_.append(line);
    }
    history_.push_back(MetricRecord{step, epoch, metrics});
  }

  /// Every record written so far, in order (the chart's input).
  const std::vector<MetricRecord>& history() const { return history_; }

 private:
  detail::JsonlAppender file_;
  MetricAverager window_;
  std::vector<MetricRecord> history_;
};

/// Appends one line per completion to completions.jsonl:
/// {"step", "prompt", "completion", "<reward name>": value or null, ..., "advantage"}.
class CompletionsLog {
 public:
  /// Opens (creates or appends to) the file.
  explicit CompletionsLog(const std::string& completions_jsonl_path)
      : file_(completions_jsonl_path, "grpo::CompletionsLog") {}

  /// Writes N lines. rewards_per_func is N x K (NaN = the function returned none), reward_names has K names,
  /// advantages has N values; prompts and completions have N entries each (prompts repeated per completion).
  void write(int64_t step, const std::vector<std::string>& prompts, const std::vector<std::string>& completions,
             const std::vector<std::string>& reward_names, const Eigen::MatrixXd& rewards_per_func,
             const std::vector<double>& advantages) {
    const auto n = completions.size();
    const auto k = reward_names.size();
    if (prompts.size() != n || advantages.size() != n || static_cast<std::size_t>(rewards_per_func.rows()) != n ||
        static_cast<std::size_t>(rewards_per_func.cols()) != k) {
      throw InvalidArgument("grpo::CompletionsLog::write: sizes disagree: " + std::to_string(prompts.size()) +
                            " prompts, " + std::to_string(n) + " completions, " + std::to_string(advantages.size()) +
                            " advantages, rewards " + std::to_string(rewards_per_func.rows()) + " x " +
                            std::to_string(rewards_per_func.cols()) + " for " + std::to_string(k) +
                            " reward names; expected N rows each and an N x K matrix");
    }
    for (std::size_t i = 0; i < n; ++i) {
      nlohmann::json line = nlohmann::json::object();
      line["step"] = step;
      line["prompt"] = prompts[i];
      line["completion"] = completions[i];
      for (std::size_t j = 0; j < k; ++j) {
        line[reward_names[j]] =
            detail::number_or_null(rewards_per_func(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)));
      }
      line["advantage"] = detail::number_or_null(advantages[i]);
      file_.append(line);
    }
  }

 private:
  detail::JsonlAppender file_;
};

/// "mm:ss" below an hour, "h:mm:ss" above; "?" for negative or non-finite input.
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  char buffer[48];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(buffer, sizeof buffer, "%02lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buffer;
}

/// Console progress bar, e.g. "[#######.............]  35/100  35% 00:42<01:18 1.20s/step": steps done of
/// total, elapsed time and the remaining time estimated from the mean step time so far.
inline std::string format_progress_bar(int64_t step, int64_t total, double elapsed_seconds, int width = 30) {
  const double fraction =
      total > 0 ? std::min(1.0, std::max(0.0, static_cast<double>(step) / static_cast<double>(total))) : 0.0;
  const int filled = static_cast<int>(fraction * width + 1e-9);
  std::string bar = "[" + std::string(static_cast<std::size_t>(filled), '#') +
                    std::string(static_cast<std::size_t>(width - filled), '.') + "] ";
  bar += std::to_string(step) + "/" + std::to_string(total) + " " + detail::printf_string("%3.0f%%", 100 * fraction);
  const double per_step = step > 0 ? elapsed_seconds / static_cast<double>(step) : std::nan("");
  const double remaining = per_step * static_cast<double>(std::max<int64_t>(0, total - step));
  bar += " " + format_duration(elapsed_seconds) + "<" + format_duration(remaining);
  if (step > 0) bar += " " + detail::printf_string("%.2fs/step", per_step);
  return bar;
}

/// One compact console line per logged step, e.g.
/// "step 10/100 | reward 0.512 ± 0.231 | kl 0.00120 | clip 0.000 | len 45.2 | lr 1.00e-06 | 1.23s/step".
/// Only the metrics present (and not NaN) appear: reward, reward_std, kl, clip_ratio/region_mean,
/// completions/mean_length, learning_rate, step_time, and eval_accuracy when present.
inline std::string format_log_line(int64_t step, int64_t max_steps, const std::map<std::string, double>& metrics) {
  auto get = [&](const char* name, double& out) {
    const auto it = metrics.find(name);
    if (it == metrics.end() || std::isnan(it->second)) return false;
    out = it->second;
    return true;
  };
  std::string line = "step " + std::to_string(step) + "/" + std::to_string(max_steps);
  double value = 0, spread = 0;
  if (get("reward", value)) {
    line += " | reward " + detail::printf_string("%.3f", value);
    if (get("reward_std", spread)) line += " \xC2\xB1 " + detail::printf_string("%.3f", spread);
  }
  if (get("eval_accuracy", value)) line += " | eval_acc " + detail::printf_string("%.3f", value);
  if (get("kl", value)) line += " | kl " + detail::printf_string("%.3g", value);
  if (get("clip_ratio/region_mean", value)) line += " | clip " + detail::printf_string("%.3f", value);
  if (get("completions/mean_length", value)) line += " | len " + detail::printf_string("%.1f", value);
  if (get("learning_rate", value)) line += " | lr " + detail::printf_string("%.2e", value);
  if (get("step_time", value)) line += " | " + detail::printf_string("%.2fs/step", value);
  return line;
}

}  // namespace grpo
