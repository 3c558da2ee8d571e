#pragma once
// A character-level tokenizer (one token per byte of a fixed alphabet) for the demo and tests. Torch-free.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "grpo/error.hpp"
#include "grpo/tokenizers/tokenizer.hpp"

namespace grpo {

/// Character-level tokenizer: ids 0..3 are <pad>, <bos>, <eos>, <unk>; id 4 + i is the i-th alphabet byte.
class CharTokenizer {
 public:
  /// Padding id.
  static constexpr int64_t pad_id = 0;
  /// Beginning-of-sequence id.
  static constexpr int64_t bos_id = 1;
  /// End-of-sequence id.
  static constexpr int64_t eos_id = 2;
  /// Id of bytes outside the alphabet.
  static constexpr int64_t unk_id = 3;
  /// Number of special ids before the alphabet.
  static constexpr int64_t num_special = 4;

  /// A tokenizer over the distinct bytes of `alphabet` (a duplicate byte is an error).
  explicit CharTokenizer(const std::string& alphabet) : alphabet_(alphabet) {
    to_id_.fill(unk_id);
    for (std::size_t i = 0; i < alphabet.size(); ++i) {
      const auto byte = static_cast<unsigned char>(alphabet[i]);
      if (to_id_[byte] != unk_id) {
        throw InvalidArgument("grpo::CharTokenizer: the alphabet repeats the character '" +
                              std::string(1, alphabet[i]) + "' at position " + std::to_string(i));
      }
      to_id_[byte] = num_special + static_cast<int64_t>(i);
    }
  }

  /// Printable ASCII (space to '~') plus newline: 96 characters, vocab_size 100.
  static CharTokenizer ascii() {
    std::string alphabet = "\n";
    for (char ch = ' '; ch <= '~'; ++ch) alphabet += ch;
    return CharTokenizer(alphabet);
  }

  /// Token ids of `text`, one per byte, without special tokens; bytes outside the alphabet become unk_id.
  std::vector<int64_t> encode(const std::string& text) const {
    std::vector<int64_t> ids;
    ids.reserve(text.size());
    for (const char ch : text) ids.push_back(to_id_[static_cast<unsigned char>(ch)]);
    return ids;
  }

  /// Text of `ids`: special ids are skipped, except unk_id which decodes to '?'; an id >= vocab_size throws.
  std::string decode(const std::vector<int64_t>& ids) const {
    std::string text;
    text.reserve(ids.size());
    for (const auto id : ids) {
      if (id < 0 || id >= vocab_size()) {
        throw OutOfRange("grpo::CharTokenizer::decode: id " + std::to_string(id) + " is outside [0, " +
                         std::to_string(vocab_size()) + ")");
      }
      if (id == unk_id) {
        text += '?';
      } else if (id >= num_special) {
        text += alphabet_[static_cast<std::size_t>(id - num_special)];
      }
    }
    return text;
  }

  /// Number of ids: 4 specials + alphabet size.
  int64_t vocab_size() const { return num_special + static_cast<int64_t>(alphabet_.size()); }
  /// Padding id (0).
  int64_t pad_token_id() const { return pad_id; }
  /// End-of-sequence id (2).
  int64_t eos_token_id() const { return eos_id; }
  /// Beginning-of-sequence id (1).
  std::optional<int64_t> bos_token_id() const { return bos_id; }
  /// The alphabet, in id order.
  const std::string& alphabet() const { return alphabet_; }

 private:
  std::string alphabet_;
  std::array<int64_t, 256> to_id_{};
};

static_assert(check_tokenizer<CharTokenizer>());

}  // namespace grpo
