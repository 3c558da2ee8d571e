// safetensors I/O and Hugging Face checkpoint directories: bit-exact round trips, a file from an independent
// writer, sharded checkpoints, and the errors for bad configs and bad files.
#include "grpo/models/safetensors.hpp"

#include <torch/types.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "grpo/models/llama.hpp"
#include "models/model_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace {

void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// A safetensors file built byte by byte (no library code, no JSON library): each entry is
// {name, dtype, shape, raw little-endian bytes}.
struct RawTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::string minimal_safetensors(const std::vector<RawTensor>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}", data;
  for (const auto& t : tensors) {
    std::string shape;
    for (const auto d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + t.bytes.size()) + "]}";
    data += t.bytes;
  }
  header += "}";
  std::string out;
  append_le(out, header.size(), 8);
  return out + header + data;
}

RawTensor raw_f32(const std::string& name, const torch::Tensor& tensor) {
  const auto t = tensor.detach().to(torch::kFloat).contiguous();
  RawTensor raw{name, "F32", t.sizes().vec(), {}};
  const float* values = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, values + i, 4);
    append_le(raw.bytes, bits, 4);
  }
  return raw;
}

bool same_parameters(grpo::LlamaModel& a, grpo::LlamaModel& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (const auto& item : pa) {
    if (!pb.contains(item.key()) || !torch::equal(item.value(), pb[item.key()])) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a model saved with save_pretrained loads back bit-exact, in float32, bfloat16 and sharded",
          "[safetensors]") {
  grpo::testing::TempDir tmp;
  grpo::LlamaModel model(grpo::testing::tiny_qwen2());
  model.save_pretrained(tmp.file("f32"));
  CHECK(std::filesystem::exists(tmp.file("f32/config.json")));
  for (const auto& entry : std::filesystem::directory_iterator(tmp.file("f32"))) {
    CHECK(entry.path().extension() != ".tmp");  // no temporary left behind
  }
  auto loaded = grpo::LlamaModel::from_pretrained(tmp.file("f32"));
  CHECK(same_parameters(model, *loaded));
  CHECK(loaded->config().model_type == "qwen2");
  CHECK(loaded->config().num_key_value_heads == 1);
  const auto ids = grpo::testing::row_tensor({1, 5, 9, 2});
  CHECK(torch::equal(loaded->forward(ids), model.forward(ids)));

  // bfloat16 weights are stored as BF16 and come back identical.
  model.to(torch::kBFloat16);
  model.save_pretrained(tmp.file("bf16"));
  const auto file = grpo::read_safetensors(tmp.file("bf16/model.safetensors"));
  CHECK(file.tensors.at("model.norm.weight").scalar_type() == torch::kBFloat16);
  CHECK(file.metadata.at("format") == "pt");
  CHECK(nlohmann::json::parse(grpo::testing::read_bytes(tmp.file("bf16/config.json")))["torch_dtype"] == "bfloat16");
  auto loaded_bf16 = grpo::LlamaModel::from_pretrained(tmp.file("bf16"), torch::kBFloat16);
  CHECK(same_parameters(model, *loaded_bf16));

  // Sharded: several files plus the index.
  grpo::LlamaModel tied(grpo::testing::tiny_gqa());
  tied.save_pretrained(tmp.file("sharded"));
  std::filesystem::remove(tmp.file("sharded/model.safetensors"));
  grpo::TensorMap tensors;
  for (const auto& item : tied.named_parameters()) tensors[item.key()] = item.value();
  grpo::write_safetensors_sharded(tmp.file("sharded"), tensors, 40000);
  const auto index = nlohmann::json::parse(grpo::testing::read_bytes(tmp.file("sharded/model.safetensors.index.json")));
  std::set<std::string> shard_files;
  for (const auto& item : index["weight_map"].items()) shard_files.insert(item.value().get<std::string>());
  CHECK(shard_files.size() >= 3);
  CHECK(index["weight_map"].count("lm_head.weight") == 0);
  CHECK(same_parameters(tied, *grpo::LlamaModel::from_pretrained(tmp.file("sharded"))));

  // Every dtype of the format survives a round trip.
  const grpo::TensorMap mixed = {{"f16", torch::randn({3, 2}).to(torch::kHalf)},
                                 {"f64", torch::randn({4}, torch::kDouble)},
                                 {"i64", torch::randint(-100, 100, {5}, torch::kLong)},
                                 {"flag", torch::tensor({true, false, true})},
                                 {"scalar", torch::tensor(2.5f)},
                                 {"empty", torch::zeros({0, 3})}};
  grpo::write_safetensors(tmp.file("mixed.safetensors"), mixed);
  const auto back = grpo::read_safetensors(tmp.file("mixed.safetensors")).tensors;
  REQUIRE(back.size() == mixed.size());
  for (const auto& [name, tensor] : mixed) {
    INFO(name);
    CHECK(back.at(name).scalar_type() == tensor.scalar_type());
    CHECK(torch::equal(back.at(name), tensor));
  }
  const auto mixed_bytes = grpo::testing::read_bytes(tmp.file("mixed.safetensors"));
  CHECK(static_cast<unsigned char>(mixed_bytes[0]) % 8 == 0);  // header length padded to 8 (data aligned)
}

TEST_CASE("a file written by an independent minimal writer loads, with F32, BF16 and F16 tensors", "[safetensors]") {
  grpo::testing::TempDir tmp;
  // 1.0, -2.0, 0.5 in bfloat16 and float16 bit patterns.
  std::string bf16, f16;
  for (const uint16_t bits : {0x3F80, 0xC000, 0x3F00}) append_le(bf16, bits, 2);
  for (const uint16_t bits : {0x3C00, 0xC000, 0x3800}) append_le(f16, bits, 2);
  const auto values = torch::tensor({{1.5f, -0.25f}, {3.0f, 1e-3f}});
  grpo::testing::write_bytes(
      tmp.file("raw.safetensors"),
      minimal_safetensors({raw_f32("a", values), {"b", "BF16", {3}, bf16}, {"c", "F16", {3}, f16}}));
  const auto file = grpo::read_safetensors(tmp.file("raw.safetensors"));
  CHECK(torch::equal(file.tensors.at("a"), values));
  CHECK(file.tensors.at("b").scalar_type() == torch::kBFloat16);
  CHECK(torch::equal(file.tensors.at("b").to(torch::kFloat), torch::tensor({1.0f, -2.0f, 0.5f})));
  CHECK(torch::equal(file.tensors.at("c").to(torch::kFloat), torch::tensor({1.0f, -2.0f, 0.5f})));

  // A whole model written this way (untied llama with attention_bias) loads and computes the same logits.
  grpo::LlamaModel model(grpo::testing::tiny_llama_bias());
  std::vector<RawTensor> raw;
  for (const auto& item : model.named_parameters()) raw.push_back(raw_f32(item.key(), item.value()));
  std::filesystem::create_directories(tmp.file("raw_model"));
  grpo::testing::write_bytes(tmp.file("raw_model/model.safetensors"), minimal_safetensors(raw));
  model.config().save(tmp.file("raw_model/config.json"));
  const auto loaded = grpo::LlamaModel::from_pretrained(tmp.file("raw_model"));
  const auto ids = grpo::testing::row_tensor({3, 1, 4, 1, 5});
  CHECK(torch::equal(loaded->forward(ids), model.forward(ids)));
}

TEST_CASE("bad configs and bad safetensors files fail with errors naming the file, field or tensor", "[safetensors]") {
  grpo::testing::TempDir tmp;
  grpo::LlamaModel model(grpo::testing::tiny_gqa());
  const auto dir = tmp.file("ckpt");
  model.save_pretrained(dir);
  const auto config_path = dir + "/config.json";
  const auto good_config = nlohmann::json::parse(grpo::testing::read_bytes(config_path));
  CHECK(nlohmann::json(grpo::LlamaConfig::load(config_path)) == nlohmann::json(model.config()));  // round trip

  // config.json: missing and unsupported fields.
  const auto config_error = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& expected) {
    auto j = good_config;
    edit(j);
    grpo::testing::write_bytes(config_path, j.dump());
    INFO(expected);
    CHECK_THROWS_WITH(grpo::LlamaModel::from_pretrained(dir), Contains(expected) && Contains("config.json"));
  };
  config_error([](auto& j) { j.erase("hidden_size"); }, "missing required field \"hidden_size\"");
  config_error([](auto& j) { j["model_type"] = "gpt2"; }, "\"gpt2\" is not supported");
  config_error([](auto& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 2.0}}; }, "\"yarn\"");
  config_error([](auto& j) { j["hidden_act"] = "gelu"; }, "hidden_act");
  config_error([](auto& j) { j["num_attention_heads"] = "four"; }, "num_attention_heads");
  config_error([](auto& j) { j["num_key_value_heads"] = 3; }, "num_key_value_heads");
  grpo::testing::write_bytes(config_path, good_config.dump());
  auto minimal_config = nlohmann::json::object();  // defaults fill the optional fields
  for (const char* key :
       {"model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
    minimal_config[key] = good_config[key];
  }
  const auto defaults = minimal_config.get<grpo::LlamaConfig>();
  CHECK(defaults.num_key_value_heads == defaults.num_attention_heads);
  CHECK(defaults.head_dim == defaults.hidden_size / defaults.num_attention_heads);
  const auto llama3_style = [&] {
    auto j = good_config;
    j["eos_token_id"] = {2, 3};
    return j.get<grpo::LlamaConfig>();
  }();
  CHECK(llama3_style.eos_token_ids == std::vector<int64_t>{2, 3});

  // Weights: a missing tensor, a wrong shape, an unexpected tensor.
  grpo::TensorMap tensors;
  for (const auto& item : model.named_parameters()) tensors[item.key()] = item.value();
  const auto weights_path = dir + "/model.safetensors";
  auto edited = tensors;
  edited.erase("model.layers.1.mlp.up_proj.weight");
  grpo::write_safetensors(weights_path, edited);
  CHECK_THROWS_WITH(grpo::LlamaModel::from_pretrained(dir),
                    Contains("\"model.layers.1.mlp.up_proj.weight\" is missing") && Contains(dir));
  edited = tensors;
  edited["model.norm.weight"] = torch::ones({65});
  grpo::write_safetensors(weights_path, edited);
  CHECK_THROWS_WITH(grpo::LlamaModel::from_pretrained(dir),
                    Contains("\"model.norm.weight\" has shape [65] but the model expects [64]"));
  edited = tensors;
  edited["model.layers.0.self_attn.q_proj.bias"] = torch::zeros({64});
  grpo::write_safetensors(weights_path, edited);
  CHECK_THROWS_WITH(grpo::LlamaModel::from_pretrained(dir),
                    Contains("unexpected tensor \"model.layers.0.self_attn.q_proj.bias\""));

  // Files: truncated, a header that lies about offsets or sizes, overlapping tensors, garbage.
  grpo::write_safetensors(weights_path, tensors);
  const auto good = grpo::testing::read_bytes(weights_path);
  const auto bad_file = tmp.file("bad.safetensors");
  const auto file_error = [&](const std::string& bytes, const std::string& expected) {
    grpo::testing::write_bytes(bad_file, bytes);
    INFO(expected);
    CHECK_THROWS_WITH(grpo::read_safetensors(bad_file), Contains(expected) && Contains(bad_file));
  };
  file_error(good.substr(0, good.size() - 10), "truncated file");
  file_error(good.substr(0, 100), "truncated file");
  file_error(good.substr(0, 5), "shorter than");
  file_error(minimal_safetensors({{"x", "F32", {2}, std::string(16, '\0')}}), "tensor \"x\" spans 16 bytes");
  std::string header =
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  std::string overlapping;
  append_le(overlapping, header.size(), 8);
  file_error(overlapping + header + std::string(12, '\0'), "overlap");
  header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
  std::string beyond;
  append_le(beyond, header.size(), 8);
  file_error(beyond + header + std::string(8, '\0'), "beyond the 8-byte data buffer");
  file_error(minimal_safetensors({{"x", "F8_E4M3", {2}, std::string(2, '\0')}}), "unsupported dtype \"F8_E4M3\"");
  std::string garbage;
  append_le(garbage, 6, 8);
  file_error(garbage + "{nope}", "not valid JSON");

  // A failed write leaves neither the file nor its temporary behind.
  const auto target = tmp.file("never.safetensors");
  CHECK_THROWS_WITH(grpo::write_safetensors(target, {{"z", torch::zeros({2}, torch::kComplexFloat)}}),
                    Contains("\"z\" has unsupported dtype"));
  CHECK_THROWS(grpo::write_safetensors(tmp.file("no/such/dir/x.safetensors"), tensors));
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path())) {
    CHECK(entry.path().filename().string().rfind("never.safetensors", 0) == std::string::npos);
  }
  CHECK_THROWS_WITH(grpo::LlamaModel::from_pretrained(tmp.file("nowhere")), Contains("nowhere"));
}
