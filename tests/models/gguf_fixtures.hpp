#pragma once
// GGUF files for the tests: the committed fixtures (tests/fixtures/, made by the scripts there) and a minimal
// byte-by-byte writer, independent of the reader, for files the fixtures do not cover (damaged, hostile, other
// architectures, RoPE scaling keys).

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace grpo::testing {

// Path of `relative` under tests/fixtures/ of the source tree.
inline std::string fixture_path(const std::string& relative) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / relative).string();
}

// The JSON file `relative` under tests/fixtures/.
inline nlohmann::json read_json_fixture(const std::string& relative) {
  std::ifstream in(fixture_path(relative));
  return nlohmann::json::parse(in);
}

// The real SmolLM2-135M-Instruct GGUF: $GRPO_SMOLLM2_GGUF when set, else
// <build>/models/SmolLM2-135M-Instruct.Q4_1.gguf, <build> being the folder above the one holding the test executable
// (where cmake/fetch-smollm2.cmake puts it); tests run from elsewhere than <build>/tests set the variable.
inline std::string smollm2_gguf_path() {
  if (const char* path = std::getenv("GRPO_SMOLLM2_GGUF"); path != nullptr && *path != '\0') return path;
  std::error_code error;
  const auto executable = std::filesystem::read_symlink("/proc/self/exe", error);
  const auto build = error ? std::filesystem::current_path().parent_path() : executable.parent_path().parent_path();
  return (build / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").string();
}

// Appends `value` as `bytes` little-endian bytes.
inline void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// A GGUF file assembled field by field. Value type ids: 4 uint32, 6 float32, 7 bool, 8 string, 9 array.
class GgufBuilder {
 public:
  // A key with a raw value: its type id and the encoded value bytes.
  GgufBuilder& raw(const std::string& key, uint32_t type, const std::string& value) {
    gguf_string(kv_, key);
    append_le(kv_, type, 4);
    kv_ += value;
    ++kv_count_;
    return *this;
  }
  GgufBuilder& u32(const std::string& key, uint32_t value) {
    std::string v;
    append_le(v, value, 4);
    return raw(key, 4, v);
  }
  GgufBuilder& f32(const std::string& key, float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    std::string v;
    append_le(v, bits, 4);
    return raw(key, 6, v);
  }
  GgufBuilder& str(const std::string& key, const std::string& value) {
    std::string v;
    gguf_string(v, value);
    return raw(key, 8, v);
  }
  GgufBuilder& strings(const std::string& key, const std::vector<std::string>& values) {
    std::string v;
    append_le(v, 8, 4);
    append_le(v, values.size(), 8);
    for (const auto& s : values) gguf_string(v, s);
    return raw(key, 9, v);
  }
  // Sets the alignment of the data section and writes general.alignment.
  GgufBuilder& alignment(uint32_t value) {
    alignment_ = value;
    return u32("general.alignment", value);
  }
  // A tensor: dims innermost first, GGML type id, its data bytes (placed at the next aligned offset unless
  // `offset` is given).
  GgufBuilder& tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type,
                      const std::string& data, int64_t offset = -1) {
    if (offset < 0) offset = static_cast<int64_t>(padded(data_.size()));
    gguf_string(infos_, name);
    append_le(infos_, dims.size(), 4);
    for (const auto d : dims) append_le(infos_, d, 8);
    append_le(infos_, type, 4);
    append_le(infos_, static_cast<uint64_t>(offset), 8);
    if (!data.empty()) {  // an empty `data` at a huge offset writes nothing
      data_.resize(std::max(data_.size(), static_cast<std::size_t>(offset) + data.size()), '\0');
      data_.replace(static_cast<std::size_t>(offset), data.size(), data);
    }
    ++tensor_count_;
    return *this;
  }
  // An F32 tensor.
  GgufBuilder& tensor_f32(const std::string& name, const std::vector<uint64_t>& dims,
                          const std::vector<float>& values) {
    std::string data;
    for (const float v : values) {
      uint32_t bits = 0;
      std::memcpy(&bits, &v, 4);
      append_le(data, bits, 4);
    }
    return tensor(name, dims, 0, data);
  }

  // The whole file; counts can be overridden to lie.
  std::string bytes(uint32_t version = 3, int64_t tensor_count = -1, int64_t kv_count = -1) const {
    std::string out = "GGUF";
    append_le(out, version, 4);
    append_le(out, tensor_count < 0 ? tensor_count_ : static_cast<uint64_t>(tensor_count), 8);
    append_le(out, kv_count < 0 ? kv_count_ : static_cast<uint64_t>(kv_count), 8);
    out += kv_ + infos_;
    out.resize(padded(out.size()), '\0');
    return out + data_;
  }

 private:
  static void gguf_string(std::string& out, const std::string& s) {
    append_le(out, s.size(), 8);
    out += s;
  }
  std::size_t padded(std::size_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

  std::string kv_, infos_, data_;
  uint64_t kv_count_ = 0, tensor_count_ = 0;
  std::size_t alignment_ = 32;
};

// The metadata keys llama_config_from_gguf requires, for a tiny llama (no tensors), less the key `except`.
inline GgufBuilder tiny_llama_metadata(const std::string& except = "") {
  GgufBuilder b;
  b.str("general.architecture", "llama");
  for (const auto& [key, value] : std::vector<std::pair<std::string, uint32_t>>{{"llama.block_count", 1},
                                                                                {"llama.embedding_length", 32},
                                                                                {"llama.feed_forward_length", 64},
                                                                                {"llama.attention.head_count", 4},
                                                                                {"llama.attention.head_count_kv", 2},
                                                                                {"llama.context_length", 128},
                                                                                {"llama.vocab_size", 64}}) {
    if (key != except) b.u32(key, value);
  }
  for (const auto& [key, value] : std::vector<std::pair<std::string, float>>{
           {"llama.attention.layer_norm_rms_epsilon", 1e-5f}, {"llama.rope.freq_base", 10000.0f}}) {
    if (key != except) b.f32(key, value);
  }
  return b;
}

}  // namespace grpo::testing
