#pragma once
// Added tokens (special tokens such as <|im_end|>, and tokens added after training such as <think>): found in the
// text before pre-tokenization, leftmost first and longest first, with Hugging Face's lstrip, rstrip and
// single_word options. Torch-free.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/regex.hpp"
#include "grpo/tokenizers/detail/utf8.hpp"

namespace grpo::detail {

/// An added token as tokenizer.json describes it.
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // skipped when decoding with skip_special_tokens
  bool normalized = false;   // matched in the normalized text (else in the raw text, before normalization)
  bool lstrip = false;       // takes the whitespace before it
  bool rstrip = false;       // takes the whitespace after it
  bool single_word = false;  // only where no word character touches it
};

/// True for the code points of Unicode's White_Space property (what \s matches in Hugging Face's Rust regexes).
inline bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/// A piece of text: [begin, end) with the added token's id, or -1 for text to tokenize.
struct TextPiece {
  std::size_t begin;
  std::size_t end;
  int32_t id;
};

/// The added tokens matched at one stage (raw or normalized text): a byte trie, longest match at each position.
class AddedTokenMatcher {
 public:
  /// Adds `token`, matched as `pattern` (its content, or its normalized content).
  void add(const AddedToken& token, const std::string& pattern) {
    if (pattern.empty()) return;
    int32_t node = 0;
    if (nodes_.empty()) nodes_.emplace_back();
    for (const char ch : pattern) {
      const auto byte = static_cast<unsigned char>(ch);
      int32_t child = -1;
      for (const auto& [b, index] : nodes_[static_cast<std::size_t>(node)].children) {
        if (b == byte) child = index;
      }
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[static_cast<std::size_t>(node)].children.emplace_back(byte, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    nodes_[static_cast<std::size_t>(node)].token = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(token);
    first_bytes_[static_cast<unsigned char>(pattern[0])] = true;
    if (token.single_word && !word_char_) {
      // Rust's regex \w: Alphabetic, marks, decimal numbers, connector punctuation, Join_Control.
#if PCRE2_MAJOR > 10 || (PCRE2_MAJOR == 10 && PCRE2_MINOR >= 40)
      word_char_ = std::make_shared<Regex>(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", false);
#else
      word_char_ = std::make_shared<Regex>(R"([\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])", false);
#endif
    }
  }

  /// True when no token was added.
  bool empty() const { return tokens_.empty(); }

  /// Splits `text` (valid UTF-8) into pieces covering it: added tokens and the text between them (non-empty).
  void split(std::string_view text, RegexMatchData& match_data, std::vector<TextPiece>& out) const {
    out.clear();
    std::size_t done = 0;  // text[0, done) is in `out`
    std::size_t position = 0;
    while (position < text.size()) {
      if (!first_bytes_[static_cast<unsigned char>(text[position])]) {
        ++position;
        continue;
      }
      const auto [token_index, length] = longest_at(text, position);
      if (token_index < 0) {
        ++position;
        continue;
      }
      const AddedToken& token = tokens_[static_cast<std::size_t>(token_index)];
      std::size_t begin = position;
      std::size_t end = position + length;
      position = end;
      if (token.single_word && (word_char_before(text, begin, match_data) || word_char_after(text, end, match_data))) {
        continue;
      }
      if (token.lstrip) {
        std::size_t start = begin;
        while (start > done) {
          std::size_t previous = start - 1;
          while (previous > 0 && (static_cast<unsigned char>(text[previous]) & 0xC0) == 0x80) --previous;
          std::size_t next = previous;
          if (!is_white_space(utf8::decode(text, next))) break;
          start = previous;
        }
        begin = start;
      }
      if (token.rstrip) {
        while (end < text.size()) {
          std::size_t next = end;
          if (!is_white_space(utf8::decode(text, next))) break;
          end = next;
        }
        position = end;
      }
      if (done < begin) out.push_back({done, begin, -1});
      out.push_back({begin, end, token.id});
      done = end;
    }
    if (done < text.size()) out.push_back({done, text.size(), -1});
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;
  };

  // (token index, length) of the longest token starting at `position`, or (-1, 0).
  std::pair<int32_t, std::size_t> longest_at(std::string_view text, std::size_t position) const {
    int32_t node = 0;
    std::pair<int32_t, std::size_t> best{-1, 0};
    for (std::size_t i = position; i < text.size(); ++i) {
      const auto byte = static_cast<unsigned char>(text[i]);
      int32_t child = -1;
      for (const auto& [b, index] : nodes_[static_cast<std::size_t>(node)].children) {
        if (b == byte) {
          child = index;
          break;
        }
      }
      if (child < 0) break;
      node = child;
      if (nodes_[static_cast<std::size_t>(node)].token >= 0)
        best = {nodes_[static_cast<std::size_t>(node)].token, i + 1 - position};
    }
    return best;
  }

  bool is_word_char(std::string_view character, RegexMatchData& match_data) const {
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    word_char_->find_all(character, match_data, matches);
    return !matches.empty();
  }
  bool word_char_before(std::string_view text, std::size_t begin, RegexMatchData& match_data) const {
    if (begin == 0) return false;
    std::size_t previous = begin - 1;
    while (previous > 0 && (static_cast<unsigned char>(text[previous]) & 0xC0) == 0x80) --previous;
    return is_word_char(text.substr(previous, begin - previous), match_data);
  }
  bool word_char_after(std::string_view text, std::size_t end, RegexMatchData& match_data) const {
    if (end >= text.size()) return false;
    std::size_t next = end;
    utf8::decode(text, next);
    return is_word_char(text.substr(end, next - end), match_data);
  }

  std::vector<Node> nodes_;
  std::vector<AddedToken> tokens_;
  bool first_bytes_[256] = {};
  std::shared_ptr<const Regex> word_char_;
};

}  // namespace grpo::detail
