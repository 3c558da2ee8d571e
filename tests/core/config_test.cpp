// GRPOConfig: TRL defaults, strict JSON round trip, files, and every validation error naming its field.
#include "grpo/train/config.hpp"

#include "support/catch.hpp"
#include <functional>
#include <string>
#include <vector>

#include "support/scoped_temp_dir.hpp"

using grpo_test::Contains;

namespace {
// A config where every field differs from its default.
grpo::GRPOConfig non_default_config() {
  grpo::GRPOConfig c;
  c.num_generations = 4;
  c.max_prompt_length = 256;
  c.max_completion_length = 128;
  c.temperature = 0.7;
  c.top_p = 0.95;
  c.top_k = 50;
  c.min_p = 0.05;
  c.repetition_penalty = 1.1;
  c.beta = 0.04;
  c.num_iterations = 2;
  c.epsilon = 0.1;
  c.epsilon_high = 0.28;
  c.delta = 2.0;
  c.loss_type = grpo::LossType::dr_grpo;
  c.importance_sampling_level = grpo::ImportanceSampling::sequence;
  c.scale_rewards = grpo::ScaleRewards::batch;
  c.multi_objective_aggregation = grpo::RewardAggregation::normalize_then_sum;
  c.reward_weights = {1.0, 0.5};
  c.mask_truncated_completions = true;
  c.sync_ref_model = true;
  c.ref_model_mixup_alpha = 0.9;
  c.ref_model_sync_steps = 64;
  c.use_bias_correction_kl = true;
  c.sapo_temperature_pos = 0.9;
  c.sapo_temperature_neg = 1.2;
  c.learning_rate = 3e-6;
  c.adam_beta1 = 0.8;
  c.adam_beta2 = 0.99;
  c.adam_epsilon = 1e-6;
  c.weight_decay = 0.01;
  c.lr_scheduler_type = grpo::LrSchedulerType::cosine;
  c.warmup_steps = 5;
  c.warmup_ratio = 0.1;
  c.max_grad_norm = 0.5;
  c.per_device_train_batch_size = 6;
  c.gradient_accumulation_steps = 2;
  c.steps_per_generation = 4;
  c.num_processes = 2;
  c.shuffle_dataset = false;
  c.max_steps = 100;
  c.num_train_epochs = 1.5;
  c.seed = 7;
  c.dynamic_sampling = true;
  c.max_dynamic_sampling_retries = 2;
  c.logging_steps = 5;
  c.save_steps = 50;
  c.save_total_limit = 3;
  c.eval_steps = 25;
  c.output_dir = "runs/x";
  c.log_completions = false;
  return c;
}
}  // namespace

TEST_CASE("GRPOConfig defaults are TRL's", "[config]") {
  const grpo::GRPOConfig c;
  CHECK(c.num_generations == 8);
  CHECK(c.max_prompt_length == 512);
  CHECK(c.max_completion_length == 512);
  CHECK(c.temperature == 1.0);
  CHECK(c.top_p == 1.0);
  CHECK(c.top_k == 0);
  CHECK_FALSE(c.min_p.has_value());
  CHECK(c.beta == 0.0);
  CHECK(c.num_iterations == 1);
  CHECK(c.epsilon == 0.2);
  CHECK(c.loss_type == grpo::LossType::dapo);
  CHECK(c.learning_rate == 1e-6);
  CHECK(c.lr_scheduler_type == grpo::LrSchedulerType::linear);
  CHECK(c.ref_model_mixup_alpha == 0.6);
  CHECK(c.ref_model_sync_steps == 512);
  CHECK(c.effective_steps_per_generation() == 1);
  CHECK(c.generation_batch_size() == 8);
  CHECK(c.prompts_per_generation() == 1);
  CHECK(c.effective_eval_steps() == 10);
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("GRPOConfig round-trips every field through JSON", "[config]") {
  const grpo::GRPOConfig c = non_default_config();
  const nlohmann::json j = c;
  const nlohmann::json defaults = grpo::GRPOConfig{};
  // Every field is written, and every one of them differs from the default: a field forgotten by to_json or
  // from_json breaks one of the two checks below.
  for (const auto& item : defaults.items()) {
    INFO("field " << item.key());
    CHECK(j.at(item.key()) != item.value());
  }
  const auto back = j.get<grpo::GRPOConfig>();
  CHECK(nlohmann::json(back) == j);
  CHECK(back.loss_type == grpo::LossType::dr_grpo);
  CHECK(back.steps_per_generation == 4);
  CHECK(back.min_p == 0.05);
  CHECK(j.at("lr_scheduler_type") == "cosine");
  CHECK(j.at("loss_type") == "dr_grpo");

  const auto partial = nlohmann::json::parse(R"({"num_generations": 4, "epsilon_high": null})").get<grpo::GRPOConfig>();
  CHECK(partial.num_generations == 4);
  CHECK_FALSE(partial.epsilon_high.has_value());
  CHECK(partial.per_device_train_batch_size == 8);
}

TEST_CASE("GRPOConfig JSON rejects unknown keys, bad enum names and wrong types", "[config]") {
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"num_generation": 4})").get<grpo::GRPOConfig>(),
                    Contains("GRPOConfig") && Contains("unknown field \"num_generation\""));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"lr_scheduler_type": "step"})").get<grpo::GRPOConfig>(),
                    Contains("unknown lr_scheduler_type \"step\"") && Contains("\"cosine\""));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"learning_rate": "fast"})").get<grpo::GRPOConfig>(),
                    Contains("field \"learning_rate\" has a bad value"));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"seed": -1})").get<grpo::GRPOConfig>(),
                    Contains("field \"seed\" must be a non-negative integer, got -1"));
}

TEST_CASE("GRPOConfig maps onto the kernel's loss and advantage options", "[config]") {
  const grpo::GRPOConfig c = non_default_config();
  const grpo::LossOptions l = c.loss_options();
  CHECK(l.loss_type == grpo::LossType::dr_grpo);
  CHECK(l.epsilon == 0.1);
  CHECK(l.epsilon_high == 0.28);
  CHECK(l.delta == 2.0);
  CHECK(l.beta == 0.04);
  CHECK(l.importance_sampling_level == grpo::ImportanceSampling::sequence);
  CHECK(l.max_completion_length == 128);
  CHECK(l.sapo_temperature_pos == 0.9);
  CHECK(l.sapo_temperature_neg == 1.2);
  CHECK(l.use_bias_correction_kl);
  const grpo::AdvantageOptions a = c.advantage_options();
  CHECK(a.num_generations == 4);
  CHECK(a.scale_rewards == grpo::ScaleRewards::batch);
  CHECK(a.aggregation == grpo::RewardAggregation::normalize_then_sum);
  CHECK(a.weights == std::vector<double>{1.0, 0.5});
  CHECK(c.generation_batch_size() == 6 * 4 * 2);
  CHECK(c.prompts_per_generation() == 12);
  CHECK(c.micro_steps_per_generation() == 8);
  CHECK(c.effective_eval_steps() == 25);
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("GRPOConfig::validate names each bad field and its value", "[config]") {
  struct Case {
    const char* what;
    std::function<void(grpo::GRPOConfig&)> change;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"indivisible generation batch",
       [](auto& c) { c.per_device_train_batch_size = 6; },
       {"generation batch", "= 6) must be divisible by num_generations = 8"}},
      {"indivisible with steps_per_generation",
       [](auto& c) {
         c.num_generations = 4;
         c.per_device_train_batch_size = 3;
         c.steps_per_generation = 3;
       },
       {"3 * 3 * 1 = 9", "num_generations = 4"}},
      {"one generation", [](auto& c) { c.num_generations = 1; }, {"num_generations must be >= 2", "got 1"}},
      {"zero batch",
       [](auto& c) { c.per_device_train_batch_size = 0; },
       {"per_device_train_batch_size must be >= 1, got 0"}},
      {"zero accumulation",
       [](auto& c) { c.gradient_accumulation_steps = 0; },
       {"gradient_accumulation_steps must be >= 1"}},
      {"zero steps_per_generation", [](auto& c) { c.steps_per_generation = 0; }, {"steps_per_generation must be >= 1"}},
      {"zero iterations", [](auto& c) { c.num_iterations = 0; }, {"num_iterations must be >= 1"}},
      {"zero processes", [](auto& c) { c.num_processes = 0; }, {"num_processes must be >= 1"}},
      {"zero completion length", [](auto& c) { c.max_completion_length = 0; }, {"max_completion_length must be >= 1"}},
      {"zero prompt length", [](auto& c) { c.max_prompt_length = 0; }, {"max_prompt_length must be >= 1"}},
      {"negative learning rate",
       [](auto& c) { c.learning_rate = -1e-5; },
       {"learning_rate must be finite and >= 0", "-1e-05"}},
      {"zero temperature", [](auto& c) { c.temperature = 0.0; }, {"temperature must be finite and > 0, got 0"}},
      {"top_p above 1", [](auto& c) { c.top_p = 1.5; }, {"top_p must be in (0, 1], got 1.5"}},
      {"top_p zero", [](auto& c) { c.top_p = 0.0; }, {"top_p must be in (0, 1]"}},
      {"negative top_k", [](auto& c) { c.top_k = -1; }, {"top_k must be >= 0"}},
      {"min_p above 1", [](auto& c) { c.min_p = 2.0; }, {"min_p must be in [0, 1] or null, got 2"}},
      {"zero repetition penalty",
       [](auto& c) { c.repetition_penalty = 0.0; },
       {"repetition_penalty must be finite and > 0"}},
      {"negative beta", [](auto& c) { c.beta = -0.1; }, {"beta must be finite and >= 0, got -0.1"}},
      {"sync without beta", [](auto& c) { c.sync_ref_model = true; }, {"sync_ref_model = true", "beta = 0"}},
      {"alpha above 1",
       [](auto& c) { c.ref_model_mixup_alpha = 1.5; },
       {"ref_model_mixup_alpha must be in [0, 1], got 1.5"}},
      {"zero sync steps", [](auto& c) { c.ref_model_sync_steps = 0; }, {"ref_model_sync_steps must be >= 1"}},
      {"nan reward weight",
       [](auto& c) {
         c.reward_weights = {1.0, std::nan("")};
       },
       {"reward_weights[1] must be finite"}},
      {"warmup ratio above 1", [](auto& c) { c.warmup_ratio = 1.5; }, {"warmup_ratio must be in [0, 1], got 1.5"}},
      {"negative warmup steps", [](auto& c) { c.warmup_steps = -2; }, {"warmup_steps must be >= 0, got -2"}},
      {"adam beta2 of 1", [](auto& c) { c.adam_beta2 = 1.0; }, {"adam_beta2 must be in [0, 1)"}},
      {"zero adam epsilon", [](auto& c) { c.adam_epsilon = 0.0; }, {"adam_epsilon must be > 0"}},
      {"negative weight decay", [](auto& c) { c.weight_decay = -0.1; }, {"weight_decay must be finite and >= 0"}},
      {"negative grad norm", [](auto& c) { c.max_grad_norm = -1.0; }, {"max_grad_norm must be >= 0"}},
      {"no run length",
       [](auto& c) { c.num_train_epochs = 0.0; },
       {"max_steps = -1 and num_train_epochs = 0", "no length"}},
      {"zero max_steps", [](auto& c) { c.max_steps = 0; }, {"max_steps must be >= 1, or -1", "got 0"}},
      {"zero logging steps", [](auto& c) { c.logging_steps = 0; }, {"logging_steps must be >= 1"}},
      {"negative save steps", [](auto& c) { c.save_steps = -1; }, {"save_steps must be >= 0"}},
      {"zero save limit", [](auto& c) { c.save_total_limit = 0; }, {"save_total_limit must be >= 1"}},
      {"zero eval steps", [](auto& c) { c.eval_steps = 0; }, {"eval_steps must be >= 1"}},
      {"negative retries",
       [](auto& c) {
         c.dynamic_sampling = true;
         c.max_dynamic_sampling_retries = -1;
       },
       {"max_dynamic_sampling_retries must be >= 0"}},
      {"empty output_dir", [](auto& c) { c.output_dir.clear(); }, {"output_dir must not be empty"}},
      {"loss options: negative epsilon",
       [](auto& c) { c.epsilon = -0.1; },
       {"loss options", "epsilon must be finite and >= 0"}},
      {"loss options: delta", [](auto& c) { c.delta = 1.1; }, {"loss options", "delta must be > 1 + epsilon_high"}},
      {"loss options: sapo", [](auto& c) { c.sapo_temperature_neg = 0.0; }, {"loss options", "sapo_temperature"}},
  };
  for (const auto& test : cases) {
    INFO(test.what);
    grpo::GRPOConfig c;
    test.change(c);
    std::string message;
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    CHECK_THAT(message, Contains("grpo::GRPOConfig: "));
    for (const auto& part : test.expected) CHECK_THAT(message, Contains(part));
  }
  grpo::GRPOConfig only_max_steps;
  only_max_steps.num_train_epochs = 0.0;
  only_max_steps.max_steps = 10;
  CHECK_NOTHROW(only_max_steps.validate());
}

TEST_CASE("GRPOConfig saves atomically and loads back, errors name the file", "[config]") {
  grpo_test::ScopedTempDir dir;
  const std::string path = dir.file("config.json");
  grpo::GRPOConfig c = non_default_config();
  grpo::save_config(c, path);
  const grpo::GRPOConfig back = grpo::load_config(path);
  CHECK(nlohmann::json(back) == nlohmann::json(c));
  CHECK(std::filesystem::directory_iterator(dir.path()) != std::filesystem::directory_iterator());
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) files += entry.is_regular_file();
  CHECK(files == 1);  // no temporary file left behind

  const std::string bad_json = dir.write("bad.json", "{\"beta\": 0.1,\n \"epsilon\": }");
  CHECK_THROWS_WITH(grpo::load_config(bad_json), Contains("bad.json") && Contains("not valid JSON"));
  const std::string invalid = dir.write("invalid.json", R"({"num_generations": 3})");
  CHECK_THROWS_WITH(grpo::load_config(invalid),
                    Contains("invalid.json") && Contains("divisible by num_generations = 3"));
  const std::string unknown = dir.write("unknown.json", R"({"lerning_rate": 0.1})");
  CHECK_THROWS_WITH(grpo::load_config(unknown), Contains("unknown.json") && Contains("\"lerning_rate\""));
  CHECK_THROWS_WITH(grpo::load_config(dir.file("missing.json")), Contains("cannot open") && Contains("missing.json"));
}
