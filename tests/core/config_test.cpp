// GRPOConfig: TRL defaults, strict JSON round trip, files, and every validation error naming its field.
#include "grpo/train/config.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include "support/catch.hpp"

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
  c.aggregation = grpo::RewardAggregation::normalize_then_sum;
  c.weights = {1.0, 0.5};
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
  c.gradient_checkpointing = true;
  c.bf16 = true;
  c.per_device_train_batch_size = 6;
  c.log_prob_micro_batch_size = 12;
  c.gradient_accumulation_steps = 2;
  c.steps_per_generation = 4;
  c.num_processes = 2;
  c.ddp_timeout = 60;
  c.truncate_prompts_to_model_positions = true;
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

namespace grpo_config_test {
// Members plus base classes of an aggregate: the largest N for which T{x1, ..., xN} compiles, each x converting to
// any type. Compared with what visit_fields visits, it catches a member added to a struct but not to its list.
struct AnyField {
  template <class T>
  operator T() const;  // only named in decltype
};
template <class T, class Indices, class = void>
struct BraceInitializable : std::false_type {};
template <class T, std::size_t... I>
struct BraceInitializable<T, std::index_sequence<I...>, std::void_t<decltype(T{(void(I), AnyField{})...})>>
    : std::true_type {};
template <class T, std::size_t N = 0>
constexpr std::size_t aggregate_arity() {
  if constexpr (BraceInitializable<T, std::make_index_sequence<N + 1>>::value) {
    return aggregate_arity<T, N + 1>();
  } else {
    return N;
  }
}

template <class T>
std::vector<std::string> visited_keys() {
  std::vector<std::string> keys;
  const T value{};
  T::visit_fields(value, [&keys](const char* key, const auto&) { keys.emplace_back(key); });
  return keys;
}

template <class T>
inline constexpr bool unsupported_field_type = false;

// Visitor that moves every field away from its value, whatever the field's type.
struct MakeDifferent {
  template <class T>
  void operator()(const char*, T& field) const {
    change(field);
  }
  static void change(bool& v) { v = !v; }
  static void change(std::string& v) { v += "_changed"; }
  template <class T>
  static void change(std::vector<T>& v) {
    v.push_back(T{});
    change(v.back());
  }
  // Every optional option defaults to unset, so a set value differs (the round-trip check confirms it). Not
  // reading the old value keeps g++ 12's false -Wmaybe-uninitialized on std::optional away.
  template <class T>
  static void change(std::optional<T>& v) {
    T value{};
    change(value);
    v = value;
  }
  template <class T>
  static void change(T& v) {
    if constexpr (std::is_enum_v<T>) {
      v = static_cast<T>(static_cast<int>(v) == 0 ? 1 : 0);
    } else if constexpr (std::is_integral_v<T>) {
      v = static_cast<T>(v + 3);
    } else if constexpr (std::is_floating_point_v<T>) {
      v += 0.25;
    } else {
      static_assert(unsupported_field_type<T>, "MakeDifferent: teach it this field type");
    }
  }
};

// Every field of T changed through its visitor must survive to_json -> text -> from_json, and differ from the
// default in the JSON.
template <class T>
void check_every_field_round_trips() {
  T changed{};
  T::visit_fields(changed, MakeDifferent{});
  const nlohmann::json j = nlohmann::json::parse(nlohmann::json(changed).dump());
  const nlohmann::json defaults = T{};
  REQUIRE(j.size() == defaults.size());
  for (const auto& item : defaults.items()) {
    INFO("field " << item.key());
    CHECK(j.at(item.key()) != item.value());
  }
  const T back = j.get<T>();
  CHECK(nlohmann::json(back) == j);
}

// The message of the exception `text` raises when read as a GRPOConfig ("" when it reads).
std::string config_json_error(const std::string& text) {
  try {
    (void)nlohmann::json::parse(text).get<grpo::GRPOConfig>();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}
}  // namespace grpo_config_test

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
                    Contains("field \"learning_rate\" must be a number, got \"fast\""));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"seed": -1})").get<grpo::GRPOConfig>(),
                    Contains("field \"seed\" must be a non-negative integer, got -1"));
}

TEST_CASE("GRPOConfig's JSON is exactly TRL's option names, with today's defaults", "[config]") {
  // The full default config as JSON: a changed default, a renamed key or a key added without a decision breaks it.
  const nlohmann::json expected = nlohmann::json::parse(R"({
    "loss_type": "dapo", "epsilon": 0.2, "epsilon_high": null, "delta": null, "beta": 0.0,
    "importance_sampling_level": "token", "max_completion_length": 512, "sapo_temperature_pos": 1.0,
    "sapo_temperature_neg": 1.05, "use_bias_correction_kl": false,
    "num_generations": 8, "scale_rewards": "group", "multi_objective_aggregation": "sum_then_normalize",
    "reward_weights": [],
    "max_prompt_length": 512, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": null,
    "repetition_penalty": 1.0, "num_iterations": 1, "mask_truncated_completions": false, "sync_ref_model": false,
    "ref_model_mixup_alpha": 0.6, "ref_model_sync_steps": 512,
    "learning_rate": 1e-6, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "weight_decay": 0.0,
    "lr_scheduler_type": "linear", "warmup_steps": 0, "warmup_ratio": 0.0, "max_grad_norm": 1.0,
    "gradient_checkpointing": false, "bf16": false, "per_device_train_batch_size": 8,
    "log_prob_micro_batch_size": 0, "gradient_accumulation_steps": 1, "steps_per_generation": null,
    "truncate_prompts_to_model_positions": false, "num_processes": 1, "ddp_timeout": 1800, "shuffle_dataset": true, "max_steps": -1, "num_train_epochs": 3.0, "seed": 42,
    "dynamic_sampling": false, "max_dynamic_sampling_retries": 4, "logging_steps": 10, "save_steps": 500,
    "save_total_limit": null, "eval_steps": null, "output_dir": "grpo_output", "log_completions": true
  })");
  const nlohmann::json actual = grpo::GRPOConfig{};
  std::set<std::string> expected_keys, actual_keys;
  for (const auto& item : expected.items()) expected_keys.insert(item.key());
  for (const auto& item : actual.items()) actual_keys.insert(item.key());
  CHECK(actual_keys == expected_keys);
  CHECK(actual == expected);
  CHECK(expected.size() == 55);
}

TEST_CASE("every field of every options struct is in its visitor and round-trips through JSON", "[config]") {
  using grpo_config_test::aggregate_arity;
  using grpo_config_test::visited_keys;
  // The option structs are aggregates: a member missing from visit_fields makes the arity exceed the visited count.
  constexpr std::size_t loss_fields = aggregate_arity<grpo::LossOptions>();
  constexpr std::size_t advantage_fields = aggregate_arity<grpo::AdvantageOptions>();
  CHECK(visited_keys<grpo::LossOptions>().size() == loss_fields);
  CHECK(visited_keys<grpo::AdvantageOptions>().size() == advantage_fields);
  // GRPOConfig{LossOptions, AdvantageOptions, own members...}: its own members are the arity minus the two bases.
  static_assert(std::is_aggregate_v<grpo::GRPOConfig>, "the member count below relies on aggregate initialization");
  constexpr std::size_t config_own_fields = aggregate_arity<grpo::GRPOConfig>() - 2;
  CHECK(visited_keys<grpo::GRPOConfig>().size() == loss_fields + advantage_fields + config_own_fields);
  CHECK(loss_fields == 10);
  CHECK(advantage_fields == 4);
  CHECK(config_own_fields == 41);

  // The config's list starts with the bases' lists, keys unchanged.
  const auto config_keys = visited_keys<grpo::GRPOConfig>();
  std::vector<std::string> base_keys = visited_keys<grpo::LossOptions>();
  for (const auto& key : visited_keys<grpo::AdvantageOptions>()) base_keys.push_back(key);
  CHECK(std::vector<std::string>(config_keys.begin(), config_keys.begin() + base_keys.size()) == base_keys);
  CHECK(std::set<std::string>(config_keys.begin(), config_keys.end()).size() == config_keys.size());

  grpo_config_test::check_every_field_round_trips<grpo::GRPOConfig>();
  grpo_config_test::check_every_field_round_trips<grpo::LossOptions>();
  grpo_config_test::check_every_field_round_trips<grpo::AdvantageOptions>();
}

TEST_CASE("GRPOConfig JSON is strict about types and names the field and the value", "[config]") {
  using grpo_config_test::config_json_error;
  struct Case {
    const char* json;
    const char* message;  // after "GRPOConfig: field "
  };
  const std::vector<Case> cases = {
      // Integers: no fraction, no bool, no string, inside the field's range; the inherited kernel fields too.
      {R"({"warmup_steps": 0.1})", R"("warmup_steps" must be an integer, got 0.1)"},
      {R"({"num_generations": 2.5})", R"("num_generations" must be an integer, got 2.5)"},
      {R"({"max_completion_length": 100.5})", R"("max_completion_length" must be an integer, got 100.5)"},
      {R"({"max_steps": true})", R"("max_steps" must be an integer, got true)"},
      {R"({"per_device_train_batch_size": "8"})", R"("per_device_train_batch_size" must be an integer, got "8")"},
      {R"({"steps_per_generation": 1.5})", R"("steps_per_generation" must be an integer, got 1.5)"},
      {R"({"eval_steps": false})", R"("eval_steps" must be an integer, got false)"},
      {R"({"num_iterations": 3000000000})",
       R"("num_iterations" must be an integer in [-2147483648, 2147483647], got 3000000000)"},
      {R"({"max_steps": -1e19})",
       R"("max_steps" must be an integer in [-9223372036854775808, 9223372036854775807], got -1e+19)"},
      // Unsigned: no negative value (the seed).
      {R"({"seed": -1})", R"("seed" must be a non-negative integer, got -1)"},
      {R"({"seed": -2.0})", R"("seed" must be a non-negative integer, got -2.0)"},
      {R"({"seed": 0.5})", R"("seed" must be an integer, got 0.5)"},
      // Booleans: true or false only.
      {R"({"shuffle_dataset": 1})", R"("shuffle_dataset" must be true or false, got 1)"},
      {R"({"use_bias_correction_kl": 0.0})", R"("use_bias_correction_kl" must be true or false, got 0.0)"},
      // Floating fields take any number, not a bool or a string.
      {R"({"learning_rate": true})", R"("learning_rate" must be a number, got true)"},
      {R"({"min_p": "0.1"})", R"("min_p" must be a number, got "0.1")"},
      // Strings and enum names: no numbers.
      {R"({"output_dir": 3})", R"("output_dir" must be a string, got 3)"},
      {R"({"loss_type": 3})", R"("loss_type" must be a string, got 3)"},
      {R"({"lr_scheduler_type": true})", R"("lr_scheduler_type" must be a string, got true)"},
      // Arrays, element by element.
      {R"({"reward_weights": 1.0})", R"("reward_weights" must be an array, got 1.0)"},
      {R"({"reward_weights": [1, "x"]})", R"("reward_weights[1]" must be a number, got "x")"},
  };
  for (const auto& test : cases) {
    INFO(test.json);
    CHECK(config_json_error(test.json) == std::string("grpo::GRPOConfig: field ") + test.message);
  }
  // The example of the README's promise, in full.
  CHECK(config_json_error(R"({"warmup_steps": 0.1})") ==
        "grpo::GRPOConfig: field \"warmup_steps\" must be an integer, got 0.1");

  // Accepted: an exactly integral number for an integer field (what JSON writers produce for computed values),
  // an integer for a floating field, the whole uint64 range for the seed, null for an optional.
  const auto c = nlohmann::json::parse(R"({"warmup_steps": 10.0, "max_steps": 1e3, "num_generations": 4.0,
      "beta": 1, "min_p": 0, "seed": 18446744073709551615, "reward_weights": [1, 0.5], "eval_steps": null,
      "top_k": 50})")
                     .get<grpo::GRPOConfig>();
  CHECK(c.warmup_steps == 10);
  CHECK(c.max_steps == 1000);
  CHECK(c.num_generations == 4);
  CHECK(c.beta == 1.0);
  CHECK(c.min_p == 0.0);
  CHECK(c.seed == std::numeric_limits<uint64_t>::max());
  CHECK(c.weights == std::vector<double>{1.0, 0.5});
  CHECK_FALSE(c.eval_steps.has_value());
  CHECK(c.top_k == 50);
  static_assert(std::is_same_v<decltype(grpo::GRPOConfig::top_k), int64_t>, "top_k is int64_t like GenerationOptions'");
}

TEST_CASE("GRPOConfig's loss and advantage options are its base slices", "[config]") {
  grpo::GRPOConfig c;
  grpo::GRPOConfig::visit_fields(c, grpo_config_test::MakeDifferent{});
  const grpo::GRPOConfig& constant = c;
  CHECK(&constant.loss_options() == static_cast<const grpo::LossOptions*>(&c));
  CHECK(&constant.advantage_options() == static_cast<const grpo::AdvantageOptions*>(&c));
  const nlohmann::json config_json = c;
  const nlohmann::json loss_json = constant.loss_options();
  const nlohmann::json advantage_json = constant.advantage_options();
  CHECK(loss_json.size() == 10);
  CHECK(advantage_json.size() == 4);
  for (const nlohmann::json* part : {&loss_json, &advantage_json}) {
    for (const auto& item : part->items()) {
      INFO("field " << item.key());
      CHECK(config_json.at(item.key()) == item.value());
    }
  }
  // Writing through the slice is writing the config.
  c.loss_options().beta = 0.5;
  c.advantage_options().weights = {2.0};
  CHECK(c.beta == 0.5);
  CHECK(c.weights == std::vector<double>{2.0});
  // A config is usable wherever the kernel takes its options.
  const auto loss_type_of = [](const grpo::LossOptions& o) { return o.loss_type; };
  CHECK(loss_type_of(c) == c.loss_type);
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
      {"negative log-prob micro-batch",
       [](auto& c) { c.log_prob_micro_batch_size = -2; },
       {"log_prob_micro_batch_size must be >= 0", "got -2"}},
      {"zero accumulation",
       [](auto& c) { c.gradient_accumulation_steps = 0; },
       {"gradient_accumulation_steps must be >= 1"}},
      {"zero steps_per_generation", [](auto& c) { c.steps_per_generation = 0; }, {"steps_per_generation must be >= 1"}},
      {"zero iterations", [](auto& c) { c.num_iterations = 0; }, {"num_iterations must be >= 1"}},
      {"zero processes", [](auto& c) { c.num_processes = 0; }, {"num_processes must be >= 1"}},
      {"zero ddp_timeout", [](auto& c) { c.ddp_timeout = 0; }, {"ddp_timeout must be >= 1"}},
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
         c.weights = {1.0, std::nan("")};
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
  // A number beyond double (nlohmann's out_of_range, which escaped before; found by the fuzz seeds).
  const std::string huge = dir.write("huge.json", R"({"top_p": 1e400})");
  CHECK_THROWS_AS(grpo::load_config(huge), grpo::InvalidArgument);
  CHECK_THROWS_WITH(grpo::load_config(huge), Contains("huge.json") && Contains("not valid JSON") && Contains("1e400"));
  // Nesting beyond 1000 levels (printing the bad value in the message recursed per level and overflowed the stack).
  const std::string deep =
      dir.write("deep.json", "{\"reward_weights\": " + std::string(200000, '[') + std::string(200000, ']') + "}");
  CHECK_THROWS_AS(grpo::load_config(deep), grpo::InvalidArgument);
  CHECK_THROWS_WITH(grpo::load_config(deep), Contains("deep.json") && Contains("more than 1000 deep"));
}
