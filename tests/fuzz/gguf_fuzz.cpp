// libFuzzer target: grpo::GgufFile (the input written to a per-process scratch file, since the reader maps a
// path), every metadata value and every tensor it can dequantise, and what reads a GGUF file's metadata: the
// Llama / Qwen2 config, the tokenizer and the chat template. Only grpo::Error may escape.
#include <torch/types.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "grpo/error.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama_gguf.hpp"
#include "grpo/pretrained/gguf_tokenizer.hpp"

namespace {

// Tensors up to this many values are decoded (the reader bounds them by the file size anyway).
constexpr int64_t kMaxDecodedValues = int64_t{1} << 20;

void read_metadata(const grpo::GgufFile& file) {
  for (const auto& [key, value] : file.metadata()) {
    (void)value.to_string();
    std::string why;
    (void)value.convert<int64_t>(why);
    (void)value.convert<uint64_t>(why);
    (void)value.convert<double>(why);
    (void)value.convert<bool>(why);
    (void)value.convert<std::string>(why);
    (void)value.convert<std::vector<std::string>>(why);
    (void)value.convert<std::vector<int64_t>>(why);
    (void)value.convert<std::vector<double>>(why);
    try {
      (void)file.get<std::vector<std::string>>(key);
    } catch (const grpo::Error&) {  // most values are not lists of strings
    }
  }
}

void read_tensors(const grpo::GgufFile& file) {
  for (const auto& info : file.tensors()) {
    grpo_fuzz::require(info.offset + info.byte_size <= file.file_size() - file.data_offset(),
                       "a tensor's bytes lie inside the file");
    (void)info.shape();
    if (!grpo::GgufFile::can_dequantize(info.type) || info.element_count > kMaxDecodedValues) continue;
    const auto tensor = file.tensor(info);
    grpo_fuzz::require(tensor.numel() == info.element_count, "a tensor has element_count values");
    const auto row = info.dims.empty() ? int64_t{1} : info.dims[0];
    if (row > 0 && info.element_count > 0) {
      std::vector<float> values(static_cast<std::size_t>(row));
      file.dequantize_rows(info, info.element_count / row - 1, 1, values.data());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const grpo_fuzz::ScratchFile scratch(".gguf");
  const std::string& path = scratch.write(data, size);
  try {
    const grpo::GgufFile file(path);
    read_metadata(file);
    read_tensors(file);
    try {
      (void)grpo::llama_config_from_gguf(file);
    } catch (const grpo::Error& e) {
      grpo_fuzz::expected(e);
    }
    try {
      const auto tokenizer = grpo::tokenizer_from_gguf(file);
      (void)tokenizer.decode(tokenizer.encode("Hello world! 123 caf\xc3\xa9 <|im_end|>"));
    } catch (const grpo::Error& e) {
      grpo_fuzz::expected(e);
    }
    try {
      const auto chat = grpo::chat_template_from_gguf(file);
      (void)chat.render(nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Hi"}])"), true);
    } catch (const grpo::Error& e) {
      grpo_fuzz::expected(e);
    }
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
  }
  return 0;
}
