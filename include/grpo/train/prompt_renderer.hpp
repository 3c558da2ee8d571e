#pragma once
// From a dataset row's "prompt" to the text the policy continues, as TRL's maybe_apply_chat_template does: a text
// prompt as it is; a conversation (a list of {"role", "content"} messages) rendered with the model's chat template
// and the generation prompt, with extra template variables (TRL's chat_template_kwargs, e.g. enable_thinking).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/tokenizers/chat_template.hpp"

namespace grpo {

/// Renders prompts; without a chat template it accepts text prompts only.
class PromptRenderer {
 public:
  PromptRenderer() = default;
  /// Conversations are rendered with `chat_template` and `variables` (a JSON object; empty: none).
  explicit PromptRenderer(std::optional<ChatTemplate> chat_template,
                          nlohmann::ordered_json variables = nlohmann::ordered_json::object())
      : template_(std::move(chat_template)), variables_(std::move(variables)) {
    if (!variables_.is_object()) {
      throw InvalidArgument("grpo::PromptRenderer: chat_template_kwargs must be a JSON object, got " +
                            std::string(variables_.type_name()));
    }
  }

  /// True when conversations can be rendered.
  bool has_chat_template() const { return template_.has_value(); }

  /// The text of `prompt` (a string, or a list of messages) of dataset row `row` (named in errors).
  std::string operator()(const nlohmann::json& prompt, int64_t row) const {
    if (prompt.is_string()) return prompt.get<std::string>();
    if (!template_) {
      throw InvalidArgument("grpo::PromptRenderer: the prompt of dataset row " + std::to_string(row) +
                            " is a conversation, but no chat template was given (TrainerOptions::chat_template; "
                            "grpo::load_pretrained gives the model's)");
    }
    try {
      return template_->render(nlohmann::ordered_json(prompt), /*add_generation_prompt=*/true, variables_);
    } catch (const InvalidArgument& e) {
      throw InvalidArgument("grpo::PromptRenderer: dataset row " + std::to_string(row) + ": " + e.what());
    }
  }

 private:
  std::optional<ChatTemplate> template_;
  nlohmann::ordered_json variables_ = nlohmann::ordered_json::object();
};

}  // namespace grpo
