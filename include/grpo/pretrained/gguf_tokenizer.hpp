#pragma once
// The tokenizer and chat template a GGUF file carries in its metadata (the tokenizer.ggml.* keys and
// tokenizer.chat_template), as grpo::BpeTokenizer and grpo::ChatTemplate.
//
//   grpo::GgufFile file("SmolLM2-135M-Instruct.Q4_1.gguf");
//   grpo::BpeTokenizer tokenizer = grpo::tokenizer_from_gguf(file);
//   grpo::ChatTemplate chat = grpo::chat_template_from_gguf(file);
//
// Keys read: tokenizer.ggml.model (only "gpt2", byte-level BPE, is supported), .pre (the pre-tokenizer; default
// "gpt2" when absent, as llama.cpp defaults it), .tokens, .merges, .token_type, .bos_token_id, .eos_token_id,
// .padding_token_id, .unknown_token_id; tokenizer.chat_template. Errors name the file and the key.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "grpo/error.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/tokenizers/bpe_tokenizer.hpp"
#include "grpo/tokenizers/chat_template.hpp"

namespace grpo {

/// The tokenizer.ggml.* values of `file` as a GgufVocabulary (see the top of this file for the keys). Throws
/// grpo::InvalidArgument naming the file and the key when tokenizer.ggml.model or .tokens is missing, or a value has
/// another type.
inline GgufVocabulary gguf_vocabulary(const GgufFile& file) {
  GgufVocabulary vocabulary;
  vocabulary.model = file.get<std::string>("tokenizer.ggml.model");
  vocabulary.pre = file.get_optional<std::string>("tokenizer.ggml.pre").value_or("gpt2");
  vocabulary.tokens = file.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  vocabulary.merges =
      file.get_optional<std::vector<std::string>>("tokenizer.ggml.merges").value_or(std::vector<std::string>{});
  if (const auto types = file.get_optional<std::vector<int64_t>>("tokenizer.ggml.token_type")) {
    vocabulary.token_types.reserve(types->size());
    for (const auto type : *types) vocabulary.token_types.push_back(static_cast<int32_t>(type));
  }
  vocabulary.bos_token_id = file.get_optional<int64_t>("tokenizer.ggml.bos_token_id");
  vocabulary.eos_token_id = file.get_optional<int64_t>("tokenizer.ggml.eos_token_id");
  vocabulary.pad_token_id = file.get_optional<int64_t>("tokenizer.ggml.padding_token_id");
  vocabulary.unk_token_id = file.get_optional<int64_t>("tokenizer.ggml.unknown_token_id");
  return vocabulary;
}

/// The byte-level BPE tokenizer of `file` (BpeTokenizer::from_gguf_vocabulary over gguf_vocabulary(file)). Errors
/// name the file: an unsupported tokenizer model or pre-tokenizer, a missing key, a malformed vocabulary.
inline BpeTokenizer tokenizer_from_gguf(const GgufFile& file) {
  try {
    return BpeTokenizer::from_gguf_vocabulary(gguf_vocabulary(file));
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    if (message.find(file.path()) != std::string::npos) throw;
    throw InvalidArgument("grpo::tokenizer_from_gguf: " + file.path() + ": " + message);
  }
}

/// True when `file` holds a chat template (tokenizer.chat_template).
inline bool has_chat_template(const GgufFile& file) { return file.contains("tokenizer.chat_template"); }

/// The chat template of `file` (tokenizer.chat_template) with the special-token strings a template sees
/// (bos_token, eos_token, unk_token, pad_token: the tokens at the ids tokenizer.ggml.*_token_id name), as
/// transformers sets them when it loads the file. Throws grpo::InvalidArgument naming the file when the key is
/// absent (has_chat_template tells beforehand) or an id lies outside the vocabulary; a template the engine cannot
/// parse is an error naming the file and the template line.
inline ChatTemplate chat_template_from_gguf(const GgufFile& file) {
  const std::string where = "grpo::chat_template_from_gguf: " + file.path() + ": ";
  if (!has_chat_template(file)) {
    throw InvalidArgument(where + "no key \"tokenizer.chat_template\": the file holds no chat template");
  }
  const auto source = file.get<std::string>("tokenizer.chat_template");
  SpecialTokens special;
  if (file.contains("tokenizer.ggml.tokens")) {
    const auto tokens = file.get<std::vector<std::string>>("tokenizer.ggml.tokens");
    const auto token = [&](const char* key) -> std::optional<std::string> {
      const auto id = file.get_optional<int64_t>(key);
      if (!id) return std::nullopt;
      if (*id < 0 || *id >= static_cast<int64_t>(tokens.size())) {
        throw InvalidArgument(where + "key \"" + key + "\" is " + std::to_string(*id) + ", outside the " +
                              std::to_string(tokens.size()) + " tokens of \"tokenizer.ggml.tokens\"");
      }
      return tokens[static_cast<std::size_t>(*id)];
    };
    special.bos_token = token("tokenizer.ggml.bos_token_id");
    special.eos_token = token("tokenizer.ggml.eos_token_id");
    special.unk_token = token("tokenizer.ggml.unknown_token_id");
    special.pad_token = token("tokenizer.ggml.padding_token_id");
  }
  try {
    return ChatTemplate(source, special);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(where + "key \"tokenizer.chat_template\": " + e.what());
  }
}

}  // namespace grpo
