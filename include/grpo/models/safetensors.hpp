#pragma once
// Reading and writing Hugging Face safetensors files (single files and sharded checkpoints with
// model.safetensors.index.json).
//
// Format: 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header
//   {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
// then the data buffer; offsets are relative to the buffer start, tensors are row-major and little-endian.
// Every inconsistency (header length beyond the file, bad JSON, byte size != dtype size x shape, offsets outside
// the buffer or overlapping) is an error naming the file and the tensor.

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "grpo/detail/atomic_file.hpp"
#include "grpo/detail/json_depth.hpp"
#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// Named tensors in name order, as stored in a safetensors file or a model's state.
using TensorMap = std::map<std::string, torch::Tensor>;

/// The contents of one safetensors file.
struct SafetensorsFile {
  /// Tensors on the CPU in their stored dtype.
  TensorMap tensors;
  /// The "__metadata__" string map (may be empty).
  std::map<std::string, std::string> metadata;
};

namespace detail {

struct SafetensorsDtype {
  const char* name;
  torch::ScalarType type;
  int64_t size;  // bytes per element
};

inline const std::vector<SafetensorsDtype>& safetensors_dtypes() {
  static const std::vector<SafetensorsDtype> table = {
      {"F64", torch::kDouble, 8}, {"F32", torch::kFloat, 4}, {"F16", torch::kHalf, 2},  {"BF16", torch::kBFloat16, 2},
      {"I64", torch::kLong, 8},   {"I32", torch::kInt, 4},   {"I16", torch::kShort, 2}, {"I8", torch::kChar, 1},
      {"U8", torch::kByte, 1},    {"BOOL", torch::kBool, 1}};
  return table;
}

inline bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

// `where` is the public function ("grpo::read_safetensors: ") that starts the message.
inline void require_little_endian(const std::string& where, const std::string& path) {
  if (!host_is_little_endian()) {
    throw RuntimeError(where + path + ": safetensors I/O needs a little-endian host");
  }
}

// read_safetensors over a seekable binary stream; `path` names the source in messages (the fuzz target reads
// from memory).
inline SafetensorsFile read_safetensors_stream(std::istream& in, const std::string& path) {
  const std::string where = "grpo::read_safetensors: ";
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0, std::ios::beg);
  const auto fail = [&](const std::string& message) -> void { throw RuntimeError(where + path + ": " + message); };
  if (file_size < 8) fail("shorter than the 8-byte header length (" + std::to_string(file_size) + " bytes)");
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
  if (header_length > file_size - 8) {
    fail("header length " + std::to_string(header_length) + " exceeds the " + std::to_string(file_size - 8) +
         " bytes after it (truncated file?)");
  }
  std::string header_text(static_cast<std::size_t>(header_length), '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_length));
  if (!in) fail("could not read the header");
  if (json_nesting_depth(header_text) > max_json_depth) {
    fail("the header nests arrays and objects more than " + std::to_string(max_json_depth) + " deep");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail("the header is not a JSON object");
  const uint64_t buffer_start = 8 + header_length;
  const uint64_t buffer_size = file_size - buffer_start;

  SafetensorsFile out;
  struct Entry {
    std::string name;
    torch::ScalarType type;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    const auto& name = item.key();
    const auto& info = item.value();
    if (name == "__metadata__") {
      if (!info.is_object()) fail("\"__metadata__\" is not an object");
      for (const auto& m : info.items()) {
        if (!m.value().is_string()) fail("\"__metadata__\" value of \"" + m.key() + "\" is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor \"" + name + "\"";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
      fail(what + " needs \"dtype\", \"shape\" and \"data_offsets\", got " + info.dump());
    }
    if (!info["dtype"].is_string()) fail(what + " has a non-string dtype " + info["dtype"].dump());
    const auto dtype_name = info["dtype"].get<std::string>();
    const auto& table = detail::safetensors_dtypes();
    const auto dtype = std::find_if(table.begin(), table.end(), [&](const auto& d) { return dtype_name == d.name; });
    if (dtype == table.end()) fail(what + " has unsupported dtype \"" + dtype_name + "\"");
    Entry entry{name, dtype->type, {}, 0, 0};
    uint64_t elements = 1;
    if (!info["shape"].is_array()) fail(what + " has a non-array shape " + info["shape"].dump());
    constexpr uint64_t largest = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (const auto& dim : info["shape"]) {
      if (!dim.is_number_unsigned()) fail(what + " has a bad shape " + info["shape"].dump());
      const auto size = dim.get<uint64_t>();
      if (size > largest || (size != 0 && elements > largest / size)) {
        fail(what + " has a shape " + info["shape"].dump() + " whose element count overflows 64-bit arithmetic");
      }
      entry.shape.push_back(static_cast<int64_t>(size));
      elements *= size;
    }
    if (elements > largest / static_cast<uint64_t>(dtype->size)) {
      fail(what + " has a shape " + info["shape"].dump() + " whose byte size overflows 64-bit arithmetic");
    }
    const auto& offsets = info["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail(what + " has bad data_offsets " + offsets.dump());
    }
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.begin > entry.end) fail(what + " has data_offsets " + offsets.dump() + " with begin > end");
    const uint64_t expected_bytes = elements * static_cast<uint64_t>(dtype->size);
    if (entry.end - entry.begin != expected_bytes) {
      fail(what + " spans " + std::to_string(entry.end - entry.begin) + " bytes but " + dtype_name + " x shape " +
           info["shape"].dump() + " needs " + std::to_string(expected_bytes));
    }
    if (entry.end > buffer_size) {
      fail(what + " has data_offsets " + offsets.dump() + " beyond the " + std::to_string(buffer_size) +
           "-byte data buffer (truncated file?)");
    }
    entries.push_back(std::move(entry));
  }
  auto by_offset = entries;
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i].begin < by_offset[i - 1].end) {
      fail("tensors \"" + by_offset[i - 1].name + "\" and \"" + by_offset[i].name + "\" overlap in the data buffer");
    }
  }
  for (const auto& entry : by_offset) {
    auto tensor = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.type));
    in.seekg(static_cast<std::streamoff>(buffer_start + entry.begin));
    in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(entry.end - entry.begin));
    if (!in) fail("could not read the data of tensor \"" + entry.name + "\"");
    out.tensors.emplace(entry.name, std::move(tensor));
  }
  return out;
}

}  // namespace detail

/// Reads a safetensors file completely (tensors land on the CPU in their stored dtype).
/// Throws grpo::RuntimeError naming the file (and tensor) on any inconsistency.
inline SafetensorsFile read_safetensors(const std::string& path) {
  const std::string where = "grpo::read_safetensors: ";
  detail::require_little_endian(where, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError(where + "cannot open safetensors file " + path);
  return detail::read_safetensors_stream(in, path);
}

/// Writes `tensors` (any device and dtype among F64/F32/F16/BF16/I64/I32/I16/I8/U8/BOOL) to a safetensors file,
/// atomically (temporary file, fsync, rename). Tensors are stored in name order; the header is padded to 8 bytes.
inline void write_safetensors(const std::string& path, const TensorMap& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::string where = "grpo::write_safetensors: ";
  detail::require_little_endian(where, path);
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw InvalidArgument(where + path + ": tensor \"" + name + "\" is undefined");
    const auto& table = detail::safetensors_dtypes();
    const auto scalar_type = tensor.scalar_type();  // a lambda may not capture a structured binding in C++17
    const auto dtype = std::find_if(table.begin(), table.end(), [&](const auto& d) { return d.type == scalar_type; });
    if (dtype == table.end()) {
      throw InvalidArgument(where + path + ": tensor \"" + name + "\" has unsupported dtype " +
                            std::string(c10::toString(tensor.scalar_type())));
    }
    auto cpu = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(cpu.numel()) * static_cast<uint64_t>(dtype->size);
    header[name] = {{"dtype", dtype->name}, {"shape", cpu.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(cpu));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string bytes;
  bytes.reserve(8 + header_text.size() + static_cast<std::size_t>(offset));
  uint64_t n = header_text.size();
  for (int i = 0; i < 8; ++i, n >>= 8) bytes.push_back(static_cast<char>(n & 0xff));
  bytes += header_text;
  for (const auto& t : data) bytes.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  detail::atomic_write_file(path, bytes, where);
}

/// Name of the index file of a sharded checkpoint.
inline constexpr const char* safetensors_index_name = "model.safetensors.index.json";

/// Reads the weights of a checkpoint directory: `model.safetensors.index.json` (sharded: every tensor of its
/// weight_map must be in the shard it names) if present, else `model.safetensors`.
inline TensorMap read_safetensors_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string where = "grpo::read_safetensors_dir: ";
  const auto index_path = fs::path(dir) / safetensors_index_name;
  if (!fs::exists(index_path)) {
    const auto single = fs::path(dir) / "model.safetensors";
    if (!fs::exists(single)) {
      throw RuntimeError(where + "no model.safetensors or " + std::string(safetensors_index_name) + " in " + dir);
    }
    return read_safetensors(single.string()).tensors;
  }
  std::ifstream in(index_path);
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw RuntimeError(where + index_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw RuntimeError(where + index_path.string() + ": missing the \"weight_map\" object");
  }
  std::map<std::string, std::vector<std::string>> by_file;
  for (const auto& item : index["weight_map"].items()) {
    if (!item.value().is_string()) {
      throw RuntimeError(where + index_path.string() + ": weight_map entry \"" + item.key() + "\" is not a file name");
    }
    by_file[item.value().get<std::string>()].push_back(item.key());
  }
  TensorMap out;
  for (const auto& [file, names] : by_file) {
    const auto shard_path = (fs::path(dir) / file).string();
    auto shard = read_safetensors(shard_path);
    for (const auto& name : names) {
      const auto it = shard.tensors.find(name);
      if (it == shard.tensors.end()) {
        throw RuntimeError(where + index_path.string() + " maps tensor \"" + name + "\" to " + file +
                           ", which does not contain it");
      }
      out[name] = it->second;
    }
  }
  return out;
}

/// Writes `tensors` to `dir` as shards of at most `max_shard_bytes` each (a larger tensor gets its own shard):
/// model-0000i-of-0000n.safetensors plus model.safetensors.index.json (the index is written last).
inline void write_safetensors_sharded(const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::vector<TensorMap> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& [name, tensor] : tensors) {
    const auto bytes = static_cast<uint64_t>(tensor.nbytes());
    if (current > 0 && current + bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back()[name] = tensor;
    current += bytes;
    total += bytes;
  }
  nlohmann::json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = nlohmann::json::object();
  char file[64];
  for (std::size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(file, sizeof(file), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    write_safetensors((fs::path(dir) / file).string(), shards[i], {{"format", "pt"}});
    for (const auto& item : shards[i]) index["weight_map"][item.first] = file;
  }
  detail::atomic_write_file((fs::path(dir) / safetensors_index_name).string(), index.dump(2) + "\n",
                            "grpo::write_safetensors_sharded: ");
}

}  // namespace grpo
