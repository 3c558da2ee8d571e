// Saving byte-level BPE tokenizers as Hugging Face files: tokenizer.json + tokenizer_config.json load back to the
// same ids and texts on the corpus (Qwen3, the Llama 3-style fixture, SmolLM2 from its GGUF vocabulary, and
// vocabularies fed as GGUF files with each supported pre-tokenizer), keep what the file held, write GGUF
// vocabularies as transformers' conversion does (with the family's own pre-tokenizer), and are deterministic.
// Fixtures: tests/fixtures/tokenizers (make_fixtures.py); the archive's files are unpacked into the build tree.
#include "grpo/tokenizers/bpe_tokenizer.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "support/catch.hpp"
#include "support/scoped_temp_dir.hpp"

using grpo_test::Contains;
using nlohmann::json;

namespace bpe_save_test {

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return json::parse(buffer.str());
}

const std::string source_fixtures = GRPO_TOKENIZER_SOURCE_FIXTURES;  // tests/fixtures/tokenizers
const std::string unpacked_fixtures = GRPO_TOKENIZER_FIXTURES;       // the archive, unpacked

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> lines =
      read_json(source_fixtures + "/corpus.json").get<std::vector<std::string>>();
  return lines;
}

const json& expected() {
  static const json value = read_json(source_fixtures + "/expected.json");
  return value;
}

grpo::GgufVocabulary read_gguf_vocabulary(const std::string& path) {
  const json extract = read_json(path);
  grpo::GgufVocabulary vocabulary;
  vocabulary.model = extract.at("model").get<std::string>();
  vocabulary.pre = extract.at("pre").get<std::string>();
  vocabulary.tokens = extract.at("tokens").get<std::vector<std::string>>();
  vocabulary.merges = extract.at("merges").get<std::vector<std::string>>();
  vocabulary.token_types = extract.at("token_types").get<std::vector<int32_t>>();
  vocabulary.bos_token_id = extract.at("bos_token_id").get<int64_t>();
  vocabulary.eos_token_id = extract.at("eos_token_id").get<int64_t>();
  vocabulary.pad_token_id = extract.at("pad_token_id").get<int64_t>();
  vocabulary.unk_token_id = extract.at("unk_token_id").get<int64_t>();
  return vocabulary;
}

// A tokenizer.json's vocabulary as a GGUF file stores it: tokens by id, merges as "left right", special added
// tokens as control tokens, other added tokens as user-defined ones.
grpo::GgufVocabulary gguf_from_tokenizer_json(const json& tokenizer, const std::string& pre) {
  grpo::GgufVocabulary vocabulary;
  vocabulary.pre = pre;
  std::size_t size = 0;
  for (const auto& [token, id] : tokenizer.at("model").at("vocab").items())
    size = std::max(size, id.get<std::size_t>() + 1);
  for (const auto& added : tokenizer.at("added_tokens")) size = std::max(size, added.at("id").get<std::size_t>() + 1);
  vocabulary.tokens.resize(size);
  vocabulary.token_types.assign(size, static_cast<int32_t>(grpo::GgufTokenType::normal));
  for (const auto& [token, id] : tokenizer.at("model").at("vocab").items())
    vocabulary.tokens[id.get<std::size_t>()] = token;
  for (const auto& added : tokenizer.at("added_tokens")) {
    const auto id = added.at("id").get<std::size_t>();
    vocabulary.tokens[id] = added.at("content").get<std::string>();
    vocabulary.token_types[id] = static_cast<int32_t>(
        added.at("special").get<bool>() ? grpo::GgufTokenType::control : grpo::GgufTokenType::user_defined);
  }
  for (const auto& merge : tokenizer.at("model").at("merges")) {
    vocabulary.merges.push_back(merge.is_string() ? merge.get<std::string>()
                                                  : merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  }
  return vocabulary;
}

const grpo::BpeTokenizer& qwen3() {
  static const grpo::BpeTokenizer tokenizer = grpo::BpeTokenizer::from_pretrained(unpacked_fixtures + "/qwen3");
  return tokenizer;
}

const grpo::BpeTokenizer& llama3_style() {
  static const grpo::BpeTokenizer tokenizer = grpo::BpeTokenizer::from_pretrained(source_fixtures + "/llama3_style");
  return tokenizer;
}

const grpo::BpeTokenizer& smollm2_from_gguf() {
  static const grpo::BpeTokenizer tokenizer = grpo::BpeTokenizer::from_gguf_vocabulary(
      read_gguf_vocabulary(unpacked_fixtures + "/smollm2/gguf_vocabulary.json"));
  return tokenizer;
}

std::string file_text(const std::filesystem::path& path) { return grpo_test::read_text(path.string()); }

// What differs between `original` and `reloaded`, as readable lines: the ids of every corpus line (and, when
// `reference` names a key of expected.json, the ids of Hugging Face's tokenizers), both decodings, the special
// ids, and each id's token and kind.
std::vector<std::string> differences(const grpo::BpeTokenizer& original, const grpo::BpeTokenizer& reloaded,
                                     const std::string& reference = "") {
  std::vector<std::string> problems;
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    const auto ids = original.encode(corpus()[i]);
    if (reloaded.encode(corpus()[i]) != ids) problems.push_back("line " + std::to_string(i) + ": ids differ");
    if (!reference.empty() && ids != expected().at(reference).at("ids")[i].get<std::vector<int64_t>>()) {
      problems.push_back("line " + std::to_string(i) + ": ids differ from tokenizers'");
    }
    if (reloaded.decode(ids) != original.decode(ids)) problems.push_back("line " + std::to_string(i) + ": decode");
    if (reloaded.decode(ids, grpo::DecodeOptions{false}) != original.decode(ids, grpo::DecodeOptions{false})) {
      problems.push_back("line " + std::to_string(i) + ": decode with special tokens");
    }
  }
  if (reloaded.vocab_size() != original.vocab_size()) problems.push_back("vocab_size differs");
  if (reloaded.bos_token_id() != original.bos_token_id()) problems.push_back("bos differs");
  // eos_token_id() and pad_token_id() throw when the tokenizer has none.
  const auto eos = [](const grpo::BpeTokenizer& t) -> std::optional<int64_t> {
    try {
      return t.eos_token_id();
    } catch (const grpo::InvalidArgument&) {
      return std::nullopt;
    }
  };
  const auto pad = [](const grpo::BpeTokenizer& t) -> std::optional<int64_t> {
    try {
      return t.pad_token_id();
    } catch (const grpo::InvalidArgument&) {
      return std::nullopt;
    }
  };
  if (eos(reloaded) != eos(original)) problems.push_back("eos differs");
  if (pad(reloaded) != pad(original)) problems.push_back("pad differs");
  if (reloaded.unk_token_id() != original.unk_token_id()) problems.push_back("unk differs");
  for (int64_t id = 0; id < original.vocab_size(); ++id) {
    if (reloaded.id_to_token(id) != original.id_to_token(id) ||
        reloaded.is_special_token(id) != original.is_special_token(id)) {
      problems.push_back("id " + std::to_string(id) + ": token or kind differs");
    }
  }
  return problems;
}

void require_no_differences(const std::vector<std::string>& problems) {
  std::string summary;
  for (std::size_t i = 0; i < problems.size() && i < 10; ++i) summary += problems[i] + "\n";
  INFO(problems.size() << " differences:\n" << summary);
  CHECK(problems.empty());
}

// Saves `tokenizer`, loads the folder back, and checks the ids, texts and tables, that the written files are
// written again byte for byte by the reloaded tokenizer, and that from_json over the JSON values agrees.
void check_round_trip(const grpo::BpeTokenizer& tokenizer, const std::string& reference = "") {
  grpo_test::ScopedTempDir dir;
  tokenizer.save_pretrained(dir.file("saved"));
  const auto reloaded = grpo::BpeTokenizer::from_pretrained(dir.file("saved"));
  require_no_differences(differences(tokenizer, reloaded, reference));

  reloaded.save_pretrained(dir.file("again"));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    INFO(name);
    CHECK(file_text(dir.path() / "again" / name) == file_text(dir.path() / "saved" / name));
  }
  const auto from_values =
      grpo::BpeTokenizer::from_json(json(tokenizer.to_tokenizer_json()), tokenizer.tokenizer_config_json());
  CHECK(from_values.encode(corpus()[7]) == tokenizer.encode(corpus()[7]));
  CHECK(from_values.to_tokenizer_json() == tokenizer.to_tokenizer_json());
}

// `value` without model.vocab and model.merges, as an unordered nlohmann::json.
json without_vocabulary(const nlohmann::ordered_json& value) {
  json out(value);
  out["model"].erase("vocab");
  out["model"].erase("merges");
  return out;
}

// The test cases live in the namespace too, beside their helpers.

TEST_CASE("Qwen3's tokenizer saved as tokenizer.json loads back to the same ids and texts on the corpus",
          "[bpe][save]") {
  check_round_trip(qwen3(), "qwen3");
}

TEST_CASE("the Llama 3-style tokenizer saved as tokenizer.json loads back to the same ids and texts", "[bpe][save]") {
  check_round_trip(llama3_style(), "llama3_style");
}

TEST_CASE("SmolLM2's GGUF vocabulary saved as tokenizer.json loads back to the same ids and texts", "[bpe][save]") {
  check_round_trip(smollm2_from_gguf(), "smollm2");
}

TEST_CASE("vocabularies fed as GGUF files with each supported pre-tokenizer save and load back the same",
          "[bpe][save]") {
  const json qwen3_json = read_json(unpacked_fixtures + "/qwen3/tokenizer.json");
  auto qwen2 = gguf_from_tokenizer_json(qwen3_json, "qwen2");  // NFC and Qwen2's split
  qwen2.eos_token_id = 151645;
  qwen2.pad_token_id = 151643;
  const auto from_qwen2 = grpo::BpeTokenizer::from_gguf_vocabulary(qwen2);
  check_round_trip(from_qwen2, "qwen3");
  const auto written = from_qwen2.to_tokenizer_json();
  CHECK(written.at("normalizer") == nlohmann::ordered_json{{"type", "NFC"}});
  CHECK(written.at("pre_tokenizer").at("pretokenizers").at(0).at("type") == "Split");

  // Llama 3's split and ignore_merges.
  const json llama3_json = read_json(source_fixtures + "/llama3_style/tokenizer.json");
  auto llama_bpe = gguf_from_tokenizer_json(llama3_json, "llama-bpe");
  const auto from_llama_bpe = grpo::BpeTokenizer::from_gguf_vocabulary(llama_bpe);
  check_round_trip(from_llama_bpe);
  CHECK(from_llama_bpe.to_tokenizer_json().at("model").at("ignore_merges") == true);

  // GPT-2's pattern through ByteLevel, with an unused (padding) entry, which is left out, and a user-defined token.
  auto gpt2 = gguf_from_tokenizer_json(llama3_json, "gpt2");
  gpt2.tokens.push_back("[PAD0]");
  gpt2.token_types.push_back(static_cast<int32_t>(grpo::GgufTokenType::unused));
  gpt2.tokens.push_back("<tool>");
  gpt2.token_types.push_back(static_cast<int32_t>(grpo::GgufTokenType::user_defined));
  gpt2.eos_token_id = 2;
  const auto from_gpt2 = grpo::BpeTokenizer::from_gguf_vocabulary(gpt2);
  const auto gpt2_json = from_gpt2.to_tokenizer_json();
  CHECK(gpt2_json.at("pre_tokenizer") ==
        nlohmann::ordered_json{
            {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}});
  CHECK_FALSE(gpt2_json.at("model").at("vocab").contains("[PAD0]"));
  const auto& tool = gpt2_json.at("added_tokens").back();
  CHECK(tool.at("content") == "<tool>");
  CHECK(tool.at("special") == false);
  grpo_test::ScopedTempDir dir;
  from_gpt2.save_pretrained(dir.path().string());
  const auto reloaded = grpo::BpeTokenizer::from_pretrained(dir.path().string());
  CHECK(reloaded.encode("a <tool> b 12345") == from_gpt2.encode("a <tool> b 12345"));
  CHECK(reloaded.encode(corpus()[40]) == from_gpt2.encode(corpus()[40]));
  CHECK(reloaded.vocab_size() == from_gpt2.vocab_size());  // the user-defined token is the last id
  CHECK_FALSE(reloaded.token_to_id("[PAD0]").has_value());
}

TEST_CASE("a tokenizer read from tokenizer.json writes back what the file held", "[bpe][save]") {
  for (const auto& folder : {source_fixtures + "/llama3_style", unpacked_fixtures + "/qwen3"}) {
    INFO(folder);
    const json original = read_json(folder + "/tokenizer.json");
    const auto tokenizer = grpo::BpeTokenizer::from_pretrained(folder);
    const json written(tokenizer.to_tokenizer_json());
    for (const char* key : {"version", "truncation", "padding", "normalizer", "pre_tokenizer", "post_processor",
                            "decoder", "added_tokens"}) {
      INFO(key);
      CHECK(written.at(key) == original.at(key));
    }
    CHECK(without_vocabulary(tokenizer.to_tokenizer_json())["model"] ==
          without_vocabulary(nlohmann::ordered_json(original))["model"]);
    CHECK(written.at("model").at("vocab") == original.at("model").at("vocab"));
    std::vector<json> merges;
    for (const auto& merge : original.at("model").at("merges")) {
      if (merge.is_array()) {
        merges.push_back(merge);
      } else {
        const auto text = merge.get<std::string>();
        merges.push_back(json::array({text.substr(0, text.find(' ')), text.substr(text.find(' ') + 1)}));
      }
    }
    CHECK(written.at("model").at("merges") == json(merges));
  }
  // The file's keys come out in the order tokenizers writes them.
  const auto written = llama3_style().to_tokenizer_json();
  std::vector<std::string> keys;
  for (auto it = written.begin(); it != written.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"version", "truncation", "padding", "added_tokens", "normalizer",
                                         "pre_tokenizer", "post_processor", "decoder", "model"});
  CHECK(written.at("pre_tokenizer").begin().key() == "type");
}

TEST_CASE("tokenizer_config.json names the special tokens and the added tokens for transformers", "[bpe][save]") {
  const json config = llama3_style().tokenizer_config_json();
  CHECK(config.at("bos_token") == "<|begin_of_text|>");
  CHECK(config.at("eos_token") == "<|eot_id|>");
  CHECK(config.at("pad_token") == "<|end_of_text|>");
  CHECK(config.at("unk_token").is_null());
  CHECK(config.at("model_max_length") == 8192);  // kept as read
  CHECK(config.at("tokenizer_class") == "PreTrainedTokenizerFast");
  CHECK(config.at("clean_up_tokenization_spaces") == false);
  const auto mask = std::to_string(*llama3_style().token_to_id("<mask>"));
  CHECK(config.at("added_tokens_decoder").at(mask) == json{{"content", "<mask>"},
                                                           {"lstrip", true},
                                                           {"normalized", false},
                                                           {"rstrip", false},
                                                           {"single_word", false},
                                                           {"special", true}});
  const json qwen = qwen3().tokenizer_config_json();
  CHECK(qwen.at("bos_token").is_null());
  CHECK(qwen.at("eos_token") == "<|im_end|>");
  CHECK(qwen.at("add_bos_token") == false);
  CHECK_FALSE(qwen.contains("chat_template"));
  const json smollm2 = smollm2_from_gguf().tokenizer_config_json();
  CHECK(smollm2.at("bos_token") == "<|im_start|>");
  CHECK(smollm2.at("eos_token") == "<|im_end|>");
  CHECK(smollm2.at("pad_token") == "<|im_end|>");
  CHECK(smollm2.at("unk_token") == "<|endoftext|>");
  CHECK_FALSE(smollm2.contains("model_max_length"));
}

TEST_CASE("SmolLM2's GGUF vocabulary is written as transformers converts it, with SmolLM2's digit split",
          "[bpe][save]") {
  // transformers' tokenizer.json of the GGUF (tests/fixtures/tokenizers/make_fixtures.py), without vocab and merges.
  json conversion = read_json(unpacked_fixtures + "/smollm2/transformers_tokenizer_without_vocab.json");
  json written = without_vocabulary(smollm2_from_gguf().to_tokenizer_json());
  // transformers' conversion drops the "smollm" digit split (its ids differ on lines with digits); SmolLM2's own
  // tokenizer.json, and from_gguf_vocabulary, split every digit first.
  CHECK(written.at("pre_tokenizer") ==
        json{{"type", "Sequence"},
             {"pretokenizers",
              json::array({json{{"type", "Digits"}, {"individual_digits", true}}, conversion.at("pre_tokenizer")})}});
  written.erase("pre_tokenizer");
  conversion.erase("pre_tokenizer");
  CHECK(written == conversion);

  const auto tokenizer_json = smollm2_from_gguf().to_tokenizer_json();
  const auto vocabulary = read_gguf_vocabulary(unpacked_fixtures + "/smollm2/gguf_vocabulary.json");
  const auto& vocab = tokenizer_json.at("model").at("vocab");
  REQUIRE(vocab.size() == vocabulary.tokens.size());
  std::size_t id = 0, out_of_order = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it, ++id) {
    if (it.key() != vocabulary.tokens[id] || it.value() != id) ++out_of_order;
  }
  CHECK(out_of_order == 0);
  const auto& merges = tokenizer_json.at("model").at("merges");
  REQUIRE(merges.size() == vocabulary.merges.size());
  const auto& first = vocabulary.merges.front();
  CHECK(merges.front() ==
        nlohmann::ordered_json::array({first.substr(0, first.find(' ')), first.substr(first.find(' ') + 1)}));
}

TEST_CASE("saving is deterministic and refuses tokens that are not valid UTF-8", "[bpe][save][errors]") {
  grpo_test::ScopedTempDir dir;
  llama3_style().save_pretrained(dir.file("one"));
  grpo::BpeTokenizer::from_pretrained(source_fixtures + "/llama3_style").save_pretrained(dir.file("two"));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    CHECK(file_text(dir.path() / "one" / name) == file_text(dir.path() / "two" / name));
  }
  CHECK(std::filesystem::directory_iterator(dir.path() / "one") != std::filesystem::directory_iterator());
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "one")) files += entry.is_regular_file();
  CHECK(files == 2);  // no temporary file left behind

  grpo::GgufVocabulary bad;
  bad.pre = "gpt2";
  bad.tokens = {"a", "b", "\xff"};
  const auto tokenizer = grpo::BpeTokenizer::from_gguf_vocabulary(bad);
  CHECK_THROWS_WITH(tokenizer.save_pretrained(dir.file("bad")),
                    Contains("grpo::BpeTokenizer::save_pretrained: cannot write the JSON"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "bad" / "tokenizer.json"));
}

// Found by the tokenizer fuzz target (tests/fuzz/corpus/tokenizer/regression_tied_ids_merge.json).
TEST_CASE("a merge over tokens that share an id is written as the texts that spell its result", "[bpe][save]") {
  const auto tokenizer = grpo::BpeTokenizer::from_json(json::parse(R"({
    "pre_tokenizer": {"type": "ByteLevel"},
    "model": {"vocab": {"a": 98, "b": 98, "aa": 7, "ab": 2}, "merges": [["a", "b"]]}})"));
  CHECK(tokenizer.encode("ab") == std::vector<int64_t>{2});
  const auto written = tokenizer.to_tokenizer_json();
  CHECK(written.at("model").at("merges") == nlohmann::ordered_json::parse(R"([["a", "b"]])"));
  const auto reloaded =
      grpo::BpeTokenizer::from_json(json::parse(written.dump()), json(tokenizer.tokenizer_config_json()));
  CHECK(reloaded.encode("ab") == std::vector<int64_t>{2});
  CHECK(reloaded.encode("aa") == std::vector<int64_t>{2});  // "a" and "b" are the same id to the merges
}

}  // namespace bpe_save_test
