// Dataset loading from JSONL and JSON arrays: rows, columns, and errors that name file, line and element.
#include "grpo/data/dataset.hpp"

#include <string>
#include <vector>
#include "support/catch.hpp"

#include "support/scoped_temp_dir.hpp"

using Catch::Matchers::StartsWith;
using grpo_test::Contains;

namespace {
std::string dataset_error(const std::string& path) {
  try {
    grpo::load_dataset(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("a JSONL dataset keeps every column and skips blank lines", "[dataset]") {
  grpo_test::ScopedTempDir dir;
  const std::string path = dir.write("train.jsonl",
                                     "{\"prompt\": \"2+2?\", \"answer\": \"4\"}\n"
                                     "\n"
                                     "   \n"
                                     "{\"prompt\": \"3+5?\", \"answer\": \"8\", \"level\": 1}\r\n");
  const grpo::Dataset d = grpo::load_dataset(path);
  REQUIRE(d.size() == 2);
  CHECK(d.prompt(0) == "2+2?");
  CHECK(d.row(1).at("answer") == "8");
  CHECK(d.row(1).at("level") == 1);
  CHECK(d.column_names() == std::vector<std::string>{"answer", "level", "prompt"});
  CHECK_THROWS_WITH(d.row(2), Contains("index 2") && Contains("2 rows"));
}

TEST_CASE("JSONL errors name the file and the line", "[dataset]") {
  grpo_test::ScopedTempDir dir;
  const std::string malformed = dir.write("bad.jsonl", "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\",}\n");
  const std::string message = dataset_error(malformed);
  CHECK_THAT(message, StartsWith("grpo::load_jsonl: " + malformed + ":3: invalid JSON"));
  CHECK_THAT(message, Contains("syntax error"));  // the parser's own words

  CHECK_THAT(dataset_error(dir.write("noprompt.jsonl", "{\"prompt\": \"a\"}\n{\"question\": \"b\"}\n")),
             Contains("noprompt.jsonl:2: row has no \"prompt\" field"));
  CHECK_THAT(
      dataset_error(dir.write("number.jsonl", "{\"prompt\": 7}\n")),
      Contains(
          "number.jsonl:1: \"prompt\" must be a string or a list of {\"role\", \"content\"} messages, got number 7"));
  CHECK_THAT(dataset_error(dir.write("array.jsonl", "[1, 2]\n")), Contains("array.jsonl:1: expected a JSON object"));
  CHECK_THAT(dataset_error(dir.file("absent.jsonl")), Contains("cannot open") && Contains("absent.jsonl"));
}

TEST_CASE("a JSON array dataset loads, and its errors name the element or the line and column", "[dataset]") {
  grpo_test::ScopedTempDir dir;
  const grpo::Dataset d =
      grpo::load_dataset(dir.write("train.json", R"([{"prompt": "a", "id": 1}, {"prompt": "b", "id": 2}])"));
  REQUIRE(d.size() == 2);
  CHECK(d.prompt(1) == "b");
  CHECK(d.row(0).at("id") == 1);

  CHECK_THAT(dataset_error(dir.write("element.json", R"([{"prompt": "a"}, {"prompt": "b"}, {"text": "c"}])")),
             Contains("element.json: element 2: row has no \"prompt\" field"));
  CHECK_THAT(dataset_error(dir.write("syntax.json", "[\n  {\"prompt\": \"a\"},\n  {\"prompt\" \"b\"}\n]\n")),
             Contains("syntax.json:3:15: invalid JSON"));
  CHECK_THAT(dataset_error(dir.write("object.json", R"({"prompt": "a"})")),
             Contains("expected a JSON array") && Contains(".jsonl"));
  CHECK_THAT(dataset_error(dir.write("data.csv", "prompt\na\n")), Contains("unknown extension"));
}

// Found by the fuzz targets (tests/fuzz): nlohmann::json reports a number beyond double as out_of_range, not as a
// parse_error, and it escaped the loaders as a nlohmann exception instead of a grpo::InvalidArgument.
TEST_CASE("a number beyond double is an invalid-JSON error naming the file and the line", "[dataset]") {
  grpo_test::ScopedTempDir dir;
  const std::string jsonl = dir.write("huge.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"x\": 1e400}\n");
  CHECK_THROWS_AS(grpo::load_dataset(jsonl), grpo::InvalidArgument);
  CHECK_THAT(dataset_error(jsonl), StartsWith("grpo::load_jsonl: " + jsonl + ":2: invalid JSON") && Contains("1e400"));
  const std::string array = dir.write("huge.json", "[{\"prompt\": \"a\", \"x\": -1e400}]");
  CHECK_THROWS_AS(grpo::load_dataset(array), grpo::InvalidArgument);
  CHECK_THAT(dataset_error(array),
             StartsWith("grpo::load_json_array: " + array + ": invalid JSON") && Contains("-1e400"));
}

// Found with the fuzz targets' inputs made large: nlohmann::json parses any depth, but copying a row recursed once
// per level and overflowed the stack (a 400 KB line of brackets); the loaders refuse more than 1000 levels.
TEST_CASE("JSON nested beyond 1000 levels is an error naming the file and the line", "[dataset]") {
  grpo_test::ScopedTempDir dir;
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const std::string jsonl = dir.write("deep.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"x\": " + deep + "}\n");
  CHECK_THAT(dataset_error(jsonl),
             StartsWith("grpo::load_jsonl: " + jsonl + ":2: the JSON nests arrays and objects more than 1000 deep"));
  const std::string array = dir.write("deep.json", "[{\"prompt\": \"a\", \"x\": " + deep + "}]");
  CHECK(dataset_error(array) ==
        "grpo::load_json_array: " + array + ": the JSON nests arrays and objects more than 1000 deep");
  const std::string brackets_in_strings = "\"" + std::string(2000, '[') + "\\\"\"";
  const grpo::Dataset d = grpo::load_dataset(dir.write(
      "strings.jsonl",
      "{\"prompt\": " + brackets_in_strings + ", \"x\": " + std::string(999, '[') + std::string(999, ']') + "}\n"));
  CHECK(d.prompt(0) == std::string(2000, '[') + "\"");
}

TEST_CASE("Dataset::from_rows validates rows and names the index", "[dataset]") {
  const grpo::Dataset d = grpo::Dataset::from_rows({{{"prompt", "x"}}, {{"prompt", "y"}, {"answer", 3}}});
  CHECK(d.size() == 2);
  CHECK(d.column_names() == std::vector<std::string>{"answer", "prompt"});
  CHECK_THROWS_WITH(
      grpo::Dataset::from_rows({{{"prompt", "x"}}, {{"prompt", nullptr}}}),
      Contains("row 1: \"prompt\" must be a string or a list of {\"role\", \"content\"} messages, got null"));
}

TEST_CASE("split is seeded, disjoint, complete and order-preserving", "[dataset]") {
  std::vector<nlohmann::json> rows;
  for (int i = 0; i < 100; ++i) rows.push_back({{"prompt", std::to_string(i)}, {"id", i}});
  const grpo::Dataset d = grpo::Dataset::from_rows(rows);
  const auto [train, eval] = d.split(0.2, 1);
  REQUIRE(eval.size() == 20);
  REQUIRE(train.size() == 80);
  std::vector<int> seen(100, 0);
  int last_train = -1, last_eval = -1;
  for (const auto& r : train.rows()) {
    seen[r.at("id").get<int>()]++;
    CHECK(r.at("id").get<int>() > last_train);
    last_train = r.at("id").get<int>();
  }
  for (const auto& r : eval.rows()) {
    seen[r.at("id").get<int>()]++;
    CHECK(r.at("id").get<int>() > last_eval);
    last_eval = r.at("id").get<int>();
  }
  CHECK(std::count(seen.begin(), seen.end(), 1) == 100);
  CHECK(d.split(0.2, 1).second.rows() == eval.rows());
  CHECK(d.split(0.2, 2).second.rows() != eval.rows());
  CHECK_THROWS_WITH(d.split(1.5, 1), Contains("eval_fraction must be in [0, 1]"));
}

TEST_CASE("conversational prompts: lists of role/content messages load, malformed ones are errors with the line",
          "[data][chat]") {
  grpo_test::ScopedTempDir dir;
  const auto path = dir.write("chat.jsonl",
                              "{\"prompt\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
                              "\"content\": \"2+2?\"}], \"answer\": \"4\"}\n"
                              "{\"prompt\": \"plain text\", \"answer\": \"x\"}\n");
  const auto d = grpo::load_jsonl(path);
  REQUIRE(d.size() == 2);
  CHECK(d.is_conversational(0));
  CHECK_FALSE(d.is_conversational(1));
  CHECK(d.first_conversational_row() == 0);
  CHECK(d.prompt_value(0)[1]["content"] == "2+2?");
  CHECK(d.prompt(1) == "plain text");
  CHECK_THROWS_WITH(d.prompt(0), Contains("row 0 holds a conversation"));

  const std::pair<std::string, std::string> bad[] = {
      {R"({"prompt": []})", "\"prompt\" is an empty list of messages"},
      {R"({"prompt": ["hi"]})", "\"prompt\" message 0 must be an object like {\"role\": \"user\""},
      {R"({"prompt": [{"role": "user"}]})", "\"prompt\" message 0 has no \"content\""},
      {R"({"prompt": [{"role": "user", "content": "a"}, {"role": 1, "content": "b"}]})",
       "\"prompt\" message 1 has a \"role\" that is number, not a string: 1"},
  };
  for (const auto& [line, message] : bad) {
    const auto file = dir.write("bad.jsonl", "{\"prompt\": \"ok\"}\n" + line + "\n");
    CHECK_THROWS_WITH(grpo::load_jsonl(file), Contains("bad.jsonl:2: " + message));
  }
  CHECK(grpo::Dataset::from_rows({{{"prompt", "a"}}}).first_conversational_row() == 1);
}
