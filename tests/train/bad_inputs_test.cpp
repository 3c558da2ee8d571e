// The bad-input matrix: one table of broken datasets, configs, model files, tokenizer files, checkpoints and
// reward functions, each with the parts its error message must contain (the file, the line, the column, the
// reward function, the sample, the tensor ... whatever says where the problem is, and what it is). Every entry
// must fail with a grpo::Error; "$DIR" in an expected part stands for the entry's own folder.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arithmetic_task.hpp"

#include "grpo/app/grpo_train.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/pretrained/pretrained.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/rewards/inputs.hpp"
#include "grpo/rewards/scoring.hpp"
#include "grpo/tokenizers/bpe_tokenizer.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/tokenizers/chat_template.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/trainer.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace bad_inputs_test {

namespace fs = std::filesystem;
using Trainer = grpo::GRPOTrainer<grpo::LlamaModel, grpo::CharTokenizer>;

// One row of the matrix: `run(dir)` writes its bad input into `dir` and calls the library on it.
struct BadInput {
  std::string area;
  std::string input;
  std::function<void(const fs::path&)> run;
  std::vector<std::string> expected;
};

std::string write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path.string();
}

std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}
std::string le32(uint32_t v) { return le64(v).substr(0, 4); }

// A safetensors file: header JSON then data bytes.
std::string safetensors_bytes(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// A GGUF v3 prefix: magic, version, tensor count, metadata count.
std::string gguf_prefix(uint64_t tensors, uint64_t metadata) {
  return std::string("GGUF") + le32(3) + le64(tensors) + le64(metadata);
}

const grpo::CharTokenizer& char_tokenizer() {
  static const grpo::CharTokenizer tok("0123456789+=");
  return tok;
}

// A small byte-level BPE tokenizer.json (vocabulary: the bytes of "ab c", one merge).
nlohmann::json tokenizer_json() {
  return nlohmann::json::parse(R"({
    "version": "1.0",
    "added_tokens": [{"id": 5, "content": "<eos>", "special": true, "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "<eos>": 5},
              "merges": ["a b"]}
  })");
}

grpo::GRPOConfig small_config(const fs::path& dir) {
  grpo::GRPOConfig c;
  c.output_dir = dir.string();
  c.num_generations = 2;
  c.per_device_train_batch_size = 4;
  c.max_completion_length = 2;
  c.max_steps = 1;
  c.save_steps = 1;
  return c;
}

std::unique_ptr<Trainer> small_trainer(const fs::path& dir, std::vector<grpo::RewardFunction> rewards,
                                       grpo::Dataset data = grpo_examples::arithmetic_dataset({0, 9, "+"})) {
  torch::manual_seed(3);
  auto model = std::make_shared<grpo::LlamaModel>(grpo::LlamaConfig::tiny(char_tokenizer().vocab_size()));
  grpo::TrainerOptions options;
  options.torch_threads = 1;
  auto t = std::make_unique<Trainer>(model, char_tokenizer(), std::move(rewards), small_config(dir), std::move(data),
                                     std::nullopt, options);
  t->callbacks().remove<grpo::ConsoleReporter>();
  return t;
}

std::vector<grpo::RewardFunction> accuracy_only() {
  std::vector<grpo::RewardFunction> out;
  out.push_back(grpo::accuracy_reward());
  return out;
}

// A trained trainer's checkpoint-1 under `dir`/good (made once per matrix run).
fs::path good_checkpoint(const fs::path& dir) {
  const fs::path checkpoint = dir / "good" / "checkpoint-1";
  if (!fs::exists(checkpoint)) small_trainer(dir / "good", accuracy_only())->train();
  return checkpoint;
}

fs::path copy_checkpoint(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
  return to;
}

std::vector<BadInput> matrix(const fs::path& shared) {
  std::vector<BadInput> m;
  const auto add = [&](std::string area, std::string input, std::function<void(const fs::path&)> run,
                       std::vector<std::string> expected) {
    m.push_back({std::move(area), std::move(input), std::move(run), std::move(expected)});
  };

  // ---- datasets ----
  add("dataset", "malformed JSON on line 3",
      [](const fs::path& d) {
        grpo::load_dataset(
            write(d / "train.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\",,}\n"));
      },
      {"$DIR/train.jsonl:3:", "invalid JSON", "column 16"});
  add("dataset", "a line that is not an object",
      [](const fs::path& d) { grpo::load_dataset(write(d / "train.jsonl", "{\"prompt\": \"a\"}\n[1, 2]\n")); },
      {"$DIR/train.jsonl:2:", "expected a JSON object", "got array"});
  add("dataset", "a row without a prompt",
      [](const fs::path& d) {
        grpo::load_dataset(write(d / "train.jsonl", "{\"prompt\": \"a\"}\n{\"question\": \"b\"}\n"));
      },
      {"$DIR/train.jsonl:2:", "no \"prompt\" field"});
  add("dataset", "an empty file", [](const fs::path& d) { grpo::load_dataset(write(d / "train.jsonl", "\n\n")); },
      {"$DIR/train.jsonl", "has no rows"});
  add("dataset", "a missing file", [](const fs::path& d) { grpo::load_dataset((d / "absent.jsonl").string()); },
      {"$DIR/absent.jsonl", "cannot open"});
  add("dataset", "a JSON array with a bad element",
      [](const fs::path& d) { grpo::load_dataset(write(d / "train.json", "[{\"prompt\": \"a\"}, 7]")); },
      {"$DIR/train.json", "element 1", "got number"});
  add("dataset", "a prompt that is a number",
      [](const fs::path& d) { grpo::load_dataset(write(d / "train.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": 7}\n")); },
      {"$DIR/train.jsonl:2:", "\"prompt\""});
  add("dataset", "a trainer given no rows",
      [](const fs::path& d) { small_trainer(d, accuracy_only(), grpo::Dataset::from_rows({})); },
      {"grpo::RepeatSampler", "the dataset has 0"});

  // ---- configs ----
  add("config", "malformed JSON",
      [](const fs::path& d) { grpo::load_config(write(d / "config.json", "{\n  \"learning_rate\": 1e-5,,\n}")); },
      {"$DIR/config.json", "line 2, column 25"});
  add("config", "an unknown key",
      [](const fs::path& d) { grpo::load_config(write(d / "config.json", R"({"learning_rat": 1e-5})")); },
      {"$DIR/config.json", "learning_rat"});
  add("config", "a value of the wrong type",
      [](const fs::path& d) { grpo::load_config(write(d / "config.json", R"({"learning_rate": "fast"})")); },
      {"$DIR/config.json", "learning_rate", "fast"});
  add("config", "a value out of range",
      [](const fs::path& d) { grpo::load_config(write(d / "config.json", R"({"num_generations": 1})")); },
      {"$DIR/config.json", "num_generations"});
  add("config", "a batch that groups do not divide",
      [](const fs::path& d) {
        grpo::load_config(write(d / "config.json", R"({"num_generations": 3, "per_device_train_batch_size": 4})"));
      },
      {"$DIR/config.json", "num_generations", "3"});
  add("config", "a missing file", [](const fs::path& d) { grpo::load_config((d / "absent.json").string()); },
      {"$DIR/absent.json", "cannot open"});
  add("config", "grpo-train run file: an unknown reward type",
      [](const fs::path& d) {
        write(d / "train.jsonl", "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n");
        write(d / "model.gguf", "GGUF");
        const auto path = write(d / "run.json", R"({"model": "model.gguf", "train_dataset": "train.jsonl",
            "rewards": [{"type": "accuracy"}, {"type": "acuracy"}]})");
        const auto run = grpo::load_train_run(path);
        for (std::size_t k = 0; k < run.rewards.size(); ++k) {  // as grpo-train reads them
          grpo::reward_from_config(run.rewards[k],
                                   path + ": rewards[" + std::to_string(k) + "]: ", run.config.max_completion_length);
        }
      },
      {"$DIR/run.json: rewards[1]: ", "acuracy", "accuracy"});
  add("config", "grpo-train run file: a dataset that does not exist",
      [](const fs::path& d) {
        write(d / "model.gguf", "GGUF");
        grpo::load_train_run(write(d / "run.json", R"({"model": "model.gguf", "train_dataset": "absent.jsonl",
            "rewards": [{"type": "accuracy"}]})"));
      },
      {"$DIR/run.json", "train_dataset", "$DIR/absent.jsonl", "does not exist"});

  // ---- model files ----
  add("model", "safetensors: header longer than the file",
      [](const fs::path& d) { grpo::read_safetensors(write(d / "model.safetensors", le64(1000) + "{}")); },
      {"$DIR/model.safetensors", "header length 1000 exceeds"});
  add("model", "safetensors: data offsets past the end of the file",
      [](const fs::path& d) {
        grpo::read_safetensors(
            write(d / "model.safetensors", safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [4], )"
                                                             R"("data_offsets": [0, 16]}})",
                                                             std::string(8, '\0'))));
      },
      {"$DIR/model.safetensors", "\"w\"", "beyond"});
  add("model", "safetensors: an unknown dtype",
      [](const fs::path& d) {
        grpo::read_safetensors(
            write(d / "model.safetensors", safetensors_bytes(R"({"w": {"dtype": "F31", "shape": [1], )"
                                                             R"("data_offsets": [0, 4]}})",
                                                             std::string(4, '\0'))));
      },
      {"$DIR/model.safetensors", "\"w\"", "F31"});
  add("model", "safetensors: a shape whose size overflows 64 bits",
      [](const fs::path& d) {
        grpo::read_safetensors(
            write(d / "model.safetensors", safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [4294967296, )"
                                                             R"(4294967296, 16], "data_offsets": [0, 0]}})")));
      },
      {"$DIR/model.safetensors", "\"w\"", "overflows 64-bit arithmetic"});
  add("model", "GGUF: not a GGUF file",
      [](const fs::path& d) { grpo::GgufFile(write(d / "model.gguf", "GGML" + std::string(60, '\0'))); },
      {"$DIR/model.gguf", "not a GGUF file", "47 47 4d 4c"});
  add("model", "GGUF: truncated in its header",
      [](const fs::path& d) { grpo::GgufFile(write(d / "model.gguf", gguf_prefix(1, 1).substr(0, 14))); },
      {"$DIR/model.gguf", "truncated"});
  add("model", "GGUF: a metadata count larger than the file could hold",
      [](const fs::path& d) {
        grpo::GgufFile(write(d / "model.gguf", gguf_prefix(0, std::numeric_limits<uint64_t>::max() / 2)));
      },
      {"$DIR/model.gguf", "metadata entries cannot fit"});
  add("model", "GGUF: a tensor whose dimensions overflow 64 bits",
      [](const fs::path& d) {
        std::string bytes = gguf_prefix(1, 0);
        const std::string name = "w";
        bytes += le64(name.size()) + name + le32(3);  // three dimensions
        bytes += le64(uint64_t{1} << 32) + le64(uint64_t{1} << 32) + le64(16);
        bytes += le32(0) + le64(0);  // F32 at offset 0
        bytes += std::string(64, '\0');
        grpo::GgufFile(write(d / "model.gguf", bytes));
      },
      {"$DIR/model.gguf", "\"w\"", "overflow"});
  add("model", "Hugging Face folder: config.json without hidden_size",
      [](const fs::path& d) {
        auto config = nlohmann::json(grpo::LlamaConfig::tiny(12));
        config.erase("hidden_size");
        write(d / "model" / "config.json", config.dump());
        grpo::LlamaModel::from_pretrained((d / "model").string());
      },
      {"$DIR/model/config.json", "hidden_size"});
  add("model", "Hugging Face folder: a weight of the wrong shape",
      [](const fs::path& d) {
        torch::manual_seed(1);
        grpo::LlamaModel model(grpo::LlamaConfig::tiny(12));
        model.save_pretrained((d / "model").string());
        auto weights = grpo::read_safetensors((d / "model" / "model.safetensors").string()).tensors;
        weights["model.norm.weight"] = torch::ones({3});
        grpo::write_safetensors((d / "model" / "model.safetensors").string(), weights);
        grpo::LlamaModel::from_pretrained((d / "model").string());
      },
      {"$DIR/model: ", "\"model.norm.weight\"", "shape [3]", "expects [64]"});
  add("model", "load_pretrained: a folder without tokenizer.json",
      [](const fs::path& d) {
        torch::manual_seed(1);
        grpo::LlamaModel(grpo::LlamaConfig::tiny(12)).save_pretrained((d / "model").string());
        grpo::load_pretrained((d / "model").string());
      },
      {"$DIR/model", "tokenizer.json"});

  // ---- tokenizer files ----
  add("tokenizer", "tokenizer.json: malformed JSON",
      [](const fs::path& d) { grpo::BpeTokenizer::from_file(write(d / "tokenizer.json", "{\"model\": {")); },
      {"$DIR/tokenizer.json", "not valid JSON"});
  add("tokenizer", "tokenizer.json: a model other than BPE",
      [](const fs::path& d) {
        auto j = tokenizer_json();
        j["model"]["type"] = "Unigram";
        grpo::BpeTokenizer::from_file(write(d / "tokenizer.json", j.dump()));
      },
      {"$DIR/tokenizer.json", "Unigram"});
  add("tokenizer", "tokenizer.json: a merge of a token not in the vocabulary",
      [](const fs::path& d) {
        auto j = tokenizer_json();
        j["model"]["merges"] = {"a b", "ab x"};
        grpo::BpeTokenizer::from_file(write(d / "tokenizer.json", j.dump()));
      },
      {"$DIR/tokenizer.json", "ab x"});
  add("tokenizer", "tokenizer.json: a token id beyond 32 bits",
      [](const fs::path& d) {
        auto j = tokenizer_json();
        j["model"]["vocab"]["c"] = int64_t{1} << 40;
        grpo::BpeTokenizer::from_file(write(d / "tokenizer.json", j.dump()));
      },
      {"$DIR/tokenizer.json", "'c'", "2^31 - 1", "1099511627776"});
  add("tokenizer", "tokenizer.json: missing",
      [](const fs::path& d) { grpo::BpeTokenizer::from_file((d / "tokenizer.json").string()); },
      {"$DIR/tokenizer.json", "cannot open"});
  add("tokenizer", "tokenizer_config.json: a chat template that does not parse",
      [](const fs::path& d) {
        grpo::ChatTemplate::from_tokenizer_config(
            write(d / "tokenizer_config.json",
                  nlohmann::json{{"chat_template", "{% for m in messages %}\n{{ m.content }\n{% endfor %}"}}.dump()));
      },
      {"$DIR/tokenizer_config.json", "line 2"});

  // ---- checkpoints ----
  const auto resume = [shared](const fs::path& checkpoint) {
    auto t = small_trainer(checkpoint.parent_path() / "trainer", accuracy_only());
    t->resume_from_checkpoint(checkpoint.string());
  };
  add("checkpoint", "truncated optimizer.pt",
      [shared, resume](const fs::path& d) {
        const auto c = copy_checkpoint(good_checkpoint(shared), d / "checkpoint-1");
        fs::resize_file(c / "optimizer.pt", fs::file_size(c / "optimizer.pt") / 2);
        resume(c);
      },
      {"$DIR/checkpoint-1/optimizer.pt", "truncated"});
  add("checkpoint", "a byte of the weights altered",
      [shared, resume](const fs::path& d) {
        const auto c = copy_checkpoint(good_checkpoint(shared), d / "checkpoint-1");
        std::fstream f(c / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-3, std::ios::end);
        f.put('\x7f');
        f.close();
        resume(c);
      },
      {"$DIR/checkpoint-1/model.safetensors", "checksum"});
  add("checkpoint", "trainer_state.json missing",
      [shared, resume](const fs::path& d) {
        const auto c = copy_checkpoint(good_checkpoint(shared), d / "checkpoint-1");
        fs::remove(c / "trainer_state.json");
        resume(c);
      },
      {"$DIR/checkpoint-1/trainer_state.json", "missing"});
  add("checkpoint", "trainer_state.json that is not JSON (manifest rewritten to match)",
      [shared, resume](const fs::path& d) {
        const auto c = copy_checkpoint(good_checkpoint(shared), d / "checkpoint-1");
        write(c / "trainer_state.json", "{\"global_step\": ");
        grpo::write_checkpoint_manifest(c.string());
        resume(c);
      },
      {"$DIR/checkpoint-1/trainer_state.json", "is not a valid trainer state"});
  add("checkpoint", "weights of another model shape (manifest rewritten to match)",
      [shared, resume](const fs::path& d) {
        const auto c = copy_checkpoint(good_checkpoint(shared), d / "checkpoint-1");
        auto weights = grpo::read_safetensors((c / "model.safetensors").string()).tensors;
        weights["model.norm.weight"] = torch::ones({5});
        grpo::write_safetensors((c / "model.safetensors").string(), weights);
        grpo::write_checkpoint_manifest(c.string());
        resume(c);
      },
      {"$DIR/checkpoint-1/model.safetensors", "model.norm.weight", "[5]"});
  add("checkpoint", "a manifest entry without its checksum",
      [shared, resume](const fs::path& d) {
        const auto c = copy_checkpoint(good_checkpoint(shared), d / "checkpoint-1");
        write(c / "manifest.json", R"({"format": "grpo-checkpoint/1", "files": {"model.safetensors": {"bytes": 4}}})");
        resume(c);
      },
      {"$DIR/checkpoint-1/manifest.json", "is not a valid checkpoint manifest", "xxh64"});
  add("checkpoint", "not a checkpoint folder", [resume](const fs::path& d) { resume(d / "checkpoint-7"); },
      {"$DIR/checkpoint-7", "is not a directory"});

  // ---- reward functions ----
  const auto score = [](std::vector<grpo::RewardFunction> functions) {
    auto inputs = grpo::make_reward_inputs(
        {{{"prompt", "1+1="}, {"answer", "2"}}, {{"prompt", "2+2="}, {"answer", "4"}}}, {"2", "3", "4", "5"}, 2);
    grpo::RewardScorer(std::move(functions)).score(inputs);
  };
  add("reward", "a reward function that throws on one sample",
      [score](const fs::path&) {
        std::vector<grpo::RewardFunction> f;
        f.emplace_back("picky", [](std::string_view completion, const grpo::Row&) -> double {
          if (completion == "4") throw std::runtime_error("cannot score a four");
          return 1.0;
        });
        score(std::move(f));
      },
      {"\"picky\"", "sample 2", "cannot score a four"});
  add("reward", "a batch reward function returning too few values",
      [score](const fs::path&) {
        std::vector<grpo::RewardFunction> f;
        f.emplace_back("short", [](const grpo::RewardInputs&) { return std::vector<double>{1.0, 2.0}; });
        score(std::move(f));
      },
      {"\"short\"", "returned 2 values for 4 completions"});
  add("reward", "an infinite reward",
      [score](const fs::path&) {
        std::vector<grpo::RewardFunction> f;
        f.emplace_back("unbounded", [](std::string_view completion, const grpo::Row&) {
          return completion == "3" ? std::numeric_limits<double>::infinity() : 0.0;
        });
        score(std::move(f));
      },
      {"\"unbounded\"", "sample 1", "infinite"});
  add("reward", "a reward reading a column the dataset lacks",
      [score](const fs::path&) {
        std::vector<grpo::RewardFunction> f;
        f.emplace_back("needs_solution",
                       [](std::string_view, const grpo::Row& row) { return row.get<double>("solution"); });
        score(std::move(f));
      },
      {"\"needs_solution\"", "sample 0", "column \"solution\" is not in the dataset"});
  add("reward", "a trainer whose reward needs a column the dataset lacks",
      [](const fs::path& d) {
        std::vector<grpo::RewardFunction> f;
        f.emplace_back(
            "needs_solution", [](std::string_view, const grpo::Row&) { return 0.0; },
            std::vector<std::string>{"solution"});
        small_trainer(d, std::move(f));
      },
      {"\"needs_solution\" needs \"solution\"", "dataset columns: a, answer, b, op"});
  return m;
}

std::string with_dir(std::string text, const fs::path& dir) {
  for (auto at = text.find("$DIR"); at != std::string::npos; at = text.find("$DIR", at)) {
    text.replace(at, 4, dir.string());
    at += dir.string().size();
  }
  return text;
}

}  // namespace bad_inputs_test

TEST_CASE("bad-input matrix: every broken input fails with a grpo::Error naming where and what",
          "[train][bad-inputs]") {
  namespace fs = std::filesystem;
  using namespace bad_inputs_test;
  grpo_test::ScopedTempDir dir;
  const auto cases = matrix(dir.path() / "shared");
  int index = 0;
  for (const auto& c : cases) {
    const fs::path case_dir = dir.path() / ("case" + std::to_string(index++));
    fs::create_directories(case_dir);
    std::string message;
    bool library_error = false;
    try {
      c.run(case_dir);
    } catch (const grpo::Error& e) {
      library_error = true;
      message = e.what();
    } catch (const std::exception& e) {
      message = std::string("(not a grpo::Error) ") + e.what();
    }
    INFO(c.area << ": " << c.input << "\n  message: " << message);
    CHECK(library_error);
    for (const auto& part : c.expected) {
      const auto expected = with_dir(part, case_dir);
      INFO("expected part: " << expected);
      CHECK(message.find(expected) != std::string::npos);
    }
  }
  CHECK(cases.size() >= 44);
}
