#pragma once
// Strict JSON <-> option-struct helpers: unknown keys and wrong types are errors that name the key.

#include <algorithm>
#include <array>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace grpo::detail {

// Reads the fields of one JSON object into a struct; `finish()` rejects keys nobody read.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string what) : object_(object), what_(std::move(what)) {
    if (!object_.is_object()) {
      throw std::invalid_argument(what_ + ": expected a JSON object, got " + std::string(object_.type_name()));
    }
  }

  // Reads `key` into `out` when present; a value of the wrong type is an error naming the key.
  template <class T>
  void read(const char* key, T& out) {
    const auto it = object_.find(key);
    if (it == object_.end()) return;
    known_.insert(key);
    try {
      out = it->template get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(what_ + ": field \"" + key + "\" has a bad value " + it->dump() + " (" +
                                  e.what() + ")");
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(what_ + ": field \"" + key + "\": " + e.what());
    }
  }

  // Optional fields: JSON null or absence leaves the value unset.
  template <class T>
  void read(const char* key, std::optional<T>& out) {
    const auto it = object_.find(key);
    if (it == object_.end()) return;
    if (it->is_null()) {
      known_.insert(key);
      out.reset();
      return;
    }
    T value{};
    read(key, value);
    out = value;
  }

  // Throws if the object holds a key that no `read` call named (catches misspelled options).
  void finish() const {
    for (const auto& item : object_.items()) {
      if (known_.count(item.key()) == 0) {
        throw std::invalid_argument(what_ + ": unknown field \"" + item.key() + "\"");
      }
    }
  }

 private:
  const nlohmann::json& object_;
  std::string what_;
  std::set<std::string> known_;
};

// Writes an optional as its value or null.
template <class T>
nlohmann::json optional_to_json(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

// Enum <-> string through a table of {value, name}; an unknown name lists the accepted ones.
template <class E, std::size_t N>
const char* enum_to_string(const std::array<std::pair<E, const char*>, N>& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  throw std::invalid_argument("enum value " + std::to_string(static_cast<int>(value)) + " has no name");
}

template <class E, std::size_t N>
E enum_from_string(const std::array<std::pair<E, const char*>, N>& names, std::string_view text,
                   std::string_view what) {
  for (const auto& [v, name] : names) {
    if (text == name) return v;
  }
  std::string accepted;
  for (const auto& entry : names) accepted += std::string(accepted.empty() ? "" : ", ") + "\"" + entry.second + "\"";
  throw std::invalid_argument("unknown " + std::string(what) + " \"" + std::string(text) + "\"; expected one of " +
                              accepted);
}

}  // namespace grpo::detail
