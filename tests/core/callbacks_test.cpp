// Duck-typed trainer callbacks: each object implements only the hooks it needs.
#include "grpo/train/callbacks.hpp"

#include "support/catch.hpp"
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {
struct StepCounter {  // one hook only
  int steps = 0;
  int64_t last_step = -1;
  void on_step_end(const grpo::TrainerState& state) {
    ++steps;
    last_step = state.global_step;
  }
};

struct Recorder {  // all three hooks
  std::vector<std::string> calls;
  void on_step_end(const grpo::TrainerState&) { calls.push_back("step"); }
  void on_log(const grpo::TrainerState& state, const std::map<std::string, double>& metrics) {
    calls.push_back("log " + std::to_string(state.global_step) + " reward " + std::to_string(metrics.at("reward")));
  }
  void on_save(const grpo::TrainerState&, const std::string& checkpoint_dir) {
    calls.push_back("save " + checkpoint_dir);
  }
};

struct Misspelled {  // no recognised hook
  void on_step(const grpo::TrainerState&) {}
};
}  // namespace

static_assert(grpo::has_on_step_end_v<StepCounter> && !grpo::has_on_log_v<StepCounter> &&
              !grpo::has_on_save_v<StepCounter>);
static_assert(grpo::has_on_log_v<Recorder> && grpo::has_on_save_v<Recorder>);
static_assert(!grpo::is_callback_v<Misspelled> && grpo::is_callback_v<StepCounter&>);

TEST_CASE("callbacks receive only the hooks they implement, in order", "[callbacks]") {
  StepCounter counter;
  Recorder recorder;
  grpo::TrainerState state;
  state.global_step = 7;
  state.max_steps = 10;
  grpo::invoke_on_step_end(state, counter, recorder);
  grpo::invoke_on_log(state, {{"reward", 0.5}}, counter, recorder);
  grpo::invoke_on_save(state, "out/checkpoint-7", counter, recorder);
  CHECK(counter.steps == 1);
  CHECK(counter.last_step == 7);
  CHECK(recorder.calls == std::vector<std::string>{"step", "log 7 reward 0.500000", "save out/checkpoint-7"});
  grpo::invoke_on_step_end(state);  // no callbacks at all is fine
}

TEST_CASE("callbacks stored in a tuple are invoked the same way", "[callbacks]") {
  std::tuple<StepCounter, Recorder> callbacks;
  grpo::TrainerState state;
  for (int s = 1; s <= 3; ++s) {
    state.global_step = s;
    grpo::invoke_on_step_end(state, callbacks);
  }
  grpo::invoke_on_log(state, {{"reward", 1.0}}, callbacks);
  CHECK(std::get<0>(callbacks).steps == 3);
  CHECK(std::get<1>(callbacks).calls.size() == 4);
  CHECK(std::get<1>(callbacks).calls.back() == "log 3 reward 1.000000");
  grpo::check_callbacks<StepCounter, Recorder>();
}

TEST_CASE("TrainerState round-trips through strict JSON", "[callbacks]") {
  grpo::TrainerState state;
  state.global_step = 12;
  state.epoch = 1.5;
  state.max_steps = 100;
  state.last_checkpoint = "out/checkpoint-10";
  const nlohmann::json j = state;
  const auto back = j.get<grpo::TrainerState>();
  CHECK(back.global_step == 12);
  CHECK(back.epoch == 1.5);
  CHECK(back.last_checkpoint == "out/checkpoint-10");
  CHECK(nlohmann::json(back) == j);
  CHECK_THROWS(nlohmann::json::parse(R"({"step": 1})").get<grpo::TrainerState>());
}
