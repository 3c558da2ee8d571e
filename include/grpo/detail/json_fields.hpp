#pragma once
// Strict JSON <-> option-struct helpers: unknown keys and wrong types are errors that name the key.
//
// An options struct lists its fields once, in a static member template
//   template <class Self, class Visit> static void visit_fields(Self& self, Visit&& visit)
// that calls visit("json_key", self.member) for every field (Self is the struct, const or not). write_fields and
// read_fields turn that list into to_json and from_json, so a field cannot be written but not read, or the
// reverse.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"

namespace grpo::detail {

template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};

// Reads the fields of one JSON object into a struct; `finish()` rejects keys nobody read. `what` is the struct's
// qualified name ("grpo::GRPOConfig"), which starts every message.
// Types are strict: an integer field takes only integers (an exactly integral number such as 10.0 or 1e3 is
// accepted, since JSON writers emit computed integral floats that way; 0.1 or true is an error), a bool field
// only true / false, a floating field any number (not a bool), a string or enum field only a string, an unsigned
// field no negative value, and every integer must fit its field's type.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string what) : object_(object), what_(std::move(what)) {
    if (!object_.is_object()) {
      throw InvalidArgument(what_ + ": expected a JSON object, got " + std::string(object_.type_name()));
    }
  }

  // Reads `key` into `out` when present; a value of the wrong type is an error naming the key and the value.
  // An optional field reads JSON null as unset.
  template <class T>
  void read(const char* key, T& out) {
    const auto it = object_.find(key);
    if (it == object_.end()) return;
    known_.insert(key);
    read_value(*it, out, key);
  }

  // Throws if the object holds a key that no `read` call named (catches misspelled options).
  void finish() const {
    for (const auto& item : object_.items()) {
      if (known_.count(item.key()) == 0) {
        throw InvalidArgument(what_ + ": unknown field \"" + item.key() + "\"");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& name, const std::string& requirement, const nlohmann::json& value) const {
    throw InvalidArgument(what_ + ": field \"" + name + "\" " + requirement + ", got " + value.dump());
  }

  template <class T>
  void read_value(const nlohmann::json& value, T& out, const std::string& name) const {
    if constexpr (std::is_same_v<T, bool>) {
      if (!value.is_boolean()) fail(name, "must be true or false", value);
      out = value.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      out = read_integer<T>(value, name);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!value.is_number()) fail(name, "must be a number", value);
      out = value.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!value.is_string()) fail(name, "must be a string", value);
      out = value.get<std::string>();
    } else if constexpr (is_std_optional<T>::value) {
      if (value.is_null()) {
        out.reset();
        return;
      }
      typename T::value_type inner{};
      read_value(value, inner, name);
      out = std::move(inner);
    } else if constexpr (is_std_vector<T>::value) {
      if (!value.is_array()) fail(name, "must be an array", value);
      T elements;
      elements.reserve(value.size());
      for (std::size_t i = 0; i < value.size(); ++i) {
        typename T::value_type element{};
        read_value(value[i], element, name + "[" + std::to_string(i) + "]");
        elements.push_back(std::move(element));
      }
      out = std::move(elements);
    } else {
      // Enums (their from_json takes the TRL name) and any other type with an ADL from_json.
      if constexpr (std::is_enum_v<T>) {
        if (!value.is_string()) fail(name, "must be a string", value);
      }
      try {
        out = value.template get<T>();
      } catch (const nlohmann::json::exception& e) {
        throw InvalidArgument(what_ + ": field \"" + name + "\" has a bad value " + value.dump() + " (" + e.what() +
                              ")");
      } catch (const std::invalid_argument& e) {
        throw InvalidArgument(what_ + ": field \"" + name + "\": " + e.what());
      }
    }
  }

  template <class T>
  T read_integer(const nlohmann::json& value, const std::string& name) const {
    using limits = std::numeric_limits<T>;
    const auto out_of_range = [&] {
      fail(name,
           "must be an integer in [" + std::to_string(+limits::min()) + ", " + std::to_string(+limits::max()) + "]",
           value);
    };
    if (value.is_number_unsigned()) {
      const auto v = value.get<uint64_t>();
      if (v > static_cast<uint64_t>(limits::max())) out_of_range();
      return static_cast<T>(v);
    }
    if (value.is_number_integer()) {
      const auto v = value.get<int64_t>();
      if constexpr (std::is_signed_v<T>) {
        if (v < static_cast<int64_t>(limits::min()) || v > static_cast<int64_t>(limits::max())) out_of_range();
      } else {
        if (v < 0) fail(name, "must be a non-negative integer", value);
        if (static_cast<uint64_t>(v) > static_cast<uint64_t>(limits::max())) out_of_range();
      }
      return static_cast<T>(v);
    }
    if (value.is_number_float()) {
      const double v = value.get<double>();
      if (!std::isfinite(v) || std::trunc(v) != v) fail(name, "must be an integer", value);
      if (!std::is_signed_v<T> && v < 0) fail(name, "must be a non-negative integer", value);
      // [lo, hi) with hi = 2^digits: both bounds are exact doubles, so the cast below is defined.
      const double hi = std::ldexp(1.0, limits::digits);
      const double lo = std::is_signed_v<T> ? -hi : 0.0;
      if (!(v >= lo && v < hi)) out_of_range();
      return static_cast<T>(v);
    }
    fail(name, "must be an integer", value);
  }

  const nlohmann::json& object_;
  std::string what_;
  std::set<std::string> known_;
};

// Writes an optional as its value or null.
template <class T>
nlohmann::json optional_to_json(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

template <class T>
nlohmann::json field_to_json(const T& value) {
  return nlohmann::json(value);
}
template <class T>
nlohmann::json field_to_json(const std::optional<T>& value) {
  return optional_to_json(value);
}

// to_json of a struct with visit_fields: every field is written, null for unset optionals, enums as their names.
// `what` is the struct's qualified name ("grpo::GRPOConfig"), for the error on a key listed twice (a bug).
template <class T>
void write_fields(nlohmann::json& j, const T& value, const std::string& what) {
  nlohmann::json object = nlohmann::json::object();
  T::visit_fields(value, [&object, &what](const char* key, const auto& field) {
    if (object.contains(key)) throw LogicError(what + ": visit_fields names \"" + key + "\" twice");
    object[key] = field_to_json(field);
  });
  j = std::move(object);
}

// from_json of a struct with visit_fields: missing keys keep their values; unknown keys and wrong types are errors
// that start with `what` (the struct's qualified name, "grpo::GRPOConfig") and name the key.
template <class T>
void read_fields(const nlohmann::json& j, T& value, std::string what) {
  JsonFields fields(j, std::move(what));
  T::visit_fields(value, [&fields](const char* key, auto& field) { fields.read(key, field); });
  fields.finish();
}

// Enum <-> string through a table of {value, name}; an unknown name lists the accepted ones. `type` is the enum's
// qualified name ("grpo::LossType"), which starts every message; `option` is the option it sets ("loss_type").
template <class E, std::size_t N>
const char* enum_to_string(const std::array<std::pair<E, const char*>, N>& names, E value, std::string_view type) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  throw InvalidArgument(std::string(type) + ": value " + std::to_string(static_cast<int>(value)) + " has no name");
}

template <class E, std::size_t N>
E enum_from_string(const std::array<std::pair<E, const char*>, N>& names, std::string_view text, std::string_view type,
                   std::string_view option) {
  for (const auto& [v, name] : names) {
    if (text == name) return v;
  }
  std::string accepted;
  for (const auto& entry : names) accepted += std::string(accepted.empty() ? "" : ", ") + "\"" + entry.second + "\"";
  throw InvalidArgument(std::string(type) + ": unknown " + std::string(option) + " \"" + std::string(text) +
                        "\"; expected one of " + accepted);
}

}  // namespace grpo::detail
