#pragma once
// UTF-8 helpers of the tokenizers: validation, code point decoding and encoding, and the lossy conversion of a byte
// string to valid UTF-8 that Hugging Face's decoders apply (Rust's String::from_utf8_lossy). Torch-free.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace grpo::detail::utf8 {

/// Length of the well-formed UTF-8 sequence at the start of `text` (1 to 4), or 0 when it is not well formed (a
/// stray continuation byte, an overlong form, a surrogate, a code point above U+10FFFF, or a truncated sequence).
inline std::size_t valid_sequence_length(std::string_view text) {
  if (text.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(text[0]);
  if (b0 < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte (Unicode 15, table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (i >= text.size()) return 0;
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xBF)) return 0;
  }
  return length;
}

/// Byte offset of the first ill-formed sequence of `text`, or text.size() when it is valid UTF-8.
inline std::size_t first_invalid(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t length = valid_sequence_length(text.substr(i));
    if (length == 0) return i;
    i += length;
  }
  return i;
}

/// The code point at byte `i` of valid UTF-8 `text`; advances `i` past it.
inline uint32_t decode(std::string_view text, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const auto continuation = [&](std::size_t k) { return static_cast<uint32_t>(text[i + k]) & 0x3Fu; };
  uint32_t cp = 0;
  if (b0 < 0xE0) {
    cp = ((b0 & 0x1Fu) << 6) | continuation(1);
    i += 2;
  } else if (b0 < 0xF0) {
    cp = ((b0 & 0x0Fu) << 12) | (continuation(1) << 6) | continuation(2);
    i += 3;
  } else {
    cp = ((b0 & 0x07u) << 18) | (continuation(1) << 12) | (continuation(2) << 6) | continuation(3);
    i += 4;
  }
  return cp;
}

/// Appends the UTF-8 encoding of code point `cp` to `out`.
inline void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// `bytes` as valid UTF-8: each maximal ill-formed subpart becomes one U+FFFD (Unicode's recommended practice, as
/// Rust's String::from_utf8_lossy and Python's bytes.decode(errors="replace") do).
inline std::string lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    if (b0 < 0x80) {
      out += bytes[i++];
      continue;
    }
    const std::size_t length = valid_sequence_length(bytes.substr(i));
    if (length != 0) {
      out.append(bytes.data() + i, length);
      i += length;
      continue;
    }
    // The maximal subpart: a lead byte followed by as many bytes as are still a valid prefix of a sequence.
    std::size_t consumed = 1;
    if (b0 >= 0xC2 && b0 <= 0xF4) {
      const std::size_t expected = b0 < 0xE0 ? 2 : (b0 < 0xF0 ? 3 : 4);
      const unsigned char low = b0 == 0xE0 ? 0xA0 : (b0 == 0xF0 ? 0x90 : 0x80);
      const unsigned char high = b0 == 0xED ? 0x9F : (b0 == 0xF4 ? 0x8F : 0xBF);
      while (consumed < expected && i + consumed < bytes.size()) {
        const auto b = static_cast<unsigned char>(bytes[i + consumed]);
        if (b < (consumed == 1 ? low : 0x80) || b > (consumed == 1 ? high : 0xBF)) break;
        ++consumed;
      }
    }
    out += "\xEF\xBF\xBD";
    i += consumed;
  }
  return out;
}

}  // namespace grpo::detail::utf8
