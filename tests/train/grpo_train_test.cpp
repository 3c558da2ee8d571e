// grpo-train as a user runs it: a tiny random model with the real Qwen3 tokenizer and chat template, a
// conversational JSONL set, the built-in accuracy reward over a column and the example reward plugin; the saved
// folder loads back and generates; a resumed run ends with the uninterrupted run's weights; bad run files are
// refused before training with errors that name what is wrong.
#ifdef GRPO_TRAIN_EXECUTABLE

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/generation/text.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/pretrained/pretrained.hpp"
#include "grpo/pretrained/save_pretrained.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using grpo_test::Contains;

namespace grpo_train_test {

namespace fs = std::filesystem;

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr
};

// Runs grpo-train with `arguments` (already shell-quoted), capturing its output.
Outcome run_grpo_train(const grpo_test::ScopedTempDir& dir, const std::string& arguments) {
  const auto log = dir.file("grpo-train.log");
  const std::string command = std::string("'") + GRPO_TRAIN_EXECUTABLE + "' " + arguments + " > '" + log + "' 2>&1";
  const int raw = std::system(command.c_str());
  Outcome out;
  out.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  out.output = text.str();
  return out;
}

// A tiny random model with Qwen3's tokenizer and chat template, saved as a Hugging Face folder.
std::string make_model_folder(const grpo_test::ScopedTempDir& dir) {
  const std::string qwen3 = std::string(GRPO_TOKENIZER_FIXTURES) + "/qwen3";
  const auto tokenizer = grpo::BpeTokenizer::from_pretrained(qwen3);
  const auto chat = grpo::ChatTemplate::from_tokenizer_config(qwen3 + "/tokenizer_config.json");
  torch::manual_seed(11);
  auto config = grpo::LlamaConfig::tiny(tokenizer.vocab_size());
  config.eos_token_ids = {tokenizer.eos_token_id()};
  grpo::LlamaModel model(config);
  const auto folder = dir.file("tiny-qwen3");
  grpo::save_pretrained(model, tokenizer, chat, folder);
  return folder;
}

// Conversational rows: "What is a+b?" with the sum in the "sum" column.
std::string make_dataset(const grpo_test::ScopedTempDir& dir) {
  std::string text;
  for (int a = 0; a < 6; ++a) {
    const nlohmann::json row = {
        {"prompt",
         {{{"role", "system"}, {"content", "Answer with a number."}},
          {{"role", "user"}, {"content", "What is " + std::to_string(a) + "+" + std::to_string(a + 1) + "?"}}}},
        {"sum", std::to_string(2 * a + 1)}};
    text += row.dump() + "\n";
  }
  return dir.write("train.jsonl", text);
}

nlohmann::json base_run(const std::string& model, const std::string& dataset) {
  return {{"model", model},
          {"train_dataset", dataset},
          {"rewards",
           {{{"type", "accuracy"}, {"column", "sum"}, {"comparison", "numeric"}},
            {{"type", "plugin"},
             {"library", GRPO_REWARD_PLUGIN_LIBRARY},
             {"factory", "make_answer_length_reward"},
             {"options", {{"target", 25}}},  // random tokens make long completions: rewards vary
             {"columns", {{"solution", "sum"}}},
             {"weight", 0.5}}}},
          {"chat_template_kwargs", {{"enable_thinking", false}}},
          {"torch_threads", 1},
          {"num_generations", 4},
          {"per_device_train_batch_size", 8},
          {"max_completion_length", 6},
          {"max_prompt_length", 64},
          {"learning_rate", 0.01},
          {"max_steps", 4},
          {"save_steps", 2},
          {"logging_steps", 1},
          {"seed", 5}};
}

std::string write_run(const grpo_test::ScopedTempDir& dir, const std::string& name, const nlohmann::json& run) {
  return dir.write(name, run.dump(2));
}

}  // namespace grpo_train_test

TEST_CASE("grpo-train trains a real-tokenizer model on conversations with a plugin, saves it and resumes exactly",
          "[grpo-train]") {
  using namespace grpo_train_test;
  grpo_test::ScopedTempDir dir;
  const auto model = make_model_folder(dir);
  const auto dataset = make_dataset(dir);
  const auto run = write_run(dir, "run.json", base_run(model, dataset));

  const auto help = run_grpo_train(dir, "--help");
  CHECK(help.status == 0);
  CHECK_THAT(help.output, Contains("usage: grpo-train RUN.json"));

  const auto straight = dir.file("straight");
  const auto full = run_grpo_train(dir, "'" + run + "' --output-dir '" + straight + "'");
  INFO(full.output);
  REQUIRE(full.status == 0);
  CHECK_THAT(full.output, Contains("4 optimizer steps"));
  CHECK(fs::exists(straight + "/metrics.jsonl"));
  CHECK(fs::exists(straight + "/checkpoint-4"));
  std::ifstream metrics(straight + "/metrics.jsonl");
  std::string first_line;
  std::getline(metrics, first_line);
  const auto logged = nlohmann::json::parse(first_line);
  CHECK(logged.contains("rewards/accuracy/mean"));
  CHECK(logged.contains("rewards/answer_length/mean"));  // the plugin's reward, named by the plugin
  CHECK(logged.at("reward_std").get<double>() > 0);      // rewards vary: the steps do learn something

  // The saved folder loads back, matches the last checkpoint's weights, and generates from a chat prompt.
  const auto trained = grpo::load_pretrained(straight + "/final");
  REQUIRE(trained.chat_template.has_value());
  const auto checkpoint = grpo::read_safetensors(straight + "/checkpoint-4/model.safetensors").tensors;
  for (const auto& item : trained.model->named_parameters()) {
    INFO(item.key());
    REQUIRE(checkpoint.count(item.key()) == 1);
    CHECK(torch::equal(item.value(), checkpoint.at(item.key())));
  }
  const auto original = grpo::load_pretrained(model);
  CHECK_FALSE(torch::equal(original.model->named_parameters()["model.embed_tokens.weight"],
                           trained.model->named_parameters()["model.embed_tokens.weight"]));
  const auto prompt =
      trained.chat_template->render(nlohmann::ordered_json::parse(R"([{"role": "user", "content": "What is 1+2?"}])"),
                                    true, {{"enable_thinking", false}});
  grpo::GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 4;
  torch::NoGradGuard no_grad;
  const auto answer = grpo::generate_text(*trained.model, trained.tokenizer, {prompt}, options);
  CHECK_FALSE(answer.completion_ids[0].empty());

  // A run that stopped after its step-2 checkpoint (the checkpoint copied alone into a fresh output folder) and
  // is resumed with --resume ends with the uninterrupted run's weights, bit for bit.
  const auto resumed_dir = dir.file("resumed");
  fs::create_directories(resumed_dir);
  fs::copy(straight + "/checkpoint-2", resumed_dir + "/checkpoint-2", fs::copy_options::recursive);
  const auto second = run_grpo_train(dir, "'" + run + "' --output-dir '" + resumed_dir + "' --resume");
  INFO(second.output);
  REQUIRE(second.status == 0);
  CHECK_THAT(second.output, Contains("resuming from " + resumed_dir + "/checkpoint-2"));
  const auto a = grpo::read_safetensors(straight + "/final/model.safetensors").tensors;
  const auto b = grpo::read_safetensors(resumed_dir + "/final/model.safetensors").tensors;
  REQUIRE(a.size() == b.size());
  for (const auto& [name, tensor] : a) {
    INFO(name);
    CHECK(torch::equal(tensor, b.at(name)));
  }
}

TEST_CASE("grpo-train refuses bad run files before training, naming what is wrong", "[grpo-train][errors]") {
  using namespace grpo_train_test;
  grpo_test::ScopedTempDir dir;
  const auto model = make_model_folder(dir);
  const auto dataset = make_dataset(dir);
  const auto expect_error = [&](nlohmann::json run, const std::string& message) {
    const auto path = write_run(dir, "bad.json", run);
    const auto out = run_grpo_train(dir, "'" + path + "' --output-dir '" + dir.file("bad-out") + "'");
    INFO(out.output);
    CHECK(out.status == 1);
    CHECK_THAT(out.output, Contains(message));
    CHECK_FALSE(fs::exists(dir.file("bad-out") + "/metrics.jsonl"));
  };
  auto run = base_run(model, dataset);
  run["learning_rat"] = 0.1;
  expect_error(run, "learning_rat");
  run = base_run(model, dataset);
  run["rewards"][0]["type"] = "accurcy";
  expect_error(run, "rewards[0]: unknown reward type \"accurcy\"");
  run = base_run(model, dataset);
  run["rewards"][0]["column"] = "solution";
  expect_error(run, "reward function \"accuracy\" needs \"solution\"");
  run = base_run(model, dataset);
  run["rewards"][1]["library"] = dir.file("missing.so");
  expect_error(run, "rewards[1]: grpo::load_reward_plugin: " + dir.file("missing.so") + ": cannot load the library");
  run = base_run(model, dataset);
  run["rewards"][1]["factory"] = "no_such_factory";
  expect_error(run, "no factory \"no_such_factory\"");
  run = base_run(model, dataset);
  run["rewards"][1]["options"] = {{"target", -1}};
  expect_error(run, "factory \"make_answer_length_reward\" failed: \"target\" must be >= 0");
  run = base_run(model, dataset);
  run["train_dataset"] = dir.file("nothing.jsonl");
  expect_error(run, "\"train_dataset\": " + dir.file("nothing.jsonl") + " does not exist");

  // A plugin reward that throws while scoring: the error names the plugin.
  run = base_run(model, dataset);
  run["rewards"][1]["factory"] = "make_throwing_reward";
  run["rewards"][1].erase("columns");
  run["rewards"][1].erase("options");
  const auto path = write_run(dir, "throws.json", run);
  const auto out = run_grpo_train(dir, "'" + path + "' --output-dir '" + dir.file("throws-out") + "'");
  CHECK(out.status == 1);
  CHECK_THAT(out.output, Contains("(make_throwing_reward)") && Contains("this reward always fails"));

  const auto usage = run_grpo_train(dir, "--frobnicate");
  CHECK(usage.status == 2);
  CHECK_THAT(usage.output, Contains("unknown option --frobnicate"));
}

#ifdef GRPO_TORCHRUN
// PyTorch's launcher starts two ranks of grpo-train (Debian's python3-torch or a wheel's torchrun); they rendezvous
// from the variables it sets, split the rollouts and train. The first generation batch is made before any update,
// so its logged rewards equal those of one process over the same global batch.
TEST_CASE("torchrun launches grpo-train on two processes that train as one", "[grpo-train][torchrun]") {
  using namespace grpo_train_test;
  grpo_test::ScopedTempDir dir;
  const auto model = make_model_folder(dir);
  const auto dataset = make_dataset(dir);
  auto single_run = base_run(model, dataset);
  single_run["max_steps"] = 2;
  const auto single_path = write_run(dir, "single.json", single_run);
  const auto single = run_grpo_train(dir, "'" + single_path + "' --output-dir '" + dir.file("single") + "'");
  INFO(single.output);
  REQUIRE(single.status == 0);

  auto run = single_run;
  run["per_device_train_batch_size"] = 4;  // x 2 processes: the single run's 8 rows per micro-batch
  const auto path = write_run(dir, "two.json", run);
  const auto two = dir.file("two");
  const auto log = dir.file("torchrun.log");
  const std::string command = std::string("'") + GRPO_TORCHRUN + "' --nproc_per_node 2 --master_port " +
                              std::to_string(29600 + ::getpid() % 300) + " --no_python '" + GRPO_TRAIN_EXECUTABLE +
                              "' '" + path + "' --output-dir '" + two + "' > '" + log + "' 2>&1";
  const int raw = std::system(command.c_str());
  std::ifstream in(log);
  std::stringstream output;
  output << in.rdbuf();
  INFO(output.str());
  REQUIRE(WIFEXITED(raw));
  REQUIRE(WEXITSTATUS(raw) == 0);
  CHECK(fs::exists(two + "/final/model.safetensors"));
  CHECK(fs::exists(two + "/checkpoint-2/model.safetensors"));
  const auto read_lines = [](const std::string& file) {
    std::vector<nlohmann::json> lines;
    std::ifstream metrics(file);
    for (std::string line; std::getline(metrics, line);) {
      if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    }
    return lines;
  };
  const auto two_metrics = read_lines(two + "/metrics.jsonl");
  const auto single_metrics = read_lines(dir.file("single") + "/metrics.jsonl");
  REQUIRE(two_metrics.size() == 2);  // rank 0 alone logs
  REQUIRE(single_metrics.size() == 2);
  for (const char* name :
       {"reward", "rewards/accuracy/mean", "rewards/answer_length/mean", "completions/mean_length"}) {
    INFO(name);
    CHECK(two_metrics[0].at(name).get<double>() == Approx(single_metrics[0].at(name).get<double>()).epsilon(1e-9));
  }
}
#endif  // GRPO_TORCHRUN

#endif  // GRPO_TRAIN_EXECUTABLE
