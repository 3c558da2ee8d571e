#pragma once
// The tokenizer boundary: what grpo-cpp needs to turn text into token ids and back. Torch-free.
//
// A type T is a Tokenizer when it has
//   std::vector<int64_t> encode(const std::string& text) const;        // no special tokens added
//   std::string decode(const std::vector<int64_t>& ids) const;          // special tokens skipped
//   int64_t vocab_size() const;
//   int64_t pad_token_id() const;
//   int64_t eos_token_id() const;
// Optional: std::optional<int64_t> bos_token_id() const.

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace grpo {

namespace detail {

template <class T, class = void>
struct has_encode : std::false_type {};
template <class T>
struct has_encode<T, std::void_t<decltype(std::declval<std::vector<int64_t>&>() =
                                              std::declval<const T&>().encode(std::declval<const std::string&>()))>>
    : std::true_type {};

template <class T, class = void>
struct has_decode : std::false_type {};
template <class T>
struct has_decode<T, std::void_t<decltype(std::declval<std::string&>() = std::declval<const T&>().decode(
                                              std::declval<const std::vector<int64_t>&>()))>> : std::true_type {};

template <class T, class = void>
struct has_special_ids : std::false_type {};
template <class T>
struct has_special_ids<T, std::void_t<decltype(int64_t{std::declval<const T&>().vocab_size()}),
                                      decltype(int64_t{std::declval<const T&>().pad_token_id()}),
                                      decltype(int64_t{std::declval<const T&>().eos_token_id()})>> : std::true_type {};

}  // namespace detail

/// True when T meets the Tokenizer trait (see the top of tokenizer.hpp).
template <class T>
inline constexpr bool is_tokenizer_v =
    detail::has_encode<T>::value&& detail::has_decode<T>::value&& detail::has_special_ids<T>::value;

/// Compile-time check naming the missing member; use as `static_assert(check_tokenizer<T>())`.
template <class T>
constexpr bool check_tokenizer() {
  static_assert(detail::has_encode<T>::value,
                "grpo::Tokenizer: the type lacks `std::vector<int64_t> encode(const std::string&) const`");
  static_assert(detail::has_decode<T>::value,
                "grpo::Tokenizer: the type lacks `std::string decode(const std::vector<int64_t>&) const`");
  static_assert(detail::has_special_ids<T>::value,
                "grpo::Tokenizer: the type lacks `int64_t vocab_size() const`, `int64_t pad_token_id() const` or "
                "`int64_t eos_token_id() const`");
  return is_tokenizer_v<T>;
}

}  // namespace grpo
