// The GGUF reader: every supported block type decoded bit-exactly as gguf-py decodes it (fixtures made by
// tests/fixtures/gguf/make_fixtures.py), metadata of every value type, dimension order, and the errors for damaged
// and hostile files.
#include "grpo/models/gguf.hpp"

#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "grpo/models/llama.hpp"
#include "grpo/models/llama_gguf.hpp"
#include "models/gguf_fixtures.hpp"
#include "models/model_fixtures.hpp"
#include "support/error_checks.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo::testing::append_le;
using grpo_test::Contains;

TEST_CASE("every supported GGML type dequantises as gguf-py does, and metadata of every value type reads back",
          "[gguf]") {
  const grpo::GgufFile file(grpo::testing::fixture_path("gguf/quants.gguf"));
  CHECK(file.version() == 3);
  CHECK(file.alignment() == 64);
  CHECK(file.data_offset() % 64 == 0);
  CHECK(file.get<std::string>("general.architecture") == "test");

  // Blocks: the values gguf.quants.dequantize gave for the same bytes, compared bit for bit (the arithmetic is the
  // same float32 operations in the same order). A compiler that may fuse a * b + c into one FMA rounds once
  // instead of twice, so such builds get a tolerance of one rounding of the product instead.
  const std::vector<std::pair<std::string, grpo::GgmlType>> types = {
      {"f32", grpo::GgmlType::f32},   {"f16", grpo::GgmlType::f16},   {"bf16", grpo::GgmlType::bf16},
      {"q8_0", grpo::GgmlType::q8_0}, {"q4_0", grpo::GgmlType::q4_0}, {"q4_1", grpo::GgmlType::q4_1},
      {"q5_0", grpo::GgmlType::q5_0}, {"q5_1", grpo::GgmlType::q5_1}, {"q4_k", grpo::GgmlType::q4_k},
      {"q5_k", grpo::GgmlType::q5_k}, {"q6_k", grpo::GgmlType::q6_k}};
  for (const auto& [name, type] : types) {
    INFO("tensor " << name);
    const auto& info = file.tensor_info(name);
    CHECK(info.type == type);
    CHECK(grpo::GgufFile::can_dequantize(type));
    const auto values = file.tensor(info);
    const auto expected = file.tensor(name + ".expected");
    REQUIRE(values.sizes() == expected.sizes());
    CHECK(values.numel() >= 64);
#ifdef __FP_FAST_FMAF
    CHECK(torch::allclose(values, expected, 0, 1e-7 * expected.abs().max().item<double>()));
#else
    CHECK(torch::equal(values.view(torch::kInt), expected.view(torch::kInt)));
#endif
  }
  CHECK(grpo::ggml_type_name(grpo::GgmlType::q4_k) == "Q4_K");
  CHECK(file.tensor_info("q6_k").byte_size == 3 * 210);
  CHECK(file.tensor_info("q4_0").shape() == std::vector<int64_t>{3, 64});
  CHECK(file.tensor_info("q4_0").dims == std::vector<int64_t>{64, 3});
  CHECK(torch::equal(file.tensor("cube"), torch::arange(24, torch::kFloat).view({2, 3, 4})));
  CHECK(torch::equal(file.tensor("vector"), torch::arange(5, torch::kFloat) - 2));

  // One key per value type, each read as written and as its conversions allow.
  const auto type_of = [&](const std::string& key) { return file.at(key).type(); };
  CHECK(file.get<int64_t>("test.uint8") == 200);
  CHECK(type_of("test.uint8") == grpo::GgufValueType::uint8);
  CHECK(file.get<int64_t>("test.int8") == -100);
  CHECK(file.get<int64_t>("test.uint16") == 60000);
  CHECK(file.get<int64_t>("test.int16") == -30000);
  CHECK(file.get<int64_t>("test.uint32") == 4000000000LL);
  CHECK(file.get<int64_t>("test.int32") == -2000000000LL);
  CHECK(file.get<double>("test.float32") == static_cast<double>(0.1f));
  CHECK(type_of("test.float32") == grpo::GgufValueType::float32);
  CHECK(file.get<bool>("test.bool"));
  CHECK(file.get<std::string>("test.string") == "h\xc3\xa9llo \xe2\x9c\x93");
  CHECK(file.get<uint64_t>("test.uint64") == (uint64_t{1} << 63) + 5);
  CHECK(file.get<int64_t>("test.int64") == -(int64_t{1} << 62) - 3);
  CHECK(file.get<double>("test.float64") == 1.0 / 3.0);
  CHECK(type_of("test.float64") == grpo::GgufValueType::float64);
  CHECK(file.get<std::vector<int64_t>>("test.array.int32") == std::vector<int64_t>{1, -2, 3});
  CHECK(file.at("test.array.int32").element_type() == grpo::GgufValueType::int32);
  CHECK(file.get<std::vector<std::string>>("test.array.string") == std::vector<std::string>{"a", "", "ccc"});
  CHECK(file.get<std::vector<double>>("test.array.float32") == std::vector<double>{0.5, -1.25});
  CHECK(file.get<std::vector<bool>>("test.array.bool") == std::vector<bool>{true, false});
  CHECK(file.get<std::vector<uint64_t>>("test.array.uint64") ==
        std::vector<uint64_t>{1, std::numeric_limits<uint64_t>::max()});
  const auto& nested = std::get<grpo::GgufValue::Array>(file.at("test.array.nested").storage());
  REQUIRE(nested.size() == 2);
  CHECK(nested[0].get<std::vector<int64_t>>() == std::vector<int64_t>{1, 2});
  CHECK(nested[1].get<std::vector<int64_t>>() == std::vector<int64_t>{3});
  CHECK(file.get_optional<int64_t>("test.absent") == std::nullopt);
  CHECK(file.metadata().front().first == "general.architecture");

  // Asking for what is not there, or for another type, names the file and the key.
  const auto path = file.path();
  CHECK_THROWS_WITH(file.get<int64_t>("llama.block_count"),
                    Contains("grpo::GgufFile: " + path + ": missing required key \"llama.block_count\""));
  CHECK_THROWS_WITH(file.get<std::string>("test.uint8"), Contains("key \"test.uint8\" holds uint8 200, not a string"));
  CHECK_THROWS_WITH(file.get<int64_t>("test.uint64"), Contains("not an integer (int64)"));
  CHECK_THROWS_WITH(file.get<uint64_t>("test.int8"), Contains("holds int8 -100"));
  CHECK_THROWS_WITH(file.get<std::vector<int64_t>>("test.array.string"),
                    Contains("element 0 holds string \"a\", not an integer"));
  CHECK_THROWS_WITH(file.tensor("nope"), Contains(path) && Contains("no tensor \"nope\""));
  const auto missing = grpo_test::catch_error<std::invalid_argument>([&] { file.at("nope"); });
  CHECK(missing.as_grpo_error);
  CHECK(missing.as_std_type);
}

TEST_CASE("damaged or hostile GGUF files fail with errors naming the file and the key or tensor", "[gguf]") {
  grpo::testing::TempDir tmp;
  const auto path = tmp.file("bad.gguf");
  const auto open_error = [&](const std::string& bytes, const std::string& expected) {
    grpo::testing::write_bytes(path, bytes);
    INFO(expected);
    CHECK_THROWS_WITH(grpo::GgufFile(path), Contains("grpo::GgufFile: " + path + ": ") && Contains(expected));
    const auto caught = grpo_test::catch_error<std::runtime_error>([&] { grpo::GgufFile file(path); });
    CHECK(caught.as_std_type);
  };
  using grpo::testing::GgufBuilder;
  GgufBuilder good;
  good.str("general.architecture", "llama")
      .u32("llama.block_count", 1)
      .tensor_f32("t", {4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  const auto good_bytes = good.bytes();
  grpo::testing::write_bytes(path, good_bytes);
  CHECK(torch::equal(grpo::GgufFile(path).tensor("t"), torch::arange(8, torch::kFloat).view({2, 4})));

  // Header.
  open_error("", "truncated file: 0 bytes, fewer than the 24-byte GGUF header");
  open_error(good_bytes.substr(0, 20), "fewer than the 24-byte GGUF header");
  open_error("GGML" + good_bytes.substr(4), "not a GGUF file (it starts with the bytes 47 47 4d 4c");
  open_error(good.bytes(1), "GGUF version 1 is not supported (versions 2 and 3 are)");
  std::string big_endian = good_bytes;
  big_endian.replace(4, 4, std::string("\0\0\0\3", 4));
  open_error(big_endian, "a big-endian GGUF file");
  open_error(good.bytes(3, -1, int64_t{1} << 60), "metadata entries cannot fit");
  open_error(good.bytes(3, int64_t{1} << 60), "tensor infos cannot fit");
  grpo::testing::write_bytes(path, good.bytes(2));
  CHECK(grpo::GgufFile(path).version() == 2);

  // Truncation anywhere: in a key, in a value, in a tensor info, in the data.
  const auto data_start = good_bytes.size() - 32;
  open_error(good_bytes.substr(0, 40), "2 metadata entries cannot fit in the 16 bytes after the header");
  open_error(GgufBuilder().u32("a_rather_long_key_name_here", 1).bytes().substr(0, 45),
             "truncated file: the key of metadata entry 0 (27 bytes) needs 27 bytes at byte 32 but the file ends at "
             "byte 45");
  open_error(good_bytes.substr(0, 60), "the value of key \"general.architecture\"");
  open_error(good_bytes.substr(0, 120), "dimension 0 of tensor \"t\"");
  open_error(good_bytes.substr(0, good_bytes.size() - 1),
             "truncated file: tensor \"t\" needs 32 bytes at offset 0 of the data section (file byte " +
                 std::to_string(data_start) + ") but the file has " + std::to_string(good_bytes.size() - 1));

  // Hostile counts, sizes and offsets (64-bit overflow included).
  std::string huge_string;
  append_le(huge_string, ~uint64_t{0}, 8);
  open_error(GgufBuilder().raw("k", 8, huge_string).bytes(), "the value of key \"k\" (18446744073709551615 bytes)");
  std::string huge_array;
  append_le(huge_array, 4, 4);
  append_le(huge_array, uint64_t{1} << 61, 8);
  open_error(GgufBuilder().raw("k", 9, huge_array).bytes(), "the value of key \"k\" declares 2305843009213693952");
  open_error(GgufBuilder().raw("k", 13, "").bytes(), "the value of key \"k\" has unknown value type 13");
  std::string short_string_in_array;
  append_le(short_string_in_array, 8, 4);
  append_le(short_string_in_array, 2, 8);
  append_le(short_string_in_array, 1, 8);
  short_string_in_array += "x";
  append_le(short_string_in_array, 1000, 8);
  open_error(GgufBuilder().raw("k", 9, short_string_in_array).bytes(),
             "truncated file: element 1 of the value of key \"k\" (1000 bytes) needs 1000 bytes");
  open_error(GgufBuilder().raw("k", 7, std::string(1, '\2')).bytes(), "boolean stored as 2");
  open_error(GgufBuilder().u32("k", 1).u32("k", 2).bytes(), "key \"k\" appears twice");
  open_error(GgufBuilder().alignment(48).bytes(), "\"general.alignment\" must be a power of two, got 48");
  open_error(GgufBuilder().tensor("t", {1, 2, 3, 4, 5}, 0, "").bytes(), "tensor \"t\" has 5 dimensions (at most 4)");
  open_error(GgufBuilder().tensor("t", {uint64_t{1} << 62, 8}, 0, "").bytes(),
             "tensor \"t\" has dimensions whose product overflows 64-bit arithmetic (dimension 1 is 8)");
  open_error(GgufBuilder().tensor("t", {~uint64_t{0}}, 0, "").bytes(), "overflows 64-bit arithmetic");
  open_error(GgufBuilder().tensor("t", {uint64_t{1} << 62}, 0, "").bytes(), "byte size that overflows");
  // No values, but LibTorch multiplies shape() = [2^40, 2^40, 0] in order: this was a c10::Error from tensor()
  // (found by tests/fuzz/gguf_fuzz.cpp).
  open_error(GgufBuilder().tensor("t", {0, uint64_t{1} << 40, uint64_t{1} << 40}, 0, "").bytes(),
             "tensor \"t\" has dimensions whose product overflows 64-bit arithmetic (dimension 2 is 1099511627776)");
  grpo::testing::write_bytes(path, GgufBuilder().tensor("t", {0, uint64_t{1} << 20, 3}, 0, "").bytes());
  CHECK(grpo::GgufFile(path).tensor("t").sizes() == torch::IntArrayRef({3, int64_t{1} << 20, 0}));
  open_error(GgufBuilder().tensor("t", {32}, 99, "").bytes(), "tensor \"t\" has unknown tensor type id 99");
  open_error(GgufBuilder().tensor("t", {32}, 12, std::string(144, '\0')).bytes(),
             "tensor \"t\" of type Q4_K has rows of 32 values, not a multiple of its block size 256");
  open_error(GgufBuilder().tensor("t", {2}, 0, std::string(8, '\0'), 4).bytes(),
             "tensor \"t\" has data offset 4, not a multiple of the alignment 32");
  open_error(GgufBuilder().tensor("t", {2}, 0, "", int64_t{1} << 62).bytes(), "truncated file: tensor \"t\" needs 8");
  open_error(
      GgufBuilder().tensor("a", {16}, 0, std::string(64, '\0')).tensor("b", {2}, 0, std::string(8, '\0'), 32).bytes(),
      "tensors \"a\" and \"b\" overlap");
  open_error(GgufBuilder().tensor("t", {2}, 0, std::string(8, '\0')).tensor("t", {2}, 0, std::string(8, '\0')).bytes(),
             "tensor \"t\" appears twice");

  // Readable files that lack what is asked for: a type without a decoder, an architecture that is not llama's.
  grpo::testing::write_bytes(path, GgufBuilder().tensor("t", {256}, 10, std::string(84, '\0')).bytes());
  const grpo::GgufFile q2k(path);
  CHECK(q2k.tensor_info("t").type == static_cast<grpo::GgmlType>(10));
  CHECK_THROWS_WITH(q2k.tensor("t"), Contains(path) && Contains("tensor \"t\" has type Q2_K, which grpo-cpp cannot "
                                                                "dequantise"));
  grpo::testing::write_bytes(path, GgufBuilder().str("general.architecture", "gemma2").bytes());
  CHECK_THROWS_WITH(grpo::llama_config_from_gguf(grpo::GgufFile(path)),
                    Contains("grpo::llama_config_from_gguf: " + path + ": architecture \"gemma2\" is not supported"));
  CHECK_THROWS_WITH(grpo::LlamaModel::from_pretrained(path), Contains("\"gemma2\" is not supported"));
  grpo::testing::write_bytes(path, GgufBuilder().str("general.architecture", "llama").bytes());
  CHECK_THROWS_WITH(grpo::llama_config_from_gguf(grpo::GgufFile(path)),
                    Contains("grpo::llama_config_from_gguf: " + path + ": missing required key \"llama.block_count\""));
  grpo::testing::write_bytes(
      path, grpo::testing::tiny_llama_metadata("llama.context_length").str("llama.context_length", "long").bytes());
  CHECK_THROWS_WITH(grpo::llama_config_from_gguf(grpo::GgufFile(path)), Contains("key \"llama.context_length\""));
  // A head dimension of 1 and a rope_freqs.weight of no values: the largest of no divisors was read past the end
  // (found while writing tests/fuzz/gguf_fuzz.cpp; corpus/gguf/regression_empty_rope_freqs.gguf).
  grpo::testing::write_bytes(path, grpo::testing::tiny_llama_metadata()
                                       .u32("llama.attention.key_length", 1)
                                       .tensor("rope_freqs.weight", {0}, 0, "")
                                       .bytes());
  CHECK_THROWS_WITH(grpo::llama_config_from_gguf(grpo::GgufFile(path)),
                    Contains("grpo::llama_config_from_gguf: " + path) &&
                        Contains("tensor \"rope_freqs.weight\" needs a head dimension of at least 2, but it is 1"));

  // Files that are not there or are not files.
  CHECK_THROWS_WITH(grpo::GgufFile(tmp.file("absent.gguf")), Contains("cannot open") && Contains("absent.gguf"));
  CHECK_THROWS_WITH(grpo::GgufFile(tmp.path().string()), Contains("is not a regular file"));
}
