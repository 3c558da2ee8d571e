#pragma once
// The pre-tokenizer of a byte-level BPE: a sequence of regex splits (Hugging Face's Split, ByteLevel's GPT-2
// pattern, Digits) and ByteLevel's optional prefix space, cutting normalized text into the words that BPE merges
// within. The byte-to-character mapping of ByteLevel is left to the model, which works on bytes. Torch-free.

#include <algorithm>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/regex.hpp"

namespace grpo::detail {

/// What a split does with the matches of its pattern (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

/// The GPT-2 pattern ByteLevel splits with when use_regex is true.
inline constexpr const char* gpt2_split_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// Buffers of one encode call, reused from word to word.
struct PreTokenizerWorkspace {
  RegexMatchData match_data;
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> segments;
  std::vector<std::pair<std::size_t, std::size_t>> kept;
  std::vector<std::string_view> next;
  std::deque<std::string> prefixed;  // words given a prefix space (stable addresses)
};

/// An ordered list of split and prefix-space steps.
class PreTokenizer {
 public:
  /// Appends a split by `pattern` (a regex, or a literal string when `literal`); an error starts with `where`.
  void add_split(const std::string& pattern, bool literal, SplitBehavior behavior, bool invert,
                 const std::string& where = "grpo::BpeTokenizer: ") {
    steps_.push_back(Step{std::make_shared<Regex>(pattern, literal, where), behavior, invert, false});
  }

  /// Appends ByteLevel's add_prefix_space: a space before every piece that does not start with one.
  void add_prefix_space() { steps_.push_back(Step{nullptr, SplitBehavior::isolated, false, true}); }

  /// True when no step is configured (the whole text is one word).
  bool empty() const { return steps_.empty(); }

  /// The words of `text` (non-empty views into `text` or into `workspace.prefixed`) into `words`.
  void split(std::string_view text, PreTokenizerWorkspace& workspace, std::vector<std::string_view>& words) const {
    words.clear();
    workspace.prefixed.clear();
    if (text.empty()) return;
    words.push_back(text);
    for (const Step& step : steps_) {
      workspace.next.clear();
      for (const std::string_view piece : words) {
        if (step.prefix_space) {
          if (piece.front() == ' ') {
            workspace.next.push_back(piece);
          } else {
            workspace.prefixed.push_back(" " + std::string(piece));
            workspace.next.push_back(workspace.prefixed.back());
          }
        } else {
          split_piece(step, piece, workspace);
        }
      }
      words.swap(workspace.next);
    }
  }

 private:
  struct Step {
    std::shared_ptr<const Regex> regex;  // null for the prefix-space step
    SplitBehavior behavior;
    bool invert;
    bool prefix_space;
  };

  // Hugging Face's NormalizedString::split: the pieces between and at the matches, combined by the behavior; empty
  // pieces are dropped.
  static void split_piece(const Step& step, std::string_view piece, PreTokenizerWorkspace& workspace) {
    auto& matches = workspace.matches;
    auto& segments = workspace.segments;
    matches.clear();
    segments.clear();
    step.regex->find_all(piece, workspace.match_data, matches);
    std::size_t previous = 0;
    for (const auto& [begin, end] : matches) {
      if (previous != begin) segments.push_back({{previous, begin}, step.invert});
      segments.push_back({{begin, end}, !step.invert});
      previous = end;
    }
    if (previous != piece.size()) segments.push_back({{previous, piece.size()}, step.invert});

    auto& kept = workspace.kept;
    kept.clear();
    switch (step.behavior) {
      case SplitBehavior::isolated:
        for (const auto& segment : segments) kept.push_back(segment.first);
        break;
      case SplitBehavior::removed:
        for (const auto& segment : segments) {
          if (!segment.second) kept.push_back(segment.first);
        }
        break;
      case SplitBehavior::contiguous: {
        bool previous_match = false;
        for (const auto& [offsets, is_match] : segments) {
          if (is_match == previous_match && !kept.empty()) {
            kept.back().second = offsets.second;
          } else {
            kept.push_back(offsets);
          }
          previous_match = is_match;
        }
        break;
      }
      case SplitBehavior::merged_with_previous: {
        bool previous_match = false;
        for (const auto& [offsets, is_match] : segments) {
          if (is_match && !previous_match && !kept.empty()) {
            kept.back().second = offsets.second;
          } else {
            kept.push_back(offsets);
          }
          previous_match = is_match;
        }
        break;
      }
      case SplitBehavior::merged_with_next: {
        bool previous_match = false;
        for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
          const auto& [offsets, is_match] = *it;
          if (is_match && !previous_match && !kept.empty()) {
            kept.back().first = offsets.first;
          } else {
            kept.push_back(offsets);
          }
          previous_match = is_match;
        }
        std::reverse(kept.begin(), kept.end());
        break;
      }
    }
    for (const auto& [begin, end] : kept) {
      if (end > begin) workspace.next.push_back(piece.substr(begin, end - begin));
    }
  }

  std::vector<Step> steps_;
};

}  // namespace grpo::detail
