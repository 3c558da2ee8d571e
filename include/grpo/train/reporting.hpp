#pragma once
// The trainer's reporting, as callbacks (train/callbacks.hpp) that GRPOTrainer installs by default and that can be
// removed (trainer.callbacks().remove<grpo::ConsoleReporter>()) or replaced:
//   ConsoleReporter  - a progress bar with ETA on a terminal, one line per logged step and evaluation, warnings;
//   MetricsFile      - metrics.jsonl, one record per logged step and per evaluation;
//   CompletionsFile  - completions.jsonl, the completions of the generation batch that opens each logging window;
//   TrainingChart    - training_chart.svg, redrawn from the whole run at every log.
// The files are correct across resumes: at on_train_begin each keeps the records up to the resumed step (those of
// the steps that will run again are dropped) and the chart reloads the run's history. Torch-free.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "grpo/train/callbacks.hpp"
#include "grpo/train/chart.hpp"
#include "grpo/train/logging.hpp"
#include "grpo/train/state.hpp"

namespace grpo {

/// Progress on the console: a bar with ETA redrawn on stderr after each step (when stderr is a terminal), one
/// compact line per logged step and per evaluation on stdout, and warnings on stderr.
class ConsoleReporter {
 public:
  /// progress_bar: draw the bar (only ever on a terminal); log_lines: print the per-log lines.
  explicit ConsoleReporter(bool progress_bar = true, bool log_lines = true)
      : bar_(progress_bar && ::isatty(STDERR_FILENO)), lines_(log_lines) {}

  void on_train_begin(const TrainerState& state) {
    start_ = std::chrono::steady_clock::now();
    first_step_ = state.global_step;
  }
  void on_step_end(const TrainerState& state) {
    if (!bar_) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    // The ETA uses the steps of this run only (a resumed run's earlier steps took no time here).
    const std::string bar =
        format_progress_bar(state.global_step - first_step_, state.max_steps - first_step_, elapsed);
    std::fprintf(stderr, "\r%s", bar.c_str());
    std::fflush(stderr);
  }
  void on_log(const TrainerState& state, const std::map<std::string, double>& metrics) {
    print(format_log_line(state.global_step, state.max_steps, metrics));
  }
  void on_evaluate(const TrainerState& state, const std::map<std::string, double>& metrics) {
    std::string line = "step " + std::to_string(state.global_step) + "/" + std::to_string(state.max_steps) + " | eval";
    for (const char* name : {"eval_reward", "eval_accuracy"}) {
      const auto it = metrics.find(name);
      if (it != metrics.end())
        line += std::string(" | ") + (name + 5) + " " + detail::printf_string("%.4f", it->second);
    }
    print(line);
  }
  void on_warning(const TrainerState&, const std::string& message) {
    clear_bar();
    std::fprintf(stderr, "warning: %s\n", message.c_str());
  }
  void on_train_end(const TrainerState&) { clear_bar(); }

 private:
  void print(const std::string& line) {
    if (!lines_) return;
    clear_bar();
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  void clear_bar() {
    if (bar_) std::fprintf(stderr, "\r\033[K");
  }

  bool bar_, lines_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t first_step_ = 0;
};

/// metrics.jsonl in `output_dir`: one record per logged step ({"step", "epoch", metrics...}, NaN as null) and one
/// per evaluation (eval_ metrics).
class MetricsFile {
 public:
  explicit MetricsFile(std::string output_dir)
      : path_((std::filesystem::path(output_dir) / "metrics.jsonl").string()) {}

  void on_train_begin(const TrainerState& state) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    truncate_jsonl_after_step(path_, state.global_step);
    log_.emplace(path_);
  }
  void on_log(const TrainerState& state, const std::map<std::string, double>& metrics) { write(state, metrics); }
  void on_evaluate(const TrainerState& state, const std::map<std::string, double>& metrics) { write(state, metrics); }
  /// The file's path.
  const std::string& path() const { return path_; }

 private:
  void write(const TrainerState& state, const std::map<std::string, double>& metrics) {
    if (!log_) log_.emplace(path_);
    log_->write(state.global_step, state.epoch, metrics);
  }

  std::string path_;
  std::optional<MetricsLog> log_;
};

/// completions.jsonl in `output_dir`: the generation batch that opens each logging window (every one with
/// logging_steps = 1), one line per completion with its prompt, each reward and its advantage, labelled with the
/// steps completed when it was generated.
class CompletionsFile {
 public:
  CompletionsFile(std::string output_dir, int64_t logging_steps)
      : path_((std::filesystem::path(output_dir) / "completions.jsonl").string()), logging_steps_(logging_steps) {}

  void on_train_begin(const TrainerState& state) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    // A batch labelled with step s was generated after step s finished, i.e. after checkpoint-s was written.
    truncate_jsonl_after_step(path_, state.global_step - 1);
  }
  void on_rollout(const TrainerState& state, const RolloutRecord& rollout) {
    if (logging_steps_ > 0 && state.global_step % logging_steps_ != 0) return;
    if (!log_) log_.emplace(path_);
    std::vector<std::string> names(rollout.reward_names.begin(), rollout.reward_names.end());
    log_->write(state.global_step, rollout.prompts, rollout.completions, names, rollout.rewards, rollout.advantages);
  }

 private:
  std::string path_;
  int64_t logging_steps_;
  std::optional<CompletionsLog> log_;
};

/// training_chart.svg in `output_dir` (reward and eval reward/accuracy, KL, completion length, learning rate
/// against the step), redrawn from the run's whole history at every log and evaluation; after a resume the history is
/// read back from metrics.jsonl.
class TrainingChart {
 public:
  explicit TrainingChart(std::string output_dir, std::vector<ChartPanel> panels = default_chart_panels())
      : dir_(std::move(output_dir)), panels_(std::move(panels)) {}

  void on_train_begin(const TrainerState& state) {
    const auto metrics_path = (std::filesystem::path(dir_) / "metrics.jsonl").string();
    std::vector<nlohmann::json> lines;
    for (auto& line : detail::read_jsonl(metrics_path, "grpo::TrainingChart: ")) {
      if (line.value("step", int64_t{0}) <= state.global_step) lines.push_back(std::move(line));
    }
    history_ = metric_records(lines);
  }
  void on_log(const TrainerState& state, const std::map<std::string, double>& metrics) { add(state, metrics); }
  void on_evaluate(const TrainerState& state, const std::map<std::string, double>& metrics) { add(state, metrics); }
  /// The records drawn so far.
  const std::vector<MetricRecord>& history() const { return history_; }

 private:
  void add(const TrainerState& state, const std::map<std::string, double>& metrics) {
    history_.push_back(MetricRecord{state.global_step, state.epoch, metrics});
    write_training_chart((std::filesystem::path(dir_) / "training_chart.svg").string(), history_, panels_);
  }

  std::string dir_;
  std::vector<ChartPanel> panels_;
  std::vector<MetricRecord> history_;
};

/// The reporters a trainer installs by default: console, metrics.jsonl, completions.jsonl (when log_completions),
/// and the chart, all in output_dir.
inline CallbackList default_reporters(const std::string& output_dir, int64_t logging_steps, bool log_completions) {
  CallbackList list;
  list.add(ConsoleReporter{});
  list.add(MetricsFile{output_dir});
  if (log_completions) list.add(CompletionsFile{output_dir, logging_steps});
  list.add(TrainingChart{output_dir});
  return list;
}

}  // namespace grpo
