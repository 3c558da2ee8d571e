#pragma once
// Writing Hugging Face's tokenizer.json and tokenizer_config.json: JSON nodes in a canonical key order, added
// tokens as both files spell them, large objects built in linear time, and a dump that refuses invalid UTF-8.
// Torch-free.

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/tokenizers/detail/added_tokens.hpp"

namespace grpo::detail::tokenizer_json {

/// `node` as an ordered_json whose objects list "type" first and their other keys in sorted order, so that a node
/// read back from a written file is written again byte for byte (nlohmann::json, which the readers use, forgets the
/// order of the file).
template <class Json>
nlohmann::ordered_json canonical(const Json& node) {
  using value_t = nlohmann::json::value_t;
  switch (node.type()) {
    case value_t::object: {
      std::vector<std::string> keys;
      for (auto it = node.begin(); it != node.end(); ++it) keys.push_back(it.key());
      std::sort(keys.begin(), keys.end());
      const auto type = std::find(keys.begin(), keys.end(), "type");
      if (type != keys.end()) std::rotate(keys.begin(), type, type + 1);
      nlohmann::ordered_json out = nlohmann::ordered_json::object();
      for (const auto& key : keys) out[key] = canonical(node.at(key));
      return out;
    }
    case value_t::array: {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& element : node) out.push_back(canonical(element));
      return out;
    }
    case value_t::string:
      return node.template get<std::string>();
    case value_t::boolean:
      return node.template get<bool>();
    case value_t::number_integer:
      return node.template get<int64_t>();
    case value_t::number_unsigned:
      return node.template get<uint64_t>();
    case value_t::number_float:
      return node.template get<double>();
    default:  // null, and the binary and discarded values no JSON file holds
      return nullptr;
  }
}

/// An object of `entries`, whose keys are distinct, in their order: linear time, where ordered_json's operator[]
/// searches the keys before each insertion (quadratic for a vocabulary of 150,000 tokens).
inline nlohmann::ordered_json object_of_distinct(std::vector<std::pair<std::string, nlohmann::ordered_json>> entries) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  auto& storage =
      static_cast<nlohmann::ordered_json::object_t::Container&>(*out.get_ptr<nlohmann::ordered_json::object_t*>());
  storage.reserve(entries.size());
  for (auto& [key, value] : entries) storage.emplace_back(std::move(key), std::move(value));
  return out;
}

/// An entry of tokenizer.json's "added_tokens", in the key order `tokenizers` writes.
inline nlohmann::ordered_json added_token_entry(const AddedToken& token) {
  nlohmann::ordered_json entry = nlohmann::ordered_json::object();
  entry["id"] = token.id;
  entry["content"] = token.content;
  entry["single_word"] = token.single_word;
  entry["lstrip"] = token.lstrip;
  entry["rstrip"] = token.rstrip;
  entry["normalized"] = token.normalized;
  entry["special"] = token.special;
  return entry;
}

/// A value of tokenizer_config.json's "added_tokens_decoder" (keyed by the id), as transformers writes it.
inline nlohmann::json added_token_decoder_entry(const AddedToken& token) {
  return nlohmann::json{{"content", token.content},         {"lstrip", token.lstrip},
                        {"normalized", token.normalized},   {"rstrip", token.rstrip},
                        {"single_word", token.single_word}, {"special", token.special}};
}

/// `value` as text, indented by two spaces and ending with a newline; a string that is not valid UTF-8 (a token
/// of a hand-made vocabulary) throws InvalidArgument starting with `where` rather than writing a file no JSON
/// reader accepts.
template <class Json>
std::string dump(const Json& value, const std::string& where) {
  try {
    return value.dump(2) + "\n";
  } catch (const nlohmann::json::type_error& e) {
    throw InvalidArgument(where + "cannot write the JSON: " + e.what());
  }
}

}  // namespace grpo::detail::tokenizer_json
