#pragma once
// Unicode Normalization Form C (UAX #15) of valid UTF-8, as Hugging Face's NFC normalizer applies it before
// pre-tokenization (Qwen2 and Qwen3 use it). Torch-free.
//
// Text that passes the quick check (no code point that NFC could change or combine: no combining mark, no
// composition-excluded character, no second half of a composition) is returned as it is, so most text costs one
// scan. Elsewhere only the stretch from the last safe starter to the next safe code point is decomposed, reordered
// and composed. The data comes from unicode_tables.hpp.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/unicode_tables.hpp"
#include "grpo/tokenizers/detail/utf8.hpp"

namespace grpo::detail {

/// The lookup structures of NFC, built once from the generated tables.
class NfcData {
 public:
  NfcData() : unsafe_(kCodePoints / 64, 0) {
    for (const auto& range : unicode::combining_classes) {
      for (uint32_t cp = range.first; cp <= range.last; ++cp) mark_unsafe(cp);
    }
    compositions_.reserve(std::size(unicode::canonical_decompositions));
    for (const auto& d : unicode::canonical_decompositions) {
      if (d.composes) {
        compositions_.emplace(pair_key(d.first, d.second), d.code_point);
        mark_unsafe(d.second);  // may combine with what precedes it (NFC_Quick_Check = Maybe)
      } else {
        mark_unsafe(d.code_point);  // never in NFC (NFC_Quick_Check = No)
      }
    }
    for (uint32_t cp = kHangulV; cp < kHangulV + kHangulVCount; ++cp) mark_unsafe(cp);
    for (uint32_t cp = kHangulT + 1; cp < kHangulT + kHangulTCount; ++cp) mark_unsafe(cp);
  }

  /// False when `cp` can change under NFC or combine with its neighbours; code points below U+0300 are safe.
  bool safe(uint32_t cp) const { return cp < 0x300 || (unsafe_[cp >> 6] >> (cp & 63) & 1) == 0; }

  /// Canonical combining class of `cp`.
  static uint8_t combining_class(uint32_t cp) {
    if (cp < 0x300) return 0;
    const auto* begin = std::begin(unicode::combining_classes);
    const auto* end = std::end(unicode::combining_classes);
    const auto* it = std::upper_bound(
        begin, end, cp, [](uint32_t value, const unicode::CombiningClassRange& range) { return value < range.first; });
    if (it == begin) return 0;
    --it;
    return cp <= it->last ? it->combining_class : 0;
  }

  /// Appends the full canonical decomposition of `cp` to `out`.
  static void decompose(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
      const uint32_t index = cp - kHangulS;
      out.push_back(kHangulL + index / (kHangulVCount * kHangulTCount));
      out.push_back(kHangulV + (index % (kHangulVCount * kHangulTCount)) / kHangulTCount);
      if (index % kHangulTCount != 0) out.push_back(kHangulT + index % kHangulTCount);
      return;
    }
    const auto* begin = std::begin(unicode::canonical_decompositions);
    const auto* end = std::end(unicode::canonical_decompositions);
    const auto* it = std::lower_bound(
        begin, end, cp, [](const unicode::CanonicalDecomposition& d, uint32_t value) { return d.code_point < value; });
    if (it == end || it->code_point != cp) {
      out.push_back(cp);
      return;
    }
    decompose(it->first, out);
    if (it->second != 0) decompose(it->second, out);
  }

  /// The primary composite of `first` + `second`, or 0 when they do not compose.
  uint32_t compose(uint32_t first, uint32_t second) const {
    if (first >= kHangulL && first < kHangulL + kHangulLCount && second >= kHangulV &&
        second < kHangulV + kHangulVCount) {
      return kHangulS + ((first - kHangulL) * kHangulVCount + (second - kHangulV)) * kHangulTCount;
    }
    if (first >= kHangulS && first < kHangulS + kHangulSCount && (first - kHangulS) % kHangulTCount == 0 &&
        second > kHangulT && second < kHangulT + kHangulTCount) {
      return first + (second - kHangulT);
    }
    const auto it = compositions_.find(pair_key(first, second));
    return it == compositions_.end() ? 0 : it->second;
  }

 private:
  static constexpr uint32_t kCodePoints = 0x110000;
  static constexpr uint32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
  static constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
  static constexpr uint32_t kHangulSCount = kHangulLCount * kHangulVCount * kHangulTCount;

  static uint64_t pair_key(uint32_t first, uint32_t second) { return (uint64_t{first} << 21) | second; }
  void mark_unsafe(uint32_t cp) { unsafe_[cp >> 6] |= uint64_t{1} << (cp & 63); }

  std::vector<uint64_t> unsafe_;  // one bit per code point
  std::unordered_map<uint64_t, uint32_t> compositions_;
};

/// The NFC data, built on first use (immutable afterwards; the initialisation is thread-safe).
inline const NfcData& nfc_data() {
  static const NfcData data;
  return data;
}

/// NFC of the valid UTF-8 stretch `text`, appended to `out`; `scratch` holds its code points meanwhile.
inline void nfc_stretch(const NfcData& data, std::string_view text, std::vector<uint32_t>& scratch, std::string& out) {
  scratch.clear();
  for (std::size_t i = 0; i < text.size();) NfcData::decompose(utf8::decode(text, i), scratch);
  // Canonical ordering: a stable sort by combining class of each run of non-starters.
  for (std::size_t i = 0; i < scratch.size();) {
    if (NfcData::combining_class(scratch[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < scratch.size() && NfcData::combining_class(scratch[j]) != 0) ++j;
    std::stable_sort(scratch.begin() + static_cast<std::ptrdiff_t>(i), scratch.begin() + static_cast<std::ptrdiff_t>(j),
                     [](uint32_t a, uint32_t b) { return NfcData::combining_class(a) < NfcData::combining_class(b); });
    i = j;
  }
  // Canonical composition (UAX #15): each character composes with the last starter unless blocked.
  if (scratch.empty()) return;
  std::size_t starter = 0;
  uint32_t last_class = NfcData::combining_class(scratch[0]);
  if (last_class != 0) last_class = 256;  // no starter yet: nothing can compose with it
  std::size_t kept = 1;
  for (std::size_t i = 1; i < scratch.size(); ++i) {
    const uint32_t cp = scratch[i];
    const uint32_t cls = NfcData::combining_class(cp);
    const uint32_t composite = (last_class < cls || last_class == 0) ? data.compose(scratch[starter], cp) : 0;
    if (composite != 0) {
      scratch[starter] = composite;
      continue;
    }
    if (cls == 0) starter = kept;
    last_class = cls;
    scratch[kept++] = cp;
  }
  for (std::size_t i = 0; i < kept; ++i) utf8::append(out, scratch[i]);
}

/// NFC of valid UTF-8 `text` into `out`; returns false (leaving `out` untouched) when `text` is already in NFC by the
/// quick check, so that the caller can keep using `text`.
inline bool nfc(std::string_view text, std::string& out) {
  const NfcData& data = nfc_data();
  // Moves `i` to the next unsafe code point (or the end), tracking in `last_safe` the start of the last safe one.
  const auto skip_safe = [&](std::size_t& i, std::size_t& last_safe) {
    while (i < text.size()) {
      if (static_cast<unsigned char>(text[i]) < 0x80) {
        last_safe = i++;
        continue;
      }
      std::size_t next = i;
      if (!data.safe(utf8::decode(text, next))) return;
      last_safe = i;
      i = next;
    }
  };
  std::size_t i = 0;
  std::size_t last_safe = 0;
  skip_safe(i, last_safe);
  if (i >= text.size()) return false;

  out.clear();
  out.reserve(text.size() + 16);
  std::vector<uint32_t> scratch;
  std::size_t copied = 0;  // text[0, copied) is in `out`
  while (i < text.size()) {
    // A safe code point is a starter that neither changes nor combines with what precedes it, so the stretch from
    // the last one before `i` up to the next one after it normalizes on its own.
    const std::size_t begin = std::min(last_safe, i);
    std::size_t end = i;
    utf8::decode(text, end);  // the unsafe code point at i
    while (end < text.size()) {
      std::size_t next = end;
      if (data.safe(utf8::decode(text, next))) break;
      end = next;
    }
    out.append(text.data() + copied, begin - copied);
    nfc_stretch(data, text.substr(begin, end - begin), scratch, out);
    copied = end;
    i = end;
    last_safe = end;
    skip_safe(i, last_safe);
  }
  out.append(text.data() + copied, text.size() - copied);
  return true;
}

}  // namespace grpo::detail
