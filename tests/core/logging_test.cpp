// Metric averaging and files, console formatting, the SVG chart and the atomic file write.
#include "grpo/train/logging.hpp"

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>
#include "support/catch.hpp"

#include "grpo/detail/atomic_file.hpp"
#include "grpo/train/chart.hpp"
#include "support/scoped_temp_dir.hpp"

using grpo_test::Contains;

namespace {
std::vector<nlohmann::json> read_jsonl_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(grpo_test::read_text(path));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::vector<grpo::MetricRecord> synthetic_history(int steps) {
  std::vector<grpo::MetricRecord> history;
  for (int s = 1; s <= steps; ++s) {
    grpo::MetricRecord r{s, s / 20.0, {}};
    r.metrics["reward"] = 0.2 + 0.6 * (1 - std::exp(-s / 30.0)) + 0.05 * std::sin(s);
    r.metrics["kl"] = s == 40 ? std::nan("") : 0.001 * s;
    r.metrics["completions/mean_length"] = 120 - 0.5 * s;
    r.metrics["completions/max_length"] = 200 - 0.3 * s;
    r.metrics["learning_rate"] = 1e-6 * std::min(1.0, s / 10.0);
    history.push_back(r);
    if (s % 20 == 0) history.push_back({s, s / 20.0, {{"eval_accuracy", 0.1 + 0.006 * s}}});
  }
  return history;
}
}  // namespace

TEST_CASE("metrics average over a logging window with NaN dropped and land in metrics.jsonl", "[logging]") {
  grpo_test::ScopedTempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    grpo::MetricsLog log(path);
    log.add({{"reward", 1.0}, {"kl", std::nan("")}, {"clip_ratio/low_mean", 0.0}});
    log.add({{"reward", 2.0}, {"kl", 0.5}});
    log.add("only_nan", std::nan(""));
    const auto averaged = log.flush(10, 0.25, {{"learning_rate", 1e-6}});
    CHECK(averaged.at("reward") == 1.5);
    CHECK(averaged.at("kl") == 0.5);
    CHECK(averaged.at("clip_ratio/low_mean") == 0.0);
    CHECK(std::isnan(averaged.at("only_nan")));
    CHECK(log.averages().empty());  // flush starts a new window
    log.add("reward", 3.0);
    log.flush(20, 0.5);
    CHECK(log.history().size() == 2);
    CHECK(log.history()[1].metrics.at("reward") == 3.0);
  }
  {
    grpo::MetricsLog reopened(path);  // appends, never truncates
    reopened.write(30, 0.75, {{"eval_accuracy", 0.4}});
  }
  const auto lines = read_jsonl_lines(path);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].at("step") == 10);
  CHECK(lines[0].at("epoch") == 0.25);
  CHECK(lines[0].at("reward") == 1.5);
  CHECK(lines[0].at("learning_rate") == 1e-6);
  CHECK(lines[0].at("only_nan").is_null());
  CHECK(lines[1].at("reward") == 3.0);
  CHECK(lines[2].at("eval_accuracy") == 0.4);
  CHECK_THROWS_WITH(grpo::MetricsLog(dir.file("no/such/dir/metrics.jsonl")), Contains("cannot open"));
}

TEST_CASE("completions.jsonl holds prompt, completion, each reward and the advantage", "[logging]") {
  grpo_test::ScopedTempDir dir;
  const std::string path = dir.file("completions.jsonl");
  grpo::CompletionsLog log(path);
  Eigen::MatrixXd rewards(2, 2);
  rewards << 1.0, 0.5, std::nan(""), 0.0;
  log.write(3, {"2+2?", "2+2?"}, {"4", "5"}, {"accuracy", "format"}, rewards, {0.7, -0.7});
  const auto lines = read_jsonl_lines(path);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == nlohmann::json::parse(
                        R"({"step": 3, "prompt": "2+2?", "completion": "4", "accuracy": 1.0, "format": 0.5,
                            "advantage": 0.7})"));
  CHECK(lines[1].at("accuracy").is_null());
  CHECK(lines[1].at("advantage") == -0.7);
  CHECK_THROWS_WITH(log.write(3, {"a"}, {"b", "c"}, {"accuracy"}, Eigen::MatrixXd(2, 1), {0.0, 0.0}),
                    Contains("sizes disagree") && Contains("1 prompts"));
}

TEST_CASE("the console line and progress bar show what is present, with an ETA", "[logging]") {
  const std::string line = grpo::format_log_line(10, 100,
                                                 {{"reward", 0.5123},
                                                  {"reward_std", 0.2311},
                                                  {"kl", 0.0012},
                                                  {"clip_ratio/region_mean", 0.0},
                                                  {"completions/mean_length", 45.21},
                                                  {"learning_rate", 1e-6},
                                                  {"step_time", 1.234},
                                                  {"entropy", 0.9}});
  CHECK(line ==
        "step 10/100 | reward 0.512 \xC2\xB1 0.231 | kl 0.0012 | clip 0.000 | len 45.2 | lr 1.00e-06 | "
        "1.23s/step");
  CHECK(grpo::format_log_line(1, 5, {{"reward", 1.0}, {"kl", std::nan("")}}) == "step 1/5 | reward 1.000");

  CHECK(grpo::format_progress_bar(25, 100, 50.0, 20) == "[#####...............] 25/100  25% 00:50<02:30 2.00s/step");
  CHECK(grpo::format_progress_bar(0, 100, 0.0, 4) == "[....] 0/100   0% 00:00<?");
  CHECK(grpo::format_progress_bar(100, 100, 4000.0, 4) == "[####] 100/100 100% 1:06:40<00:00 40.00s/step");
}

TEST_CASE("the training chart is a self-contained SVG with four titled panels", "[chart]") {
  grpo_test::ScopedTempDir dir;
  const auto history = synthetic_history(100);
  const std::string path = dir.file("training.svg");
  grpo::write_training_chart(path, history);
  const std::string svg = grpo_test::read_text(path);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK_THAT(svg, Contains("</svg>"));
  for (const char* title : {"Reward", "KL to reference", "Completion length (tokens)", "Learning rate"}) {
    CHECK_THAT(svg, Contains(std::string(">") + title + "<"));
  }
  CHECK_THAT(svg, Contains("eval accuracy"));
  CHECK_THAT(svg, Contains(">step 100, epoch 5.00<"));
  CHECK(svg.find("href") == std::string::npos);  // no external resources
  CHECK(svg.find("nan") == std::string::npos);   // the NaN KL point is skipped
  std::size_t polylines = 0;
  for (auto at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++polylines;
  CHECK(polylines == 6);  // reward, eval accuracy, kl, mean and max length, learning rate

  const std::string empty = grpo::render_training_chart({});
  CHECK_THAT(empty, Contains("no data yet"));
  const std::string escaped = grpo::render_training_chart({}, {{"a < b & c", {"x"}, {}}});
  CHECK_THAT(escaped, Contains("a &lt; b &amp; c"));
}

TEST_CASE("atomic_write_file replaces the file whole and cleans up on failure", "[atomic]") {
  grpo_test::ScopedTempDir dir;
  const std::string path = dir.file("state.json");
  grpo::detail::atomic_write_file(path, "first");
  grpo::detail::atomic_write_file(path, std::string("second\0with a nul", 17));
  CHECK(grpo_test::read_text(path) == std::string("second\0with a nul", 17));
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) entries += !entry.is_directory();
  CHECK(entries == 1);

  CHECK_THROWS_WITH(grpo::detail::atomic_write_file(dir.file("missing/x.json"), "data"),
                    Contains("missing/x.json") && Contains("No such file or directory"));
  // Renaming onto a directory fails after the temporary file was written: it must be removed.
  std::filesystem::create_directories(dir.file("occupied"));
  std::filesystem::create_directories(dir.file("occupied/inner"));
  CHECK_THROWS_WITH(grpo::detail::atomic_write_file(dir.file("occupied"), "data"),
                    Contains("cannot rename") && Contains("occupied"));
  entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) entries += !entry.is_directory();
  CHECK(entries == 1);
}
