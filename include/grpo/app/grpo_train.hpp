#pragma once
// grpo-train, the command-line trainer (tools/grpo_train.cpp is its main): a JSON run file names the model, the
// datasets, the reward functions and every GRPOConfig option under TRL's names; the program checks everything
// before training, trains with progress and checkpoints, resumes, and saves the model as a Hugging Face folder.
//
// Run file (paths relative to the run file's folder):
//   {
//     "model": "SmolLM2-135M-Instruct.Q4_1.gguf",        // a .gguf file or a Hugging Face folder (required)
//     "train_dataset": "train.jsonl",                     // JSONL or a JSON array (required)
//     "eval_dataset": "eval.jsonl",                       // optional
//     "rewards": [{"type": "accuracy", "column": "answer"}, ...],   // app/reward_registry.hpp (required)
//     "chat_template_kwargs": {"enable_thinking": false},  // optional: extra chat-template variables
//     "eval_accuracy_reward": "accuracy",                 // optional: reported as eval_accuracy
//     "torch_threads": 2,                                 // optional: LibTorch intra-op threads
//     "save_model": true,                                 // optional (default true): <output_dir>/final at the end
//     "learning_rate": 1e-5, "num_generations": 8, ...   // any GRPOConfig key (TRL's names); unknown keys: error
//   }
// Reward weights come from the rewards' "weight" entries (TRL's reward_weights must then be absent).

#include <torch/types.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/app/reward_registry.hpp"
#include "grpo/data/dataset.hpp"
#include "grpo/error.hpp"
#include "grpo/pretrained/pretrained.hpp"
#include "grpo/pretrained/save_pretrained.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/trainer.hpp"

namespace grpo {

/// A parsed run file (see the top of this file).
struct TrainRun {
  std::string model, train_dataset, eval_dataset;
  nlohmann::json rewards = nlohmann::json::array();
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  std::string eval_accuracy_reward;
  std::optional<int> torch_threads;
  bool save_model = true;
  GRPOConfig config;
};

namespace detail {

// `path` relative to `base` unless absolute or empty.
inline std::string resolve_path(const std::string& path, const std::filesystem::path& base) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (base / path).lexically_normal().string();
}

}  // namespace detail

/// Reads run file `path`. Errors (grpo::InvalidArgument) start with "<path>: " and name the key: a missing
/// required key, a wrong type, an unknown GRPOConfig key, files that do not exist (model, datasets, plugins).
inline TrainRun load_train_run(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string where = path + ": ";
  std::ifstream in(path);
  if (!in) throw InvalidArgument(where + "cannot open the run file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {  // also out_of_range: a number such as 1e400
    throw InvalidArgument(where + "not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw InvalidArgument(where + "the run file must be a JSON object");
  const fs::path base = fs::absolute(path).parent_path();
  TrainRun run;
  const auto take_string = [&](const char* key, bool required) -> std::string {
    const auto it = j.find(key);
    if (it == j.end()) {
      if (required) throw InvalidArgument(where + "missing required key \"" + key + "\"");
      return {};
    }
    if (!it->is_string()) throw InvalidArgument(where + "\"" + key + "\" must be a string, got " + it->dump());
    std::string value = it->get<std::string>();
    j.erase(it);
    return value;
  };
  run.model = detail::resolve_path(take_string("model", true), base);
  run.train_dataset = detail::resolve_path(take_string("train_dataset", true), base);
  run.eval_dataset = detail::resolve_path(take_string("eval_dataset", false), base);
  run.eval_accuracy_reward = take_string("eval_accuracy_reward", false);
  for (const auto& [key, file] : {std::pair<const char*, std::string>{"model", run.model},
                                  {"train_dataset", run.train_dataset},
                                  {"eval_dataset", run.eval_dataset}}) {
    if (!file.empty() && !fs::exists(file)) {
      throw InvalidArgument(where + "\"" + key + "\": " + file + " does not exist");
    }
  }
  if (const auto it = j.find("rewards"); it == j.end() || !it->is_array() || it->empty()) {
    throw InvalidArgument(where +
                          "\"rewards\" must be a non-empty list of reward entries, e.g. [{\"type\": "
                          "\"accuracy\", \"column\": \"answer\"}]");
  }
  run.rewards = j.at("rewards");
  j.erase("rewards");
  for (auto& entry : run.rewards) {  // plugin libraries given as paths are relative to the run file
    if (entry.is_object() && entry.contains("library") && entry["library"].is_string()) {
      const auto library = entry["library"].get<std::string>();
      if (library.find('/') != std::string::npos) entry["library"] = detail::resolve_path(library, base);
    }
  }
  if (const auto it = j.find("chat_template_kwargs"); it != j.end()) {
    if (!it->is_object()) throw InvalidArgument(where + "\"chat_template_kwargs\" must be an object");
    run.chat_template_kwargs = nlohmann::ordered_json::parse(it->dump());
    j.erase(it);
  }
  if (const auto it = j.find("torch_threads"); it != j.end()) {
    if (!it->is_number_integer()) throw InvalidArgument(where + "\"torch_threads\" must be an integer");
    run.torch_threads = it->get<int>();
    j.erase(it);
  }
  if (const auto it = j.find("save_model"); it != j.end()) {
    if (!it->is_boolean()) throw InvalidArgument(where + "\"save_model\" must be true or false");
    run.save_model = it->get<bool>();
    j.erase(it);
  }
  if (j.contains("reward_weights")) {
    throw InvalidArgument(where + "give each reward's \"weight\" in \"rewards\" instead of \"reward_weights\"");
  }
  try {
    run.config = j.get<GRPOConfig>();  // every other key: GRPOConfig's, strictly
  } catch (const std::invalid_argument& e) {
    throw InvalidArgument(where + e.what() +
                          " (run-file keys: model, train_dataset, eval_dataset, rewards, chat_template_kwargs, "
                          "eval_accuracy_reward, torch_threads, save_model; the others are GRPOConfig's)");
  }
  if (!j.contains("output_dir")) run.config.output_dir = (base / "grpo_output").string();
  run.config.output_dir = detail::resolve_path(run.config.output_dir, base);
  return run;
}

/// The help text of grpo-train.
inline std::string grpo_train_usage() {
  return "usage: grpo-train RUN.json [--output-dir DIR] [--max-steps N] [--resume | --resume-from CHECKPOINT]\n"
         "\n"
         "Trains a model with GRPO as RUN.json describes (see the README, \"grpo-train\"):\n"
         "  model            a .gguf file or a Hugging Face folder (llama / qwen2, byte-level BPE tokenizer)\n"
         "  train_dataset    JSONL or JSON rows with a \"prompt\" (text or {role, content} messages) and columns\n"
         "  eval_dataset     optional, scored at eval_steps and at the end\n"
         "  rewards          [{\"type\": accuracy | regex_format | think_answer_format | soft_overlong_punishment |\n"
         "                    repetition_penalty | plugin, \"weight\": 1, \"name\": ..., \"columns\": {...}, ...}]\n"
         "  any GRPOConfig option under TRL's name (learning_rate, num_generations, max_steps, beta, ...)\n"
         "\n"
         "options:\n"
         "  --output-dir DIR         overrides output_dir (checkpoints, metrics.jsonl, chart, final model)\n"
         "  --max-steps N            overrides max_steps\n"
         "  --resume                 continues from the latest checkpoint in output_dir (a fresh start if none)\n"
         "  --resume-from CHECKPOINT continues from that checkpoint folder\n"
         "  --help\n";
}

/// grpo-train's main: 0 on success, 1 on an error (printed on stderr as "grpo-train: ..."), 2 on a usage error.
inline int grpo_train_main(int argc, char** argv) {
  std::string run_path, output_dir, resume_from;
  std::optional<int64_t> max_steps;
  bool resume_latest = false;
  const auto usage_error = [](const std::string& message) {
    std::fprintf(stderr, "grpo-train: %s\n\n%s", message.c_str(), grpo_train_usage().c_str());
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(grpo_train_usage().c_str(), stdout);
      return 0;
    } else if (arg == "--output-dir" || arg == "--max-steps" || arg == "--resume-from") {
      const auto v = value();
      if (!v) return usage_error(arg + " needs a value");
      if (arg == "--output-dir") output_dir = *v;
      if (arg == "--resume-from") resume_from = *v;
      if (arg == "--max-steps") {
        try {
          std::size_t used = 0;
          max_steps = std::stoll(*v, &used);
          if (used != v->size()) throw std::invalid_argument(*v);
        } catch (const std::exception&) {
          return usage_error("--max-steps needs an integer, got \"" + *v + "\"");
        }
      }
    } else if (arg == "--resume") {
      resume_latest = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option " + arg);
    } else if (run_path.empty()) {
      run_path = arg;
    } else {
      return usage_error("one run file only (got \"" + run_path + "\" and \"" + arg + "\")");
    }
  }
  if (run_path.empty()) return usage_error("no run file given");

  try {
    TrainRun run = load_train_run(run_path);
    if (!output_dir.empty()) run.config.output_dir = output_dir;
    if (max_steps) run.config.max_steps = *max_steps;
    run.config.validate();

    std::vector<RewardFunction> functions;
    run.config.weights.clear();
    for (std::size_t k = 0; k < run.rewards.size(); ++k) {
      auto reward = reward_from_config(
          run.rewards[k], run_path + ": rewards[" + std::to_string(k) + "]: ", run.config.max_completion_length);
      run.config.weights.push_back(reward.weight);
      functions.push_back(std::move(reward.function));
    }
    Dataset train = load_dataset(run.train_dataset);
    std::optional<Dataset> eval;
    if (!run.eval_dataset.empty()) eval = load_dataset(run.eval_dataset);

    std::fprintf(stderr, "grpo-train: loading %s\n", run.model.c_str());
    Pretrained pretrained = load_pretrained(run.model);
    TrainerOptions options;
    options.torch_threads = run.torch_threads;
    options.chat_template = pretrained.chat_template;
    options.chat_template_kwargs = run.chat_template_kwargs;
    options.eval.accuracy_reward = run.eval_accuracy_reward;
    GRPOTrainer<LlamaModel, BpeTokenizer> trainer(pretrained.model, pretrained.tokenizer, std::move(functions),
                                                  run.config, std::move(train), std::move(eval), options);
    if (resume_latest && resume_from.empty()) {
      const auto checkpoints = list_checkpoints(run.config.output_dir);
      if (!checkpoints.empty()) resume_from = checkpoints.back();
    }
    if (!resume_from.empty()) {
      std::fprintf(stderr, "grpo-train: resuming from %s\n", resume_from.c_str());
      trainer.resume_from_checkpoint(resume_from);
    }
    std::fprintf(stderr, "grpo-train: %lld optimizer steps into %s\n", static_cast<long long>(trainer.total_steps()),
                 run.config.output_dir.c_str());
    const TrainResult result = trainer.train();
    if (!trainer.state().is_world_process_zero()) return 0;  // rank 0 reports and saves
    if (!result.last_eval_metrics.empty()) {
      for (const auto& [name, value] : result.last_eval_metrics) std::printf("%s = %.6g\n", name.c_str(), value);
    }
    if (run.save_model) {
      const auto final_dir = (std::filesystem::path(run.config.output_dir) / "final").string();
      save_pretrained(pretrained, final_dir);
      std::printf("saved the trained model to %s\n", final_dir.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grpo-train: %s\n", e.what());
    return 1;
  }
}

}  // namespace grpo
