#pragma once
// Chat templates: a model's Jinja chat template rendered for a conversation exactly as Hugging Face transformers'
// `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=..., **kwargs)` renders it
// (checked byte for byte against transformers on the real templates of nine model families, tests/fixtures/
// chat_templates). Torch-free.
//
//   grpo::ChatTemplate tmpl = grpo::ChatTemplate::from_tokenizer_config("Qwen3/tokenizer_config.json");
//   std::string prompt = tmpl.render(R"([{"role": "user", "content": "2+2?"}])"_json, /*add_generation_prompt=*/true,
//                                    {{"enable_thinking", false}});
//
// The engine implements the Jinja subset chat templates use, with Jinja2's semantics on Python values (strings
// count and slice code points, `+` does not convert, printing a list prints Python's repr, an undefined value is
// falsy and prints as nothing, and any other use of it is an error): text, {{ }}, {% %}, {# #}, whitespace control
// ({%- -%} {{- -}} {%+ +%}) with trim_blocks and lstrip_blocks on as transformers sets them; for loops (loop.index,
// index0, revindex, revindex0, first, last, length, previtem, nextitem, cycle; else; a loop filter `if`; unpacking
// `for k, v in d.items()`; break/continue); if/elif/else; set (names, tuples, namespace attributes, {% set %}
// blocks); macros with defaults; {% filter %} blocks; {% generation %}; literals (strings, numbers, lists, tuples,
// dicts, true/false/ none), arithmetic, ~, comparisons (chained), and/or/not, in/not in, `a if c else b`,
// attribute/item access, slices ([::-1]); filters abs, attr, capitalize, count, default/d, dictsort, escape/e, first,
// float, indent, int, items, join, last, length, list, lower, map, max, min, reject, rejectattr, replace, reverse,
// safe, select, selectattr, sort, string, sum, title, tojson (transformers': json.dumps with ensure_ascii=False,
// indent, separators, sort_keys), trim, unique, upper, wordcount; the tests of Jinja2 (defined, none, string, mapping,
// sequence, iterable, number, integer, boolean, true, false, eq, in, ...); the str methods startswith, endswith, strip,
// lstrip, rstrip, split, rsplit, splitlines, replace, upper, lower, title, capitalize, find, rfind, index, count,
// join, removeprefix, removesuffix, is*; dict.items/keys/values/get; the globals raise_exception, strftime_now,
// namespace, dict, range. A string marked |safe or |escape is MarkupSafe's Markup: `+` HTML-escapes a plain
// string joined to it, as Jinja2 does. Limits: case mapping (upper, lower, title) changes ASCII letters only;
// integers are 64-bit (overflow is an error); dict literal keys must be strings. Anything else ({% include %},
// {% call %}, an unknown filter, test or statement, '%' string formatting, ...) is an error naming the template
// line and the construct: at construction when it is syntax, at render otherwise. A runaway template is an error
// too, not a hang or all the memory (detail/jinja_value.hpp): strings up to 64 MiB, lists built by the template up
// to 131072 items, 100000 steps (loop iterations, macro calls), 200 levels of nesting in the source and in values.

#include <algorithm>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "grpo/detail/json_depth.hpp"
#include "grpo/error.hpp"
#include "grpo/tokenizers/detail/jinja_interpreter.hpp"
#include "grpo/tokenizers/detail/jinja_parser.hpp"
#include "grpo/tokenizers/detail/jinja_value.hpp"

namespace grpo {

/// The special-token strings a chat template sees as variables, as transformers passes them (its
/// special_tokens_map): an unset token is undefined in the template (Qwen's bos_token, for instance).
struct SpecialTokens {
  /// Beginning-of-sequence token, e.g. "<s>".
  std::optional<std::string> bos_token;
  /// End-of-sequence token, e.g. "</s>" or "<|im_end|>".
  std::optional<std::string> eos_token;
  /// Unknown-token token.
  std::optional<std::string> unk_token;
  /// Separator token.
  std::optional<std::string> sep_token;
  /// Padding token.
  std::optional<std::string> pad_token;
  /// Classifier token.
  std::optional<std::string> cls_token;
  /// Mask token.
  std::optional<std::string> mask_token;
};

/// What a render passes to the template besides the messages.
struct ChatTemplateOptions {
  /// End with the header that opens an assistant turn (transformers' add_generation_prompt; default false).
  bool add_generation_prompt = false;
  /// Keyword variables, a JSON object: tools, documents, enable_thinking, reasoning_effort, ... They override the
  /// special tokens. `tools` and `documents` are none unless given here, as in transformers.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  /// The local time strftime_now() formats (some templates print today's date); unset: the current local time.
  std::optional<std::tm> now;
};

/// A parsed chat template; render() is const and may be called from several threads at once.
class ChatTemplate {
 public:
  /// Parses `source` (the Jinja text of a tokenizer_config.json's chat_template). A syntax error or an unsupported
  /// statement, filter or test throws grpo::InvalidArgument naming the line.
  explicit ChatTemplate(std::string source, SpecialTokens special_tokens = {})
      : source_(std::move(source)), special_tokens_(std::move(special_tokens)) {
    try {
      program_ = std::make_shared<const detail::jinja::StmtList>(detail::jinja::parse(source_));
    } catch (const detail::jinja::TemplateError& e) {
      throw InvalidArgument("grpo::ChatTemplate: line " + std::to_string(e.line) + ": " + e.what());
    }
  }

  /// The chat template of a Hugging Face tokenizer_config.json with its special tokens (strings, or AddedToken
  /// objects with a "content"). `chat_template` may be a string or a list of {"name", "template"}; then `name`
  /// picks one ("default" unless given). Without a chat_template key, a chat_template.jinja file beside the config
  /// is read (newer repositories ship the template so).
  static ChatTemplate from_tokenizer_config(const std::string& path, const std::string& name = "default") {
    const std::string where = "grpo::ChatTemplate::from_tokenizer_config: " + path + ": ";
    const std::string text = read_file(path, where);
    if (detail::json_nesting_depth(text) > detail::max_json_depth) {
      throw InvalidArgument(where + "the JSON nests arrays and objects more than " +
                            std::to_string(detail::max_json_depth) + " deep");
    }
    nlohmann::ordered_json config;
    try {
      config = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw InvalidArgument(where + "not valid JSON (" + e.what() + ")");
    }
    if (!config.is_object()) throw InvalidArgument(where + "the top level is not a JSON object");
    SpecialTokens tokens;
    const std::pair<const char*, std::optional<std::string>*> fields[] = {
        {"bos_token", &tokens.bos_token},  {"eos_token", &tokens.eos_token}, {"unk_token", &tokens.unk_token},
        {"sep_token", &tokens.sep_token},  {"pad_token", &tokens.pad_token}, {"cls_token", &tokens.cls_token},
        {"mask_token", &tokens.mask_token}};
    for (const auto& field : fields) {
      const auto it = config.find(field.first);
      if (it == config.end() || it->is_null()) continue;
      if (it->is_string()) {
        *field.second = it->get<std::string>();
      } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
        *field.second = (*it)["content"].get<std::string>();
      } else {
        throw InvalidArgument(where + "\"" + field.first + "\" is neither a string nor an object with a \"content\"");
      }
    }
    std::string source;
    const auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) {
      const std::size_t slash = path.find_last_of("/\\");
      const std::string beside =
          (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "chat_template.jinja";
      if (!std::ifstream(beside).good()) {
        throw InvalidArgument(where + "no \"chat_template\" key and no chat_template.jinja beside it");
      }
      source = read_file(beside, "grpo::ChatTemplate::from_tokenizer_config: " + beside + ": ");
    } else if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {
      std::string names;
      for (const auto& entry : *it) {
        if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
            !entry["name"].is_string() || !entry["template"].is_string()) {
          throw InvalidArgument(where + "each \"chat_template\" entry must be {\"name\": ..., \"template\": ...}");
        }
        if (entry["name"] == name) source = entry["template"].get<std::string>();
        names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
      }
      if (source.empty()) throw InvalidArgument(where + "no chat template named \"" + name + "\" (has: " + names + ")");
    } else {
      throw InvalidArgument(where + "\"chat_template\" must be a string or a list of named templates");
    }
    try {
      return ChatTemplate(std::move(source), std::move(tokens));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(where + std::string(e.what()).substr(std::string("grpo::ChatTemplate: ").size()));
    }
  }

  /// The text of the conversation `messages` (a JSON array of objects with "role", "content" and any other keys,
  /// such as "tool_calls" or "reasoning_content"). As apply_chat_template does, keys whose value is null are
  /// dropped, and an assistant's reasoning given as "reasoning_content", "thinking" or "reasoning" is passed under
  /// both "reasoning_content" and "thinking". Use nlohmann::ordered_json (or parse with it) where the template
  /// prints objects (tojson of tool calls): nlohmann::json sorts keys, Python keeps them in insertion order.
  /// A raise_exception() in the template, or an error such as an undefined value used in arithmetic, throws
  /// grpo::InvalidArgument with the template's message and line.
  std::string render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& options) const {
    namespace jj = detail::jinja;
    if (!messages.is_array()) throw InvalidArgument("grpo::ChatTemplate::render: messages must be a JSON array");
    if (messages.empty()) throw InvalidArgument("grpo::ChatTemplate::render: the conversation is empty");
    if (!options.variables.is_object()) {
      throw InvalidArgument("grpo::ChatTemplate::render: variables must be a JSON object");
    }
    std::vector<std::pair<std::string, jj::Value>> variables;
    try {  // jj::from_json fails too, on messages or variables nested deeper than the engine's bound
      const std::pair<const char*, const std::optional<std::string>*> tokens[] = {
          {"bos_token", &special_tokens_.bos_token},  {"eos_token", &special_tokens_.eos_token},
          {"unk_token", &special_tokens_.unk_token},  {"sep_token", &special_tokens_.sep_token},
          {"pad_token", &special_tokens_.pad_token},  {"cls_token", &special_tokens_.cls_token},
          {"mask_token", &special_tokens_.mask_token}};
      for (const auto& token : tokens) {
        if (*token.second) variables.emplace_back(token.first, jj::Value::string(**token.second));
      }
      variables.emplace_back("messages", jj::from_json(normalize_messages(messages)));
      variables.emplace_back("tools", jj::Value::none());
      variables.emplace_back("documents", jj::Value::none());
      variables.emplace_back("add_generation_prompt", jj::Value::boolean(options.add_generation_prompt));
      for (auto it = options.variables.begin(); it != options.variables.end(); ++it) {
        if (it.key() == "messages" || it.key() == "add_generation_prompt") {
          throw InvalidArgument("grpo::ChatTemplate::render: \"" + it.key() +
                                "\" cannot be a variable (it is render()'s own argument)");
        }
        auto existing =
            std::find_if(variables.begin(), variables.end(), [&](const auto& v) { return v.first == it.key(); });
        if (existing != variables.end()) {
          existing->second = jj::from_json(it.value());
        } else {
          variables.emplace_back(it.key(), jj::from_json(it.value()));
        }
      }
      return jj::Interpreter(options.now).render(*program_, std::move(variables));
    } catch (const jj::TemplateError& e) {
      if (e.raised) {
        throw InvalidArgument("grpo::ChatTemplate::render: the template raised an exception (line " +
                              std::to_string(e.line) + "): " + e.what());
      }
      if (e.line == 0) {  // from jj::from_json, before the template runs
        throw InvalidArgument(std::string("grpo::ChatTemplate::render: the messages or variables: ") + e.what());
      }
      throw InvalidArgument("grpo::ChatTemplate::render: line " + std::to_string(e.line) + ": " + e.what());
    }
  }

  /// render() with add_generation_prompt and keyword variables (tools, enable_thinking, ...) as arguments.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt = false,
                     const nlohmann::ordered_json& variables = nlohmann::ordered_json::object()) const {
    ChatTemplateOptions options;
    options.add_generation_prompt = add_generation_prompt;
    options.variables = variables;
    return render(messages, options);
  }

  /// The template's Jinja text.
  const std::string& source() const { return source_; }
  /// The special-token strings the template sees.
  const SpecialTokens& special_tokens() const { return special_tokens_; }

 private:
  std::string source_;
  SpecialTokens special_tokens_;
  std::shared_ptr<const detail::jinja::StmtList> program_;

  static std::string read_file(const std::string& path, const std::string& where) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw RuntimeError(where + "cannot open the file");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw RuntimeError(where + "cannot read the file");
    return text.str();
  }

  // apply_chat_template's preparation of each message: null-valued keys dropped, reasoning aliased.
  static nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    std::size_t index = 0;
    for (const auto& message : messages) {
      if (!message.is_object()) {
        throw InvalidArgument("grpo::ChatTemplate::render: message " + std::to_string(index) + " is not a JSON object");
      }
      nlohmann::ordered_json kept = nlohmann::ordered_json::object();
      for (auto it = message.begin(); it != message.end(); ++it) {
        if (!it.value().is_null()) kept[it.key()] = it.value();
      }
      const nlohmann::ordered_json* reasoning = nullptr;
      for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
        if (kept.contains(key)) {
          reasoning = &kept[key];
          break;
        }
      }
      if (reasoning) {
        // {"thinking": reasoning, **message, "reasoning_content": reasoning}
        nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
        aliased["thinking"] = *reasoning;
        for (auto it = kept.begin(); it != kept.end(); ++it) aliased[it.key()] = it.value();
        aliased["reasoning_content"] = *reasoning;
        kept = std::move(aliased);
      }
      out.push_back(std::move(kept));
      ++index;
    }
    return out;
  }
};

}  // namespace grpo
