#pragma once
// The byte-level BPE model: the vocabulary, the merges by rank, and the merge loop over the bytes of one word, with a
// bounded cache of merged words. Torch-free.
//
// A word is the UTF-8 bytes of one pre-tokenizer piece. ByteLevel maps each byte to one printable character
// (GPT-2's bytes_to_unicode); the model starts from the vocabulary id of each byte's character and merges adjacent
// pairs, lowest rank first and leftmost first among equal ranks, as Hugging Face's BPE does (a priority queue over a
// linked list of symbols: O(n log n) for a word of n bytes).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/utf8.hpp"

namespace grpo::detail {

/// GPT-2's bytes_to_unicode: the code point standing for each byte in byte-level vocabularies. The 188 printable
/// bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves, the others for U+0100 + n in byte order.
inline std::array<uint32_t, 256> byte_level_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cps[b] = printable ? b : 256 + n++;
  }
  return cps;
}

/// The bytes a byte-level token string stands for, or nullopt when one of its characters is not a byte-level one.
inline std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  static const std::unordered_map<uint32_t, char> to_byte = [] {
    std::unordered_map<uint32_t, char> map;
    const auto cps = byte_level_code_points();
    for (uint32_t b = 0; b < 256; ++b) map.emplace(cps[b], static_cast<char>(b));
    return map;
  }();
  std::string bytes;
  bytes.reserve(token.size());
  for (std::size_t i = 0; i < token.size();) {
    if (utf8::valid_sequence_length(token.substr(i)) == 0) return std::nullopt;
    const auto it = to_byte.find(utf8::decode(token, i));
    if (it == to_byte.end()) return std::nullopt;
    bytes += it->second;
  }
  return bytes;
}

/// Open-addressing hash map from a pair of token ids to (rank, merged id): the merge table, probed once per pair.
class MergeTable {
 public:
  struct Merge {
    int32_t rank = -1;
    int32_t id = -1;
  };

  /// Sets the merge of (left, right); a later rank for the same pair replaces the earlier (as a hash map does).
  void insert(int32_t left, int32_t right, Merge merge) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    Slot& slot = find_slot(key(left, right));
    if (slot.key == kEmpty) ++size_;
    slot.key = key(left, right);
    slot.merge = merge;
  }

  /// The merge of (left, right), or nullptr.
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t k = key(left, right);
    for (std::size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i].merge;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

  /// Number of pairs.
  std::size_t size() const { return size_; }

  /// Calls visit(left, right, merge) for every pair, in no particular order.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const Slot& slot : slots_) {
      if (slot.key != kEmpty) {
        visit(static_cast<int32_t>(slot.key >> 32), static_cast<int32_t>(slot.key & 0xFFFFFFFFu), slot.merge);
      }
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge;
  };
  static uint64_t key(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  static std::size_t hash(uint64_t k) { return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20); }
  Slot& find_slot(uint64_t k) {
    for (std::size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k || slots_[i].key == kEmpty) return slots_[i];
    }
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& slot : old) {
      if (slot.key != kEmpty) find_slot(slot.key) = slot;
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// Merged words by their bytes, shared by the copies of a tokenizer and safe to use from several threads. Like
/// Hugging Face's, it holds words shorter than 256 bytes and stops growing at `capacity` words.
class WordCache {
 public:
  explicit WordCache(std::size_t capacity = 10000) : capacity_(capacity) {}

  /// Appends the cached ids of `word` to `out`; false when it is not cached.
  bool append(std::string_view word, std::vector<int64_t>& out) const {
    if (word.size() >= kMaxWordBytes) return false;
    const std::string key(word);
    std::shared_lock<std::shared_mutex> lock(mutex_);
    const auto it = words_.find(key);
    if (it == words_.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  /// Caches `ids` for `word` while there is room.
  void insert(std::string_view word, const int64_t* ids, std::size_t count) {
    if (word.size() >= kMaxWordBytes) return;
    std::unique_lock<std::shared_mutex> lock(mutex_);
    if (words_.size() >= capacity_) return;
    words_.emplace(std::string(word), std::vector<int32_t>(ids, ids + count));
  }

 private:
  static constexpr std::size_t kMaxWordBytes = 256;
  std::size_t capacity_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::vector<int32_t>> words_;
};

/// Buffers of the merge loop, reused from word to word.
struct MergeWorkspace {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  // A queued merge: key = rank << 32 | position, so that the smallest key is the lowest rank, leftmost first.
  struct Candidate {
    uint64_t key;
    int32_t id;
    // std::make_heap builds a max-heap: "less" is "comes out later".
    bool operator<(const Candidate& other) const { return key > other.key; }
  };
  static uint64_t candidate_key(int32_t rank, int32_t pos) {
    return (uint64_t{static_cast<uint32_t>(rank)} << 32) | static_cast<uint32_t>(pos);
  }
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string byte_level;  // the word in byte-level characters (ignore_merges lookups)
};

/// The BPE model of a byte-level tokenizer.
struct BpeModel {
  /// Byte-level token string -> id.
  std::unordered_map<std::string, int32_t> vocab;
  /// (left id, right id) -> (rank, merged id).
  MergeTable merges;
  /// Vocabulary id of each byte's character, -1 when it is missing.
  std::array<int32_t, 256> byte_ids{};
  /// Each byte's character as UTF-8.
  std::array<std::string, 256> byte_chars;
  /// Id for a byte whose character is not in the vocabulary (else such bytes are dropped, as Hugging Face does).
  std::optional<int32_t> unk_id;
  /// Consecutive unknown bytes become one unk_id.
  bool fuse_unk = false;
  /// A word found whole in the vocabulary is that one token, merges or not (Llama 3).
  bool ignore_merges = false;
  /// Words merged so far (shared between copies).
  std::shared_ptr<WordCache> cache = std::make_shared<WordCache>();

  /// Fills byte_ids and byte_chars from vocab.
  void index_bytes() {
    const auto cps = byte_level_code_points();
    for (std::size_t b = 0; b < 256; ++b) {
      byte_chars[b].clear();
      utf8::append(byte_chars[b], cps[b]);
      const auto it = vocab.find(byte_chars[b]);
      byte_ids[b] = it == vocab.end() ? -1 : it->second;
    }
  }

  /// Appends the ids of `word` (UTF-8 bytes, non-empty) to `out`.
  void encode_word(std::string_view word, MergeWorkspace& workspace, std::vector<int64_t>& out) const {
    if (ignore_merges) {
      std::string& chars = workspace.byte_level;
      chars.clear();
      for (const char byte : word) chars += byte_chars[static_cast<unsigned char>(byte)];
      const auto it = vocab.find(chars);
      if (it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    if (word.size() == 1) {
      append_symbol_ids(word, workspace, out);
      return;
    }
    if (cache->append(word, out)) return;
    const std::size_t first = out.size();
    append_symbol_ids(word, workspace, out);
    cache->insert(word, out.data() + first, out.size() - first);
  }

 private:
  // The initial symbols of `word` (one per byte, unknown bytes as unk_id or dropped), merged, appended to `out`.
  void append_symbol_ids(std::string_view word, MergeWorkspace& workspace, std::vector<int64_t>& out) const {
    auto& symbols = workspace.symbols;
    symbols.clear();
    bool previous_unknown = false;
    for (const char byte : word) {
      const int32_t id = byte_ids[static_cast<unsigned char>(byte)];
      if (id >= 0) {
        symbols.push_back({id, 0, 0, true});
        previous_unknown = false;
      } else if (unk_id) {
        if (!(fuse_unk && previous_unknown)) symbols.push_back({*unk_id, 0, 0, true});
        previous_unknown = true;
      }
    }
    const auto n = static_cast<int32_t>(symbols.size());
    for (int32_t i = 0; i < n; ++i) {
      symbols[static_cast<std::size_t>(i)].prev = i - 1;
      symbols[static_cast<std::size_t>(i)].next = i + 1 < n ? i + 1 : -1;
    }
    auto& heap = workspace.heap;
    heap.clear();
    for (int32_t i = 0; i + 1 < n; ++i) {
      const auto* merge =
          merges.find(symbols[static_cast<std::size_t>(i)].id, symbols[static_cast<std::size_t>(i) + 1].id);
      if (merge) heap.push_back({MergeWorkspace::candidate_key(merge->rank, i), merge->id});
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const auto top = heap.back();
      heap.pop_back();
      const auto top_pos = static_cast<int32_t>(top.key & 0xFFFFFFFFu);
      auto& left = symbols[static_cast<std::size_t>(top_pos)];
      if (!left.alive || left.next < 0) continue;
      const auto right_pos = left.next;
      auto& right = symbols[static_cast<std::size_t>(right_pos)];
      // Stale entry: one side has merged since it was queued.
      const auto* merge = merges.find(left.id, right.id);
      if (merge == nullptr || merge->id != top.id) continue;
      left.id = top.id;
      left.next = right.next;
      right.alive = false;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top_pos;
      if (left.prev >= 0) {
        const auto* before = merges.find(symbols[static_cast<std::size_t>(left.prev)].id, left.id);
        if (before) {
          heap.push_back({MergeWorkspace::candidate_key(before->rank, left.prev), before->id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (left.next >= 0) {
        const auto* after = merges.find(left.id, symbols[static_cast<std::size_t>(left.next)].id);
        if (after) {
          heap.push_back({MergeWorkspace::candidate_key(after->rank, top_pos), after->id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
      out.push_back(symbols[static_cast<std::size_t>(i)].id);
    }
  }
};

}  // namespace grpo::detail
