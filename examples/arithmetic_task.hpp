#pragma once
// The demo's arithmetic task: prompts "a+b=" with the answer in a ground-truth column. Example code (the
// tests and benchmarks reuse it), not part of the library.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <grpo/data/dataset.hpp>

namespace grpo_examples {

using grpo::Dataset;

/// Which problems the arithmetic task contains.
struct ArithmeticTask {
  /// Smallest operand.
  int64_t min_operand = 0;
  /// Largest operand.
  int64_t max_operand = 19;
  /// Operators among '+', '-', '*'.
  std::string operators = "+";
};

/// Every problem "a<op>b=" of the task, one row each: {"prompt": "12+7=", "answer": "19", "a": 12, "b": 7,
/// "op": "+"}. The accuracy reward reads the "answer" column.
inline Dataset arithmetic_dataset(const ArithmeticTask& task = {}) {
  if (task.max_operand < task.min_operand) throw std::invalid_argument("arithmetic_dataset: max_operand < min_operand");
  std::vector<nlohmann::json> rows;
  for (const char op : task.operators) {
    if (op != '+' && op != '-' && op != '*') {
      throw std::invalid_argument(std::string("arithmetic_dataset: unsupported operator '") + op + "'");
    }
    for (int64_t a = task.min_operand; a <= task.max_operand; ++a) {
      for (int64_t b = task.min_operand; b <= task.max_operand; ++b) {
        const int64_t value = op == '+' ? a + b : op == '-' ? a - b : a * b;
        rows.push_back({{"prompt", std::to_string(a) + op + std::to_string(b) + "="},
                        {"answer", std::to_string(value)},
                        {"a", a},
                        {"b", b},
                        {"op", std::string(1, op)}});
      }
    }
  }
  return Dataset::from_rows(std::move(rows));
}

}  // namespace grpo_examples
