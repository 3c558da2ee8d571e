#pragma once
// A pretrained chat model in one call: the model, its tokenizer and its chat template, from a Hugging Face folder
// (config.json + safetensors + tokenizer.json [+ tokenizer_config.json / chat_template.jinja]) or from a GGUF file.
//
//   grpo::Pretrained p = grpo::load_pretrained("SmolLM2-135M-Instruct.Q4_1.gguf");
//   std::string prompt = p.chat_template->render(messages, /*add_generation_prompt=*/true);
//   auto answer = grpo::generate_text(*p.model, p.tokenizer, {prompt}, options);   // stops at the model's EOS

#include <torch/types.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/pretrained/gguf_tokenizer.hpp"
#include "grpo/tokenizers/bpe_tokenizer.hpp"
#include "grpo/tokenizers/chat_template.hpp"

namespace grpo {

/// A model with the tokenizer and chat template that belong to it.
struct Pretrained {
  /// The model, on the CPU (move it with model->to(device)).
  std::shared_ptr<LlamaModel> model;
  /// Its byte-level BPE tokenizer.
  BpeTokenizer tokenizer;
  /// Its chat template; unset when the checkpoint has none (a base model).
  std::optional<ChatTemplate> chat_template;
};

/// Loads `path`: a GGUF file (model, tokenizer.ggml.* vocabulary, tokenizer.chat_template), or a Hugging Face folder
/// (LlamaModel::from_pretrained, BpeTokenizer::from_pretrained, and the chat template of tokenizer_config.json or
/// chat_template.jinja when there is one). `dtype` is the parameters' dtype (default float32). Errors name the
/// path and what is missing or wrong (no tokenizer.json, an unsupported tokenizer, a damaged file, ...).
inline Pretrained load_pretrained(const std::string& path, std::optional<torch::ScalarType> dtype = std::nullopt) {
  namespace fs = std::filesystem;
  const std::string where = "grpo::load_pretrained: " + path + ": ";
  std::error_code error;
  if (fs::is_regular_file(path, error)) {
    const GgufFile file(path);
    auto tokenizer = tokenizer_from_gguf(file);
    std::optional<ChatTemplate> chat;
    if (has_chat_template(file)) chat = chat_template_from_gguf(file);
    return Pretrained{LlamaModel::from_gguf(path, dtype), std::move(tokenizer), std::move(chat)};
  }
  if (!fs::is_directory(path, error)) {
    throw InvalidArgument(where + "no such file or folder (expected a .gguf file or a Hugging Face model folder)");
  }
  const fs::path folder(path);
  if (!fs::is_regular_file(folder / "tokenizer.json", error)) {
    throw InvalidArgument(where +
                          "the folder has no tokenizer.json (only byte-level BPE tokenizers in Hugging Face's "
                          "tokenizer.json format are supported)");
  }
  auto tokenizer = BpeTokenizer::from_pretrained(path);
  std::optional<ChatTemplate> chat;
  const auto config = folder / "tokenizer_config.json";
  const auto jinja = folder / "chat_template.jinja";
  if (fs::is_regular_file(config, error)) {
    std::ifstream in(config);
    const auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) throw InvalidArgument(where + "tokenizer_config.json is not valid JSON");
    const bool has_key = json.is_object() && json.contains("chat_template") && !json["chat_template"].is_null();
    if (has_key || fs::is_regular_file(jinja, error)) chat = ChatTemplate::from_tokenizer_config(config.string());
  } else if (fs::is_regular_file(jinja, error)) {
    std::ifstream in(jinja, std::ios::binary);
    chat = ChatTemplate(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  }
  return Pretrained{LlamaModel::from_pretrained(path, dtype), std::move(tokenizer), std::move(chat)};
}

}  // namespace grpo
