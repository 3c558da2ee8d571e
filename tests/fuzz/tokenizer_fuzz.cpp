// libFuzzer target: grpo::BpeTokenizer::from_json over a tokenizer.json, optionally with a tokenizer_config.json
// after a line "--config--", then encode and decode of a fixed text, and the documented round trip: the
// tokenizer written back (to_tokenizer_json, tokenizer_config_json) loads to one that encodes the same.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "grpo/detail/json_depth.hpp"
#include "grpo/error.hpp"
#include "grpo/tokenizers/bpe_tokenizer.hpp"

namespace {

const std::string kSeparator = "\n--config--\n";
// ASCII words and digits, spaces and newlines, accents (NFC and not), CJK, an emoji, and the special tokens of the
// seed tokenizers.
const std::string kText =
    "Hello world! 12345 it's  spaced\n\n\ttabs caf\xc3\xa9 cafe\xcc\x81 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80"
    "<|im_start|>user<|im_end|><think>x</think><|endoftext|>";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string input = grpo_fuzz::as_text(data, size);
  const auto split = input.find(kSeparator);
  if (grpo::detail::json_nesting_depth(input) > grpo::detail::max_json_depth) return 0;  // from_file refuses it
  const auto tokenizer_json = nlohmann::json::parse(input.substr(0, split), nullptr, /*allow_exceptions=*/false);
  if (tokenizer_json.is_discarded()) return 0;  // not JSON: from_file's error, not the tokenizer's
  nlohmann::json config = nullptr;
  if (split != std::string::npos) {
    config = nlohmann::json::parse(input.substr(split + kSeparator.size()), nullptr, false);
    if (config.is_discarded()) return 0;
  }
  try {
    const auto tokenizer = grpo::BpeTokenizer::from_json(tokenizer_json, config);
    const std::vector<int64_t> ids = tokenizer.encode(kText);
    for (const auto id : ids) {
      grpo_fuzz::require(id >= 0 && id < tokenizer.vocab_size(), "encode returns ids inside the vocabulary");
    }
    (void)tokenizer.decode(ids);
    grpo::DecodeOptions keep;
    keep.skip_special_tokens = false;
    (void)tokenizer.decode(ids, keep);
    std::vector<int64_t> every_id;
    for (int64_t id = 0; id < tokenizer.vocab_size() + 2 && id < 4096; ++id) every_id.push_back(id);
    (void)tokenizer.decode(every_id, keep);
    (void)tokenizer.token_to_id("<|im_end|>");
    (void)tokenizer.id_to_token(0);

    const auto written = tokenizer.to_tokenizer_json();
    const auto written_config = tokenizer.tokenizer_config_json();
    const auto reloaded = grpo::BpeTokenizer::from_json(nlohmann::json::parse(written.dump()), written_config);
    grpo_fuzz::require(reloaded.encode(kText) == ids, "a tokenizer written back encodes the same");
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
  }
  return 0;
}
