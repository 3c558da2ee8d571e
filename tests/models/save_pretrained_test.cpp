// grpo::save_pretrained: a model with its tokenizer and chat template saved as a Hugging Face folder loads back
// through load_pretrained with equal logits, token ids and renderings (a tiny random model with the Llama 3-style
// tokenizer; the real SmolLM2-135M-Instruct GGUF when present), the folder is replaced whole and deterministic, and
// what cannot be saved faithfully is refused. With GRPO_SAVE_PRETRAINED_OUT=<folder> set, the saved folders are kept
// there with grpo-cpp's ids, renderings and logits beside them, for tests/fixtures/pretrained/
// check_with_transformers.py.
#include "grpo/pretrained/save_pretrained.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/pretrained/pretrained.hpp"
#include "models/gguf_fixtures.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace save_pretrained_test {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

const std::vector<std::string>& corpus() {
  static const auto lines = grpo::testing::read_json_fixture("tokenizers/corpus.json").get<std::vector<std::string>>();
  return lines;
}

// A conversation to render, as the chat-template fixtures store one.
struct Rendering {
  ordered_json messages;
  bool add_generation_prompt;
  ordered_json variables;
};

std::vector<Rendering> llama3_conversations() {
  const auto two_turns = ordered_json::parse(R"([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
      {"role": "user", "content": "And 3+3? Ünïcode 😀"}])");
  return {{two_turns, true, ordered_json::object()}, {two_turns, false, ordered_json::object()}};
}

std::vector<Rendering> smollm2_conversations() {
  const auto fixture =
      ordered_json::parse(std::ifstream(grpo::testing::fixture_path("chat_templates/smollm2-135m-instruct.json")));
  std::vector<Rendering> out;
  for (const auto& c : fixture.at("cases")) {
    out.push_back({c.at("messages"), c.at("add_generation_prompt").get<bool>(), c.at("variables")});
  }
  return out;
}

// A Llama 3-style template that reads bos_token.
const char* llama3_template =
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
    "<|end_header_id|>\n\n{% endif %}";

grpo::BpeTokenizer llama3_style_tokenizer() {
  return grpo::BpeTokenizer::from_pretrained(grpo::testing::fixture_path("tokenizers/llama3_style"));
}

grpo::SpecialTokens special_tokens_of(const grpo::BpeTokenizer& tokenizer) {
  grpo::SpecialTokens tokens;
  if (const auto bos = tokenizer.bos_token_id()) tokens.bos_token = tokenizer.id_to_token(*bos);
  tokens.eos_token = tokenizer.id_to_token(tokenizer.eos_token_id());
  tokens.pad_token = tokenizer.id_to_token(tokenizer.pad_token_id());
  return tokens;
}

// A tiny random model over the Llama 3-style tokenizer, with its bos and two eos ids.
grpo::Pretrained tiny_pretrained(uint64_t seed) {
  auto tokenizer = llama3_style_tokenizer();
  auto config = grpo::LlamaConfig::tiny(tokenizer.vocab_size());
  config.bos_token_id = tokenizer.bos_token_id();
  config.eos_token_ids = {tokenizer.eos_token_id(), *tokenizer.token_to_id("<|end_of_text|>")};
  torch::manual_seed(seed);
  auto model = std::make_shared<grpo::LlamaModel>(config);
  grpo::ChatTemplate chat(llama3_template, special_tokens_of(tokenizer));
  return grpo::Pretrained{model, std::move(tokenizer), std::move(chat)};
}

std::string render(const grpo::ChatTemplate& chat, const Rendering& r) {
  return chat.render(r.messages, r.add_generation_prompt, r.variables);
}

torch::Tensor logits_of(grpo::LlamaModel& model, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  return model.forward(torch::tensor(ids, torch::kLong).unsqueeze(0));
}

// Names of the entries of `folder`, sorted.
std::vector<std::string> entries(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Counts the corpus lines whose ids or decodings differ between the two tokenizers.
int tokenizer_mismatches(const grpo::BpeTokenizer& original, const grpo::BpeTokenizer& reloaded) {
  int mismatches = 0;
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    const auto ids = original.encode(corpus()[i]);
    if (reloaded.encode(corpus()[i]) != ids || reloaded.decode(ids) != original.decode(ids) ||
        reloaded.decode(ids, grpo::DecodeOptions{false}) != original.decode(ids, grpo::DecodeOptions{false})) {
      ++mismatches;
      UNSCOPED_INFO("corpus line " << i << " differs");
    }
  }
  return mismatches;
}

// With GRPO_SAVE_PRETRAINED_OUT set: saves `pretrained` as <out>/<name> and writes what grpo-cpp computes on it
// beside the folder, <name>.grpo.json (corpus ids and decodings, renderings and their ids) and
// <name>.grpo_logits.safetensors (input_ids, logits), for check_with_transformers.py.
void keep_for_transformers(const grpo::Pretrained& pretrained, const std::string& name,
                           const std::vector<Rendering>& conversations) {
  const char* out = std::getenv("GRPO_SAVE_PRETRAINED_OUT");
  if (out == nullptr || *out == '\0') return;
  const fs::path folder = fs::path(out) / name;
  fs::create_directories(out);
  grpo::save_pretrained(pretrained, folder.string());
  const auto& tokenizer = pretrained.tokenizer;
  ordered_json reference;
  reference["corpus"] = ordered_json::array();
  for (const auto& line : corpus()) {
    const auto ids = tokenizer.encode(line);
    reference["corpus"].push_back({{"text", line},
                                   {"ids", ids},
                                   {"decoded", tokenizer.decode(ids)},
                                   {"decoded_with_special", tokenizer.decode(ids, grpo::DecodeOptions{false})}});
  }
  reference["renderings"] = ordered_json::array();
  std::string prompt;
  for (const auto& r : conversations) {
    const auto text = render(*pretrained.chat_template, r);
    if (prompt.empty() && r.add_generation_prompt) prompt = text;
    reference["renderings"].push_back({{"messages", r.messages},
                                       {"add_generation_prompt", r.add_generation_prompt},
                                       {"variables", r.variables},
                                       {"text", text},
                                       {"ids", tokenizer.encode(text)}});
  }
  std::ofstream(folder.string() + ".grpo.json") << reference.dump(1) << "\n";
  const auto ids = tokenizer.encode(prompt);
  grpo::write_safetensors(folder.string() + ".grpo_logits.safetensors",
                          {{"input_ids", torch::tensor(ids, torch::kLong).unsqueeze(0)},
                           {"logits", logits_of(*pretrained.model, ids).contiguous()}});
  WARN("kept " << folder.string() << " for check_with_transformers.py");
}

// The test cases live in the namespace too: in a unity batch, helpers of other files may share these names.

TEST_CASE("a tiny model, the Llama 3-style tokenizer and a template load back with equal logits and renderings",
          "[pretrained][save_pretrained]") {
  grpo_test::ScopedTempDir dir;
  const auto saved = tiny_pretrained(7);
  const auto folder = dir.path() / "tiny";
  grpo::save_pretrained(saved, folder.string());
  CHECK(entries(dir.path()) == std::vector<std::string>{"tiny"});  // no temporary folder left
  CHECK(entries(folder) == std::vector<std::string>{"config.json", "generation_config.json", "model.safetensors",
                                                    "tokenizer.json", "tokenizer_config.json"});

  const auto loaded = grpo::load_pretrained(folder.string());
  const std::vector<int64_t> ids = saved.tokenizer.encode(corpus()[8]);
  CHECK(torch::equal(logits_of(*loaded.model, ids), logits_of(*saved.model, ids)));
  CHECK(loaded.model->eos_token_ids() == saved.model->eos_token_ids());
  CHECK(tokenizer_mismatches(saved.tokenizer, loaded.tokenizer) == 0);
  CHECK(loaded.tokenizer.bos_token_id() == saved.tokenizer.bos_token_id());
  CHECK(loaded.tokenizer.eos_token_id() == saved.tokenizer.eos_token_id());
  CHECK(loaded.tokenizer.pad_token_id() == saved.tokenizer.pad_token_id());
  REQUIRE(loaded.chat_template.has_value());
  for (const auto& r : llama3_conversations()) {
    const auto text = render(*saved.chat_template, r);
    CHECK(render(*loaded.chat_template, r) == text);
    CHECK(text.rfind("<|begin_of_text|>", 0) == 0);  // the template's bos_token survived
  }
  CHECK(loaded.chat_template->source() == saved.chat_template->source());

  const auto generation = nlohmann::json::parse(std::ifstream(folder / "generation_config.json"));
  const auto eos = *saved.tokenizer.token_to_id("<|eot_id|>");
  const auto end_of_text = *saved.tokenizer.token_to_id("<|end_of_text|>");
  CHECK(generation == nlohmann::json{{"bos_token_id", *saved.tokenizer.bos_token_id()},
                                     {"eos_token_id", nlohmann::json::array({eos, end_of_text})},
                                     {"pad_token_id", end_of_text}});
  keep_for_transformers(saved, "llama3_style_tiny", llama3_conversations());
}

TEST_CASE("saving replaces the whole folder, is deterministic, and refuses to delete files of other kinds",
          "[pretrained][save_pretrained]") {
  grpo_test::ScopedTempDir dir;
  const auto first = tiny_pretrained(1);
  const auto second = tiny_pretrained(2);
  const auto folder = (dir.path() / "model").string();
  grpo::save_pretrained(first, folder);
  grpo::save_pretrained(first, dir.file("copy") + "/");  // a trailing slash names the same folder
  for (const auto& name : entries(folder)) {
    INFO(name);
    CHECK(grpo::testing::read_bytes(folder + "/" + name) == grpo::testing::read_bytes(dir.file("copy") + "/" + name));
  }

  // A shard of an older save is a model file: replaced with the rest, so it cannot shadow the new weights.
  grpo::testing::write_bytes(folder + "/model-00001-of-00002.safetensors", "stale");
  grpo::save_pretrained(second, folder);
  CHECK(entries(dir.path()) == std::vector<std::string>{"copy", "model"});
  CHECK_FALSE(fs::exists(folder + "/model-00001-of-00002.safetensors"));
  const auto loaded = grpo::load_pretrained(folder);
  const std::vector<int64_t> ids{5, 9, 12, 40};
  CHECK(torch::equal(logits_of(*loaded.model, ids), logits_of(*second.model, ids)));
  CHECK_FALSE(torch::equal(logits_of(*loaded.model, ids), logits_of(*first.model, ids)));

  // A base model: no template in tokenizer_config.json, none loaded back.
  grpo::save_pretrained(*second.model, second.tokenizer, std::nullopt, folder);
  CHECK_FALSE(nlohmann::json::parse(std::ifstream(folder + "/tokenizer_config.json")).contains("chat_template"));
  CHECK_FALSE(grpo::load_pretrained(folder).chat_template.has_value());

  // Files that are not a model's are not deleted: the save is refused and the folder left as it was.
  grpo::testing::write_bytes(folder + "/notes.txt", "mine");
  CHECK_THROWS_WITH(grpo::save_pretrained(first, folder), Contains(folder) && Contains("'notes.txt'"));
  CHECK(grpo::testing::read_bytes(folder + "/notes.txt") == "mine");
  CHECK(entries(dir.path()) == std::vector<std::string>{"copy", "model"});
  CHECK_THROWS_WITH(grpo::save_pretrained(first, folder + "/notes.txt"), Contains("is not a folder"));
}

TEST_CASE("a template that reads a special token other than the tokenizer's cannot be saved faithfully",
          "[pretrained][save_pretrained][errors]") {
  grpo_test::ScopedTempDir dir;
  auto pretrained = tiny_pretrained(3);
  grpo::SpecialTokens other = pretrained.chat_template->special_tokens();
  other.bos_token = "<|end_of_text|>";
  pretrained.chat_template = grpo::ChatTemplate(llama3_template, other);
  CHECK_THROWS_WITH(grpo::save_pretrained(pretrained, dir.file("m")),
                    Contains("the chat template reads bos_token, which it sees as '<|end_of_text|>' but the "
                             "tokenizer has as '<|begin_of_text|>'"));
  CHECK_FALSE(fs::exists(dir.file("m")));
  CHECK(entries(dir.path()).empty());

  // A token the template never reads may differ; a sep_token it reads is written for it.
  const std::string with_sep = "{% for m in messages %}{{ m['content'] }}{{ sep_token }}{% endfor %}";
  grpo::SpecialTokens sep;
  sep.sep_token = "<sep>";
  pretrained.chat_template = grpo::ChatTemplate(with_sep, sep);
  grpo::save_pretrained(pretrained, dir.file("m"));
  const auto loaded = grpo::load_pretrained(dir.file("m"));
  const auto messages = ordered_json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  CHECK(loaded.chat_template->render(messages) == "a<sep>b<sep>");
  CHECK(loaded.tokenizer.bos_token_id() == pretrained.tokenizer.bos_token_id());
}

TEST_CASE("SmolLM2-135M-Instruct from GGUF saved as a folder loads back with the same logits, ids and renderings",
          "[pretrained][save_pretrained][smollm2]") {
  const auto path = grpo::testing::smollm2_gguf_path();
  if (!fs::exists(path)) {
    WARN("SKIPPED: " << path
                     << " is absent; run `cmake -DDEST=<build>/models -P cmake/fetch-smollm2.cmake` (make test does) "
                        "or set GRPO_SMOLLM2_GGUF");
    return;
  }
  grpo_test::ScopedTempDir dir;
  const auto folder = dir.file("smollm2");
  std::vector<int64_t> prompt_ids;
  torch::Tensor logits;
  std::vector<std::vector<int64_t>> corpus_ids;
  std::vector<std::string> renderings;
  {
    const auto gguf = grpo::load_pretrained(path);
    grpo::save_pretrained(gguf, folder);
    for (const auto& line : corpus()) corpus_ids.push_back(gguf.tokenizer.encode(line));
    for (const auto& r : smollm2_conversations()) renderings.push_back(render(*gguf.chat_template, r));
    prompt_ids = gguf.tokenizer.encode(renderings.front());
    logits = logits_of(*gguf.model, prompt_ids);
    keep_for_transformers(gguf, "smollm2", smollm2_conversations());
  }  // one model in memory at a time
  const auto loaded = grpo::load_pretrained(folder);
  CHECK(torch::equal(logits_of(*loaded.model, prompt_ids), logits));
  CHECK(loaded.model->eos_token_ids() == std::vector<int64_t>{2});

  // The GGUF tokenizer's ids (Hugging Face tokenizers' with SmolLM2's digit split, tests/fixtures/tokenizers).
  const auto expected = grpo::testing::read_json_fixture("tokenizers/expected.json").at("smollm2").at("ids");
  int mismatches = 0;
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    const auto ids = loaded.tokenizer.encode(corpus()[i]);
    if (ids != corpus_ids[i] || ids != expected[i].get<std::vector<int64_t>>()) {
      ++mismatches;
      UNSCOPED_INFO("corpus line " << i << " encodes differently");
    }
  }
  CHECK(mismatches == 0);
  CHECK(loaded.tokenizer.eos_token_id() == 2);
  CHECK(loaded.tokenizer.bos_token_id() == 1);
  CHECK(loaded.tokenizer.unk_token_id() == 0);

  // transformers' renderings of SmolLM2's template (tests/fixtures/chat_templates), from the saved folder.
  REQUIRE(loaded.chat_template.has_value());
  const auto fixture =
      ordered_json::parse(std::ifstream(grpo::testing::fixture_path("chat_templates/smollm2-135m-instruct.json")));
  std::size_t i = 0;
  for (const auto& r : smollm2_conversations()) {
    INFO(fixture.at("cases")[i].at("name").get<std::string>());
    CHECK(render(*loaded.chat_template, r) == renderings[i]);
    CHECK(renderings[i] == fixture.at("cases")[i].at("expected").get<std::string>());
    ++i;
  }
  const auto generation = nlohmann::json::parse(std::ifstream(folder + "/generation_config.json"));
  CHECK(generation ==
        nlohmann::json{{"bos_token_id", 1}, {"eos_token_id", nlohmann::json::array({2})}, {"pad_token_id", 2}});
}

}  // namespace save_pretrained_test
