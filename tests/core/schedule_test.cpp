// Learning-rate schedules (Hugging Face semantics) and the run length derived from the config.
#include "grpo/train/schedule.hpp"

#include "support/catch.hpp"

using grpo_test::Contains;

TEST_CASE("warmup rises linearly from zero, then each schedule decays as Hugging Face's", "[schedule]") {
  using grpo::LrSchedulerType;
  // total 110 steps, 10 warmup: multipliers 0, 0.1, ..., then decay over 100 steps.
  for (auto type : {LrSchedulerType::constant, LrSchedulerType::linear, LrSchedulerType::cosine}) {
    CHECK(grpo::lr_multiplier(type, 0, 110, 10) == 0.0);
    CHECK(grpo::lr_multiplier(type, 5, 110, 10) == Approx(0.5));
    CHECK(grpo::lr_multiplier(type, 10, 110, 10) == Approx(1.0));
  }
  CHECK(grpo::lr_multiplier(LrSchedulerType::constant, 100, 110, 10) == 1.0);
  CHECK(grpo::lr_multiplier(LrSchedulerType::linear, 35, 110, 10) == Approx(0.75));
  CHECK(grpo::lr_multiplier(LrSchedulerType::linear, 110, 110, 10) == Approx(0.0));
  CHECK(grpo::lr_multiplier(LrSchedulerType::linear, 200, 110, 10) == 0.0);
  CHECK(grpo::lr_multiplier(LrSchedulerType::cosine, 60, 110, 10) == Approx(0.5));
  CHECK(grpo::lr_multiplier(LrSchedulerType::cosine, 35, 110, 10) == Approx(0.5 * (1 + std::cos(M_PI * 0.25))));
  CHECK(grpo::lr_multiplier(LrSchedulerType::cosine, 110, 110, 10) == Approx(0.0).margin(1e-12));
  // Without warmup the first update uses the full rate.
  CHECK(grpo::lr_multiplier(LrSchedulerType::linear, 0, 100, 0) == 1.0);
  CHECK(grpo::lr_multiplier(LrSchedulerType::linear, 1, 100, 0) == Approx(0.99));
  CHECK_THROWS_WITH(grpo::lr_multiplier(LrSchedulerType::linear, -1, 10, 0), Contains("must be >= 0"));
}

TEST_CASE("warmup steps come from warmup_steps, else from ceil(warmup_ratio * total)", "[schedule]") {
  grpo::GRPOConfig c;
  c.warmup_ratio = 0.1;
  CHECK(grpo::resolve_warmup_steps(c, 95) == 10);
  CHECK(grpo::resolve_warmup_steps(c, 100) == 10);
  c.warmup_steps = 3;
  CHECK(grpo::resolve_warmup_steps(c, 100) == 3);
  c.learning_rate = 1e-5;
  c.lr_scheduler_type = grpo::LrSchedulerType::constant;
  CHECK(grpo::learning_rate_at(c, 1, 100) == Approx(1e-5 / 3));
  CHECK(grpo::learning_rate_at(c, 50, 100) == Approx(1e-5));
}

TEST_CASE("the run length follows max_steps or epochs over full generation batches", "[schedule]") {
  grpo::GRPOConfig c;  // 8 rows per generation batch, G = 8: one prompt per batch
  c.num_generations = 4;
  c.per_device_train_batch_size = 4;
  c.gradient_accumulation_steps = 2;  // generation batch 8 rows = 2 prompts; 2 micro-steps per batch
  c.num_iterations = 2;               // 4 micro-steps per batch = 2 optimizer steps
  REQUIRE(c.prompts_per_generation() == 2);
  CHECK(grpo::optimizer_steps_per_epoch(c, 11) == 10);  // 5 full batches x 2
  c.num_train_epochs = 1.5;
  CHECK(grpo::resolve_total_steps(c, 11) == 15);
  c.max_steps = 7;
  CHECK(grpo::resolve_total_steps(c, 11) == 7);
  CHECK_THROWS_WITH(grpo::optimizer_steps_per_epoch(c, 1), Contains("1 prompts but one generation batch needs 2"));
}
