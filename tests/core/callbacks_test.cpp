// Duck-typed trainer callbacks: each object implements only the hooks it needs; a CallbackList keeps lvalues by
// reference and owns temporaries, forwards every hook in order, and reports Control::stop from any of them.
#include "grpo/train/callbacks.hpp"

#include <map>
#include <string>
#include <vector>

#include "support/catch.hpp"

namespace {
struct StepCounter {  // one hook only
  int steps = 0;
  int64_t last_step = -1;
  void on_step_end(const grpo::TrainerState& state) {
    ++steps;
    last_step = state.global_step;
  }
};

struct Recorder {  // several hooks
  std::vector<std::string>* calls;
  void on_train_begin(const grpo::TrainerState&) { calls->push_back("begin"); }
  void on_step_end(const grpo::TrainerState&) { calls->push_back("step"); }
  void on_log(const grpo::TrainerState& state, const std::map<std::string, double>& metrics) {
    calls->push_back("log " + std::to_string(state.global_step) + " reward " + std::to_string(metrics.at("reward")));
  }
  void on_evaluate(const grpo::TrainerState&, const std::map<std::string, double>&) { calls->push_back("eval"); }
  void on_rollout(const grpo::TrainerState&, const grpo::RolloutRecord& r) {
    calls->push_back("rollout " + std::to_string(r.completions.size()));
  }
  void on_save(const grpo::TrainerState&, const std::string& checkpoint_dir) {
    calls->push_back("save " + checkpoint_dir);
  }
  void on_warning(const grpo::TrainerState&, const std::string& message) { calls->push_back("warning " + message); }
  void on_train_end(const grpo::TrainerState&) { calls->push_back("end"); }
};

struct StopOnLog {  // a hook that returns Control
  grpo::Control on_log(const grpo::TrainerState&, const std::map<std::string, double>&) { return grpo::Control::stop; }
};

struct Misspelled {  // no recognised hook
  void on_step(const grpo::TrainerState&) {}
};
}  // namespace

static_assert(grpo::is_callback_v<StepCounter> && grpo::is_callback_v<StepCounter&>);
static_assert(grpo::is_callback_v<StopOnLog> && grpo::is_callback_v<grpo::CallbackList>);
static_assert(!grpo::is_callback_v<Misspelled>);

TEST_CASE("a callback list forwards each hook to the callbacks that have it, in order", "[callbacks]") {
  StepCounter counter;
  std::vector<std::string> calls;
  grpo::CallbackList list;
  list.add(counter);           // by reference
  list.add(Recorder{&calls});  // owned
  grpo::TrainerState state;
  state.global_step = 7;
  const std::vector<std::string> prompts{"p", "p"}, completions{"a", "b"}, names{"r"};
  const Eigen::MatrixXd rewards = Eigen::MatrixXd::Zero(2, 1);
  const std::vector<double> advantages{0.0, 0.0};
  CHECK(list.on_train_begin(state) == grpo::Control::proceed);
  CHECK(list.on_step_end(state) == grpo::Control::proceed);
  CHECK(list.on_log(state, {{"reward", 0.5}}) == grpo::Control::proceed);
  list.on_evaluate(state, {});
  list.on_rollout(state, grpo::RolloutRecord{prompts, completions, names, rewards, advantages});
  list.on_save(state, "out/checkpoint-7");
  list.on_warning(state, "careful");
  list.on_train_end(state);
  CHECK(counter.steps == 1);
  CHECK(counter.last_step == 7);
  CHECK(calls == std::vector<std::string>{"begin", "step", "log 7 reward 0.500000", "eval", "rollout 2",
                                          "save out/checkpoint-7", "warning careful", "end"});
}

TEST_CASE("any callback can stop, callbacks can be removed by type, and lists nest", "[callbacks]") {
  grpo::CallbackList inner;
  inner.add(StopOnLog{});
  StepCounter counter;
  inner.add(counter);
  grpo::CallbackList outer;
  outer.add(inner);  // by reference: what is added to `inner` later is seen too
  grpo::TrainerState state;
  CHECK(outer.on_log(state, {}) == grpo::Control::stop);
  CHECK(outer.on_step_end(state) == grpo::Control::proceed);
  CHECK(counter.steps == 1);
  CHECK(inner.contains<StopOnLog>());
  CHECK(inner.remove<StopOnLog>() == 1);
  CHECK_FALSE(inner.contains<StopOnLog>());
  CHECK(inner.size() == 1);
  CHECK(outer.on_log(state, {}) == grpo::Control::proceed);
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
