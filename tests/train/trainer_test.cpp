// GRPOTrainer end to end on the tiny built-in model: parameters move, metrics are logged, the reference model
// exists only with beta != 0, checkpoints resume the same trajectory, callbacks fire.
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include "arithmetic_task.hpp"

#include "grpo/models/llama.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/train/sft.hpp"
#include "grpo/train/trainer.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

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

grpo::Dataset data() { return grpo_examples::arithmetic_dataset({0, 9, "+"}); }

grpo::TrainerOptions quiet() {
  grpo::TrainerOptions o;
  o.torch_threads = 1;  // ctest runs test processes in parallel: more threads would oversubscribe the cores
  return o;
}

// The trainer without its console output (the file reporters stay).
template <class T>
T& silenced(T& trainer) {
  trainer.callbacks().template remove<grpo::ConsoleReporter>();
  return trainer;
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
  silenced(trainer);
  CHECK_FALSE(trainer.reference().has_value());  // beta = 0: no reference model, as TRL
  const auto result = trainer.train();
  CHECK(result.global_step == 3);
  for (const auto& [name, tensor] : snapshot(*model)) {
    INFO("parameter " << name);
    CHECK_FALSE(torch::equal(tensor, before.at(name)));
  }
  const auto records = read_jsonl(dir.path() / "metrics.jsonl");
  REQUIRE(records.size() == 3);
  for (const char* name : {"reward",
                           "reward_std",
                           "rewards/accuracy/mean",
                           "rewards/accuracy/std",
                           "rewards/length/mean",
                           "rewards/length/std",
                           "frac_reward_zero_std",
                           "entropy",
                           "clip_ratio/low_mean",
                           "clip_ratio/high_mean",
                           "clip_ratio/region_mean",
                           "clip_ratio/low_min",
                           "clip_ratio/high_max",
                           "completions/mean_length",
                           "completions/min_length",
                           "completions/max_length",
                           "completions/clipped_ratio",
                           "num_tokens",
                           "learning_rate",
                           "grad_norm",
                           "step_time",
                           "timing/rollout",
                           "timing/log_probs",
                           "timing/update",
                           "loss"}) {
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
  silenced(trainer);
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
  silenced(full);
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
    silenced(resumed);
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
  silenced(mismatched);
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
  silenced(trainer);
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
  CHECK_THROWS_WITH(
      Trainer(tiny_model(5), tokenizer(), std::move(needs_solution), small_config(dir.path()), data()),
      Contains("reward function \"accuracy\" needs \"solution\"") && Contains("dataset columns: a, answer"));
  auto bad = small_config(dir.path());
  bad.per_device_train_batch_size = 6;  // 6 rows cannot hold groups of 4
  CHECK_THROWS_WITH(Trainer(tiny_model(5), tokenizer(), rewards(), bad, data()), Contains("num_generations"));
  auto distributed = small_config(dir.path());
  distributed.num_processes = 2;
  CHECK_THROWS_WITH(Trainer(tiny_model(5), tokenizer(), rewards(), distributed, data()),
                    Contains("num_processes = 2 but this run has 1 process"));
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
  silenced(trainer);
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

TEST_CASE("mask_truncated_completions with every row truncated gives zero loss and moves no parameter", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.mask_truncated_completions = true;
  config.max_steps = 2;
  auto model = tiny_model(8);
  const auto before = snapshot(*model);
  grpo::GRPOTrainer<grpo::LlamaModel, NoEosTokenizer> trainer(model, NoEosTokenizer{}, rewards(), config, data(),
                                                              std::nullopt, quiet());
  silenced(trainer);
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
  silenced(trainer);
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

TEST_CASE("callbacks may be temporaries, see begin, evaluate and end, and can stop training", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.max_steps = 6;
  config.logging_steps = 1;
  config.eval_steps = 2;
  struct Events {
    std::vector<std::string> seen;
  } events;
  struct Recorder {
    Events* events;
    void on_train_begin(const grpo::TrainerState& s) {
      events->seen.push_back("begin " + std::to_string(s.global_step));
    }
    void on_evaluate(const grpo::TrainerState& s, const std::map<std::string, double>& m) {
      if (m.count("eval_reward")) events->seen.push_back("eval " + std::to_string(s.global_step));
    }
    void on_train_end(const grpo::TrainerState& s) { events->seen.push_back("end " + std::to_string(s.global_step)); }
  };
  struct StopAt {
    int64_t step;
    grpo::Control on_step_end(const grpo::TrainerState& s) {
      return s.global_step >= step ? grpo::Control::stop : grpo::Control::proceed;
    }
  };
  grpo::TrainerOptions options = quiet();
  options.eval.accuracy_reward = "accuracy";
  Trainer trainer(tiny_model(10), tokenizer(), rewards(), config, data(), data(), options);
  silenced(trainer);
  const auto result = trainer.train(Recorder{&events}, StopAt{4});  // both temporaries, owned by the call
  CHECK(result.global_step == 4);
  CHECK(result.stopped_early);
  CHECK(events.seen == std::vector<std::string>{"begin 0", "eval 2", "eval 4", "end 4"});
  CHECK(result.last_eval_metrics.count("eval_accuracy") == 1);
  // The run can go on where it stopped.
  const auto rest = trainer.train();
  CHECK(rest.global_step == 6);
  CHECK_FALSE(rest.stopped_early);
  CHECK_THROWS_WITH(Trainer(tiny_model(10), tokenizer(), rewards(), config, data(), data(),
                            [] {
                              grpo::TrainerOptions o;
                              o.eval.accuracy_reward = "correctness";
                              return o;
                            }()),
                    Contains("accuracy_reward \"correctness\" is not one of the reward functions"));
}

TEST_CASE("after a resume metrics.jsonl, completions.jsonl and the chart hold each step once", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.max_steps = 4;
  config.save_steps = 2;
  config.logging_steps = 1;
  {
    Trainer first(tiny_model(11), tokenizer(), rewards(), config, data(), std::nullopt, quiet());
    silenced(first);
    first.train();  // as if killed after step 4, with checkpoint-2 the one to resume from
  }
  Trainer resumed(tiny_model(12), tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  silenced(resumed);
  resumed.resume_from_checkpoint((dir.path() / "checkpoint-2").string());
  grpo::TrainingChart chart(dir.path().string());
  resumed.train(chart);
  std::vector<int64_t> steps;
  for (const auto& record : read_jsonl(dir.path() / "metrics.jsonl")) steps.push_back(record.at("step").get<int64_t>());
  CHECK(steps == std::vector<int64_t>{1, 2, 3, 4});
  std::map<int64_t, int> completion_lines;
  for (const auto& line : read_jsonl(dir.path() / "completions.jsonl"))
    ++completion_lines[line.at("step").get<int64_t>()];
  // One generation batch (8 completions) opens each logged step 0..3.
  CHECK(completion_lines == std::map<int64_t, int>{{0, 8}, {1, 8}, {2, 8}, {3, 8}});
  // The chart of the resumed run is drawn from the whole run, not from step 3 on.
  REQUIRE(chart.history().size() == 4);
  CHECK(chart.history().front().step == 1);
  CHECK(chart.history().back().step == 4);
}

TEST_CASE("GRPO raises the mean reward of a trivially learnable reward within a few dozen steps", "[train]") {
  // The reward is the share of '7's in a completion. Minimising instead of maximising it (a flipped advantage
  // sign anywhere between the rewards and the optimizer) makes the last steps' reward fall, and this test fail.
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.num_generations = 8;
  config.per_device_train_batch_size = 64;
  config.max_completion_length = 4;
  config.learning_rate = 0.01;
  config.max_steps = 30;
  config.logging_steps = 1;
  config.log_completions = false;
  std::vector<grpo::RewardFunction> sevens;
  sevens.emplace_back("sevens", [](std::string_view completion, const grpo::Row&) {
    double count = 0;
    for (const char c : completion) count += c == '7' ? 1 : 0;
    return count / 4.0;
  });
  struct Rewards {
    std::vector<double> per_step;
    void on_log(const grpo::TrainerState&, const std::map<std::string, double>& m) {
      per_step.push_back(m.at("reward"));
    }
  } seen;
  Trainer trainer(tiny_model(13), tokenizer(), std::move(sevens), config, data(), std::nullopt, quiet());
  silenced(trainer);
  trainer.train(seen);
  REQUIRE(seen.per_step.size() == 30);
  const auto mean = [](auto begin, auto end) {
    return std::accumulate(begin, end, 0.0) / static_cast<double>(end - begin);
  };
  const double first = mean(seen.per_step.begin(), seen.per_step.begin() + 5);
  const double last = mean(seen.per_step.end() - 5, seen.per_step.end());
  INFO("mean reward of the first 5 steps " << first << ", of the last 5 " << last);
  CHECK(last > first + 0.2);
}

TEST_CASE("any torch::optim::Optimizer can be injected, and the thread count is left alone unless set", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.max_steps = 2;
  torch::set_num_threads(1);
  grpo::TrainerOptions options;
  options.optimizer = [](const std::vector<torch::Tensor>& params, const grpo::GRPOConfig& c) {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(c.learning_rate));
  };
  auto model = tiny_model(14);
  const auto before = snapshot(*model);
  Trainer trainer(model, tokenizer(), rewards(), config, data(), std::nullopt, options);
  silenced(trainer);
  CHECK(dynamic_cast<torch::optim::SGD*>(&trainer.optimizer()) != nullptr);
  CHECK(torch::get_num_threads() == 1);
  trainer.train();
  bool moved = false;
  for (const auto& [name, tensor] : snapshot(*model)) moved = moved || !torch::equal(tensor, before.at(name));
  CHECK(moved);
  for (const auto& p : model->parameters()) CHECK_FALSE(p.grad().defined());  // released after the step
}

TEST_CASE("sft_train learns a target column and stops when a callback asks", "[train]") {
  auto model = tiny_model(15);
  grpo::Policy<grpo::LlamaModel> policy(model);
  grpo::SFTOptions options;
  options.target_column = "answer";
  options.steps = 40;
  options.batch_size = 16;
  options.logging_steps = 5;
  struct Losses {
    std::vector<double> values;
    void on_log(const grpo::TrainerState&, const std::map<std::string, double>& m) { values.push_back(m.at("loss")); }
  } losses;
  const auto done = grpo::sft_train(policy, tokenizer(), data(), options, losses);
  CHECK(done.steps == 40);
  REQUIRE(losses.values.size() == 8);
  CHECK(losses.values.back() < losses.values.front());
  struct StopAfter3 {
    grpo::Control on_step_end(const grpo::TrainerState& s) {
      return s.global_step == 3 ? grpo::Control::stop : grpo::Control::proceed;
    }
  };
  const auto stopped = grpo::sft_train(policy, tokenizer(), data(), options, StopAfter3{});
  CHECK(stopped.steps == 3);
  CHECK(stopped.stopped_early);
  options.target_column = "solution";
  CHECK_THROWS_WITH(grpo::sft_train(policy, tokenizer(), data(), options), Contains("has no \"solution\""));
}

TEST_CASE("conversational prompts are rendered with the chat template and rewards see messages", "[train][chat]") {
  grpo_test::ScopedTempDir dir;
  // A template whose output the character tokenizer can encode: the last user message, then "=" as the generation
  // prompt (the system message is dropped).
  grpo::TrainerOptions options = quiet();
  options.chat_template = grpo::ChatTemplate(
      "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}{{ suffix }}{% endif %}");
  options.chat_template_kwargs = {{"suffix", "="}};
  std::vector<nlohmann::json> rows;
  for (int a = 1; a <= 4; ++a) {
    rows.push_back(
        {{"prompt",
          {{{"role", "system"}, {"content", "add"}}, {{"role", "user"}, {"content", std::to_string(a) + "+1"}}}},
         {"answer", std::to_string(a + 1)}});
  }
  rows.push_back({{"prompt", "5+1="}, {"answer", "6"}});  // a text prompt in the same dataset stays as it is
  const auto dataset = grpo::Dataset::from_rows(rows);
  REQUIRE(dataset.is_conversational(0));
  REQUIRE_FALSE(dataset.is_conversational(4));

  std::vector<std::string> seen_prompts;
  std::vector<nlohmann::json> seen_messages, seen_completion_messages;
  std::vector<grpo::RewardFunction> functions = rewards();
  functions.emplace_back("sees_messages", [&](std::string_view completion, const grpo::Row& row) {
    seen_prompts.push_back(row.prompt());
    seen_messages.push_back(row.prompt_messages());
    seen_completion_messages.push_back(row.completion_messages());
    CHECK(row.completion_messages()[0]["content"] == std::string(completion));
    return 0.0;
  });
  auto config = small_config(dir.path());
  config.per_device_train_batch_size = 20;  // every row once per step: 5 prompts x 4 generations
  config.max_steps = 1;
  Trainer trainer(tiny_model(3), tokenizer(), functions, config, dataset, std::nullopt, options);
  silenced(trainer).train();

  REQUIRE(seen_prompts.size() == 20);
  std::set<std::string> prompts(seen_prompts.begin(), seen_prompts.end());
  CHECK(prompts == std::set<std::string>{"1+1=", "2+1=", "3+1=", "4+1=", "5+1="});
  int conversations = 0;
  for (std::size_t i = 0; i < seen_prompts.size(); ++i) {
    if (seen_prompts[i] == "5+1=") {
      CHECK(seen_messages[i].is_null());
    } else {
      ++conversations;
      REQUIRE(seen_messages[i].is_array());
      CHECK(seen_messages[i][1]["content"].get<std::string>() + "=" == seen_prompts[i]);
    }
    CHECK(seen_completion_messages[i][0]["role"] == "assistant");
  }
  CHECK(conversations == 16);

  // Without a chat template the trainer refuses before training, naming the row.
  CHECK_THROWS_WITH(
      Trainer(tiny_model(3), tokenizer(), rewards(), config, dataset, std::nullopt, quiet()),
      Contains("row 0 of the train dataset is a conversation") && Contains("TrainerOptions::chat_template"));
}

TEST_CASE("gradient_checkpointing trains to the same parameters as without it", "[train]") {
  grpo_test::ScopedTempDir dir;
  std::vector<std::vector<torch::Tensor>> finals;
  for (const bool recompute : {false, true}) {
    auto config = small_config(dir.path() / (recompute ? "on" : "off"));
    config.gradient_checkpointing = recompute;
    config.max_steps = 2;
    auto model = tiny_model(9);
    Trainer trainer(model, tokenizer(), rewards(), config, data(), std::nullopt, quiet());
    silenced(trainer).train();
    std::vector<torch::Tensor> params;
    for (const auto& p : model->parameters()) params.push_back(p.detach().clone());
    finals.push_back(std::move(params));
  }
  for (std::size_t i = 0; i < finals[0].size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(finals[0][i], finals[1][i], 1e-5, 1e-6));
  }
}

TEST_CASE("bf16 trains under autocast with float32 master weights and AdamW state", "[train]") {
  grpo_test::ScopedTempDir dir;
  auto config = small_config(dir.path());
  config.bf16 = true;
  config.beta = 0.04;  // the reference model scores under autocast too
  config.max_steps = 2;
  auto model = tiny_model(10);
  const auto before = snapshot(*model);
  Trainer trainer(model, tokenizer(), rewards(), config, data(), std::nullopt, quiet());
  REQUIRE(trainer.policy().mixed_precision() == torch::kBFloat16);
  silenced(trainer).train();
  for (const auto& [name, tensor] : snapshot(*model)) {
    INFO("parameter " << name);
    CHECK(tensor.scalar_type() == torch::kFloat);
    CHECK_FALSE(torch::equal(tensor, before.at(name)));
  }
  const auto& state = trainer.optimizer().state();
  REQUIRE_FALSE(state.empty());
  for (const auto& [key, value] : state) {
    const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*value);
    CHECK(adam.exp_avg().scalar_type() == torch::kFloat);
    CHECK(adam.exp_avg_sq().scalar_type() == torch::kFloat);
  }
  const auto records = read_jsonl(dir.path() / "metrics.jsonl");
  REQUIRE(records.size() == 2);
  for (const auto& r : records) CHECK(std::isfinite(r.at("loss").get<double>()));
  CHECK_FALSE(grpo::detail::autocast_state(c10::DeviceType::CPU).enabled);
}

TEST_CASE("log_prob_micro_batch_size changes how many rows a log-prob forward takes, not the training", "[train]") {
  grpo_test::ScopedTempDir dir;
  std::vector<std::vector<nlohmann::json>> logs;
  for (const int rows : {0, 3}) {
    const auto out = dir.path() / std::to_string(rows);
    auto config = small_config(out);
    config.log_prob_micro_batch_size = rows;  // 0: per_device_train_batch_size (8); 3: forwards of 3, 3 and 2 rows
    config.num_iterations = 2;                // the old-policy pass runs
    config.beta = 0.04;                       // and the reference pass
    config.max_steps = 3;
    auto model = tiny_model(11);
    Trainer trainer(model, tokenizer(), rewards(), config, data(), std::nullopt, quiet());
    silenced(trainer).train();
    logs.push_back(read_jsonl(out / "metrics.jsonl"));
  }
  // The same completions and the same log-probs up to float rounding: the same KL to the reference and loss.
  REQUIRE(logs[0].size() == 3);
  REQUIRE(logs[1].size() == 3);
  for (std::size_t step = 0; step < 3; ++step) {
    INFO("step " << step + 1);
    CHECK(logs[0][step].contains("reward") == logs[1][step].contains("reward"));  // steps with a new generation
    if (logs[0][step].contains("reward")) CHECK(logs[0][step].at("reward") == logs[1][step].at("reward"));
    for (const char* key : {"kl", "loss"}) {
      INFO(key);
      const double a = logs[0][step].at(key).get<double>(), b = logs[1][step].at(key).get<double>();
      CHECK(std::abs(a - b) <= 1e-5 * std::max(1.0, std::abs(a)));
    }
  }
}
