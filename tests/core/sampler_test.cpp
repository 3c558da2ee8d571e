// RepeatSampler order, reproducibility and resume; TRL's micro-step buffering order; dynamic-sampling filter.
#include "grpo/data/sampler.hpp"
#include "grpo/train/batching.hpp"
#include "grpo/train/dynamic_sampling.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>
#include "support/catch.hpp"

using grpo_test::Contains;

TEST_CASE("the sampler repeats each prompt G times consecutively and covers an epoch without repeats", "[sampler]") {
  grpo::RepeatSampler sampler(/*num_prompts=*/10, /*prompts_per_batch=*/3, /*num_generations=*/4, /*seed=*/42);
  CHECK(sampler.batches_per_epoch() == 3);  // 10 / 3: the incomplete last chunk is dropped
  std::set<int64_t> seen;
  for (int b = 0; b < 3; ++b) {
    const auto batch = sampler.next_generation_batch();
    REQUIRE(batch.size() == 12);
    for (std::size_t i = 0; i < batch.size(); i += 4) {
      CHECK(std::count(batch.begin() + static_cast<long>(i), batch.begin() + static_cast<long>(i) + 4, batch[i]) == 4);
      CHECK(seen.insert(batch[i]).second);  // a prompt appears in one chunk per epoch only
      CHECK(batch[i] >= 0);
      CHECK(batch[i] < 10);
    }
  }
  CHECK(sampler.epoch() == 0);
  CHECK(sampler.epoch_progress() == 1.0);
  sampler.next_generation_batch();
  CHECK(sampler.epoch() == 1);
}

TEST_CASE("the shuffle is a fixed function of seed and epoch", "[sampler]") {
  grpo::RepeatSampler a(8, 2, 2, 7), b(8, 2, 2, 7), c(8, 2, 2, 8);
  std::vector<int64_t> first, second, other;
  for (int i = 0; i < 8; ++i) {
    const auto x = a.next_generation_batch(), y = b.next_generation_batch(), z = c.next_generation_batch();
    first.insert(first.end(), x.begin(), x.end());
    second.insert(second.end(), y.begin(), y.end());
    other.insert(other.end(), z.begin(), z.end());
  }
  CHECK(first == second);
  CHECK(first != other);
  // Epochs are shuffled differently, and the order is pinned (same result on every standard library).
  CHECK(a.epoch_order(0) != a.epoch_order(1));
  CHECK(a.epoch_order(0) == std::vector<int64_t>{0, 1, 6, 3, 7, 2, 5, 4});
  grpo::RepeatSampler ordered(5, 2, 3, 7, /*shuffle=*/false);
  CHECK(ordered.next_generation_batch() == std::vector<int64_t>{0, 0, 0, 1, 1, 1});
  CHECK(ordered.next_generation_batch() == std::vector<int64_t>{2, 2, 2, 3, 3, 3});
  CHECK(ordered.next_generation_batch() == std::vector<int64_t>{0, 0, 0, 1, 1, 1});  // prompt 4 dropped
}

TEST_CASE("a restored sampler continues with the identical sequence", "[sampler]") {
  grpo::RepeatSampler original(9, 2, 3, 123);
  for (int i = 0; i < 5; ++i) original.next_generation_batch();  // into the second epoch
  const nlohmann::json saved = original.state();
  CHECK(saved.at("epoch") == 1);
  CHECK(saved.at("position") == 1);
  CHECK(saved.at("seed") == 123);

  grpo::RepeatSampler resumed(9, 2, 3, /*seed ignored, the state has it=*/0);
  resumed.restore(saved.get<grpo::SamplerState>());
  for (int i = 0; i < 10; ++i) CHECK(resumed.next_generation_batch() == original.next_generation_batch());

  grpo::SamplerState bad;
  bad.position = 99;
  CHECK_THROWS_WITH(resumed.restore(bad), Contains("position 99") && Contains("4 batches per epoch"));
  CHECK_THROWS_WITH(nlohmann::json::parse(R"({"epoch": 1, "pos": 2})").get<grpo::SamplerState>(),
                    Contains("unknown field \"pos\""));
  CHECK_THROWS_WITH(grpo::RepeatSampler(3, 4, 2, 0), Contains("needs 4 prompts but the dataset has 3"));
}

// TRL's test_prepare_input_called_with_correct_data: steps_per_generation 4, per_device 6, G 4, num_iterations 2,
// no shuffle: each generation batch holds 6 prompts x 4 and is reused 4 x 2 = 8 micro-steps; 48 micro-steps.
TEST_CASE("micro-steps reuse each generation batch steps_per_generation x num_iterations times as TRL does",
          "[sampler]") {
  grpo::GRPOConfig config;
  config.steps_per_generation = 4;
  config.per_device_train_batch_size = 6;
  config.num_generations = 4;
  config.num_iterations = 2;
  config.gradient_accumulation_steps = 4;
  config.shuffle_dataset = false;
  REQUIRE_NOTHROW(config.validate());
  REQUIRE(config.generation_batch_size() == 24);
  REQUIRE(config.prompts_per_generation() == 6);

  grpo::RepeatSampler sampler = grpo::make_sampler(config, /*num_prompts=*/17);
  std::vector<std::vector<int64_t>> generation_batches;
  std::vector<std::vector<int64_t>> micro_batches;  // prompt index of each row each micro-step trains on
  int optimizer_steps = 0;
  for (int64_t k = 0; k < 48; ++k) {
    const grpo::MicroStep s = grpo::micro_step_schedule(config, k);
    if (s.generate) generation_batches.push_back(sampler.next_generation_batch());
    REQUIRE(static_cast<int64_t>(generation_batches.size()) == s.generation + 1);
    const auto& batch = generation_batches.back();
    micro_batches.emplace_back(batch.begin() + s.slice * 6, batch.begin() + (s.slice + 1) * 6);
    optimizer_steps += s.optimizer_step;
    CHECK(s.slice == k % 4);
    CHECK(s.iteration == (k % 8) / 4);
  }
  REQUIRE(generation_batches.size() == 6);
  CHECK(optimizer_steps == 12);
  // 17 prompts give 2 full chunks per epoch: prompts 0-5, 6-11, then the next epoch starts over.
  const std::vector<int64_t> first{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5};
  std::vector<int64_t> second;
  for (int64_t p = 6; p < 12; ++p) second.insert(second.end(), 4, p);
  CHECK(generation_batches[0] == first);
  CHECK(generation_batches[1] == second);
  CHECK(generation_batches[2] == first);
  CHECK(sampler.epoch() == 2);
  // Within one generation batch the slices are used in order, twice (num_iterations = 2).
  CHECK(micro_batches[0] == std::vector<int64_t>{0, 0, 0, 0, 1, 1});
  CHECK(micro_batches[3] == std::vector<int64_t>{4, 4, 5, 5, 5, 5});
  CHECK(micro_batches[4] == micro_batches[0]);
  CHECK(micro_batches[7] == micro_batches[3]);
  CHECK(micro_batches[8] == std::vector<int64_t>{6, 6, 6, 6, 7, 7});
  CHECK(grpo::micro_step_schedule(config, 8).generate);
  CHECK_FALSE(grpo::micro_step_schedule(config, 4).generate);
  CHECK_THROWS_WITH(grpo::micro_step_schedule(config, -1), Contains("micro_step must be >= 0"));
}

TEST_CASE("dynamic sampling keeps only groups whose rewards differ", "[sampler]") {
  const double none = std::nan("");
  const std::vector<double> rewards{1, 1, 1, 0, 1, 0, none, 2, 2, none, none, 3, 0.5, none, 0.25};
  CHECK(grpo::groups_with_reward_variance(rewards, 3) == std::vector<int64_t>{1, 4});
  CHECK_THROWS_WITH(grpo::groups_with_reward_variance(rewards, 4), Contains("not a multiple of num_generations = 4"));
}

TEST_CASE("dynamic sampling fills the batch over rounds and stops after the allowed retries", "[sampler]") {
  grpo::DynamicSampling filling(/*groups_needed=*/3, /*max_retries=*/2);
  CHECK(filling.add_round({1, 1, 0, 1, 2, 2}, 2) == std::vector<int64_t>{1});  // groups 0 and 2 all equal
  CHECK(filling.more_rounds());
  CHECK(filling.add_round({0, 1, 1, 0, 0, 1}, 2) == std::vector<int64_t>{0, 1});  // surplus group 2 not needed
  CHECK(filling.full());
  CHECK_FALSE(filling.more_rounds());
  auto m = filling.metrics();
  CHECK(m.at("dynamic_sampling/rounds") == 2);
  CHECK(m.at("dynamic_sampling/dropped_groups") == 3);
  CHECK(m.at("dynamic_sampling/filled_ratio") == 1.0);

  grpo::DynamicSampling starved(2, 1);
  starved.add_round({1, 1, 0, 0}, 2);
  CHECK(starved.more_rounds());
  starved.add_round({1, 1, 0, 1}, 2);
  CHECK_FALSE(starved.more_rounds());  // 1 + max_retries rounds done
  CHECK_FALSE(starved.full());
  CHECK(starved.metrics().at("dynamic_sampling/filled_ratio") == 0.5);
  CHECK_THROWS_WITH(grpo::DynamicSampling(0, 1), Contains("groups_needed must be >= 1"));
}
