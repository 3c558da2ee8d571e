#pragma once
// The dataset columns a reward function sees: TRL's `**kwargs`, one value per completion, already repeated
// num_generations times and aligned with the completions.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"

namespace grpo {

/// Thrown when a reward function asks for a column the dataset does not have. A grpo::OutOfRange, so also a
/// std::out_of_range.
class MissingColumn : public OutOfRange {
 public:
  MissingColumn(const std::string& column, const std::vector<std::string>& available)
      : OutOfRange(message(column, available)), column_(column) {}
  /// The column that was asked for.
  const std::string& column() const { return column_; }

 private:
  static std::string message(const std::string& column, const std::vector<std::string>& available) {
    std::string text = "grpo::Columns: column \"" + column + "\" is not in the dataset; available columns: ";
    if (available.empty()) text += "(none besides prompt)";
    for (std::size_t i = 0; i < available.size(); ++i) text += (i ? ", " : "") + available[i];
    return text;
  }
  std::string column_;
};

/// Column name -> one JSON value per completion (every dataset column except `prompt`).
class Columns {
 public:
  Columns() = default;

  /// Builds the columns of `rows` (JSON objects); `prompt` is left out; a row lacking a column gets null there.
  static Columns from_rows(const std::vector<nlohmann::json>& rows) {
    Columns columns;
    columns.size_ = rows.size();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (!rows[i].is_object()) {
        throw InvalidArgument("grpo::Columns::from_rows: row " + std::to_string(i) + " is not a JSON object");
      }
      for (const auto& item : rows[i].items()) {
        if (item.key() == "prompt") continue;
        auto& values = columns.values_[item.key()];
        values.resize(rows.size());  // earlier rows without this column stay null
        values[i] = item.value();
      }
    }
    return columns;
  }

  /// Adds or replaces a column; it must have one value per completion (or be the first column).
  void set(const std::string& name, std::vector<nlohmann::json> values) {
    if (!values_.empty() && values.size() != size_) {
      throw InvalidArgument("grpo::Columns::set: column \"" + name + "\" has " + std::to_string(values.size()) +
                            " values but the other columns have " + std::to_string(size_));
    }
    size_ = values.size();
    values_[name] = std::move(values);
  }

  /// Number of completions (values per column).
  std::size_t size() const { return size_; }
  /// Whether the dataset has this column.
  bool contains(std::string_view name) const { return values_.find(std::string(name)) != values_.end(); }
  /// Column names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : values_) out.push_back(entry.first);
    return out;
  }
  /// All values of one column; throws MissingColumn naming the available ones.
  const std::vector<nlohmann::json>& at(std::string_view name) const {
    const auto it = values_.find(std::string(name));
    if (it == values_.end()) throw MissingColumn(std::string(name), names());
    return it->second;
  }
  /// The value of column `name` for completion `index`.
  const nlohmann::json& value(std::string_view name, std::size_t index) const {
    const auto& values = at(name);
    if (index >= values.size()) {
      throw OutOfRange("grpo::Columns: column \"" + std::string(name) + "\": index " + std::to_string(index) +
                       " out of range for " + std::to_string(values.size()) + " completions");
    }
    return values[index];
  }
  /// The value converted to T (std::string, double, int, bool, ...); a value of another type is an error naming
  /// the column, the index and the value.
  template <class T>
  T get(std::string_view name, std::size_t index) const {
    const auto& v = value(name, index);
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      throw InvalidArgument("grpo::Columns: column \"" + std::string(name) + "\" at index " + std::to_string(index) +
                            " holds " + v.dump() + " (" + v.type_name() + "), which is not the requested type");
    }
  }

 private:
  std::map<std::string, std::vector<nlohmann::json>> values_;
  std::size_t size_ = 0;
};

}  // namespace grpo
