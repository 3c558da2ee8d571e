// GRPOTrainer end to end on the tiny built-in model: parameters move, metrics are logged, the reference model
// exists only with beta != 0, checkpoints resume the same trajectory, callbacks fire.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "grpo/data/arithmetic.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/train/trainer.hpp"
#include "support/scoped_temp_dir.hpp"
#include "support/catch_torch.hpp"  // last: restores Catch's CHECK

namespace fs = std::filesystem;
using grpo_test::Contains;

namespace {

using Trainer = grpo::GRPOTrainer<grpo::LlamaModel, grpo::CharTokenizer>;

const grpo::CharTokenizer& tokenizer() {
  static const grpo::CharTokenizer tok("0123456789+=");
  return tok;
}


// Rewards with variance in every group: the accuracy against the "answer" column plus the completion length.
std::vector<grpo::RewardFunction> rewards() {
  std::vector<grpo::RewardFunction> out;
  out.push_back(grpo::accuracy_reward());
  out.emplace_back("length", [](std::string_view completion, const grpo::Row&) {
    return static_cast<double>(completion.size()) / 4.0;
  });
  return out;
}

grpo::GRPOConfig small_config(const fs::path& dir) {
  grpo::GRPOConfig c;
  c.output_dir = dir.string();
  c.num_generations = 4;
  c.per_device_train_batch_size = 8;
  c.max_completion_length = 3;
  c.learning_rate = 0.05;  // large: gradients of a few steps are tiny
  c.max_steps = 3;
  c.logging_steps = 1;
  c.save_steps = 1000;
  c.seed = 7;
  return c;
}

std::shared_ptr<grpo::LlamaModel> tiny_model(uint64_t seed) {
  torch::manual_seed(seed);
  return std::make_shared<grpo::LlamaModel>(grpo::LlamaConfig::tiny(tokenizer().vocab_size()));
}

grpo::Dataset data() { return grpo::arithmetic_dataset({0, 9, "+"}); }

grpo::TrainerOptions quiet() {
  grpo::TrainerOptions o;
  o.print_logs = false;
  o.progress_bar = false;
  o.reward_threads = 1;
  o.torch_threads = 1;  // ctest runs test processes in parallel: more threads would oversubscribe the cores
  return o;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

grpo::TensorMap snapshot(grpo::LlamaModel& model) {
  grpo::TensorMap out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace

TEST_CASE("a few GRPO steps change every parameter and log every metric", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto model = tiny_model(1);
  const auto before = snapshot(*model);
  auto config = small_config(dir.path());
  config.beta = 0.0;
  Trainer trainer(model, tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  CHECK_FALSE(trainer.reference().has_value());  // beta = 0: no reference model, as TRL
  const auto result = trainer.train();
  CHECK(result.global_step == 3);
  for (const auto& [name, tensor] : snapshot(*model)) {
    INFO("parameter " << name);
    CHECK_FALSE(torch::equal(tensor, before.at(name)));
  }
  const auto records = read_jsonl(dir.path() / "metrics.jsonl");
  REQUIRE(records.size() == 3);
  for (const char* name :
       {"reward", "reward_std", "rewards/accuracy/mean", "rewards/accuracy/std", "rewards/length/mean",
        "rewards/length/std", "frac_reward_zero_std", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean",
        "clip_ratio/region_mean", "clip_ratio/low_min", "clip_ratio/high_max", "completions/mean_length",
        "completions/min_length", "completions/max_length", "completions/clipped_ratio", "num_tokens",
        "learning_rate", "grad_norm", "step_time", "loss"}) {
    INFO("metric " << name);
    CHECK(records.back().contains(name));
  }
  CHECK_FALSE(records.back().contains("kl"));
  CHECK(records.back().at("learning_rate").get<double>() > 0);
  CHECK(records.back().at("num_tokens").get<double>() > records.front().at("num_tokens").get<double>());
  // completions.jsonl: one line per completion with each reward and the advantage.
  const auto completions = read_jsonl(dir.path() / "completions.jsonl");
  REQUIRE(completions.size() == 3 * 8);
  for (const char* key : {"step", "prompt", "completion", "accuracy", "length", "advantage"}) {
    CHECK(completions.front().contains(key));
  }
  CHECK(fs::exists(dir.path() / "training_chart.svg"));
  CHECK(fs::exists(dir.path() / "config.json"));
}

TEST_CASE("beta != 0 creates a frozen reference model and logs kl", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.beta = 0.1;
  config.max_steps = 2;
  Trainer trainer(tiny_model(2), tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  REQUIRE(trainer.reference().has_value());
  const auto ref_before = snapshot(trainer.reference()->model());
  trainer.train();
  for (const auto& [name, tensor] : snapshot(trainer.reference()->model())) {
    CHECK(torch::equal(tensor, ref_before.at(name)));  // frozen
  }
  const auto records = read_jsonl(dir.path() / "metrics.jsonl");
  REQUIRE_FALSE(records.empty());
  REQUIRE(records.back().contains("kl"));
  CHECK(records.back().at("kl").get<double>() >= 0);
  // After the first update the policy has moved away from the reference.
  CHECK(records.back().at("kl").get<double>() > 0);
}

TEST_CASE("resuming from a checkpoint reproduces the uninterrupted run's parameters exactly", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path() / "full");
  config.steps_per_generation = 2;  // a checkpoint after step 1 falls in the middle of a generation batch
  config.num_iterations = 2;        // and old log-probs are needed
  config.max_steps = 5;
  config.save_steps = 1;
  config.beta = 0.05;
  Trainer full(tiny_model(3), tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  full.train();
  const auto expected = snapshot(full.policy().model());
  REQUIRE(fs::exists(dir.path() / "full" / "checkpoint-3"));
  CHECK(fs::exists(dir.path() / "full" / "checkpoint-3" / "model.safetensors"));
  CHECK(fs::exists(dir.path() / "full" / "checkpoint-3" / "optimizer.pt"));

  for (const int from : {1, 3}) {
    INFO("resumed from checkpoint-" << from);
    auto resumed_config = config;
    resumed_config.output_dir = (dir.path() / ("resumed" + std::to_string(from))).string();
    Trainer resumed(tiny_model(99), tokenizer(), rewards(), resumed_config, data(), std::nullopt, quiet());
    resumed.resume_from_checkpoint((dir.path() / "full" / ("checkpoint-" + std::to_string(from))).string());
    CHECK(resumed.state().global_step == from);
    resumed.train();
    for (const auto& [name, tensor] : snapshot(resumed.policy().model())) {
      INFO("parameter " << name);
      CHECK(torch::equal(tensor, expected.at(name)));
    }
  }

  auto other = config;
  other.learning_rate = 0.01;
  Trainer mismatched(tiny_model(3), tokenizer(), rewards(), other, data(), std::nullopt, quiet());
  CHECK_THROWS_WITH(mismatched.resume_from_checkpoint((dir.path() / "full" / "checkpoint-1").string()),
                    Contains("different config") && Contains("learning_rate"));
}

TEST_CASE("save_total_limit keeps the newest checkpoints and callbacks see every step, log and save", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.max_steps = 4;
  config.save_steps = 1;
  config.save_total_limit = 2;
  config.logging_steps = 2;
  struct Recorder {
    std::vector<int64_t> steps, logs;
    std::vector<std::string> saves;
    void on_step_end(const grpo::TrainerState& s) { steps.push_back(s.global_step); }
    void on_log(const grpo::TrainerState& s, const std::map<std::string, double>& m) {
      if (m.count("reward")) logs.push_back(s.global_step);
    }
    void on_save(const grpo::TrainerState&, const std::string& dir) { saves.push_back(dir); }
  } recorder;
  struct OnlySaves {
    int count = 0;
    void on_save(const grpo::TrainerState&, const std::string&) { ++count; }
  } only_saves;
  Trainer trainer(tiny_model(4), tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  trainer.train(recorder, only_saves);
  CHECK(recorder.steps == std::vector<int64_t>{1, 2, 3, 4});
  CHECK(recorder.logs == std::vector<int64_t>{2, 4});
  CHECK(recorder.saves.size() == 4);
  CHECK(only_saves.count == 4);
  const auto kept = grpo::list_checkpoints(dir.path().string());
  REQUIRE(kept.size() == 2);
  CHECK(fs::path(kept[0]).filename() == "checkpoint-3");
  CHECK(fs::path(kept[1]).filename() == "checkpoint-4");
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);  // no half-written directories
  }
}

TEST_CASE("the trainer checks reward columns, the config and the dataset size before training", "[train]") {
  grpo_test::ScopedTempDir dir;
  std::vector<grpo::RewardFunction> needs_solution;
  grpo::AccuracyReward accuracy;
  accuracy.column = "solution";
  needs_solution.push_back(grpo::accuracy_reward(accuracy));
  CHECK_THROWS_WITH(Trainer(tiny_model(5), tokenizer(), std::move(needs_solution), small_config(dir.path()), data()),
                    Contains("reward function \"accuracy\" needs \"solution\"") && Contains("dataset columns: a, answer"));
  auto bad = small_config(dir.path());
  bad.per_device_train_batch_size = 6;  // 6 rows cannot hold groups of 4
  CHECK_THROWS_WITH(Trainer(tiny_model(5), tokenizer(), rewards(), bad, data()), Contains("num_generations"));
  auto distributed = small_config(dir.path());
  distributed.num_processes = 2;
  CHECK_THROWS_WITH(Trainer(tiny_model(5), tokenizer(), rewards(), distributed, data()),
                    Contains("multi-process training is not implemented"));
}

TEST_CASE("dynamic sampling refills the batch with groups whose rewards differ", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.dynamic_sampling = true;
  config.max_dynamic_sampling_retries = 8;
  config.max_steps = 2;
  // Rewards vary only for prompts starting with '1': other groups are dropped and replaced.
  std::vector<grpo::RewardFunction> fns;
  fns.emplace_back("picky", [](std::string_view completion, const grpo::Row& row) {
    return row.prompt()[0] == '1' ? static_cast<double>(completion.size()) : 0.0;
  });
  Trainer trainer(tiny_model(6), tokenizer(), std::move(fns), config, data(), std::nullopt, quiet());
  trainer.train();
  const auto records = read_jsonl(dir.path() / "metrics.jsonl");
  REQUIRE_FALSE(records.empty());
  REQUIRE(records.front().contains("dynamic_sampling/rounds"));
  CHECK(records.front().at("dynamic_sampling/rounds").get<double>() >= 2);  // groups were dropped: more rounds
  CHECK(records.front().contains("dynamic_sampling/dropped_groups"));
  // Every trained group whose rewards could vary came from a '1' prompt.
  const auto completions = read_jsonl(dir.path() / "completions.jsonl");
  std::set<std::string> prompts;
  for (const auto& line : completions) prompts.insert(line.at("prompt").get<std::string>());
  int from_ones = 0;
  for (const auto& p : prompts) from_ones += p[0] == '1' ? 1 : 0;
  CHECK(from_ones >= 2);
}

namespace {
// A tokenizer whose EOS id the model can never produce (it is outside the vocabulary): every completion is
// truncated. Also shows that any type meeting the Tokenizer trait works with the trainer.
struct NoEosTokenizer {
  grpo::CharTokenizer inner{"0123456789+="};
  std::vector<int64_t> encode(const std::string& text) const { return inner.encode(text); }
  std::string decode(const std::vector<int64_t>& ids) const { return inner.decode(ids); }
  int64_t vocab_size() const { return inner.vocab_size(); }
  int64_t pad_token_id() const { return inner.pad_token_id(); }
  int64_t eos_token_id() const { return 1000; }
};
}  // namespace

TEST_CASE("mask_truncated_completions with every row truncated gives zero loss and moves no parameter",
          "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.mask_truncated_completions = true;
  config.max_steps = 2;
  auto model = tiny_model(8);
  const auto before = snapshot(*model);
  grpo::GRPOTrainer<grpo::LlamaModel, NoEosTokenizer> trainer(model, NoEosTokenizer{}, rewards(), config, data(),
                                                               std::nullopt, quiet());
  trainer.train();
  const auto records = read_jsonl(dir.path() / "metrics.jsonl");
  REQUIRE(records.size() == 2);
  CHECK(records.back().at("completions/clipped_ratio").get<double>() == 1.0);
  CHECK(records.back().at("loss").get<double>() == 0.0);
  for (const auto& [name, tensor] : snapshot(*model)) {
    INFO("parameter " << name);
    CHECK(torch::equal(tensor, before.at(name)));
  }
}

TEST_CASE("sync_ref_model mixes the policy into the reference every ref_model_sync_steps", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.beta = 0.05;
  config.sync_ref_model = true;
  config.ref_model_sync_steps = 1;
  config.ref_model_mixup_alpha = 0.5;
  config.max_steps = 2;
  Trainer trainer(tiny_model(9), tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  const auto ref_before = snapshot(trainer.reference()->model());
  trainer.train();
  const auto ref_after = snapshot(trainer.reference()->model());
  const auto policy_after = snapshot(trainer.policy().model());
  bool changed = false;
  for (const auto& [name, tensor] : ref_after) changed = changed || !torch::equal(tensor, ref_before.at(name));
  CHECK(changed);
  // The reference moved toward the policy: after the last sync it lies between its old value and the policy.
  const auto& name = ref_after.begin()->first;
  CHECK((ref_after.at(name) - policy_after.at(name)).abs().sum().item<double>() <
        (ref_before.at(name) - policy_after.at(name)).abs().sum().item<double>());
}
