// libFuzzer target: the prompt-dataset loaders (grpo::load_jsonl and grpo::load_json_array, from memory) and the
// Dataset accessors over whatever they accept. Only grpo::Error may escape the library.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_support.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/error.hpp"

namespace {

// Everything a trainer asks of a loaded dataset.
void use(const grpo::Dataset& dataset) {
  std::size_t text_bytes = 0;
  for (std::size_t i = 0; i < dataset.size(); ++i) {
    if (dataset.is_conversational(i)) {
      text_bytes += dataset.prompt_value(i).size();
    } else {
      text_bytes += dataset.prompt(i).size();
    }
  }
  const auto columns = dataset.column_names();
  grpo_fuzz::require(dataset.empty() || !columns.empty(), "a non-empty dataset has columns");
  const auto first = dataset.first_conversational_row();
  grpo_fuzz::require(first <= dataset.size(), "first_conversational_row is at most size()");
  const auto [train, eval] = dataset.split(0.25, text_bytes);
  grpo_fuzz::require(train.size() + eval.size() == dataset.size(), "split keeps every row");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text = grpo_fuzz::as_text(data, size);
  try {
    std::istringstream in(text);
    use(grpo::detail::parse_jsonl(in, "fuzz.jsonl"));
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
  }
  try {
    use(grpo::detail::parse_json_array(text, "fuzz.json"));
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
  }
  return 0;
}
