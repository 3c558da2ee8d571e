#pragma once
// How deeply a JSON text nests arrays and objects, measured before parsing it: nlohmann::json parses any depth, but
// copying, comparing, dumping (in error messages) and converting a value recurse once per level, so a file of a few
// hundred KB of brackets would exhaust the stack. The readers of user files refuse more than max_json_depth levels,
// as CPython's json module does near its recursion limit of 1000.

#include <cstddef>
#include <string_view>

namespace grpo::detail {

/// The most levels of arrays and objects a JSON file read by grpo-cpp may nest.
inline constexpr std::size_t max_json_depth = 1000;

// The deepest nesting of '[' and '{' outside strings in `text` (malformed text is measured as well as it goes;
// the parser reports what is wrong with it).
inline std::size_t json_nesting_depth(std::string_view text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote included
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace grpo::detail
