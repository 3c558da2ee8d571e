#pragma once
// Code-execution reward: runs the program a completion wrote against the tests of its dataset row, each test in a
// fresh sandbox (rewards/sandbox.hpp), and rewards the fraction of tests passed. Linux only; torch-free.
//
// The tests column holds a JSON array (or a JSON string holding one) of
//   - assertion snippets: "assert add(1, 2) == 3", run as program + "\n" + snippet, passed when the exit status is 0;
//   - input/output pairs: {"input": "1 2\n", "output": "3"}, the input fed to stdin, passed when the exit status is 0
//     and stdout equals the output once trailing whitespace is removed from each line and from the end.
// The two kinds may be mixed. Safe to call concurrently (ScoringOptions::parallel): every test has its own sandbox.

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"
#include "grpo/rewards/sandbox.hpp"

namespace grpo {

/// One test of a coding task.
struct CodeTest {
  /// Assertion snippet appended to the program; empty for an input/output test.
  std::string assertion;
  /// Standard input of an input/output test.
  std::string input;
  /// Expected standard output of an input/output test.
  std::string output;
  /// Whether this is an input/output test.
  bool is_io = false;
};

namespace detail {

inline std::string_view trim_left(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  return s;
}

inline std::string_view trim_right(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The text of a JSON value for an error message, cut to about 80 characters.
inline std::string json_excerpt(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

}  // namespace detail

/// The program in a completion: the content of the last fenced code block whose language is one of `languages` or
/// unlabeled (a block left open runs to the end), else the whole completion.
inline std::string extract_program(std::string_view completion,
                                   const std::vector<std::string>& languages = {"python", "py", "python3"}) {
  std::optional<std::string_view> program;
  std::size_t pos = 0;
  const auto line_end = [&](std::size_t from) {
    const auto end = completion.find('\n', from);
    return end == std::string_view::npos ? completion.size() : end;
  };
  while (pos < completion.size()) {
    const std::size_t end = line_end(pos);
    const std::string_view line = detail::trim_left(completion.substr(pos, end - pos));
    if (line.substr(0, 3) != "```") {
      pos = end + 1;
      continue;
    }
    std::size_t ticks = line.find_first_not_of('`');
    if (ticks == std::string_view::npos) ticks = line.size();
    std::string_view info = detail::trim_right(detail::trim_left(line.substr(ticks)));
    info = info.substr(0, std::min(info.size(), info.find_first_of(" \t{")));
    std::string language(info);
    for (auto& ch : language) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const std::size_t body = std::min(end + 1, completion.size());
    // The closing fence: a line of at least as many backticks and nothing else.
    std::size_t close = body, body_end = completion.size(), next = completion.size();
    while (close < completion.size()) {
      const std::size_t close_end = line_end(close);
      const std::string_view candidate =
          detail::trim_right(detail::trim_left(completion.substr(close, close_end - close)));
      if (candidate.size() >= ticks && candidate.find_first_not_of('`') == std::string_view::npos) {
        body_end = close;
        next = close_end + 1;
        break;
      }
      close = close_end + 1;
    }
    const bool accepted =
        language.empty() || std::find(languages.begin(), languages.end(), language) != languages.end();
    if (accepted) program = completion.substr(body, body_end - body);
    pos = next;
  }
  return std::string(program ? *program : completion);
}

/// Output normalised for comparison: trailing whitespace removed from every line and trailing empty lines dropped.
inline std::string normalize_program_output(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto end = std::min(text.find('\n', pos), text.size());
    out += detail::trim_right(text.substr(pos, end - pos));
    out += '\n';
    pos = end + 1;
  }
  return std::string(detail::trim_right(out));
}

/// Code-execution reward: the fraction of the row's tests that the completion's program passes; 0 when the
/// completion holds no code, none when the tests column is null or an empty array.
struct CodeExecutionReward {
  /// Dataset column holding the tests.
  std::string column = "tests";
  /// Name of the reward function (metrics, errors).
  std::string name = "code_execution";
  /// The interpreter; the program file's name is appended to it.
  std::vector<std::string> interpreter = {"python3"};
  /// Name of the program file in the working directory.
  std::string program_file = "program.py";
  /// Languages of the fenced blocks taken as the program (an unlabeled block always is).
  std::vector<std::string> languages = {"python", "py", "python3"};
  /// Limits and isolation of each test's run; timeout_seconds is per test.
  SandboxOptions sandbox = default_sandbox();

  /// The sandbox options used by default: 5 s and 512 MiB per test.
  static SandboxOptions default_sandbox() {
    SandboxOptions options;
    options.timeout_seconds = 5.0;
    options.memory_mb = 512;
    return options;
  }

  /// The tests of `row` (see the top of this file); a missing or malformed column is an error naming the column,
  /// this reward and the row.
  std::vector<CodeTest> tests(const Row& row) const {
    const auto fail = [&](const std::string& problem) {
      return InvalidArgument(where(row) + ": column \"" + column + "\" " + problem);
    };
    if (!row.contains(column)) {
      std::string available;
      for (const auto& c : row.inputs().columns.names()) available += (available.empty() ? "" : ", ") + c;
      throw fail("is not in the dataset (available columns: " + (available.empty() ? "none" : available) + ")");
    }
    nlohmann::json value = row[column];
    if (value.is_string()) {
      try {
        value = nlohmann::json::parse(value.get<std::string>());
      } catch (const nlohmann::json::exception& e) {
        throw fail("holds a string that is not JSON (" + std::string(e.what()) +
                   "): " + detail::json_excerpt(row[column]));
      }
    }
    std::vector<CodeTest> out;
    if (value.is_null()) return out;
    if (!value.is_array()) {
      throw fail("must be a JSON array of assertion strings or {\"input\", \"output\"} objects, got " +
                 std::string(value.type_name()) + ": " + detail::json_excerpt(value));
    }
    for (std::size_t i = 0; i < value.size(); ++i) {
      const auto& test = value[i];
      CodeTest parsed;
      if (test.is_string()) {
        parsed.assertion = test.get<std::string>();
      } else if (test.is_object() && test.contains("output") && test["output"].is_string() &&
                 (!test.contains("input") || test["input"].is_string())) {
        parsed.is_io = true;
        parsed.input = test.value("input", "");
        parsed.output = test["output"].get<std::string>();
      } else {
        throw fail("test " + std::to_string(i) +
                   " must be an assertion string or an object with string \"output\" (and \"input\"), got " +
                   detail::json_excerpt(test));
      }
      out.push_back(std::move(parsed));
    }
    return out;
  }

  /// Whether `program` passes `test`.
  bool passes(const std::string& program, const CodeTest& test) const {
    SandboxCommand command;
    command.argv = interpreter;
    command.argv.push_back(program_file);
    command.files.push_back({program_file, test.is_io ? program : program + "\n" + test.assertion, false});
    command.stdin_data = test.input;
    const SandboxResult result = run_sandboxed(command, sandbox);
    if (!result.succeeded()) return false;
    return !test.is_io || normalize_program_output(result.stdout_text) == normalize_program_output(test.output);
  }

  std::optional<double> operator()(std::string_view completion, const Row& row) const {
    const auto all = tests(row);
    if (all.empty()) return std::nullopt;
    const std::string program = extract_program(completion, languages);
    if (detail::trim_right(detail::trim_left(program)).empty()) return 0.0;
    std::size_t passed = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const auto context = [&] { return where(row) + ", column \"" + column + "\", test " + std::to_string(i) + ": "; };
      try {
        passed += passes(program, all[i]) ? 1 : 0;
      } catch (const InvalidArgument& e) {
        throw InvalidArgument(context() + e.what());
      } catch (const RuntimeError& e) {
        throw RuntimeError(context() + e.what());
      }
    }
    return static_cast<double>(passed) / static_cast<double>(all.size());
  }

 private:
  std::string where(const Row& row) const {
    return "grpo::code_execution_reward: reward \"" + name + "\", row " + std::to_string(row.index());
  }
};

/// The code-execution reward as a RewardFunction named options.name that requires its tests column.
inline RewardFunction code_execution_reward(CodeExecutionReward options = {}) {
  options.sandbox.validate();
  if (options.interpreter.empty() || options.interpreter[0].empty()) {
    throw InvalidArgument("grpo::code_execution_reward: the interpreter command is empty");
  }
  if (options.program_file.empty() || options.program_file == "." || options.program_file == ".." ||
      options.program_file.find('/') != std::string::npos) {
    throw InvalidArgument("grpo::code_execution_reward: program_file must be a plain file name, got \"" +
                          options.program_file + "\"");
  }
  try {
    detail::sandbox_resolve(options.interpreter[0], options.sandbox.environment);  // a missing interpreter fails now
  } catch (const InvalidArgument& e) {
    throw InvalidArgument("grpo::code_execution_reward: reward \"" + options.name + "\": the interpreter " +
                          std::string(e.what()).substr(std::string("grpo::run_sandboxed: ").size()));
  }
  std::string name = options.name;
  const std::string column = options.column;
  return RewardFunction(std::move(name), std::move(options), {column});
}

}  // namespace grpo
