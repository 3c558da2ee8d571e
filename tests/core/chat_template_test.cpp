// Chat templates render byte for byte as transformers' apply_chat_template(tokenize=False) does, on real model
// templates and on one template per Jinja construct (tests/fixtures/chat_templates, written by make_fixtures.py).
#include "grpo/tokenizers/chat_template.hpp"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/catch.hpp"

#include "support/error_checks.hpp"
#include "support/scoped_temp_dir.hpp"

using Catch::Matchers::StartsWith;
using grpo_test::Contains;

namespace {

const std::filesystem::path& fixture_dir() {
  static const std::filesystem::path dir =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "chat_templates";
  return dir;
}

nlohmann::ordered_json read_fixture(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::ordered_json::parse(in);
}

grpo::SpecialTokens special_tokens_of(const nlohmann::ordered_json& fixture) {
  grpo::SpecialTokens tokens;
  const auto& map = fixture.at("special_tokens");
  auto read = [&](const char* key, std::optional<std::string>& field) {
    if (map.contains(key)) field = map.at(key).get<std::string>();
  };
  read("bos_token", tokens.bos_token);
  read("eos_token", tokens.eos_token);
  read("unk_token", tokens.unk_token);
  read("sep_token", tokens.sep_token);
  read("pad_token", tokens.pad_token);
  read("cls_token", tokens.cls_token);
  read("mask_token", tokens.mask_token);
  return tokens;
}

// The fixtures' pinned clock: "2026-03-14T09:26:53" (a Saturday, day 73 of the year).
std::tm fixture_now() {
  std::tm now{};
  now.tm_year = 2026 - 1900;
  now.tm_mon = 2;
  now.tm_mday = 14;
  now.tm_hour = 9;
  now.tm_min = 26;
  now.tm_sec = 53;
  now.tm_wday = 6;
  now.tm_yday = 72;
  return now;
}

std::string render_error(const grpo::ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                         const grpo::ChatTemplateOptions& options) {
  try {
    tmpl.render(messages, options);
  } catch (const grpo::InvalidArgument& e) {
    return e.what();
  }
  return "no error";
}

std::string construction_error(const std::string& source) {
  try {
    grpo::ChatTemplate tmpl(source);
  } catch (const grpo::InvalidArgument& e) {
    return e.what();
  }
  return "no error";
}

std::string render_one(const std::string& source,
                       const nlohmann::ordered_json& variables = nlohmann::ordered_json::object()) {
  return grpo::ChatTemplate(source, {})
      .render(nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), false, variables);
}

}  // namespace

TEST_CASE("chat templates of real models render exactly as transformers renders them", "[chat_template]") {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(fixture_dir())) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 10);  // nine model templates and the constructs
  std::size_t cases = 0;
  for (const auto& path : files) {
    const nlohmann::ordered_json fixture = read_fixture(path);
    const grpo::SpecialTokens tokens = special_tokens_of(fixture);
    for (const auto& c : fixture.at("cases")) {
      INFO(path.filename().string() << ": " << c.at("name").get<std::string>());
      const std::string source =
          c.contains("template") ? c.at("template").get<std::string>() : fixture.at("template").get<std::string>();
      const grpo::ChatTemplate tmpl(source, tokens);
      grpo::ChatTemplateOptions options;
      options.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
      options.variables = c.at("variables");
      options.now = fixture_now();
      if (c.contains("expected")) {
        CHECK(tmpl.render(c.at("messages"), options) == c.at("expected").get<std::string>());
      } else {
        CHECK_THAT(render_error(tmpl, c.at("messages"), options),
                   StartsWith("grpo::ChatTemplate::render: ") && Contains(c.at("error").get<std::string>()));
      }
      ++cases;
    }
  }
  CHECK(cases >= 150);
}

TEST_CASE("a template error names the line and the construct", "[chat_template]") {
  CHECK(construction_error("a\n{{ x | frobnicate }}") ==
        "grpo::ChatTemplate: line 2: unsupported construct: filter 'frobnicate'");
  CHECK(construction_error("{% if x is prime %}{% endif %}") ==
        "grpo::ChatTemplate: line 1: unsupported construct: test 'prime'");
  CHECK(construction_error("\n\n{% include 'other.jinja' %}") ==
        "grpo::ChatTemplate: line 3: unsupported construct: {% include %}");
  CHECK(construction_error("{% for x in y recursive %}{% endfor %}") ==
        "grpo::ChatTemplate: line 1: unsupported construct: recursive for loops");
  CHECK_THAT(construction_error("{% if x %}\nno end"),
             StartsWith("grpo::ChatTemplate: line 2: unexpected end of template"));
  CHECK_THAT(construction_error("{{ 'unterminated }}"), Contains("line 1: unterminated string literal"));
  CHECK_THAT(construction_error("{% endfor %}"), Contains("line 1: unexpected 'endfor'"));
  CHECK_THAT(construction_error("{% break %}"), Contains("'break' outside of a for loop"));
  CHECK_THAT(construction_error("{# open comment"), Contains("missing end of comment tag"));

  const grpo::ChatTemplate formatting("line one\n{{ '%s!' % messages[0].content }}");
  CHECK_THAT(render_error(formatting, nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), {}),
             Contains("line 2: unsupported construct: printf-style string formatting"));
  const grpo::ChatTemplate overflow("{{ 2 ** 62 + 2 ** 62 }}");
  CHECK_THAT(render_error(overflow, nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), {}),
             Contains("line 1: integer overflow: the template's integers are 64-bit"));
  const grpo::ChatTemplate method("{{ messages[0].content.format(1) }}");
  CHECK_THAT(render_error(method, nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), {}),
             Contains("line 1: unsupported construct: str method 'format'"));
}

// Each was a crash, a hang or unbounded memory before (found by tests/fuzz/chat_template_fuzz.cpp or while writing
// it; the inputs are in tests/fuzz/corpus/chat_template/regression_*.jinja).
TEST_CASE("a runaway template is an error naming the line, not a crash, a hang or all the memory", "[chat_template]") {
  const auto error = [](const std::string& source) {
    try {
      return render_error(grpo::ChatTemplate(source),
                          nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), {});
    } catch (const grpo::InvalidArgument& e) {
      return std::string(e.what());
    }
  };
  // 64-bit integers: literals, negation, floor division and modulo at INT64_MIN, abs, sum, int().
  CHECK(error("\n{{ 99999999999999999999 }}") ==
        "grpo::ChatTemplate: line 2: integer literal 99999999999999999999 does not fit the template's 64-bit "
        "integers");
  const std::string int_min = "{% set m = -9223372036854775807 - 1 %}";
  for (const char* expression : {"-m", "m // -1", "m | abs", "[m, -1] | sum", "'1e300' | int", "1e300 | int"}) {
    INFO(expression);
    CHECK_THAT(error(int_min + "{{ " + expression + " }}"),
               Contains("line 1: integer overflow: the template's integers are 64-bit"));
  }
  CHECK(render_one(int_min + "{{ m % -1 }} {{ m is divisibleby(-1) }} {{ [9007199254740993] | sum }}") ==
        "0 True 9007199254740993");
  // Sizes: indent and repetition follow Python (' ' * -5 is ''), huge ones are errors; empty repetitions are free.
  CHECK(render_one("{{ 'a\nb' | indent(-5, true) }}|{{ '' * 9223372036854775807 }}|{{ [] * 9223372036854775807 }}") ==
        "a\nb||[]");
  CHECK_THAT(error("{{ 'a b' | indent(99999999999) }}"), Contains("line 1: the template built a string of more than"));
  CHECK_THAT(error("{{ [[1]] | tojson(indent=999999999) }}"), Contains("a string of more than 64 MiB"));
  CHECK_THAT(error("{% set s = 'x' * 60000000 %}{{ ([s] * 100000) | length }}"),
             Contains("repetition with '*' too large"));  // strings are copied with the list
  for (const char* expression : {"s | list", "s | sort", "s.split(',')"}) {
    INFO(expression);
    CHECK_THAT(error(std::string("{% set s = 'x,' * 200000 %}{{ ") + expression + " | length }}"),
               Contains("the template built a list of more than 131072 items"));
  }
  CHECK_THAT(error("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                   "{% endfor %}"),
             Contains("a string of more than 64 MiB (a runaway loop?)"));
  // Work: loop iterations, macro calls and the items filters go through share one budget.
  CHECK_THAT(error("{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}"),
             Contains("line 2: the template took more than 100000 steps"));
  CHECK_THAT(error("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"),
             Contains("the template took more than 100000 steps"));
  // Depth: the parser's recursion, expression chains, nested values, a namespace holding itself.
  CHECK_THAT(error("{{ " + std::string(400, '(') + "1" + std::string(400, ')') + " }}"),
             Contains("grpo::ChatTemplate: line 1: the template nests blocks or expressions too deeply"));
  std::string chain = "{{ 'a'";
  for (int k = 0; k < 300; ++k) chain += " ~ 'a'";
  CHECK_THAT(error(chain + " }}"), Contains("line 1: an expression nests more than 200 deep"));
  CHECK_THAT(error("{% set ns = namespace(x=[]) %}{% for i in range(300) %}{% set ns.x = [ns.x] %}{% endfor %}"),
             Contains("lists and dicts nested more than 200 deep"));
  CHECK_THAT(error("{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns }}"),
             Contains("(a namespace holding itself?)"));
  nlohmann::ordered_json deep = "hi";
  for (int k = 0; k < 300; ++k) deep = nlohmann::ordered_json::array({deep});
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", deep}});
  CHECK(render_error(grpo::ChatTemplate("{{ messages | length }}"), messages, {}) ==
        "grpo::ChatTemplate::render: the messages or variables: lists and dicts nested more than 200 deep");

  // Real templates stay far below the bounds: Qwen3's (messages|length in its loop over the messages) renders a
  // conversation of 2000 turns.
  std::ifstream in(fixture_dir() / "templates" / "qwen3.jinja");
  const grpo::ChatTemplate qwen3(std::string(std::istreambuf_iterator<char>(in), {}));
  nlohmann::ordered_json long_conversation = nlohmann::ordered_json::array();
  for (int k = 0; k < 2000; ++k) {
    long_conversation.push_back(
        {{"role", k % 2 == 0 ? "user" : "assistant"}, {"content", "turn " + std::to_string(k)}});
  }
  CHECK_THAT(qwen3.render(long_conversation, true), Contains("turn 1999"));
}

TEST_CASE("raise_exception reaches the caller as grpo::InvalidArgument with the template's message",
          "[chat_template]") {
  const grpo::ChatTemplate tmpl(
      "{% for m in messages %}\n{% if m.role not in ['user', 'assistant'] %}\n"
      "{{ raise_exception('Unknown role: ' ~ m.role) }}{% endif %}{% endfor %}");
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "robot", "content": "beep"}])");
  const auto caught = grpo_test::catch_error<std::invalid_argument>([&] { tmpl.render(messages); });
  CHECK(caught.as_grpo_error);
  CHECK(caught.as_std_type);
  CHECK(caught.message == "grpo::ChatTemplate::render: the template raised an exception (line 3): Unknown role: robot");
}

TEST_CASE("render passes messages as apply_chat_template prepares them", "[chat_template]") {
  const grpo::ChatTemplate tmpl("{% for m in messages %}{{ m | tojson }}\n{% endfor %}");
  const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "user", "content": "q", "name": null},
    {"role": "assistant", "content": "a", "reasoning_content": "r"},
    {"role": "assistant", "content": "b", "reasoning": "s"},
    {"role": "assistant", "thinking": "t", "content": "c"}])");
  CHECK(tmpl.render(messages) ==
        "{\"role\": \"user\", \"content\": \"q\"}\n"
        "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", \"reasoning_content\": \"r\"}\n"
        "{\"thinking\": \"s\", \"role\": \"assistant\", \"content\": \"b\", \"reasoning\": \"s\", "
        "\"reasoning_content\": \"s\"}\n"
        "{\"thinking\": \"t\", \"role\": \"assistant\", \"content\": \"c\", \"reasoning_content\": \"t\"}\n");
  // nlohmann::json (sorted keys) converts; the template then sees its keys sorted.
  const nlohmann::json sorted = nlohmann::json::parse(R"([{"role": "user", "content": "q"}])");
  CHECK(tmpl.render(sorted) == "{\"content\": \"q\", \"role\": \"user\"}\n");
}

TEST_CASE("render sees tools and documents as none, keyword variables, and the special tokens", "[chat_template]") {
  CHECK(render_one("{{ tools }} {{ documents }} {{ add_generation_prompt }} [{{ bos_token }}] {{ flag is defined }}") ==
        "None None False [] False");
  CHECK(render_one("{{ tools | length }} {{ flag }}", {{"tools", {1, 2}}, {"flag", true}}) == "2 True");
  grpo::SpecialTokens tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  const grpo::ChatTemplate tmpl("{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", tokens);
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "x"}])");
  CHECK(tmpl.render(messages) == "<s>x</s>");
  CHECK(tmpl.render(messages, false, {{"eos_token", "<end>"}}) == "<s>x<end>");

  CHECK_THAT(render_error(tmpl, nlohmann::ordered_json::object(), {}), Contains("messages must be a JSON array"));
  CHECK_THAT(render_error(tmpl, nlohmann::ordered_json::array(), {}), Contains("the conversation is empty"));
  CHECK_THAT(render_error(tmpl, nlohmann::ordered_json::parse("[1]"), {}), Contains("message 0 is not a JSON object"));
  grpo::ChatTemplateOptions options;
  options.variables = {{"messages", 1}};
  CHECK_THAT(render_error(tmpl, messages, options), Contains("\"messages\" cannot be a variable"));
}

TEST_CASE("strftime_now formats the given time, or the current local time", "[chat_template]") {
  const grpo::ChatTemplate tmpl("{{ strftime_now('%d %B %Y') }}");
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "x"}])");
  grpo::ChatTemplateOptions options;
  options.now = fixture_now();
  CHECK(tmpl.render(messages, options) == "14 March 2026");
  const std::string today = tmpl.render(messages);
  CHECK(today.size() >= 11);
  CHECK(today.find("20") != std::string::npos);
}

TEST_CASE("from_tokenizer_config reads the template and the special tokens", "[chat_template]") {
  grpo_test::ScopedTempDir dir;
  const std::string plain = dir.write("plain.json", R"({
    "bos_token": "<s>", "eos_token": {"content": "</s>", "__type": "AddedToken"}, "pad_token": null,
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"})");
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "x"}])");
  const grpo::ChatTemplate tmpl = grpo::ChatTemplate::from_tokenizer_config(plain);
  CHECK(tmpl.render(messages) == "<s>x</s>");
  CHECK(tmpl.special_tokens().bos_token == std::optional<std::string>("<s>"));
  CHECK_FALSE(tmpl.special_tokens().pad_token.has_value());

  const std::string named = dir.write("named.json", R"({"chat_template": [
    {"name": "default", "template": "default:{{ messages[0].content }}"},
    {"name": "tool_use", "template": "tools:{{ tools | length }}"}]})");
  CHECK(grpo::ChatTemplate::from_tokenizer_config(named).render(messages) == "default:x");
  CHECK(grpo::ChatTemplate::from_tokenizer_config(named, "tool_use").render(messages, false, {{"tools", {1}}}) ==
        "tools:1");
  CHECK_THROWS_WITH(grpo::ChatTemplate::from_tokenizer_config(named, "rag"),
                    Contains("no chat template named \"rag\" (has: default, tool_use)"));

  std::filesystem::create_directories(dir.path() / "model");
  const std::string beside = dir.write("model/tokenizer_config.json", R"({"eos_token": "<|end|>"})");
  dir.write("model/chat_template.jinja", "{{ messages[0].content }}{{ eos_token }}\n");
  CHECK(grpo::ChatTemplate::from_tokenizer_config(beside).render(messages) == "x<|end|>");

  const std::string none = dir.write("none.json", R"({"eos_token": "</s>"})");
  CHECK_THROWS_WITH(grpo::ChatTemplate::from_tokenizer_config(none), Contains("no \"chat_template\" key"));
  const std::string broken = dir.write("broken.json", R"({"chat_template": "{% for %}"})");
  CHECK_THROWS_WITH(grpo::ChatTemplate::from_tokenizer_config(broken),
                    StartsWith("grpo::ChatTemplate::from_tokenizer_config: " + broken + ": line 1: "));
  const auto missing = grpo_test::catch_error<std::runtime_error>(
      [&] { grpo::ChatTemplate::from_tokenizer_config(dir.file("absent.json")); });
  CHECK(missing.as_grpo_error);
  CHECK_THAT(missing.message, Contains("cannot open the file"));
}
