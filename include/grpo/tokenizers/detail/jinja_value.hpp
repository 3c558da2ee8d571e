#pragma once
// The values of grpo::ChatTemplate's Jinja engine and the Python semantics Jinja2 gives them on CPython: str(),
// repr(), truth, ==, <, len(), slicing by code point, and json.dumps() as transformers' tojson filter calls it.
// Internal; strings are UTF-8, measured and sliced in code points as Python's str is.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace grpo::detail::jinja {

/// An error while parsing or rendering a template. `line` is the template line (0 until the engine knows it);
/// `raised` marks a raise_exception() call of the template itself.
class TemplateError : public std::runtime_error {
 public:
  explicit TemplateError(const std::string& message, int line = 0, bool raised = false)
      : std::runtime_error(message), line(line), raised(raised) {}
  int line;
  bool raised;
};

// Bounds that make a runaway template (a loop doubling a string, indent(10**9), nested loops over range(100000))
// an error instead of exhausting memory or never finishing; a real chat template stays far below them.
inline constexpr std::size_t max_string_bytes = std::size_t{1} << 26;  // any string, the rendered text included
inline constexpr std::size_t max_list_items = std::size_t{1} << 17;    // a list built by '+', '*' or from a string
inline constexpr std::uint64_t max_render_steps = 100000;              // loop iterations, macro calls, items / 64
inline constexpr int max_nesting = 200;  // nested expressions and blocks in the source, lists and dicts in values

// Throws unless a list of `items` is within max_list_items.
inline void check_list_size(std::size_t items) {
  if (items > max_list_items) {
    throw TemplateError("the template built a list of more than " + std::to_string(max_list_items) +
                        " items (a runaway loop?)");
  }
}

// Throws unless a string of `bytes` is within max_string_bytes.
inline void check_string_size(std::size_t bytes) {
  if (bytes > max_string_bytes) {
    throw TemplateError("the template built a string of more than " + std::to_string(max_string_bytes >> 20) +
                        " MiB (a runaway loop?)");
  }
}

struct Value;
struct Dict;
struct Namespace;
struct Function;
struct CallArgs;
using ValueList = std::vector<Value>;

/// The Python type a value stands for.
enum class Kind : std::uint8_t { undefined, none, boolean, integer, number, string, list, tuple, dict, ns, function };

/// A Jinja value. Containers are shared and immutable once built (the sandbox transformers renders in forbids
/// mutating them); a namespace() is the one mutable object.
struct Value {
  Kind kind = Kind::undefined;
  bool b = false;
  std::int64_t i = 0;
  double f = 0.0;
  std::string s;        // string text; for undefined, the message Jinja's Undefined raises when used
  bool markup = false;  // a string marked safe (|safe, |escape): MarkupSafe's Markup, whose `+` escapes the other side
  std::shared_ptr<const ValueList> items;
  std::shared_ptr<const Dict> dict;
  std::shared_ptr<Namespace> ns;
  std::shared_ptr<const Function> fn;
  int depth = 0;  // lists and dicts nested in this value (at most max_nesting: printing and comparing recurse)

  static Value undefined(std::string message) {
    Value v;
    v.s = std::move(message);
    return v;
  }
  static Value none() {
    Value v;
    v.kind = Kind::none;
    return v;
  }
  static Value boolean(bool value) {
    Value v;
    v.kind = Kind::boolean;
    v.b = value;
    return v;
  }
  static Value integer(std::int64_t value) {
    Value v;
    v.kind = Kind::integer;
    v.i = value;
    return v;
  }
  static Value number(double value) {
    Value v;
    v.kind = Kind::number;
    v.f = value;
    return v;
  }
  static Value string(std::string value) {
    Value v;
    v.kind = Kind::string;
    v.s = std::move(value);
    return v;
  }
  static Value list(ValueList values, Kind kind = Kind::list) {
    Value v;
    v.kind = kind;
    for (const Value& item : values) v.depth = std::max(v.depth, item.depth + 1);
    check_depth(v.depth);
    v.items = std::make_shared<const ValueList>(std::move(values));
    return v;
  }
  static Value tuple(ValueList values) { return list(std::move(values), Kind::tuple); }
  static Value mapping(Dict values);
  static Value function(std::string name, std::function<Value(CallArgs&)> call);

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_string() const { return kind == Kind::string; }
  bool is_sequence() const { return kind == Kind::list || kind == Kind::tuple; }
  bool is_numeric() const { return kind == Kind::boolean || kind == Kind::integer || kind == Kind::number; }

  static void check_depth(int depth) {
    if (depth > max_nesting) {
      throw TemplateError("lists and dicts nested more than " + std::to_string(max_nesting) + " deep");
    }
  }
};

/// An insertion-ordered dict with string keys (Python dicts keep insertion order; tojson prints them so).
struct Dict {
  std::vector<std::pair<std::string, Value>> entries;

  const Value* find(const std::string& key) const {
    for (const auto& entry : entries) {
      if (entry.first == key) return &entry.second;
    }
    return nullptr;
  }
  void set(const std::string& key, Value value) {
    for (auto& entry : entries) {
      if (entry.first == key) {
        entry.second = std::move(value);
        return;
      }
    }
    entries.emplace_back(key, std::move(value));
  }
};

/// The mutable object namespace() returns.
struct Namespace {
  Dict attributes;
};

/// Positional and keyword arguments of a call.
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;

  /// The argument at `position` or named `name`, or nullptr; an argument given both ways is an error.
  const Value* get(std::size_t position, const char* name) const {
    const Value* found = position < positional.size() ? &positional[position] : nullptr;
    for (const auto& entry : keyword) {
      if (entry.first == name) {
        if (found) throw TemplateError(std::string("got multiple values for argument '") + name + "'");
        found = &entry.second;
      }
    }
    return found;
  }
};

/// A callable: a macro, a global such as namespace(), or a bound method.
struct Function {
  std::string name;
  std::function<Value(CallArgs&)> call;
};

inline Value Value::mapping(Dict values) {
  Value v;
  v.kind = Kind::dict;
  for (const auto& entry : values.entries) v.depth = std::max(v.depth, entry.second.depth + 1);
  check_depth(v.depth);
  v.dict = std::make_shared<const Dict>(std::move(values));
  return v;
}

inline Value Value::function(std::string name, std::function<Value(CallArgs&)> call) {
  Value v;
  v.kind = Kind::function;
  v.fn = std::make_shared<const Function>(Function{std::move(name), std::move(call)});
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// UTF-8. Invalid bytes decode to U+DC80..U+DCFF and encode back to the same byte (Python's surrogateescape), so
// that slicing never changes bytes it does not cut.

inline std::u32string utf8_decode(const std::string& text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t k = 0;
  while (k < n) {
    const unsigned char c = p[k];
    int length = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      length = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      length = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      length = 4;
      cp = c & 0x07;
    }
    bool valid = length > 0 && k + static_cast<std::size_t>(length) <= n;
    for (int j = 1; valid && j < length; ++j) {
      if ((p[k + j] & 0xC0) != 0x80) valid = false;
      cp = (cp << 6) | (p[k + j] & 0x3F);
    }
    if (valid && ((length == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                  (length == 4 && (cp < 0x10000 || cp > 0x10FFFF)))) {
      valid = false;
    }
    if (!valid) {
      out.push_back(static_cast<char32_t>(0xDC00 + c));
      ++k;
    } else {
      out.push_back(cp);
      k += static_cast<std::size_t>(length);
    }
  }
  return out;
}

inline void utf8_append(std::string& out, char32_t cp) {
  if (cp >= 0xDC80 && cp <= 0xDCFF) {
    out.push_back(static_cast<char>(cp - 0xDC00));
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline std::string utf8_encode(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : text) utf8_append(out, cp);
  return out;
}

/// Number of code points (Python's len(str)).
inline std::size_t utf8_length(const std::string& text) {
  std::size_t count = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

/// Python's str.isspace() for one code point.
inline bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline bool is_ascii_only(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// ---------------------------------------------------------------------------------------------------------------
// Python's str() and repr().

/// Python's repr(float): the shortest digits that read back to the same double, in fixed notation for exponents
/// -4..15 and scientific otherwise ("0.1", "1.0", "1e-05", "1.5e+16", "inf", "nan").
inline std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  char buffer[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*e", precision - 1, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  // buffer: [-]d.ddde[+-]XX
  std::string text(buffer);
  const bool negative = text[0] == '-';
  if (negative) text.erase(0, 1);
  const std::size_t e = text.find('e');
  std::string digits = text.substr(0, 1) + (e > 2 ? text.substr(2, e - 2) : std::string());
  const int exponent = std::atoi(text.c_str() + e + 1);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exponent >= -4 && exponent < 16) {
    if (exponent >= 0) {
      const std::size_t int_digits = static_cast<std::size_t>(exponent) + 1;
      if (digits.size() <= int_digits) {
        out = digits + std::string(int_digits - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, int_digits) + "." + digits.substr(int_digits);
      }
    } else {
      out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_text[16];
    std::snprintf(exp_text, sizeof(exp_text), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_text;
  }
  return negative ? "-" + out : out;
}

/// Python's name for the type of `v` (as error messages spell it).
inline const char* type_name(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
      return "Undefined";
    case Kind::none:
      return "NoneType";
    case Kind::boolean:
      return "bool";
    case Kind::integer:
      return "int";
    case Kind::number:
      return "float";
    case Kind::string:
      return v.markup ? "Markup" : "str";
    case Kind::list:
      return "list";
    case Kind::tuple:
      return "tuple";
    case Kind::dict:
      return "dict";
    case Kind::ns:
      return "Namespace";
    case Kind::function:
      return "function";
  }
  return "object";
}

/// Code points Python's str.isprintable() rejects, approximated: controls, the Latin-1 controls and no-break space,
/// soft hyphen, and the common Unicode separators and format characters.
inline bool is_python_unprintable(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) ||
         (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x2064) || c == 0x3000 || c == 0xFEFF ||
         (c >= 0xD800 && c <= 0xDFFF);
}

/// Python's repr(str).
inline std::string string_repr(const std::string& text) {
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (const char32_t c : utf8_decode(text)) {
    if (c == static_cast<char32_t>(quote) || c == U'\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\r') {
      out += "\\r";
    } else if (c == U'\t') {
      out += "\\t";
    } else if (is_python_unprintable(c)) {
      char buffer[16];
      if (c <= 0xFF) {
        std::snprintf(buffer, sizeof(buffer), "\\x%02x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(c));
      }
      out += buffer;
    } else {
      utf8_append(out, c);
    }
  }
  out += quote;
  return out;
}

inline std::string repr(const Value& v, int depth = 0);

/// Python's str(): what {{ v }} prints (an undefined value prints nothing).
inline std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
      return "";
    case Kind::string:
      return v.s;
    default:
      return repr(v);
  }
}

/// Python's repr(). `depth` counts the values around `v`: lists and dicts are bounded when built, but namespaces
/// are mutable and may hold each other (or themselves), which Python prints as {...} and this engine refuses.
inline std::string repr(const Value& v, int depth) {
  if (depth > max_nesting) {
    throw TemplateError("cannot print a value nested more than " + std::to_string(max_nesting) +
                        " deep (a namespace holding itself?)");
  }
  switch (v.kind) {
    case Kind::undefined:
      return "Undefined";
    case Kind::none:
      return "None";
    case Kind::boolean:
      return v.b ? "True" : "False";
    case Kind::integer:
      return std::to_string(v.i);
    case Kind::number:
      return float_repr(v.f);
    case Kind::string:
      return v.markup ? "Markup(" + string_repr(v.s) + ")" : string_repr(v.s);
    case Kind::list:
    case Kind::tuple: {
      const bool tuple = v.kind == Kind::tuple;
      std::string out = tuple ? "(" : "[";
      for (std::size_t k = 0; k < v.items->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.items)[k], depth + 1);
      }
      if (tuple && v.items->size() == 1) out += ",";
      return out + (tuple ? ")" : "]");
    }
    case Kind::dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& entry : v.dict->entries) {
        if (!first) out += ", ";
        first = false;
        out += string_repr(entry.first) + ": " + repr(entry.second, depth + 1);
      }
      return out + "}";
    }
    case Kind::ns: {
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& entry : v.ns->attributes.entries) {
        if (!first) out += ", ";
        first = false;
        out += string_repr(entry.first) + ": " + repr(entry.second, depth + 1);
      }
      return out + "}>";
    }
    case Kind::function:
      return "<function " + v.fn->name + ">";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------------
// Truth, equality, ordering, length.

/// Python's bool().
inline bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
    case Kind::none:
      return false;
    case Kind::boolean:
      return v.b;
    case Kind::integer:
      return v.i != 0;
    case Kind::number:
      return v.f != 0.0;
    case Kind::string:
      return !v.s.empty();
    case Kind::list:
    case Kind::tuple:
      return !v.items->empty();
    case Kind::dict:
      return !v.dict->entries.empty();
    case Kind::ns:
    case Kind::function:
      return true;
  }
  return false;
}

inline double as_double(const Value& v) {
  return v.kind == Kind::number ? v.f : static_cast<double>(v.kind == Kind::boolean ? v.b : v.i);
}

/// Python's ==, with Jinja's rule that two undefined values are equal.
inline bool equals(const Value& a, const Value& b) {
  if (a.is_numeric() && b.is_numeric()) {
    if (a.kind == Kind::number || b.kind == Kind::number) return as_double(a) == as_double(b);
    return (a.kind == Kind::boolean ? a.b : a.i) == (b.kind == Kind::boolean ? b.b : b.i);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::undefined:
    case Kind::none:
      return true;
    case Kind::string:
      return a.s == b.s;
    case Kind::list:
    case Kind::tuple: {
      if (a.items->size() != b.items->size()) return false;
      for (std::size_t k = 0; k < a.items->size(); ++k) {
        if (!equals((*a.items)[k], (*b.items)[k])) return false;
      }
      return true;
    }
    case Kind::dict: {
      if (a.dict->entries.size() != b.dict->entries.size()) return false;
      for (const auto& entry : a.dict->entries) {
        const Value* other = b.dict->find(entry.first);
        if (!other || !equals(entry.second, *other)) return false;
      }
      return true;
    }
    case Kind::ns:
      return a.ns == b.ns;
    case Kind::function:
      return a.fn == b.fn;
    default:
      return false;
  }
}

/// Python's ordering (<0, 0, >0) for numbers, strings and sequences; other pairs raise TypeError's message.
inline int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_numeric() && b.is_numeric()) {
    const double x = as_double(a), y = as_double(b);
    if (a.kind != Kind::number && b.kind != Kind::number) {
      const std::int64_t p = a.kind == Kind::boolean ? a.b : a.i, q = b.kind == Kind::boolean ? b.b : b.i;
      return p < q ? -1 : (p > q ? 1 : 0);
    }
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.kind == Kind::string && b.kind == Kind::string) return a.s < b.s ? -1 : (a.s > b.s ? 1 : 0);
  if (a.is_sequence() && a.kind == b.kind) {
    const auto& x = *a.items;
    const auto& y = *b.items;
    for (std::size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!equals(x[k], y[k])) return compare(x[k], y[k], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined() || b.is_undefined()) throw TemplateError((a.is_undefined() ? a : b).s);
  throw TemplateError(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
                      type_name(b) + "'");
}

/// Python's len(); Jinja's Undefined has length 0.
inline std::int64_t length(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
      return 0;
    case Kind::string:
      return static_cast<std::int64_t>(utf8_length(v.s));
    case Kind::list:
    case Kind::tuple:
      return static_cast<std::int64_t>(v.items->size());
    case Kind::dict:
      return static_cast<std::int64_t>(v.dict->entries.size());
    default:
      throw TemplateError(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

/// The items a for loop visits: a sequence's elements, a dict's keys, a string's characters; nothing for undefined.
inline ValueList iterate(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
      return {};
    case Kind::list:
    case Kind::tuple:
      return *v.items;
    case Kind::dict: {
      ValueList keys;
      keys.reserve(v.dict->entries.size());
      for (const auto& entry : v.dict->entries) keys.push_back(Value::string(entry.first));
      return keys;
    }
    case Kind::string: {
      // One value per character: a long string (a {% filter %} body, a repetition) would take gigabytes.
      check_list_size(v.s.size() / 4);  // UTF-8 takes at most 4 bytes a character
      const auto code_points = utf8_decode(v.s);
      check_list_size(code_points.size());
      ValueList chars;
      chars.reserve(code_points.size());
      for (const char32_t c : code_points) {
        std::string one;
        utf8_append(one, c);
        chars.push_back(Value::string(std::move(one)));
      }
      return chars;
    }
    default:
      throw TemplateError(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

/// Python's `needle in container`.
inline bool contains(const Value& container, const Value& needle) {
  switch (container.kind) {
    case Kind::undefined:
      return false;
    case Kind::string:
      if (!needle.is_string()) {
        throw TemplateError(std::string("'in <string>' requires string as left operand, not ") + type_name(needle));
      }
      return container.s.find(needle.s) != std::string::npos;
    case Kind::list:
    case Kind::tuple:
      return std::any_of(container.items->begin(), container.items->end(),
                         [&](const Value& item) { return equals(item, needle); });
    case Kind::dict:
      return needle.is_string() && container.dict->find(needle.s) != nullptr;
    case Kind::ns:
      return needle.is_string() && container.ns->attributes.find(needle.s) != nullptr;
    default:
      throw TemplateError(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Python slices and indices.

/// Python's slice.indices(): clamps start/stop for a sequence of `size` items with step `step` (not 0).
inline void slice_indices(std::int64_t size, std::optional<std::int64_t> start, std::optional<std::int64_t> stop,
                          std::int64_t step, std::int64_t& first, std::int64_t& last) {
  const std::int64_t lower = step < 0 ? -1 : 0;
  const std::int64_t upper = step < 0 ? size - 1 : size;
  auto clamp = [&](std::optional<std::int64_t> index, std::int64_t fallback) {
    if (!index) return fallback;
    std::int64_t k = *index;
    if (k < 0) {
      k += size;
      if (k < lower) k = lower;
    } else if (k > upper) {
      k = upper;
    }
    return k;
  };
  first = clamp(start, step < 0 ? upper : lower);
  last = clamp(stop, step < 0 ? lower : upper);
}

/// The positions a slice visits, in order.
inline std::vector<std::int64_t> slice_positions(std::int64_t size, std::optional<std::int64_t> start,
                                                 std::optional<std::int64_t> stop, std::int64_t step) {
  if (step == 0) throw TemplateError("slice step cannot be zero");
  std::int64_t first = 0, last = 0;
  slice_indices(size, start, stop, step, first, last);
  std::vector<std::int64_t> positions;
  if (step > 0) {
    for (std::int64_t k = first; k < last; k += step) positions.push_back(k);
  } else {
    for (std::int64_t k = first; k > last; k += step) positions.push_back(k);
  }
  return positions;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON in and out.

/// A JSON document as a template value (objects keep their key order).
inline Value from_json(const nlohmann::ordered_json& j, int depth = 0) {
  Value::check_depth(depth);  // before recursing into a deeper JSON value
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<std::int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict dict;
      dict.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        dict.entries.emplace_back(it.key(), from_json(it.value(), depth + 1));
      }
      return Value::mapping(std::move(dict));
    }
    default:
      throw TemplateError("binary JSON values are not supported");
  }
}

/// Options of Python's json.dumps as transformers' tojson filter passes them.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // unset: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};

/// Appends one byte of a JSON string as json.dumps writes it (quotes, backslashes and controls escaped).
inline void json_escape_byte(std::string& out, char ch) {
  const auto c = static_cast<unsigned char>(ch);
  switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    default:
      if (c < 0x20) {
        char buffer[16];
        std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(c));
        out += buffer;
      } else {
        out += ch;
      }
  }
}

/// Appends `text` as a JSON string; with ensure_ascii, code points above 0x7F become \uXXXX (surrogate pairs above
/// 0xFFFF).
inline void json_escape(std::string& out, const std::string& text, bool ensure_ascii) {
  out += '"';
  if (!ensure_ascii || is_ascii_only(text)) {
    for (const char ch : text) json_escape_byte(out, ch);
  } else {
    auto hex4 = [&](unsigned code) {
      char buffer[16];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", code);
      out += buffer;
    };
    for (const char32_t c : utf8_decode(text)) {
      if (c < 0x80) {
        json_escape_byte(out, static_cast<char>(c));
      } else if (c < 0x10000) {
        hex4(static_cast<unsigned>(c));
      } else {
        const char32_t v = c - 0x10000;
        hex4(static_cast<unsigned>(0xD800 + (v >> 10)));
        hex4(static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      }
    }
  }
  out += '"';
}

inline void json_dump(std::string& out, const Value& v, const JsonDumpOptions& options, int depth) {
  auto newline = [&](int level) {
    if (!options.indent) return;
    check_string_size(out.size() + 1 + static_cast<std::size_t>(level) * options.indent->size());
    out += '\n';
    for (int k = 0; k < level; ++k) out += *options.indent;
  };
  switch (v.kind) {
    case Kind::none:
      out += "null";
      return;
    case Kind::boolean:
      out += v.b ? "true" : "false";
      return;
    case Kind::integer:
      out += std::to_string(v.i);
      return;
    case Kind::number:
      if (std::isnan(v.f)) {
        out += "NaN";
      } else if (std::isinf(v.f)) {
        out += v.f < 0 ? "-Infinity" : "Infinity";
      } else {
        out += float_repr(v.f);
      }
      return;
    case Kind::string:
      json_escape(out, v.s, options.ensure_ascii);
      return;
    case Kind::list:
    case Kind::tuple: {
      if (v.items->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (std::size_t k = 0; k < v.items->size(); ++k) {
        if (k) out += options.item_separator;
        newline(depth + 1);
        json_dump(out, (*v.items)[k], options, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Kind::dict: {
      if (v.dict->entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& entry : v.dict->entries) entries.push_back(&entry);
      if (options.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* x, auto* y) { return x->first < y->first; });
      }
      out += '{';
      for (std::size_t k = 0; k < entries.size(); ++k) {
        if (k) out += options.item_separator;
        newline(depth + 1);
        json_escape(out, entries[k]->first, options.ensure_ascii);
        out += options.key_separator;
        json_dump(out, entries[k]->second, options, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
    default:
      throw TemplateError(std::string("Object of type ") + type_name(v) + " is not JSON serializable");
  }
}

/// Python's json.dumps(v, ...).
inline std::string to_json(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  json_dump(out, v, options, 0);
  return out;
}

}  // namespace grpo::detail::jinja
