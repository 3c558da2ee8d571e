// libFuzzer target: grpo::ChatTemplate, the Jinja engine of chat templates: the input is a template, parsed and
// rendered for a fixed conversation (system, user, an assistant turn with reasoning and a tool call, a tool
// result), with the generation prompt when the input's length is even.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_support.hpp"
#include "grpo/error.hpp"
#include "grpo/tokenizers/chat_template.hpp"

namespace {

const nlohmann::ordered_json& messages() {
  static const auto value = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is 2+2? <b>bold</b> \u00e9"},
    {"role": "assistant", "content": "", "reasoning_content": "Add them.",
     "tool_calls": [{"id": "call12345", "type": "function",
                     "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
    {"role": "tool", "content": "4", "name": "add", "tool_call_id": "call12345"},
    {"role": "assistant", "content": "It is 4.", "thinking": null},
    {"role": "user", "content": "Thanks"}
  ])");
  return value;
}

const nlohmann::ordered_json& variables() {
  static const auto value = nlohmann::ordered_json::parse(R"({
    "enable_thinking": false,
    "reasoning_effort": "low",
    "tools": [{"type": "function", "function": {"name": "add", "description": "Adds.",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}],
    "custom": [1, 2.5, "three", null, true]
  })");
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  grpo::SpecialTokens tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  std::tm now{};
  now.tm_year = 126;
  now.tm_mon = 2;
  now.tm_mday = 14;
  try {
    const grpo::ChatTemplate chat(grpo_fuzz::as_text(data, size), tokens);
    grpo::ChatTemplateOptions options;
    options.add_generation_prompt = size % 2 == 0;  // one render per input: a runaway one takes seconds
    options.variables = variables();
    options.now = now;
    (void)chat.render(messages(), options);
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
  }
  return 0;
}
