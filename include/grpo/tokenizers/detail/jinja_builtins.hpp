#pragma once
// What grpo::ChatTemplate's Jinja engine can call: Jinja2's filters and tests, the Python str/dict/list methods chat
// templates use, and attribute and item access with Jinja2's fallbacks (obj.x tries the attribute, then the item;
// obj["x"] the item, then the attribute; a miss is undefined). Internal.

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/jinja_value.hpp"

namespace grpo::detail::jinja {

/// A filter: `subject | name(args)`.
using FilterFn = Value (*)(const Value& subject, CallArgs& args);
/// A test: `subject is name(args)`.
using TestFn = bool (*)(const Value& subject, CallArgs& args);

inline FilterFn find_filter(const std::string& name);
inline TestFn find_test(const std::string& name);
inline Value get_item(const Value& object, const Value& key);

namespace builtins_detail {

[[noreturn]] inline void fail(const std::string& message) { throw TemplateError(message); }

inline const Value& require(const CallArgs& args, std::size_t position, const char* name, const char* function) {
  const Value* v = args.get(position, name);
  if (!v) fail(std::string(function) + "() missing required argument '" + name + "'");
  return *v;
}

inline const std::string& require_string(const Value& v, const char* what) {
  if (v.is_undefined()) fail(v.s);
  if (!v.is_string()) fail(std::string(what) + " must be a string, not " + type_name(v));
  return v.s;
}

inline std::int64_t require_int(const Value& v, const char* what) {
  if (v.kind == Kind::integer) return v.i;
  if (v.kind == Kind::boolean) return v.b;
  if (v.is_undefined()) fail(v.s);
  fail(std::string(what) + " must be an integer, not " + type_name(v));
}

inline bool optional_bool(const CallArgs& args, std::size_t position, const char* name, bool fallback) {
  const Value* v = args.get(position, name);
  return v ? truthy(*v) : fallback;
}

/// Rejects arguments beyond `count` positional ones and the named ones listed.
inline void check_arity(const CallArgs& args, std::size_t count, std::initializer_list<const char*> names,
                        const char* function) {
  if (args.positional.size() > count) {
    fail(std::string(function) + "() takes at most " + std::to_string(count) + " argument(s), got " +
         std::to_string(args.positional.size()));
  }
  for (const auto& entry : args.keyword) {
    if (std::none_of(names.begin(), names.end(), [&](const char* n) { return entry.first == n; })) {
      fail(std::string(function) + "() got an unexpected keyword argument '" + entry.first + "'");
    }
  }
}

inline std::string ascii_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

inline std::string ascii_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

inline bool is_alpha(char32_t c) { return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z'); }
inline bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }

// Python's str.strip(chars) family: which = 1 left, 2 right, 3 both.
inline std::string strip(const std::string& s, const Value* chars, int which) {
  const std::u32string text = utf8_decode(s);
  std::u32string set;
  const bool whitespace = !chars || chars->kind == Kind::none;
  if (!whitespace) set = utf8_decode(require_string(*chars, "strip() argument"));
  auto strip_it = [&](char32_t c) { return whitespace ? is_python_space(c) : set.find(c) != std::u32string::npos; };
  std::size_t begin = 0, end = text.size();
  if (which & 1) {
    while (begin < end && strip_it(text[begin])) ++begin;
  }
  if (which & 2) {
    while (end > begin && strip_it(text[end - 1])) --end;
  }
  return utf8_encode(text.substr(begin, end - begin));
}

// Python's str.split(sep, maxsplit) and str.rsplit.
inline ValueList split(const std::string& s, const Value* sep_value, std::int64_t maxsplit, bool from_right) {
  ValueList parts;
  if (!sep_value || sep_value->kind == Kind::none) {
    std::u32string text = utf8_decode(s);
    if (from_right) std::reverse(text.begin(), text.end());
    std::vector<std::u32string> pieces;
    std::size_t k = 0;
    const std::size_t n = text.size();
    while (true) {
      while (k < n && is_python_space(text[k])) ++k;
      if (k >= n) break;
      if (maxsplit >= 0 && static_cast<std::int64_t>(pieces.size()) == maxsplit) {
        pieces.push_back(text.substr(k));  // the rest keeps its trailing whitespace, as in Python
        break;
      }
      std::size_t j = k;
      while (j < n && !is_python_space(text[j])) ++j;
      check_list_size(pieces.size() + 1);
      pieces.push_back(text.substr(k, j - k));
      k = j;
    }
    if (from_right) {
      std::reverse(pieces.begin(), pieces.end());
      for (auto& piece : pieces) std::reverse(piece.begin(), piece.end());
    }
    for (const auto& piece : pieces) parts.push_back(Value::string(utf8_encode(piece)));
    return parts;
  }
  const std::string& sep = require_string(*sep_value, "split() separator");
  if (sep.empty()) fail("empty separator");
  std::vector<std::string> pieces;
  if (!from_right) {
    std::size_t start = 0;
    while (true) {
      const std::size_t found = s.find(sep, start);
      if (found == std::string::npos || (maxsplit >= 0 && static_cast<std::int64_t>(pieces.size()) == maxsplit)) {
        pieces.push_back(s.substr(start));
        break;
      }
      check_list_size(pieces.size() + 1);
      pieces.push_back(s.substr(start, found - start));
      start = found + sep.size();
    }
  } else {
    std::size_t end = s.size();
    while (true) {
      const std::size_t found = end >= sep.size() ? s.rfind(sep, end - sep.size()) : std::string::npos;
      if (found == std::string::npos || (maxsplit >= 0 && static_cast<std::int64_t>(pieces.size()) == maxsplit)) {
        pieces.push_back(s.substr(0, end));
        break;
      }
      check_list_size(pieces.size() + 1);
      pieces.push_back(s.substr(found + sep.size(), end - found - sep.size()));
      end = found;
    }
    std::reverse(pieces.begin(), pieces.end());
  }
  for (auto& piece : pieces) parts.push_back(Value::string(std::move(piece)));
  return parts;
}

// Python's str.replace(old, new, count).
inline std::string replace(const std::string& s, const std::string& old, const std::string& replacement,
                           std::int64_t count) {
  std::string out;
  if (old.empty()) {
    const std::u32string text = utf8_decode(s);
    std::int64_t done = 0;
    for (std::size_t k = 0; k <= text.size(); ++k) {
      if (count < 0 || done < count) {
        check_string_size(out.size() + replacement.size());
        out += replacement;
        ++done;
      }
      if (k < text.size()) utf8_append(out, text[k]);
    }
    return out;
  }
  std::size_t start = 0;
  std::int64_t done = 0;
  while (count < 0 || done < count) {
    const std::size_t found = s.find(old, start);
    if (found == std::string::npos) break;
    out.append(s, start, found - start);
    check_string_size(out.size() + replacement.size());
    out += replacement;
    start = found + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

// Python's str.title() / Jinja's title filter on ASCII letters: a letter after a non-letter is upper-cased.
inline std::string title_case(const std::string& s) {
  std::string out = s;
  bool previous_cased = false;
  for (char& c : out) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter) {
      c = previous_cased ? ascii_lower(std::string(1, c))[0] : ascii_upper(std::string(1, c))[0];
    }
    previous_cased = letter;
  }
  return out;
}

inline std::string capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty()) out[0] = ascii_upper(out.substr(0, 1))[0];
  return out;
}

// Python's str.splitlines(): \n, \r\n, \r and the other line boundaries Python knows.
inline ValueList splitlines(const std::string& s, bool keepends) {
  const std::u32string text = utf8_decode(s);
  ValueList lines;
  std::size_t start = 0;
  for (std::size_t k = 0; k < text.size(); ++k) {
    const char32_t c = text[k];
    const bool boundary = c == U'\n' || c == U'\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                          c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) continue;
    std::size_t end = k + 1;
    if (c == U'\r' && k + 1 < text.size() && text[k + 1] == U'\n') end = k + 2;
    check_list_size(lines.size() + 1);
    lines.push_back(Value::string(utf8_encode(text.substr(start, (keepends ? end : k) - start))));
    start = end;
    k = end - 1;
  }
  if (start < text.size()) lines.push_back(Value::string(utf8_encode(text.substr(start))));
  return lines;
}

// Code-point index of a byte offset.
inline std::int64_t code_point_index(const std::string& s, std::size_t byte_offset) {
  return static_cast<std::int64_t>(utf8_length(s.substr(0, byte_offset)));
}

inline Value string_method(const std::string& s, const std::string& name, CallArgs& args) {
  if (name == "startswith" || name == "endswith") {
    check_arity(args, 1, {}, name.c_str());
    const Value& prefix = require(args, 0, "prefix", name.c_str());
    auto test = [&](const std::string& p) {
      if (p.size() > s.size()) return false;
      return name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
    };
    if (prefix.kind == Kind::tuple || prefix.kind == Kind::list) {
      for (const auto& p : *prefix.items) {
        if (test(require_string(p, (name + "() argument").c_str()))) return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    return Value::boolean(test(require_string(prefix, (name + "() argument").c_str())));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    check_arity(args, 1, {"chars"}, name.c_str());
    return Value::string(strip(s, args.get(0, "chars"), name == "strip" ? 3 : name == "lstrip" ? 1 : 2));
  }
  if (name == "split" || name == "rsplit") {
    check_arity(args, 2, {"sep", "maxsplit"}, name.c_str());
    const Value* maxsplit = args.get(1, "maxsplit");
    return Value::list(
        split(s, args.get(0, "sep"), maxsplit ? require_int(*maxsplit, "maxsplit") : -1, name == "rsplit"));
  }
  if (name == "splitlines") {
    check_arity(args, 1, {"keepends"}, "splitlines");
    return Value::list(splitlines(s, optional_bool(args, 0, "keepends", false)));
  }
  if (name == "replace") {
    check_arity(args, 3, {"count"}, "replace");
    const Value* count = args.get(2, "count");
    return Value::string(replace(s, require_string(require(args, 0, "old", "replace"), "replace() argument 1"),
                                 require_string(require(args, 1, "new", "replace"), "replace() argument 2"),
                                 count ? require_int(*count, "count") : -1));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    check_arity(args, 0, {}, name.c_str());
    if (name == "upper") return Value::string(ascii_upper(s));
    if (name == "lower") return Value::string(ascii_lower(s));
    if (name == "title") return Value::string(title_case(s));
    return Value::string(capitalize(s));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    check_arity(args, 1, {}, name.c_str());
    const std::string& sub = require_string(require(args, 0, "sub", name.c_str()), (name + "() argument").c_str());
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<std::int64_t>(utf8_length(s)) + 1);
      std::int64_t count = 0;
      for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++count;
      return Value::integer(count);
    }
    const std::size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(code_point_index(s, at));
  }
  if (name == "join") {
    check_arity(args, 1, {}, "join");
    std::string out;
    std::size_t k = 0;
    for (const Value& item : iterate(require(args, 0, "iterable", "join"))) {
      if (!item.is_string()) {
        fail("sequence item " + std::to_string(k) + ": expected str instance, " + type_name(item) + " found");
      }
      check_string_size(out.size() + s.size() + item.s.size());
      if (k++) out += s;
      out += item.s;
    }
    return Value::string(out);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    check_arity(args, 1, {}, name.c_str());
    const std::string& affix = require_string(require(args, 0, "affix", name.c_str()), "argument");
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) return Value::string(s.substr(affix.size()));
    if (name == "removesuffix" && !affix.empty() && s.size() >= affix.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::string(s.substr(0, s.size() - affix.size()));
    }
    return Value::string(s);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    check_arity(args, 0, {}, name.c_str());
    const std::u32string text = utf8_decode(s);
    if (name == "isupper" || name == "islower") {
      bool cased = false;
      for (const char32_t c : text) {
        if (c >= U'a' && c <= U'z') {
          if (name == "isupper") return Value::boolean(false);
          cased = true;
        } else if (c >= U'A' && c <= U'Z') {
          if (name == "islower") return Value::boolean(false);
          cased = true;
        }
      }
      return Value::boolean(cased);
    }
    if (text.empty()) return Value::boolean(false);
    for (const char32_t c : text) {
      const bool ok = name == "isdigit"   ? is_digit(c)
                      : name == "isalpha" ? is_alpha(c)
                      : name == "isalnum" ? is_alpha(c) || is_digit(c)
                                          : is_python_space(c);
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(true);
  }
  fail("unsupported construct: str method '" + name + "'");
}

inline bool is_string_method(const std::string& name) {
  static const char* const names[] = {"startswith", "endswith",     "strip",        "lstrip",  "rstrip",  "split",
                                      "rsplit",     "splitlines",   "replace",      "upper",   "lower",   "title",
                                      "capitalize", "find",         "rfind",        "index",   "rindex",  "count",
                                      "join",       "removeprefix", "removesuffix", "isdigit", "isalpha", "isalnum",
                                      "isspace",    "isupper",      "islower"};
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return name == n; });
}

inline bool is_dict_method(const std::string& name) {
  return name == "items" || name == "keys" || name == "values" || name == "get";
}

inline bool is_list_method(const std::string& name) { return name == "index" || name == "count"; }

inline Value items_of(const Dict& dict) {
  ValueList pairs;
  pairs.reserve(dict.entries.size());
  for (const auto& entry : dict.entries) pairs.push_back(Value::tuple({Value::string(entry.first), entry.second}));
  return Value::list(std::move(pairs));
}

inline Value dict_method(const Dict& dict, const std::string& name, CallArgs& args) {
  if (name == "get") {
    check_arity(args, 2, {}, "get");
    const Value& key = require(args, 0, "key", "get");
    const Value* found = key.is_string() ? dict.find(key.s) : nullptr;
    if (found) return *found;
    const Value* fallback = args.get(1, "default");
    return fallback ? *fallback : Value::none();
  }
  check_arity(args, 0, {}, name.c_str());
  if (name == "items") return items_of(dict);
  ValueList out;
  for (const auto& entry : dict.entries) out.push_back(name == "keys" ? Value::string(entry.first) : entry.second);
  return Value::list(std::move(out));
}

inline Value list_method(const ValueList& items, const std::string& name, CallArgs& args) {
  check_arity(args, 1, {}, name.c_str());
  const Value& needle = require(args, 0, "value", name.c_str());
  std::int64_t count = 0;
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (!equals(items[k], needle)) continue;
    if (name == "index") return Value::integer(static_cast<std::int64_t>(k));
    ++count;
  }
  if (name == "index") fail(repr(needle) + " is not in list");
  return Value::integer(count);
}

inline Value bound_method(const Value& object, const std::string& name) {
  return Value::function(name, [object, name](CallArgs& args) -> Value {
    if (object.is_string()) {
      Value result = string_method(object.s, name, args);
      result.markup = object.markup && result.is_string();  // Markup's methods return Markup
      return result;
    }
    if (object.kind == Kind::dict) return dict_method(*object.dict, name, args);
    return list_method(*object.items, name, args);
  });
}

inline std::string object_type_repr(const Value& v) {
  return v.kind == Kind::none ? "None" : std::string(type_name(v)) + " object";
}

inline Value missing_attribute(const Value& object, const std::string& name) {
  return Value::undefined("'" + object_type_repr(object) + "' has no attribute '" + name + "'");
}

}  // namespace builtins_detail

/// Jinja2's getattr: `object.name`. A method of a str, dict or list comes first, then a dict key or namespace
/// attribute; a miss is undefined. Accessing an attribute of an undefined value is an error.
inline Value get_attribute(const Value& object, const std::string& name) {
  using namespace builtins_detail;
  switch (object.kind) {
    case Kind::undefined:
      fail(object.s);
    case Kind::dict: {
      if (is_dict_method(name)) return bound_method(object, name);
      const Value* found = object.dict->find(name);
      return found ? *found : missing_attribute(object, name);
    }
    case Kind::ns: {
      const Value* found = object.ns->attributes.find(name);
      return found ? *found : missing_attribute(object, name);
    }
    case Kind::string:
      return is_string_method(name) ? bound_method(object, name) : missing_attribute(object, name);
    case Kind::list:
    case Kind::tuple:
      return is_list_method(name) ? bound_method(object, name) : missing_attribute(object, name);
    default:
      return missing_attribute(object, name);
  }
}

/// Jinja2's getitem: `object[key]`; a string key that is not an item falls back to the attribute.
inline Value get_item(const Value& object, const Value& key) {
  using namespace builtins_detail;
  if (object.is_undefined()) fail(object.s);
  if (key.kind == Kind::integer || key.kind == Kind::boolean) {
    const std::int64_t index = key.kind == Kind::boolean ? key.b : key.i;
    if (object.is_sequence()) {
      const auto size = static_cast<std::int64_t>(object.items->size());
      const std::int64_t k = index < 0 ? index + size : index;
      if (k >= 0 && k < size) return (*object.items)[static_cast<std::size_t>(k)];
    } else if (object.is_string()) {
      const std::u32string text = utf8_decode(object.s);
      const auto size = static_cast<std::int64_t>(text.size());
      const std::int64_t k = index < 0 ? index + size : index;
      if (k >= 0 && k < size) {
        std::string one;
        utf8_append(one, text[static_cast<std::size_t>(k)]);
        return Value::string(one);
      }
    }
    return Value::undefined(object_type_repr(object) + " has no element " + repr(key));
  }
  if (key.is_string()) {
    if (object.kind == Kind::dict) {
      const Value* found = object.dict->find(key.s);
      if (found) return *found;
    }
    return get_attribute(object, key.s);
  }
  return Value::undefined(object_type_repr(object) + " has no element " + repr(key));
}

/// `object[start:stop:step]` for lists, tuples and strings (anything else is undefined, as in Jinja2).
inline Value get_slice(const Value& object, std::optional<std::int64_t> start, std::optional<std::int64_t> stop,
                       std::optional<std::int64_t> step) {
  if (object.is_undefined()) builtins_detail::fail(object.s);
  const std::int64_t stride = step.value_or(1);
  if (object.is_sequence()) {
    ValueList out;
    for (const auto k : slice_positions(static_cast<std::int64_t>(object.items->size()), start, stop, stride)) {
      out.push_back((*object.items)[static_cast<std::size_t>(k)]);
    }
    return Value::list(std::move(out), object.kind);
  }
  if (object.is_string()) {
    const std::u32string text = utf8_decode(object.s);
    std::u32string out;
    for (const auto k : slice_positions(static_cast<std::int64_t>(text.size()), start, stop, stride)) {
      out.push_back(text[static_cast<std::size_t>(k)]);
    }
    return Value::string(utf8_encode(out));
  }
  return Value::undefined(builtins_detail::object_type_repr(object) + " has no element slice");
}

/// Calls method `name` of `object` directly (what `object.name(args)` does without building a bound method).
inline Value call_method(const Value& object, const std::string& name, CallArgs& args) {
  const Value method = get_attribute(object, name);
  if (method.kind != Kind::function) {
    if (method.is_undefined()) {
      throw TemplateError("unsupported construct: no method '" + name + "' on a " + type_name(object) + " value (" +
                          method.s + ")");
    }
    throw TemplateError(std::string("'") + type_name(method) + "' object is not callable");
  }
  return method.fn->call(args);
}

namespace builtins_detail {

// Jinja2's make_attrgetter: "a.b.0" looks up each dotted part with getitem.
inline Value get_path(const Value& object, const std::string& path) {
  Value current = object;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current = get_item(current, digits ? Value::integer(std::strtoll(part.c_str(), nullptr, 10)) : Value::string(part));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

inline Value lowered(const Value& v) { return v.is_string() ? Value::string(ascii_lower(v.s)) : v; }

// Arguments after the first `skip` positional ones (what select/map pass on to the test or filter).
inline CallArgs rest_args(const CallArgs& args, std::size_t skip) {
  CallArgs rest;
  for (std::size_t k = skip; k < args.positional.size(); ++k) rest.positional.push_back(args.positional[k]);
  rest.keyword = args.keyword;
  return rest;
}

// --- filters ---------------------------------------------------------------------------------------------------

inline Value f_abs(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "abs");
  if (v.kind == Kind::number) return Value::number(std::fabs(v.f));
  const std::int64_t x = require_int(v, "abs() argument");
  if (x == INT64_MIN) fail("integer overflow: the template's integers are 64-bit");
  return Value::integer(x < 0 ? -x : x);
}

// Jinja2's attr filter looks up the attribute only, never an item: {'k': 1}|attr('k') is undefined.
inline Value f_attr(const Value& v, CallArgs& args) {
  check_arity(args, 1, {}, "attr");
  const std::string& name = require_string(require(args, 0, "name", "attr"), "attr() name");
  if (v.kind == Kind::dict && !is_dict_method(name)) return missing_attribute(v, name);
  return get_attribute(v, name);
}

inline Value f_capitalize(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "capitalize");
  return Value::string(capitalize(to_str(v)));
}

inline Value f_default(const Value& v, CallArgs& args) {
  check_arity(args, 2, {"default_value", "boolean"}, "default");
  const Value* fallback = args.get(0, "default_value");
  const bool boolean = optional_bool(args, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !truthy(v))) return fallback ? *fallback : Value::string("");
  return v;
}

// Jinja2's dictsort(case_sensitive=False, by='key', reverse=False): (key, value) pairs in order.
inline Value f_dictsort(const Value& v, CallArgs& args) {
  check_arity(args, 3, {"case_sensitive", "by", "reverse"}, "dictsort");
  if (v.kind != Kind::dict) fail("dictsort() needs a mapping, got " + std::string(type_name(v)));
  const bool case_sensitive = optional_bool(args, 0, "case_sensitive", false);
  const Value* by = args.get(1, "by");
  const bool by_value = by && to_str(*by) == "value";
  if (by && !by_value && to_str(*by) != "key") fail("You can only sort by either 'key' or 'value'");
  const bool reverse = optional_bool(args, 2, "reverse", false);
  ValueList pairs = *items_of(*v.dict).items;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    const Value& a = (*x.items)[by_value ? 1 : 0];
    const Value& b = (*y.items)[by_value ? 1 : 0];
    const int c = compare(case_sensitive ? a : lowered(a), case_sensitive ? b : lowered(b), "<");
    return reverse ? c > 0 : c < 0;
  });
  return Value::list(std::move(pairs));
}

/// MarkupSafe's escape() of a plain string: & < > " ' as HTML entities.
inline std::string html_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// escape/e: a Markup string (an already safe one is kept as it is).
inline Value f_escape(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "escape");
  Value out = Value::string(v.is_string() && v.markup ? v.s : html_escape(to_str(v)));
  out.markup = true;
  return out;
}

inline Value f_first(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "first");
  const ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

inline Value f_last(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "last");
  const ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

inline Value f_float(const Value& v, CallArgs& args) {
  check_arity(args, 1, {"default"}, "float");
  const Value* fallback = args.get(0, "default");
  if (v.is_numeric()) return Value::number(as_double(v));
  if (v.is_string()) {
    const std::string text = strip(v.s, nullptr, 3);
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    if (!text.empty() && end == text.c_str() + text.size()) return Value::number(x);
  }
  return fallback ? *fallback : Value::number(0.0);
}

// Python's int(x) of a finite float, which must fit the engine's 64-bit integers.
inline std::int64_t truncate_to_int(double x) {
  if (!(x >= -0x1p63 && x < 0x1p63)) fail("integer overflow: the template's integers are 64-bit");
  return static_cast<std::int64_t>(x);
}

inline Value f_int(const Value& v, CallArgs& args) {
  check_arity(args, 2, {"default", "base"}, "int");
  const Value* fallback = args.get(0, "default");
  const Value* base_value = args.get(1, "base");
  const int base = base_value ? static_cast<int>(require_int(*base_value, "base")) : 10;
  if (v.kind == Kind::integer) return v;
  if (v.kind == Kind::boolean) return Value::integer(v.b);
  if (v.kind == Kind::number && std::isfinite(v.f)) return Value::integer(truncate_to_int(v.f));
  if (v.is_string()) {
    std::string text;
    for (const char c : strip(v.s, nullptr, 3)) {
      if (c != '_') text += c;
    }
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(text.c_str(), &end, base);
    if (!text.empty() && end == text.c_str() + text.size()) {
      if (errno == ERANGE) fail("integer overflow: the template's integers are 64-bit");
      return Value::integer(x);
    }
    const double d = std::strtod(text.c_str(), &end);
    if (!text.empty() && end == text.c_str() + text.size() && std::isfinite(d)) {
      return Value::integer(truncate_to_int(d));
    }
  }
  return fallback ? *fallback : Value::integer(0);
}

inline Value f_indent(const Value& v, CallArgs& args) {
  check_arity(args, 3, {"width", "first", "blank"}, "indent");
  const Value* width = args.get(0, "width");
  std::string indentation = "    ";
  if (width && width->is_string()) {
    indentation = width->s;
  } else if (width) {  // ' ' * width: nothing when negative
    const std::int64_t spaces = std::max<std::int64_t>(require_int(*width, "width"), 0);
    check_string_size(static_cast<std::uint64_t>(spaces));
    indentation.assign(static_cast<std::size_t>(spaces), ' ');
  }
  const bool first = optional_bool(args, 1, "first", false);
  const bool blank = optional_bool(args, 2, "blank", false);
  const ValueList lines = splitlines(to_str(v) + "\n", false);
  std::string out = first ? indentation : std::string();
  for (std::size_t k = 0; k < lines.size(); ++k) {
    if (k) {
      out += "\n";
      if (blank || !lines[k].s.empty()) {
        check_string_size(out.size() + indentation.size());
        out += indentation;
      }
    }
    out += lines[k].s;
  }
  return Value::string(std::move(out));
}

inline Value f_items(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "items");
  if (v.is_undefined()) return Value::list({});
  if (v.kind != Kind::dict) fail("Can only get item pairs from a mapping.");
  return items_of(*v.dict);
}

inline Value f_join(const Value& v, CallArgs& args) {
  check_arity(args, 2, {"d", "attribute"}, "join");
  const Value* separator = args.get(0, "d");
  const Value* attribute = args.get(1, "attribute");
  const std::string sep = separator ? to_str(*separator) : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    const std::string text = to_str(attribute ? get_path(item, to_str(*attribute)) : item);
    check_string_size(out.size() + sep.size() + text.size());
    if (!first) out += sep;
    first = false;
    out += text;
  }
  return Value::string(out);
}

inline Value f_length(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "length");
  return Value::integer(length(v));
}

inline Value f_list(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "list");
  return Value::list(iterate(v));
}

inline Value f_lower(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "lower");
  return Value::string(ascii_lower(to_str(v)));
}

inline Value f_upper(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "upper");
  return Value::string(ascii_upper(to_str(v)));
}

inline Value f_title(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "title");
  return Value::string(title_case(to_str(v)));
}

// Jinja2's map, select and friends visit nothing when the value is falsy (none included).
inline Value f_map(const Value& v, CallArgs& args) {
  ValueList out;
  if (!truthy(v)) return Value::list(std::move(out));
  if (args.positional.empty()) {
    check_arity(args, 0, {"attribute", "default"}, "map");
    const Value* attribute = args.get(0, "attribute");
    if (!attribute) fail("map() needs a filter name or attribute=");
    const Value* fallback = args.get(1, "default");
    for (const Value& item : iterate(v)) {
      Value x = get_path(item, to_str(*attribute));
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value::list(std::move(out));
  }
  const std::string name = require_string(args.positional[0], "map() filter name");
  const FilterFn filter = find_filter(name);
  if (!filter) fail("unsupported construct: filter '" + name + "'");
  for (const Value& item : iterate(v)) {
    CallArgs rest = rest_args(args, 1);
    out.push_back(filter(item, rest));
  }
  return Value::list(std::move(out));
}

// select / reject / selectattr / rejectattr.
inline Value select_impl(const Value& v, CallArgs& args, bool by_attribute, bool keep) {
  if (!truthy(v)) return Value::list({});
  std::size_t next = 0;
  std::string attribute;
  if (by_attribute) attribute = require_string(require(args, next++, "attribute", "selectattr"), "attribute");
  TestFn test = nullptr;
  if (args.positional.size() > next) {
    const std::string name = require_string(args.positional[next++], "test name");
    test = find_test(name);
    if (!test) fail("unsupported construct: test '" + name + "'");
  }
  ValueList out;
  for (const Value& item : iterate(v)) {
    const Value subject = by_attribute ? get_path(item, attribute) : item;
    CallArgs rest = rest_args(args, next);
    const bool passed = test ? test(subject, rest) : truthy(subject);
    if (passed == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

inline Value f_select(const Value& v, CallArgs& args) { return select_impl(v, args, false, true); }
inline Value f_reject(const Value& v, CallArgs& args) { return select_impl(v, args, false, false); }
inline Value f_selectattr(const Value& v, CallArgs& args) { return select_impl(v, args, true, true); }
inline Value f_rejectattr(const Value& v, CallArgs& args) { return select_impl(v, args, true, false); }

inline Value f_replace(const Value& v, CallArgs& args) {
  check_arity(args, 3, {"old", "new", "count"}, "replace");
  const Value* count = args.get(2, "count");
  return Value::string(replace(to_str(v), to_str(require(args, 0, "old", "replace")),
                               to_str(require(args, 1, "new", "replace")),
                               count && count->kind != Kind::none ? require_int(*count, "count") : -1));
}

inline Value f_reverse(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "reverse");
  if (v.is_string()) {
    std::u32string text = utf8_decode(v.s);
    std::reverse(text.begin(), text.end());
    return Value::string(utf8_encode(text));
  }
  ValueList items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

inline Value f_safe(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "safe");
  Value out = Value::string(to_str(v));
  out.markup = true;
  return out;
}

// sort / unique / min / max share Jinja2's key: the attribute (if any), lower-cased unless case_sensitive.
inline Value sort_key(const Value& item, const Value* attribute, bool case_sensitive) {
  const Value key = attribute ? get_path(item, to_str(*attribute)) : item;
  return case_sensitive ? key : lowered(key);
}

inline Value f_sort(const Value& v, CallArgs& args) {
  check_arity(args, 3, {"reverse", "case_sensitive", "attribute"}, "sort");
  const bool reverse = optional_bool(args, 0, "reverse", false);
  const bool case_sensitive = optional_bool(args, 1, "case_sensitive", false);
  const Value* attribute = args.get(2, "attribute");
  ValueList items = iterate(v);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const int c = compare(sort_key(x, attribute, case_sensitive), sort_key(y, attribute, case_sensitive), "<");
    return reverse ? c > 0 : c < 0;
  });
  return Value::list(std::move(items));
}

inline Value f_unique(const Value& v, CallArgs& args) {
  check_arity(args, 2, {"case_sensitive", "attribute"}, "unique");
  const bool case_sensitive = optional_bool(args, 0, "case_sensitive", false);
  const Value* attribute = args.get(1, "attribute");
  ValueList out, seen;
  for (const Value& item : iterate(v)) {
    const Value key = sort_key(item, attribute, case_sensitive);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

inline Value min_max(const Value& v, CallArgs& args, bool want_max) {
  check_arity(args, 2, {"case_sensitive", "attribute"}, want_max ? "max" : "min");
  const bool case_sensitive = optional_bool(args, 0, "case_sensitive", false);
  const Value* attribute = args.get(1, "attribute");
  const ValueList items = iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  std::size_t best = 0;
  for (std::size_t k = 1; k < items.size(); ++k) {
    const int c =
        compare(sort_key(items[k], attribute, case_sensitive), sort_key(items[best], attribute, case_sensitive), "<");
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}

inline Value f_min(const Value& v, CallArgs& args) { return min_max(v, args, false); }
inline Value f_max(const Value& v, CallArgs& args) { return min_max(v, args, true); }

inline Value f_string(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "string");
  return Value::string(to_str(v));
}

inline Value f_sum(const Value& v, CallArgs& args) {
  check_arity(args, 2, {"attribute", "start"}, "sum");
  const Value* attribute = args.get(0, "attribute");
  const Value* start = args.get(1, "start");
  Value total = start ? *start : Value::integer(0);
  for (const Value& item : iterate(v)) {
    const Value x = attribute ? get_path(item, to_str(*attribute)) : item;
    if (!x.is_numeric() || !total.is_numeric()) {
      fail(std::string("unsupported operand type(s) for +: '") + type_name(total) + "' and '" + type_name(x) + "'");
    }
    if (x.kind == Kind::number || total.kind == Kind::number) {
      total = Value::number(as_double(total) + as_double(x));
    } else {  // integers stay exact (not through a double) and must not overflow
      const std::int64_t a = total.kind == Kind::boolean ? total.b : total.i;
      const std::int64_t b = x.kind == Kind::boolean ? x.b : x.i;
      if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) {
        fail("integer overflow: the template's integers are 64-bit");
      }
      total = Value::integer(a + b);
    }
  }
  return total;
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
inline Value f_tojson(const Value& v, CallArgs& args) {
  check_arity(args, 4, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  JsonDumpOptions options;
  options.ensure_ascii = optional_bool(args, 0, "ensure_ascii", false);
  const Value* indent = args.get(1, "indent");
  if (indent && indent->kind != Kind::none) {
    if (indent->is_string()) {
      options.indent = indent->s;
    } else {
      const std::int64_t width = std::max<std::int64_t>(require_int(*indent, "indent"), 0);
      check_string_size(static_cast<std::uint64_t>(width));
      options.indent = std::string(static_cast<std::size_t>(width), ' ');
    }
    options.item_separator = ",";
  }
  const Value* separators = args.get(2, "separators");
  if (separators && separators->kind != Kind::none) {
    if (!separators->is_sequence() || separators->items->size() != 2) fail("tojson() separators must be a pair");
    options.item_separator = require_string((*separators->items)[0], "separator");
    options.key_separator = require_string((*separators->items)[1], "separator");
  }
  options.sort_keys = optional_bool(args, 3, "sort_keys", false);
  return Value::string(to_json(v, options));
}

inline Value f_trim(const Value& v, CallArgs& args) {
  check_arity(args, 1, {"chars"}, "trim");
  return Value::string(strip(to_str(v), args.get(0, "chars"), 3));
}

inline Value f_wordcount(const Value& v, CallArgs& args) {
  check_arity(args, 0, {}, "wordcount");
  std::int64_t count = 0;
  bool in_word = false;
  for (const char32_t c : utf8_decode(to_str(v))) {
    const bool word = is_alpha(c) || is_digit(c) || c == U'_' || c >= 0x80;
    if (word && !in_word) ++count;
    in_word = word;
  }
  return Value::integer(count);
}

// --- tests -----------------------------------------------------------------------------------------------------

inline const Value& test_arg(CallArgs& args, const char* test) { return require(args, 0, "other", test); }

inline bool t_defined(const Value& v, CallArgs&) { return !v.is_undefined(); }
inline bool t_undefined(const Value& v, CallArgs&) { return v.is_undefined(); }
inline bool t_none(const Value& v, CallArgs&) { return v.kind == Kind::none; }
inline bool t_boolean(const Value& v, CallArgs&) { return v.kind == Kind::boolean; }
inline bool t_true(const Value& v, CallArgs&) { return v.kind == Kind::boolean && v.b; }
inline bool t_false(const Value& v, CallArgs&) { return v.kind == Kind::boolean && !v.b; }
inline bool t_integer(const Value& v, CallArgs&) { return v.kind == Kind::integer; }
inline bool t_float(const Value& v, CallArgs&) { return v.kind == Kind::number; }
inline bool t_number(const Value& v, CallArgs&) { return v.is_numeric(); }
inline bool t_string(const Value& v, CallArgs&) { return v.is_string(); }
inline bool t_mapping(const Value& v, CallArgs&) { return v.kind == Kind::dict; }
// Jinja2's sequence test asks for len() and __getitem__: strings, lists, tuples, dicts and Undefined pass.
inline bool t_sequence(const Value& v, CallArgs&) {
  return v.is_string() || v.is_sequence() || v.kind == Kind::dict || v.is_undefined();
}
inline bool t_iterable(const Value& v, CallArgs& args) { return t_sequence(v, args); }
inline bool t_callable(const Value& v, CallArgs&) { return v.kind == Kind::function; }
inline bool t_odd(const Value& v, CallArgs&) { return require_int(v, "odd test value") % 2 != 0; }
inline bool t_even(const Value& v, CallArgs&) { return require_int(v, "even test value") % 2 == 0; }
inline bool t_divisibleby(const Value& v, CallArgs& args) {
  const std::int64_t d = require_int(require(args, 0, "num", "divisibleby"), "divisibleby argument");
  if (d == 0) fail("integer division or modulo by zero");
  const std::int64_t x = require_int(v, "divisibleby test value");
  return d == -1 || x % d == 0;  // INT64_MIN % -1 overflows
}
inline bool t_eq(const Value& v, CallArgs& args) { return equals(v, test_arg(args, "eq")); }
inline bool t_ne(const Value& v, CallArgs& args) { return !equals(v, test_arg(args, "ne")); }
inline bool t_lt(const Value& v, CallArgs& args) { return compare(v, test_arg(args, "lt"), "<") < 0; }
inline bool t_le(const Value& v, CallArgs& args) { return compare(v, test_arg(args, "le"), "<=") <= 0; }
inline bool t_gt(const Value& v, CallArgs& args) { return compare(v, test_arg(args, "gt"), ">") > 0; }
inline bool t_ge(const Value& v, CallArgs& args) { return compare(v, test_arg(args, "ge"), ">=") >= 0; }
inline bool t_in(const Value& v, CallArgs& args) { return contains(require(args, 0, "seq", "in"), v); }
// Python's `is`: the same singleton, number or string value, or the same container object.
inline bool t_sameas(const Value& v, CallArgs& args) {
  const Value& other = require(args, 0, "other", "sameas");
  if (v.kind != other.kind) return false;
  switch (v.kind) {
    case Kind::list:
    case Kind::tuple:
      return v.items == other.items;
    case Kind::dict:
      return v.dict == other.dict;
    default:
      return equals(v, other);
  }
}
inline bool t_lower(const Value& v, CallArgs&) {
  CallArgs none;
  return v.is_string() && truthy(string_method(v.s, "islower", none));
}
inline bool t_upper(const Value& v, CallArgs&) {
  CallArgs none;
  return v.is_string() && truthy(string_method(v.s, "isupper", none));
}
inline bool t_escaped(const Value&, CallArgs&) { return false; }
inline bool t_filter(const Value& v, CallArgs&) { return v.is_string() && find_filter(v.s) != nullptr; }
inline bool t_test(const Value& v, CallArgs&) { return v.is_string() && find_test(v.s) != nullptr; }

}  // namespace builtins_detail

/// The filter called `name`, or nullptr when the engine does not have it.
inline FilterFn find_filter(const std::string& name) {
  using namespace builtins_detail;
  static const std::pair<const char*, FilterFn> filters[] = {{"abs", f_abs},
                                                             {"attr", f_attr},
                                                             {"capitalize", f_capitalize},
                                                             {"count", f_length},
                                                             {"d", f_default},
                                                             {"dictsort", f_dictsort},
                                                             {"default", f_default},
                                                             {"e", f_escape},
                                                             {"escape", f_escape},
                                                             {"first", f_first},
                                                             {"float", f_float},
                                                             {"indent", f_indent},
                                                             {"int", f_int},
                                                             {"items", f_items},
                                                             {"join", f_join},
                                                             {"last", f_last},
                                                             {"length", f_length},
                                                             {"list", f_list},
                                                             {"lower", f_lower},
                                                             {"map", f_map},
                                                             {"max", f_max},
                                                             {"min", f_min},
                                                             {"reject", f_reject},
                                                             {"rejectattr", f_rejectattr},
                                                             {"replace", f_replace},
                                                             {"reverse", f_reverse},
                                                             {"safe", f_safe},
                                                             {"select", f_select},
                                                             {"selectattr", f_selectattr},
                                                             {"sort", f_sort},
                                                             {"string", f_string},
                                                             {"sum", f_sum},
                                                             {"title", f_title},
                                                             {"tojson", f_tojson},
                                                             {"trim", f_trim},
                                                             {"unique", f_unique},
                                                             {"upper", f_upper},
                                                             {"wordcount", f_wordcount}};
  for (const auto& entry : filters) {
    if (name == entry.first) return entry.second;
  }
  return nullptr;
}

/// The test called `name`, or nullptr when the engine does not have it.
inline TestFn find_test(const std::string& name) {
  using namespace builtins_detail;
  static const std::pair<const char*, TestFn> tests[] = {{"boolean", t_boolean},
                                                         {"callable", t_callable},
                                                         {"defined", t_defined},
                                                         {"divisibleby", t_divisibleby},
                                                         {"eq", t_eq},
                                                         {"equalto", t_eq},
                                                         {"==", t_eq},
                                                         {"escaped", t_escaped},
                                                         {"even", t_even},
                                                         {"false", t_false},
                                                         {"filter", t_filter},
                                                         {"float", t_float},
                                                         {"ge", t_ge},
                                                         {">=", t_ge},
                                                         {"gt", t_gt},
                                                         {"greaterthan", t_gt},
                                                         {">", t_gt},
                                                         {"in", t_in},
                                                         {"integer", t_integer},
                                                         {"iterable", t_iterable},
                                                         {"le", t_le},
                                                         {"<=", t_le},
                                                         {"lower", t_lower},
                                                         {"lt", t_lt},
                                                         {"lessthan", t_lt},
                                                         {"<", t_lt},
                                                         {"mapping", t_mapping},
                                                         {"ne", t_ne},
                                                         {"!=", t_ne},
                                                         {"none", t_none},
                                                         {"number", t_number},
                                                         {"odd", t_odd},
                                                         {"sameas", t_sameas},
                                                         {"sequence", t_sequence},
                                                         {"string", t_string},
                                                         {"test", t_test},
                                                         {"true", t_true},
                                                         {"undefined", t_undefined},
                                                         {"upper", t_upper}};
  for (const auto& entry : tests) {
    if (name == entry.first) return entry.second;
  }
  return nullptr;
}

}  // namespace grpo::detail::jinja
