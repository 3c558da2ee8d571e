#pragma once
// Reading GGUF files, the model format of llama.cpp / ggml (versions 2 and 3, little-endian): the header, typed
// metadata, tensor infos, and tensors dequantised to float32 torch tensors in Hugging Face's (row-major) shape.
//
// Layout: "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count; the key/value pairs (key: u64 byte length
// + UTF-8; u32 value type; value: a scalar, a string as u64 length + bytes, or an array as u32 element type + u64
// count + elements); the tensor infos (name; u32 n_dims <= 4; u64 dims[n_dims], innermost first; u32 GGML type;
// u64 offset into the data section, a multiple of the alignment); padding to `general.alignment` (a power of two,
// default 32); the data section. Tensor data are rows of dims[0] values stored as whole blocks of their type
// (detail/gguf_blocks.hpp), so a tensor with dims [d0, d1] is the row-major [d1, d0] matrix of PyTorch.
//
// The file is memory-mapped (detail/gguf_mapping.hpp); GgufFile keeps the parsed metadata and tensor infos and
// reads tensor bytes from the mapping only when a tensor is asked for. Every read is bounds-checked and every
// count, size and offset is computed in checked 64-bit arithmetic. Errors name the file and the key or tensor:
// grpo::RuntimeError for a file that cannot be read as GGUF (cannot open, not GGUF, unsupported version, truncated
// header / metadata / tensor infos / tensor data, unknown tensor type id, overflowing dims, bad offsets),
// grpo::InvalidArgument for a readable file that lacks what the caller asks for (a missing key, a value of another
// type, a tensor of a type this reader cannot dequantise).

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "grpo/error.hpp"
#include "grpo/models/detail/gguf_blocks.hpp"
#include "grpo/models/detail/gguf_mapping.hpp"

namespace grpo {

/// Type of a GGUF metadata value (the ids the format uses).
enum class GgufValueType : uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

/// "uint8", ..., "float64", or "type <id>" for an id the format does not define.
inline std::string gguf_value_type_name(GgufValueType type) {
  static const char* const names[] = {"uint8",   "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                      "boolean", "string", "array",  "uint64", "int64",  "float64"};
  const auto id = static_cast<uint32_t>(type);
  return id < 13 ? names[id] : "type " + std::to_string(id);
}

/// GGML tensor type id (the values of ggml's enum ggml_type). Any uint32 read from a file fits; the named ones are
/// the types this reader can dequantise.
enum class GgmlType : uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  bf16 = 30,
};

/// "Q4_K", "F32", ... as ggml names them (also for types this reader cannot dequantise), or "unknown type <id>".
inline std::string ggml_type_name(GgmlType type) {
  const auto* traits = detail::ggml_type_traits(static_cast<uint32_t>(type));
  return traits != nullptr ? traits->name : "unknown type " + std::to_string(static_cast<uint32_t>(type));
}

/// One metadata value: a number, bool, string, or array of values (arrays of arrays included).
class GgufValue {
 public:
  /// Elements of an array value.
  using Array = std::vector<GgufValue>;
  /// Unsigned integers as uint64_t, signed ones as int64_t, float32/float64 as double (exactly), ...
  using Storage = std::variant<uint64_t, int64_t, double, bool, std::string, Array>;

  GgufValue() = default;
  /// A value of `type` (for arrays, `element_type` is the type of the elements).
  GgufValue(GgufValueType type, Storage storage, GgufValueType element_type = GgufValueType::uint8)
      : type_(type), element_type_(element_type), storage_(std::move(storage)) {}

  /// The stored type.
  GgufValueType type() const { return type_; }
  /// The element type of an array (meaningless for other types).
  GgufValueType element_type() const { return element_type_; }
  /// The raw storage.
  const Storage& storage() const { return storage_; }

  /// The value as T, one of: int64_t or uint64_t (any integer type whose value fits), double (float32, float64 or
  /// any integer type), bool, std::string, or std::vector of one of these (an array, converted element by
  /// element). Throws grpo::InvalidArgument ("grpo::GgufValue: ...") when the stored type does not convert;
  /// GgufFile::get names the file and the key instead.
  template <class T>
  T get() const {
    std::string why;
    auto value = convert<T>(why);
    if (!value) throw InvalidArgument("grpo::GgufValue: " + why);
    return std::move(*value);
  }

  /// A short rendering for messages: the number, the quoted string, or "[array of N <type>]".
  std::string to_string() const {
    if (const auto* u = std::get_if<uint64_t>(&storage_)) return std::to_string(*u);
    if (const auto* i = std::get_if<int64_t>(&storage_)) return std::to_string(*i);
    if (const auto* d = std::get_if<double>(&storage_)) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.9g", *d);
      return buffer;
    }
    if (const auto* b = std::get_if<bool>(&storage_)) return *b ? "true" : "false";
    if (const auto* s = std::get_if<std::string>(&storage_)) {
      return "\"" + (s->size() > 60 ? s->substr(0, 57) + "..." : *s) + "\"";
    }
    return "[array of " + std::to_string(std::get<Array>(storage_).size()) + " " + gguf_value_type_name(element_type_) +
           "]";
  }

  /// Conversion without throwing: nullopt with `why` set when the stored type does not convert to T.
  template <class T>
  std::optional<T> convert(std::string& why) const {
    const auto mismatch = [&](const char* wanted) {
      why = "holds " + gguf_value_type_name(type_) + " " + to_string() + ", not " + wanted;
      return std::optional<T>();
    };
    if constexpr (std::is_same_v<T, int64_t>) {
      if (const auto* i = std::get_if<int64_t>(&storage_)) return *i;
      if (const auto* u = std::get_if<uint64_t>(&storage_)) {
        if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(*u);
      }
      return mismatch("an integer (int64)");
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (const auto* u = std::get_if<uint64_t>(&storage_)) return *u;
      if (const auto* i = std::get_if<int64_t>(&storage_)) {
        if (*i >= 0) return static_cast<uint64_t>(*i);
      }
      return mismatch("a non-negative integer (uint64)");
    } else if constexpr (std::is_same_v<T, double>) {
      if (const auto* d = std::get_if<double>(&storage_)) return *d;
      if (const auto* i = std::get_if<int64_t>(&storage_)) return static_cast<double>(*i);
      if (const auto* u = std::get_if<uint64_t>(&storage_)) return static_cast<double>(*u);
      return mismatch("a number");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (const auto* b = std::get_if<bool>(&storage_)) return *b;
      return mismatch("a boolean");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (const auto* s = std::get_if<std::string>(&storage_)) return *s;
      return mismatch("a string");
    } else {
      static_assert(is_vector<T>::value,
                    "GgufValue::get<T>: T must be int64_t, uint64_t, double, bool, "
                    "std::string or a std::vector of them");
      const auto* array = std::get_if<Array>(&storage_);
      if (array == nullptr) return mismatch("an array");
      T out;
      out.reserve(array->size());
      for (std::size_t i = 0; i < array->size(); ++i) {
        auto element = (*array)[i].template convert<typename T::value_type>(why);
        if (!element) {
          why = "element " + std::to_string(i) + " " + why;
          return std::nullopt;
        }
        out.push_back(std::move(*element));
      }
      return out;
    }
  }

 private:
  template <class V>
  struct is_vector : std::false_type {};
  template <class V>
  struct is_vector<std::vector<V>> : std::true_type {};

  GgufValueType type_ = GgufValueType::uint8;
  GgufValueType element_type_ = GgufValueType::uint8;
  Storage storage_ = uint64_t{0};
};

/// Where one tensor lives in a GGUF file and what it holds.
struct GgufTensorInfo {
  /// Name as stored ("blk.0.attn_q.weight").
  std::string name;
  /// Dimensions as stored, innermost (contiguous) first: [d0, d1, ...]; d0 is the row length.
  std::vector<int64_t> dims;
  /// GGML type of the data.
  GgmlType type = GgmlType::f32;
  /// Byte offset of the data within the data section (GgufFile::data_offset() + offset in the file).
  uint64_t offset = 0;
  /// Number of values (product of dims).
  int64_t element_count = 0;
  /// Bytes of data (element_count / block size x bytes per block).
  uint64_t byte_size = 0;

  /// PyTorch / Hugging Face shape: dims reversed (outermost first), e.g. [out_features, in_features].
  std::vector<int64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

namespace detail {

// Bounds-checked little-endian reads over the mapped bytes; errors name the file, the item and the byte position.
class GgufCursor {
 public:
  GgufCursor(const unsigned char* data, uint64_t size, const std::string& where)
      : data_(data), size_(size), where_(where) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }

  [[noreturn]] void fail(const std::string& message) const { throw RuntimeError(where_ + message); }

  const unsigned char* take(uint64_t bytes, const std::string& what) {
    if (bytes > remaining()) {
      fail("truncated file: " + what + " needs " + std::to_string(bytes) + " bytes at byte " +
           std::to_string(position_) + " but the file ends at byte " + std::to_string(size_));
    }
    const auto* p = data_ + position_;
    position_ += bytes;
    return p;
  }
  uint8_t u8(const std::string& what) { return *take(1, what); }
  uint16_t u16(const std::string& what) { return read_u16_le(take(2, what)); }
  uint32_t u32(const std::string& what) { return read_u32_le(take(4, what)); }
  uint64_t u64(const std::string& what) {
    const auto* p = take(8, what);
    return static_cast<uint64_t>(read_u32_le(p)) | (static_cast<uint64_t>(read_u32_le(p + 4)) << 32);
  }
  std::string string(const std::string& what) {
    const auto length = u64("the length of " + what);
    const auto* p = take(length, what + " (" + std::to_string(length) + " bytes)");
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(length));
  }

  // A value of `type`; `what` names it in errors; arrays nest at most 8 deep.
  GgufValue value(GgufValueType type, const std::string& what, int depth = 0) {
    switch (type) {
      case GgufValueType::uint8:
        return {type, uint64_t{u8(what)}};
      case GgufValueType::int8:
        return {type, int64_t{static_cast<int8_t>(u8(what))}};
      case GgufValueType::uint16:
        return {type, uint64_t{u16(what)}};
      case GgufValueType::int16:
        return {type, int64_t{static_cast<int16_t>(u16(what))}};
      case GgufValueType::uint32:
        return {type, uint64_t{u32(what)}};
      case GgufValueType::int32:
        return {type, int64_t{static_cast<int32_t>(u32(what))}};
      case GgufValueType::float32:
        return {type, static_cast<double>(float_from_bits(u32(what)))};
      case GgufValueType::boolean: {
        const auto byte = u8(what);
        if (byte > 1) fail(what + " is a boolean stored as " + std::to_string(byte) + " (expected 0 or 1)");
        return {type, byte == 1};
      }
      case GgufValueType::string:
        return {type, string(what)};
      case GgufValueType::uint64:
        return {type, u64(what)};
      case GgufValueType::int64:
        return {type, static_cast<int64_t>(u64(what))};
      case GgufValueType::float64: {
        const auto bits = u64(what);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        return {type, d};
      }
      case GgufValueType::array: {
        if (depth >= 8) fail(what + " nests arrays more than 8 deep");
        const auto element_type = static_cast<GgufValueType>(u32("the element type of " + what));
        const auto count = u64("the length of " + what);
        const auto minimum = minimum_size(element_type, what);
        if (count > remaining() / minimum) {
          fail("truncated file: " + what + " declares " + std::to_string(count) + " elements of " +
               gguf_value_type_name(element_type) + " but only " + std::to_string(remaining()) + " bytes follow");
        }
        GgufValue::Array elements;
        elements.reserve(static_cast<std::size_t>(
            std::min<uint64_t>(count, 1 << 16)));  // capped: a lying count allocates nothing up front
        const auto element = [&](uint64_t i) { return "element " + std::to_string(i) + " of " + what; };
        for (uint64_t i = 0; i < count; ++i) {
          if (element_type == GgufValueType::string) {  // the large case (vocabularies): messages only when needed
            if (remaining() < 8) take(8, "the length of " + element(i));  // throws
            const auto length = u64("");
            if (length > remaining()) take(length, element(i) + " (" + std::to_string(length) + " bytes)");  // throws
            elements.emplace_back(element_type, std::string(reinterpret_cast<const char*>(data_ + position_),
                                                            static_cast<std::size_t>(length)));
            position_ += length;
          } else if (element_type == GgufValueType::array) {
            elements.push_back(value(element_type, element(i), depth + 1));
          } else {  // fixed size: the count check above guarantees the bytes
            elements.push_back(value(element_type, what, depth + 1));
          }
        }
        return {type, std::move(elements), element_type};
      }
    }
    fail(what + " has unknown value type " + std::to_string(static_cast<uint32_t>(type)));
  }

 private:
  // The fewest bytes one element of `type` takes (a string: its length field; an array: type and length).
  uint64_t minimum_size(GgufValueType type, const std::string& what) const {
    switch (type) {
      case GgufValueType::uint8:
      case GgufValueType::int8:
      case GgufValueType::boolean:
        return 1;
      case GgufValueType::uint16:
      case GgufValueType::int16:
        return 2;
      case GgufValueType::uint32:
      case GgufValueType::int32:
      case GgufValueType::float32:
        return 4;
      case GgufValueType::uint64:
      case GgufValueType::int64:
      case GgufValueType::float64:
      case GgufValueType::string:
        return 8;
      case GgufValueType::array:
        return 12;
    }
    fail(what + " has unknown element type " + std::to_string(static_cast<uint32_t>(type)));
  }

  const unsigned char* data_;
  uint64_t size_;
  uint64_t position_ = 0;
  const std::string& where_;
};

}  // namespace detail

/// An open GGUF file: header, metadata and tensor infos parsed at construction; tensor data read from the
/// memory-mapped file on request. Cheap to move; copies share the mapping.
class GgufFile {
 public:
  /// Opens and parses `path`; throws grpo::RuntimeError naming the file on anything unreadable (see the top of
  /// gguf.hpp). Tensor data are checked to lie inside the file, not decoded.
  explicit GgufFile(const std::string& path) : path_(path) {
    const std::string where = "grpo::GgufFile: " + path + ": ";
    mapping_ = std::make_shared<const detail::MappedFile>(path, "grpo::GgufFile: ");
    detail::GgufCursor in(mapping_->data(), mapping_->size(), where);
    if (mapping_->size() < 24) {
      in.fail("truncated file: " + std::to_string(mapping_->size()) + " bytes, fewer than the 24-byte GGUF header");
    }
    if (std::memcmp(mapping_->data(), "GGUF", 4) != 0) {
      char magic[48];
      const auto* m = mapping_->data();
      std::snprintf(magic, sizeof magic, "%02x %02x %02x %02x", m[0], m[1], m[2], m[3]);
      in.fail(std::string("not a GGUF file (it starts with the bytes ") + magic + ", not \"GGUF\")");
    }
    in.take(4, "the magic");
    version_ = in.u32("the version");
    if (version_ != 2 && version_ != 3) {
      const auto swapped =
          ((version_ & 0xffu) << 24) | ((version_ & 0xff00u) << 8) | ((version_ >> 8) & 0xff00u) | (version_ >> 24);
      if (swapped == 2 || swapped == 3) in.fail("a big-endian GGUF file, which is not supported");
      in.fail("GGUF version " + std::to_string(version_) + " is not supported (versions 2 and 3 are)");
    }
    const auto tensor_count = in.u64("the tensor count");
    const auto kv_count = in.u64("the metadata count");
    // Each key/value takes at least 13 bytes (key length, type, one byte of value), each tensor info 24.
    if (kv_count > in.remaining() / 13) {
      in.fail("truncated or corrupt file: " + std::to_string(kv_count) + " metadata entries cannot fit in the " +
              std::to_string(in.remaining()) + " bytes after the header");
    }
    if (tensor_count > in.remaining() / 24) {
      in.fail("truncated or corrupt file: " + std::to_string(tensor_count) + " tensor infos cannot fit in the " +
              std::to_string(in.remaining()) + " bytes after the header");
    }

    metadata_.reserve(static_cast<std::size_t>(std::min<uint64_t>(kv_count, 1 << 12)));
    for (uint64_t i = 0; i < kv_count; ++i) {
      auto key = in.string("the key of metadata entry " + std::to_string(i));
      const auto what = "the value of key \"" + key + "\"";
      const auto type = static_cast<GgufValueType>(in.u32("the type of " + what));
      auto value = in.value(type, what);
      if (!key_index_.emplace(key, metadata_.size()).second) in.fail("key \"" + key + "\" appears twice");
      metadata_.emplace_back(std::move(key), std::move(value));
    }
    if (const auto* alignment = find("general.alignment")) {
      std::string why;
      const auto value = alignment->convert<uint64_t>(why);
      if (!value || *value == 0 || (*value & (*value - 1)) != 0) {
        in.fail("key \"general.alignment\" must be a power of two, got " + alignment->to_string());
      }
      alignment_ = *value;
    }

    tensors_.reserve(static_cast<std::size_t>(std::min<uint64_t>(tensor_count, 1 << 12)));
    for (uint64_t i = 0; i < tensor_count; ++i) {
      GgufTensorInfo info;
      info.name = in.string("the name of tensor info " + std::to_string(i));
      const auto what = "tensor \"" + info.name + "\"";
      const auto n_dims = in.u32("the dimension count of " + what);
      if (n_dims > 4) in.fail(what + " has " + std::to_string(n_dims) + " dimensions (at most 4)");
      // The product of the non-zero dimensions must fit too: LibTorch multiplies the sizes of shape() (dims
      // reversed) in order, so [0, 2^40, 2^40] would overflow there although it holds no values.
      uint64_t nonzero_product = 1;
      bool has_zero = false;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const auto dim = in.u64("dimension " + std::to_string(d) + " of " + what);
        if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
            (dim != 0 && nonzero_product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim)) {
          in.fail(what + " has dimensions whose product overflows 64-bit arithmetic (dimension " + std::to_string(d) +
                  " is " + std::to_string(dim) + ")");
        }
        if (dim == 0) has_zero = true;
        if (dim != 0) nonzero_product *= dim;
        info.dims.push_back(static_cast<int64_t>(dim));
      }
      const uint64_t elements = has_zero ? 0 : nonzero_product;
      const auto type_id = in.u32("the type of " + what);
      const auto* traits = detail::ggml_type_traits(type_id);
      if (traits == nullptr) in.fail(what + " has unknown tensor type id " + std::to_string(type_id));
      info.type = static_cast<GgmlType>(type_id);
      info.offset = in.u64("the data offset of " + what);
      const auto row = n_dims > 0 ? static_cast<uint64_t>(info.dims[0]) : 1;
      if (row % traits->block_size != 0) {
        in.fail(what + " of type " + traits->name + " has rows of " + std::to_string(row) +
                " values, not a multiple of its block size " + std::to_string(traits->block_size));
      }
      const auto blocks = elements / traits->block_size;
      if (blocks > std::numeric_limits<uint64_t>::max() / traits->type_size) {
        in.fail(what + " has a byte size that overflows 64-bit arithmetic");
      }
      info.element_count = static_cast<int64_t>(elements);
      info.byte_size = blocks * traits->type_size;
      if (!tensor_index_.emplace(info.name, tensors_.size()).second) in.fail(what + " appears twice");
      tensors_.push_back(std::move(info));
    }

    // The data section starts at the next multiple of the alignment.
    const auto end_of_infos = in.position();
    data_offset_ = end_of_infos + (alignment_ - end_of_infos % alignment_) % alignment_;
    const auto file_size = mapping_->size();
    std::vector<const GgufTensorInfo*> by_offset;
    for (const auto& info : tensors_) {
      const auto what = "tensor \"" + info.name + "\"";
      if (info.offset % alignment_ != 0) {
        in.fail(what + " has data offset " + std::to_string(info.offset) + ", not a multiple of the alignment " +
                std::to_string(alignment_));
      }
      if (data_offset_ > file_size || info.offset > file_size - data_offset_ ||
          info.byte_size > file_size - data_offset_ - info.offset) {
        in.fail("truncated file: " + what + " needs " + std::to_string(info.byte_size) + " bytes at offset " +
                std::to_string(info.offset) + " of the data section (file byte " + std::to_string(data_offset_) +
                ") but the file has " + std::to_string(file_size) + " bytes");
      }
      by_offset.push_back(&info);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->byte_size) {
        in.fail("tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name + "\" overlap");
      }
    }
  }

  /// The path given at construction.
  const std::string& path() const { return path_; }
  /// Format version (2 or 3).
  uint32_t version() const { return version_; }
  /// Alignment of the data section and of each tensor's data (general.alignment, default 32).
  uint64_t alignment() const { return alignment_; }
  /// File offset of the data section.
  uint64_t data_offset() const { return data_offset_; }
  /// File size in bytes.
  uint64_t file_size() const { return mapping_->size(); }

  /// Every key/value pair in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  /// The value of `key`, or nullptr.
  const GgufValue* find(const std::string& key) const {
    const auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
  }
  /// True when `key` is present.
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  /// The value of `key`; throws grpo::InvalidArgument "...: missing required key "<key>"" when absent.
  const GgufValue& at(const std::string& key) const {
    const auto* value = find(key);
    if (value == nullptr) throw InvalidArgument(where() + "missing required key \"" + key + "\"");
    return *value;
  }
  /// The value of `key` as T (see GgufValue::get); errors name the file and the key.
  template <class T>
  T get(const std::string& key) const {
    return convert<T>(key, at(key));
  }
  /// The value of `key` as T, or nullopt when the key is absent (a value of another type is still an error).
  template <class T>
  std::optional<T> get_optional(const std::string& key) const {
    const auto* value = find(key);
    if (value == nullptr) return std::nullopt;
    return convert<T>(key, *value);
  }

  /// Every tensor info in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  /// The info of tensor `name`, or nullptr.
  const GgufTensorInfo* find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  /// The info of tensor `name`; throws grpo::InvalidArgument naming it when absent.
  const GgufTensorInfo& tensor_info(const std::string& name) const {
    const auto* info = find_tensor(name);
    if (info == nullptr) throw InvalidArgument(where() + "no tensor \"" + name + "\"");
    return *info;
  }
  /// The raw bytes of a tensor (info.byte_size of them), valid while this file (or a copy) lives.
  const unsigned char* tensor_data(const GgufTensorInfo& info) const {
    return mapping_->data() + data_offset_ + info.offset;
  }

  /// True when this reader can dequantise `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
  static bool can_dequantize(GgmlType type) {
    const auto* traits = detail::ggml_type_traits(static_cast<uint32_t>(type));
    return traits != nullptr && traits->supported;
  }

  /// Decodes tensor `info` to info.element_count float32 values at `out`, in storage order (row-major in shape()).
  /// Throws grpo::InvalidArgument naming the tensor and its type when the type cannot be dequantised.
  void dequantize_into(const GgufTensorInfo& info, float* out) const {
    const auto row = info.dims.empty() ? 1 : info.dims[0];
    dequantize_rows(info, 0, row == 0 ? 0 : info.element_count / row, out);
  }

  /// Decodes rows [first, first + count) of tensor `info` (a row: dims[0] values, one row of shape() flattened to
  /// 2-D) to count x dims[0] float32 values at `out`. Errors as dequantize_into, and for rows outside the tensor.
  void dequantize_rows(const GgufTensorInfo& info, int64_t first, int64_t count, float* out) const {
    const auto* traits = detail::ggml_type_traits(static_cast<uint32_t>(info.type));
    if (traits == nullptr || !traits->supported) {
      throw InvalidArgument(where() + "tensor \"" + info.name + "\" has type " + ggml_type_name(info.type) +
                            ", which grpo-cpp cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                            "Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
    }
    const auto row = info.dims.empty() ? 1 : info.dims[0];
    const auto rows = row == 0 ? 0 : info.element_count / row;
    if (first < 0 || count < 0 || first > rows || count > rows - first) {
      throw InvalidArgument(where() + "tensor \"" + info.name + "\" has " + std::to_string(rows) + " rows; rows [" +
                            std::to_string(first) + ", " + std::to_string(first) + " + " + std::to_string(count) +
                            ") do not exist");
    }
    const auto blocks_per_row = static_cast<uint64_t>(row) / traits->block_size;
    const auto blocks = blocks_per_row * static_cast<uint64_t>(count);
    const auto* src = tensor_data(info) + blocks_per_row * static_cast<uint64_t>(first) * traits->type_size;
    // Chunks of blocks decoded in parallel on LibTorch's intra-op threads (the blocks are independent).
    const auto values_per_block = static_cast<int64_t>(traits->block_size);
    at::parallel_for(0, static_cast<int64_t>(blocks), 16384 / values_per_block + 1, [&](int64_t begin, int64_t end) {
      detail::dequantize_blocks(traits->id, src + static_cast<uint64_t>(begin) * traits->type_size,
                                static_cast<uint64_t>(end - begin), out + begin * values_per_block);
    });
  }

  /// Tensor `name` as float32 in shape() (Hugging Face's layout), on the CPU.
  torch::Tensor tensor(const std::string& name) const { return tensor(tensor_info(name)); }
  /// Tensor `info` as float32 in info.shape(), on the CPU.
  torch::Tensor tensor(const GgufTensorInfo& info) const {
    auto out = torch::empty(info.shape(), torch::TensorOptions().dtype(torch::kFloat));
    dequantize_into(info, out.data_ptr<float>());
    return out;
  }

 private:
  std::string where() const { return "grpo::GgufFile: " + path_ + ": "; }

  template <class T>
  T convert(const std::string& key, const GgufValue& value) const {
    std::string why;
    auto converted = value.convert<T>(why);
    if (!converted) throw InvalidArgument(where() + "key \"" + key + "\" " + why);
    return std::move(*converted);
  }

  std::string path_;
  std::shared_ptr<const detail::MappedFile> mapping_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, std::size_t> key_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;
};

}  // namespace grpo
