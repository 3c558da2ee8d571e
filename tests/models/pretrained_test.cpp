// A checkpoint's tokenizer and chat template next to its model: a GGUF file's tokenizer.ggml.* vocabulary and
// tokenizer.chat_template (gguf_tokenizer.hpp), and load_pretrained over a GGUF file and a Hugging Face folder; on
// the real SmolLM2-135M-Instruct GGUF when present, the ids of Hugging Face's tokenizers, transformers' chat
// renderings, and transformers' greedy answer to a chat prompt, stopping at the model's EOS.
#include "grpo/pretrained/pretrained.hpp"

#include <torch/types.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grpo/generation/text.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/pretrained/gguf_tokenizer.hpp"
#include "models/gguf_fixtures.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace {

using grpo::testing::GgufBuilder;

// An array of int32 values (GGUF value type 9 holding type 5).
std::string gguf_int32_array(const std::vector<int32_t>& values) {
  std::string v;
  grpo::testing::append_le(v, 5, 4);
  grpo::testing::append_le(v, values.size(), 8);
  for (const auto x : values) grpo::testing::append_le(v, static_cast<uint32_t>(x), 4);
  return v;
}

// A byte-level BPE vocabulary in GGUF form: the 256 byte symbols of GPT-2's byte-to-unicode map would be long, so
// the vocabulary covers the letters, space and newline it is used on, two merges, and two control tokens.
GgufBuilder gguf_tokenizer_metadata(const std::string& model = "gpt2", bool with_template = true) {
  GgufBuilder b;
  b.str("tokenizer.ggml.model", model);
  b.str("tokenizer.ggml.pre", "gpt2");
  // ids: 0 <|end|> (control), 1 <|start|> (control), 2 a, 3 b, 4 c, 5 Ġ (space), 6 Ċ (newline), 7 ab, 8 Ġab
  b.strings("tokenizer.ggml.tokens", {"<|end|>", "<|start|>", "a", "b", "c", "\xc4\xa0", "\xc4\x8a", "ab",
                                      "\xc4\xa0"
                                      "ab"});
  b.strings("tokenizer.ggml.merges", {"a b", "\xc4\xa0 ab"});
  b.raw("tokenizer.ggml.token_type", 9, gguf_int32_array({3, 3, 1, 1, 1, 1, 1, 1, 1}));
  b.u32("tokenizer.ggml.bos_token_id", 1);
  b.u32("tokenizer.ggml.eos_token_id", 0);
  b.u32("tokenizer.ggml.padding_token_id", 0);
  if (with_template) {
    b.str("tokenizer.chat_template",
          "{% for m in messages %}{{ bos_token }}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}\n{% endfor %}"
          "{% if add_generation_prompt %}{{ bos_token }}assistant: {% endif %}");
  }
  return b;
}

std::string write_gguf_file(const grpo_test::ScopedTempDir& dir, const std::string& name, const GgufBuilder& b) {
  return dir.write(name, b.bytes());
}

}  // namespace

TEST_CASE("a GGUF file's vocabulary becomes a BPE tokenizer and its chat template a ChatTemplate", "[pretrained]") {
  grpo_test::ScopedTempDir dir;
  const grpo::GgufFile file(write_gguf_file(dir, "tok.gguf", gguf_tokenizer_metadata()));

  const auto vocabulary = grpo::gguf_vocabulary(file);
  CHECK(vocabulary.model == "gpt2");
  CHECK(vocabulary.pre == "gpt2");
  CHECK(vocabulary.tokens.size() == 9);
  CHECK(vocabulary.merges == std::vector<std::string>{"a b", "\xc4\xa0 ab"});
  CHECK(vocabulary.token_types == std::vector<int32_t>{3, 3, 1, 1, 1, 1, 1, 1, 1});
  CHECK(vocabulary.bos_token_id == 1);
  CHECK(vocabulary.eos_token_id == 0);
  CHECK(vocabulary.pad_token_id == 0);
  CHECK_FALSE(vocabulary.unk_token_id.has_value());

  const auto tokenizer = grpo::tokenizer_from_gguf(file);
  CHECK(tokenizer.vocab_size() == 9);
  CHECK(tokenizer.eos_token_id() == 0);
  CHECK(tokenizer.bos_token_id() == 1);
  // "ab" merges to 7, " ab" to 8 (the second merge), "c" stays, control tokens in the text are their ids.
  CHECK(tokenizer.encode("ab ab<|end|>c\n") == std::vector<int64_t>{7, 8, 0, 4, 6});
  CHECK(tokenizer.decode({1, 7, 8, 4, 0}) == "ab abc");  // special tokens skipped

  REQUIRE(grpo::has_chat_template(file));
  const auto chat = grpo::chat_template_from_gguf(file);
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "ab"}])");
  CHECK(chat.render(messages, true) == "<|start|>user: ab<|end|>\n<|start|>assistant: ");
  CHECK(chat.render(messages, false) == "<|start|>user: ab<|end|>\n");
}

TEST_CASE("GGUF tokenizers that cannot be read fail naming the file and the key", "[pretrained][errors]") {
  grpo_test::ScopedTempDir dir;
  const auto sentencepiece = write_gguf_file(dir, "spm.gguf", gguf_tokenizer_metadata("llama"));
  CHECK_THROWS_WITH(grpo::tokenizer_from_gguf(grpo::GgufFile(sentencepiece)),
                    Contains(sentencepiece) && Contains("tokenizer model 'llama' (SentencePiece"));

  GgufBuilder no_tokens;
  no_tokens.str("tokenizer.ggml.model", "gpt2");
  const auto missing = write_gguf_file(dir, "missing.gguf", no_tokens);
  CHECK_THROWS_WITH(grpo::tokenizer_from_gguf(grpo::GgufFile(missing)),
                    Contains(missing) && Contains("missing required key \"tokenizer.ggml.tokens\""));

  const auto no_template = write_gguf_file(dir, "plain.gguf", gguf_tokenizer_metadata("gpt2", false));
  const grpo::GgufFile plain(no_template);
  CHECK_FALSE(grpo::has_chat_template(plain));
  CHECK_THROWS_WITH(grpo::chat_template_from_gguf(plain),
                    Contains(no_template) && Contains("no key \"tokenizer.chat_template\""));

  auto bad_eos = gguf_tokenizer_metadata();
  bad_eos.u32("tokenizer.ggml.unknown_token_id", 99);
  const auto out_of_range = write_gguf_file(dir, "eos.gguf", bad_eos);
  CHECK_THROWS_WITH(grpo::chat_template_from_gguf(grpo::GgufFile(out_of_range)),
                    Contains(out_of_range) && Contains("\"tokenizer.ggml.unknown_token_id\" is 99, outside the 9"));

  auto bad_template = gguf_tokenizer_metadata("gpt2", false);
  bad_template.str("tokenizer.chat_template", "line one\n{% for m in messages %}{{ m }}");
  const auto unclosed = write_gguf_file(dir, "template.gguf", bad_template);
  CHECK_THROWS_WITH(grpo::chat_template_from_gguf(grpo::GgufFile(unclosed)),
                    Contains(unclosed) && Contains("tokenizer.chat_template") && Contains("line 2"));

  CHECK_THROWS_WITH(grpo::load_pretrained(dir.file("nothing-here")), Contains("no such file or folder"));
  CHECK_THROWS_WITH(grpo::load_pretrained(dir.path().string()), Contains("the folder has no tokenizer.json"));
}

TEST_CASE("load_pretrained reads a model folder with its tokenizer and chat template", "[pretrained]") {
  grpo_test::ScopedTempDir dir;
  const auto source = std::filesystem::path(grpo::testing::fixture_path("tokenizers/llama3_style"));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(source / name, dir.path() / name);
  }
  dir.write("chat_template.jinja",
            "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
            "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
            "<|end_header_id|>\n\n{% endif %}");
  const auto tokenizer = grpo::BpeTokenizer::from_pretrained(dir.path().string());
  torch::manual_seed(3);
  grpo::LlamaModel saved(grpo::LlamaConfig::tiny(tokenizer.vocab_size()));
  saved.save_pretrained(dir.path().string());

  const auto loaded = grpo::load_pretrained(dir.path().string());
  CHECK(loaded.model->config().vocab_size == tokenizer.vocab_size());
  CHECK(loaded.tokenizer.encode("hello world") == tokenizer.encode("hello world"));
  REQUIRE(loaded.chat_template.has_value());
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  CHECK(loaded.chat_template->render(messages, true) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant"
        "<|end_header_id|>\n\n");
  const auto ids = torch::tensor(std::vector<int64_t>{5, 9, 12}).unsqueeze(0);
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(loaded.model->forward(ids), saved.forward(ids)));

  std::filesystem::remove(dir.path() / "chat_template.jinja");
  CHECK_FALSE(grpo::load_pretrained(dir.path().string()).chat_template.has_value());  // a base model: none
}

TEST_CASE("SmolLM2-135M-Instruct from GGUF: the tokenizers' ids, transformers' chat prompts and greedy answer",
          "[pretrained][smollm2]") {
  const auto path = grpo::testing::smollm2_gguf_path();
  if (!std::filesystem::exists(path)) {
    WARN("SKIPPED: " << path
                     << " is absent; run `cmake -DDEST=<build>/models -P cmake/fetch-smollm2.cmake` (make test does) "
                        "or set GRPO_SMOLLM2_GGUF");
    return;
  }
  const auto pretrained = grpo::load_pretrained(path);
  const auto& tokenizer = pretrained.tokenizer;

  // Token ids of Hugging Face's tokenizers (tests/fixtures/tokenizers/make_fixtures.py) over the whole corpus.
  const auto corpus = grpo::testing::read_json_fixture("tokenizers/corpus.json").get<std::vector<std::string>>();
  const auto expected = grpo::testing::read_json_fixture("tokenizers/expected.json").at("smollm2");
  REQUIRE(expected.at("ids").size() == corpus.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    const auto ids = tokenizer.encode(corpus[i]);
    if (ids != expected.at("ids")[i].get<std::vector<int64_t>>()) {
      ++mismatches;
      UNSCOPED_INFO("corpus line " << i << " encodes differently");
    }
    // "decoded" lists only the lines whose decoding differs from the line itself (special tokens skipped).
    if (tokenizer.decode(ids) != expected.at("decoded").value(std::to_string(i), corpus[i])) {
      ++mismatches;
      UNSCOPED_INFO("corpus line " << i << " decodes differently");
    }
  }
  CHECK(mismatches == 0);

  // transformers' renderings of SmolLM2's template (tests/fixtures/chat_templates), here from the GGUF's metadata.
  REQUIRE(pretrained.chat_template.has_value());
  const auto fixture = nlohmann::ordered_json::parse(
      std::ifstream(grpo::testing::fixture_path("chat_templates/smollm2-135m-instruct.json")));
  for (const auto& c : fixture.at("cases")) {
    INFO(c.at("name").get<std::string>());
    CHECK(pretrained.chat_template->render(c.at("messages"), c.at("add_generation_prompt").get<bool>(),
                                           c.at("variables")) == c.at("expected").get<std::string>());
  }

  // The chat prompt of tests/fixtures/smollm2/make_logits.py: the same ids as transformers, and the same greedy
  // tokens, now ending at the model's EOS (<|im_end|>) without being told.
  const auto reference =
      grpo::read_safetensors(grpo::testing::fixture_path("smollm2/smollm2_logits.safetensors")).tensors;
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "user", "content": "What is the capital of France? Answer in one word."}])");
  const auto prompt = pretrained.chat_template->render(messages, true);
  const auto prompt_ids = tokenizer.encode(prompt);
  const auto want_prompt = reference.at("input_ids");
  CHECK(prompt_ids ==
        std::vector<int64_t>(want_prompt.data_ptr<int64_t>(), want_prompt.data_ptr<int64_t>() + want_prompt.numel()));
  grpo::GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 16;
  torch::NoGradGuard no_grad;
  const auto answer = grpo::generate_text(*pretrained.model, tokenizer, {prompt}, options);
  const auto greedy = reference.at("greedy_ids");
  const std::vector<int64_t> want(greedy.data_ptr<int64_t>(), greedy.data_ptr<int64_t>() + greedy.numel());
  const auto& got = answer.completion_ids[0];
  REQUIRE(!got.empty());
  CHECK(got == std::vector<int64_t>(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(got.size())));
  CHECK(got.back() == 2);  // stopped at <|im_end|>
  CHECK_FALSE(answer.truncated[0]);
  WARN("SmolLM2 answers " << answer.completions[0]);
  CHECK(answer.completions[0].find("Paris") != std::string::npos);
}
