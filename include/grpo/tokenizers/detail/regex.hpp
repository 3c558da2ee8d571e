#pragma once
// The split regexes of the pre-tokenizers, on PCRE2 (8-bit, UTF + Unicode properties; JIT-compiled when the library
// has a JIT). Torch-free.
//
// Hugging Face's tokenizers run these patterns on Oniguruma. The one difference met in the patterns in use is \s:
// Oniguruma's is Unicode's White_Space property, PCRE2's (with UCP) also holds U+180E (MONGOLIAN VOWEL SEPARATOR,
// no longer White_Space since Unicode 6.3). Patterns are therefore rewritten to spell \s and \S as
// \p{White_Space} and \P{White_Space} (PCRE2 10.40 and later; older ones keep \s). Oniguruma's ^ and $ match at
// line boundaries, hence PCRE2_MULTILINE.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "grpo/error.hpp"

namespace grpo::detail {

/// `pattern` with \s and \S spelled as White_Space properties (see the top of this file); \Q...\E kept as is.
inline std::string oniguruma_to_pcre2(std::string_view pattern) {
#if PCRE2_MAJOR > 10 || (PCRE2_MAJOR == 10 && PCRE2_MINOR >= 40)
  std::string out;
  out.reserve(pattern.size() + 32);
  bool quoted = false;  // inside \Q...\E
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '\\' || i + 1 == pattern.size()) {
      out += pattern[i];
      continue;
    }
    const char next = pattern[++i];
    if (quoted) {
      quoted = next != 'E';
      out += '\\';
      out += next;
    } else if (next == 's') {
      out += "\\p{White_Space}";
    } else if (next == 'S') {
      out += "\\P{White_Space}";
    } else {
      quoted = next == 'Q';
      out += '\\';
      out += next;
    }
  }
  return out;
#else
  return std::string(pattern);
#endif
}

/// Reusable per-call match state (PCRE2 match data is not shareable between threads).
class RegexMatchData {
 public:
  RegexMatchData() : data_(pcre2_match_data_create_8(1, nullptr), &pcre2_match_data_free_8) {
    if (!data_) throw RuntimeError("grpo::BpeTokenizer: out of memory for PCRE2 match data");
  }
  pcre2_match_data_8* get() const { return data_.get(); }

 private:
  std::unique_ptr<pcre2_match_data_8, void (*)(pcre2_match_data_8*)> data_;
};

/// A compiled pattern; immutable and shareable between threads once built.
class Regex {
 public:
  /// Compiles `pattern` (Oniguruma syntax as in tokenizer.json, or a literal string when `literal`); throws
  /// InvalidArgument starting with `where` and naming the pattern and the position of the error.
  Regex(const std::string& pattern, bool literal, const std::string& where = "grpo::BpeTokenizer: ")
      : pattern_(pattern) {
    const std::string translated = literal ? pattern : oniguruma_to_pcre2(pattern);
    uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
    if (literal) options = PCRE2_UTF | PCRE2_LITERAL;
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code_8* code = pcre2_compile_8(reinterpret_cast<PCRE2_SPTR8>(translated.data()), translated.size(), options,
                                         &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR8 message[256];
      pcre2_get_error_message_8(error, message, sizeof message);
      throw InvalidArgument(where + "the split pattern '" + pattern + "' does not compile (PCRE2, at " +
                            std::to_string(offset) + "): " + reinterpret_cast<const char*>(message));
    }
    code_.reset(code, &pcre2_code_free_8);
    jit_ = pcre2_jit_compile_8(code, PCRE2_JIT_COMPLETE) == 0;
  }

  /// The pattern as given.
  const std::string& pattern() const { return pattern_; }

  /// Appends the [begin, end) byte offsets of the successive non-overlapping matches in valid UTF-8 `text` to `out`
  /// (after an empty match the search resumes one character later).
  void find_all(std::string_view text, const RegexMatchData& match_data,
                std::vector<std::pair<std::size_t, std::size_t>>& out) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR8>(text.data());
    std::size_t start = 0;
    while (start <= text.size()) {
      int rc = pcre2_match_8(code_.get(), subject, text.size(), start, PCRE2_NO_UTF_CHECK, match_data.get(), nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // rare: a very long match; the interpreter has no such limit
        rc = pcre2_match_8(code_.get(), subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                           match_data.get(), nullptr);
      }
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) {
        PCRE2_UCHAR8 message[256];
        pcre2_get_error_message_8(rc, message, sizeof message);
        throw RuntimeError("grpo::BpeTokenizer: matching the split pattern '" + pattern_ +
                           "' failed: " + reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer_8(match_data.get());
      const std::size_t begin = ovector[0], end = ovector[1];
      out.emplace_back(begin, end);
      if (end > begin) {
        start = end;
      } else {  // empty match: step over one character
        start = end + 1;
        while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
      }
    }
  }

  /// True when the pattern runs JIT-compiled.
  bool jit() const { return jit_; }

 private:
  std::string pattern_;
  std::shared_ptr<pcre2_code_8> code_;
  bool jit_ = false;
};

}  // namespace grpo::detail
