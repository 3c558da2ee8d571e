#pragma once
// The lexer of grpo::ChatTemplate's Jinja engine: template text -> tokens, with Jinja2's whitespace control as
// transformers configures it (trim_blocks and lstrip_blocks on, "{%-"/"-%}" strip, "{%+"/"+%}" keep, one trailing
// newline of the template dropped, newlines normalised to "\n"). Internal.

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "grpo/tokenizers/detail/jinja_value.hpp"

namespace grpo::detail::jinja {

enum class TokenType : std::uint8_t {
  data,            // literal template text (after whitespace control)
  block_begin,     // {%
  block_end,       // %}
  variable_begin,  // {{
  variable_end,    // }}
  name,
  string,  // text holds the decoded value
  integer,
  number,
  op,  // text holds the operator: + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { } ;
  eof
};

struct Token {
  TokenType type;
  std::string text;
  int line;
  std::int64_t integer = 0;
  double number = 0.0;
};

namespace lexer_detail {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
inline bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Python's str.rstrip() for template text, ASCII whitespace only.
inline std::string rstrip(const std::string& text) {
  std::size_t end = text.size();
  while (end > 0 && (is_space(text[end - 1]) || (text[end - 1] >= 0x1C && text[end - 1] <= 0x1F))) --end;
  return text.substr(0, end);
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value of a string literal's body, with Python's unicode-escape rules (Jinja2 decodes literals so).
inline std::string unescape(const std::string& body, int line) {
  std::u32string out;
  const std::u32string in = utf8_decode(body);
  for (std::size_t k = 0; k < in.size(); ++k) {
    const char32_t c = in[k];
    if (c != U'\\' || k + 1 >= in.size()) {
      out.push_back(c);
      continue;
    }
    const char32_t e = in[++k];
    auto read_hex = [&](int digits) -> char32_t {
      char32_t value = 0;
      for (int d = 0; d < digits; ++d) {
        const int h = k + 1 < in.size() && in[k + 1] < 0x80 ? hex_value(static_cast<char>(in[k + 1])) : -1;
        if (h < 0) throw TemplateError("truncated \\x, \\u or \\U escape in a string literal", line);
        value = value * 16 + static_cast<char32_t>(h);
        ++k;
      }
      return value;
    };
    switch (e) {
      case U'\n':
        break;  // line continuation
      case U'\\':
      case U'\'':
      case U'"':
        out.push_back(e);
        break;
      case U'a':
        out.push_back(7);
        break;
      case U'b':
        out.push_back(8);
        break;
      case U'f':
        out.push_back(12);
        break;
      case U'n':
        out.push_back(10);
        break;
      case U'r':
        out.push_back(13);
        break;
      case U't':
        out.push_back(9);
        break;
      case U'v':
        out.push_back(11);
        break;
      case U'x':
        out.push_back(read_hex(2));
        break;
      case U'u':
      case U'U': {
        char32_t cp = read_hex(e == U'u' ? 4 : 8);
        // A surrogate pair written as two \u escapes stands for one code point once encoded.
        if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 < in.size() && in[k + 1] == U'\\' && in[k + 2] == U'u') {
          const std::size_t saved = k;
          k += 2;
          const char32_t low = read_hex(4);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else {
            k = saved;
          }
        }
        out.push_back(cp);
        break;
      }
      case U'N':
        throw TemplateError("unsupported construct: \\N{...} escape in a string literal", line);
      default:
        if (e >= U'0' && e <= U'7') {
          char32_t value = e - U'0';
          for (int d = 0; d < 2 && k + 1 < in.size() && in[k + 1] >= U'0' && in[k + 1] <= U'7'; ++d) {
            value = value * 8 + (in[++k] - U'0');
          }
          out.push_back(value);
        } else {
          out.push_back(U'\\');
          out.push_back(e);
        }
    }
  }
  return utf8_encode(out);
}

}  // namespace lexer_detail

/// Tokens of `source`; a syntax error names its line.
inline std::vector<Token> tokenize(const std::string& raw_source) {
  using namespace lexer_detail;
  // Jinja2 normalises \r\n and \r to \n and drops one trailing newline (keep_trailing_newline=False).
  std::string src;
  src.reserve(raw_source.size());
  for (std::size_t k = 0; k < raw_source.size(); ++k) {
    if (raw_source[k] == '\r') {
      src += '\n';
      if (k + 1 < raw_source.size() && raw_source[k + 1] == '\n') ++k;
    } else {
      src += raw_source[k];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();

  std::vector<Token> tokens;
  const std::size_t n = src.size();
  std::size_t pos = 0;
  int line = 1;
  bool line_starting = true;
  auto count_lines = [&](std::size_t from, std::size_t to) {
    for (std::size_t k = from; k < to; ++k) {
      if (src[k] == '\n') ++line;
    }
  };

  while (pos < n) {
    // The next tag: "{%", "{{" or "{#".
    std::size_t tag = pos;
    char kind = 0;
    for (; tag + 1 < n; ++tag) {
      if (src[tag] == '{' && (src[tag + 1] == '%' || src[tag + 1] == '{' || src[tag + 1] == '#')) {
        kind = src[tag + 1];
        break;
      }
    }
    if (!kind) {
      tokens.push_back({TokenType::data, src.substr(pos), line});
      break;
    }
    std::string text = src.substr(pos, tag - pos);
    const char sign = tag + 2 < n && (src[tag + 2] == '-' || src[tag + 2] == '+') ? src[tag + 2] : 0;
    if (sign == '-') {
      text = rstrip(text);
    } else if (sign != '+' && kind != '{') {
      // lstrip_blocks: whitespace between the line's start and a block or comment tag goes.
      const std::size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      if (line_start > 0 || line_starting) {
        if (text.find_first_not_of(" \t", line_start) == std::string::npos) text.resize(line_start);
      }
    }
    if (!text.empty()) tokens.push_back({TokenType::data, text, line});
    count_lines(pos, tag);
    pos = tag + 2 + (sign ? 1 : 0);
    const int tag_line = line;

    if (kind == '#') {
      // Comment: ends at the first "+#}", "-#}" (then whitespace) or "#}" (then one newline, trim_blocks).
      std::size_t k = pos;
      std::size_t end = std::string::npos;
      for (; k < n; ++k) {
        if (src.compare(k, 3, "+#}") == 0) {
          end = k + 3;
          break;
        }
        if (src.compare(k, 3, "-#}") == 0) {
          end = k + 3;
          while (end < n && is_space(src[end])) ++end;
          break;
        }
        if (src.compare(k, 2, "#}") == 0) {
          end = k + 2;
          if (end < n && src[end] == '\n') ++end;
          break;
        }
      }
      if (end == std::string::npos) throw TemplateError("missing end of comment tag", tag_line);
      count_lines(pos, end);
      line_starting = src[end - 1] == '\n';
      pos = end;
      continue;
    }

    const bool block = kind == '%';
    if (block) {
      // {% raw %} ... {% endraw %}: the body is text.
      std::size_t k = pos;
      while (k < n && is_space(src[k])) ++k;
      if (src.compare(k, 3, "raw") == 0 && (k + 3 >= n || !is_name_char(src[k + 3]))) {
        throw TemplateError("unsupported construct: {% raw %}", tag_line);
      }
    }
    tokens.push_back({block ? TokenType::block_begin : TokenType::variable_begin, "", tag_line});
    std::vector<char> balance;
    while (true) {
      if (pos >= n)
        throw TemplateError(block ? "missing end of block tag '%}'" : "missing end of print tag '}}'", line);
      if (balance.empty()) {
        std::size_t end = std::string::npos;
        if (block) {
          if (src.compare(pos, 3, "+%}") == 0) {
            end = pos + 3;
          } else if (src.compare(pos, 3, "-%}") == 0) {
            end = pos + 3;
            while (end < n && is_space(src[end])) ++end;
          } else if (src.compare(pos, 2, "%}") == 0) {
            end = pos + 2;
            if (end < n && src[end] == '\n') ++end;  // trim_blocks
          }
        } else if (src.compare(pos, 3, "-}}") == 0) {
          end = pos + 3;
          while (end < n && is_space(src[end])) ++end;
        } else if (src.compare(pos, 2, "}}") == 0) {
          end = pos + 2;
        }
        if (end != std::string::npos) {
          tokens.push_back({block ? TokenType::block_end : TokenType::variable_end, "", line});
          count_lines(pos, end);
          line_starting = src[end - 1] == '\n';
          pos = end;
          break;
        }
      }
      const char c = src[pos];
      if (is_space(c)) {
        if (c == '\n') ++line;
        ++pos;
        continue;
      }
      if (is_digit(c)) {
        std::size_t k = pos;
        while (k < n && (is_digit(src[k]) || src[k] == '_')) ++k;
        bool is_float = false;
        if (k + 1 < n && src[k] == '.' && is_digit(src[k + 1])) {
          is_float = true;
          ++k;
          while (k < n && (is_digit(src[k]) || src[k] == '_')) ++k;
        }
        if (k < n && (src[k] == 'e' || src[k] == 'E')) {
          std::size_t e = k + 1;
          if (e < n && (src[e] == '+' || src[e] == '-')) ++e;
          if (e < n && is_digit(src[e])) {
            is_float = true;
            k = e;
            while (k < n && (is_digit(src[k]) || src[k] == '_')) ++k;
          }
        }
        std::string digits;
        for (std::size_t d = pos; d < k; ++d) {
          if (src[d] != '_') digits += src[d];
        }
        Token token{is_float ? TokenType::number : TokenType::integer, src.substr(pos, k - pos), line};
        if (is_float) {
          token.number = std::strtod(digits.c_str(), nullptr);
        } else {
          errno = 0;
          token.integer = std::strtoll(digits.c_str(), nullptr, 10);
          if (errno == ERANGE) {
            throw TemplateError("integer literal " + digits + " does not fit the template's 64-bit integers", line);
          }
        }
        tokens.push_back(token);
        pos = k;
        continue;
      }
      if (is_name_start(c)) {
        std::size_t k = pos;
        while (k < n && is_name_char(src[k])) ++k;
        tokens.push_back({TokenType::name, src.substr(pos, k - pos), line});
        pos = k;
        continue;
      }
      if (c == '\'' || c == '"') {
        std::size_t k = pos + 1;
        while (k < n && src[k] != c) {
          if (src[k] == '\\') ++k;
          ++k;
        }
        if (k >= n) throw TemplateError("unterminated string literal", line);
        const int start_line = line;
        count_lines(pos, k);
        tokens.push_back({TokenType::string, unescape(src.substr(pos + 1, k - pos - 1), start_line), start_line});
        pos = k + 1;
        continue;
      }
      static const char* const operators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                              "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
      bool matched = false;
      for (const char* op : operators) {
        const std::size_t length = op[1] ? 2 : 1;
        if (src.compare(pos, length, op) == 0) {
          const char o = op[0];
          if (length == 1 && (o == '(' || o == '[' || o == '{'))
            balance.push_back(o == '(' ? ')' : o == '[' ? ']' : '}');
          if (length == 1 && (o == ')' || o == ']' || o == '}')) {
            if (balance.empty() || balance.back() != o) {
              throw TemplateError(std::string("unexpected '") + o + "'", line);
            }
            balance.pop_back();
          }
          tokens.push_back({TokenType::op, op, line});
          pos += length;
          matched = true;
          break;
        }
      }
      if (!matched) throw TemplateError(std::string("unexpected character '") + c + "'", line);
    }
  }
  tokens.push_back({TokenType::eof, "", line});
  return tokens;
}

}  // namespace grpo::detail::jinja
