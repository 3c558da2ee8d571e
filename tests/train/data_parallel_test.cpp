// Data-parallel training across processes on loopback: this test executable launches copies of itself as ranks
// (the hidden test case "[.dp-worker]", configured through the variables torchrun sets) and compares what they
// train with one process over the same global batch.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <torch/optim/sgd.h>
#include "arithmetic_task.hpp"

#include "grpo/distributed/launch_environment.hpp"
#include "grpo/distributed/process_group.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/train/trainer.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

extern char** environ;

namespace dp_test {

namespace fs = std::filesystem;
using Trainer = grpo::GRPOTrainer<grpo::LlamaModel, grpo::CharTokenizer>;

const grpo::CharTokenizer& tokenizer() {
  static const grpo::CharTokenizer tok("0123456789+=");
  return tok;
}

std::vector<grpo::RewardFunction> rewards() {
  std::vector<grpo::RewardFunction> out;
  out.push_back(grpo::accuracy_reward());
  out.emplace_back("length", [](std::string_view completion, const grpo::Row&) {
    return static_cast<double>(completion.size()) / 4.0;
  });
  return out;
}

// G = 4 and 12 rows per generation batch: with 2 ranks of 6 rows the second prompt's group spans both ranks.
// Two micro-steps per generation batch and one per optimizer step: a checkpoint after an odd step falls in the
// middle of a generation batch, and old log-probs are needed. beta != 0: reference log-probs too.
grpo::GRPOConfig run_config(const std::string& output_dir, int processes) {
  grpo::GRPOConfig c;
  c.output_dir = output_dir;
  c.num_generations = 4;
  c.per_device_train_batch_size = 6 / processes;
  c.steps_per_generation = 2;
  c.gradient_accumulation_steps = 1;
  c.max_completion_length = 3;
  c.learning_rate = 1.0;  // SGD (options()): large enough to move the tiny model's parameters visibly
  c.beta = 0.05;
  c.max_steps = 4;
  c.logging_steps = 1;
  c.save_steps = 1;
  c.seed = 11;
  return c;
}

std::shared_ptr<grpo::LlamaModel> tiny_model(uint64_t seed) {
  torch::manual_seed(seed);
  return std::make_shared<grpo::LlamaModel>(grpo::LlamaConfig::tiny(tokenizer().vocab_size()));
}

grpo::Dataset data() { return grpo_examples::arithmetic_dataset({0, 9, "+"}); }

// Plain SGD: parameters then differ by the rounding of the gradients' summation order (one process sums B P rows,
// P processes sum B rows each and average). AdamW divides each gradient element by its own magnitude, so an element
// that is pure rounding noise (+1e-12 in one order, -1e-12 in the other) moves by +-lr either way: with AdamW the
// same runs agree to about 2e-4 after four steps, which says nothing about the data-parallel math.
grpo::TrainerOptions options() {
  grpo::TrainerOptions o;
  o.torch_threads = 1;
  o.optimizer = [](const std::vector<torch::Tensor>& parameters, const grpo::GRPOConfig& config) {
    return std::make_unique<torch::optim::SGD>(parameters, torch::optim::SGDOptions(config.learning_rate));
  };
  return o;
}

// Every generation batch's advantages, as on_rollout sees them.
struct AdvantageLog {
  std::vector<std::vector<double>> batches;
  void on_rollout(const grpo::TrainerState&, const grpo::RolloutRecord& r) { batches.push_back(r.advantages); }
};

grpo::TensorMap parameters_of(grpo::LlamaModel& model) {
  grpo::TensorMap out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

double max_difference(const grpo::TensorMap& a, const grpo::TensorMap& b) {
  double worst = 0;
  for (const auto& [name, tensor] : a) worst = std::max(worst, (tensor - b.at(name)).abs().max().item<double>());
  return worst;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t size = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  const int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Ranks launched as torchrun would: this executable running "[.dp-worker]" with RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR and MASTER_PORT set, GRPO_DP_MODE and GRPO_DP_DIR telling it what to do; stderr to rank<r>.log.
class Ranks {
 public:
  Ranks(const std::string& mode, const fs::path& dir, int world, const std::vector<std::string>& extra_env = {})
      : dir_(dir) {
    const int port = free_port();
    for (int rank = 0; rank < world; ++rank) {
      std::vector<std::string> env;
      for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
      env.push_back("RANK=" + std::to_string(rank));
      env.push_back("LOCAL_RANK=" + std::to_string(rank));
      env.push_back("WORLD_SIZE=" + std::to_string(world));
      env.push_back("MASTER_ADDR=127.0.0.1");
      env.push_back("MASTER_PORT=" + std::to_string(port));
      env.push_back("GRPO_DP_MODE=" + mode);
      env.push_back("GRPO_DP_DIR=" + dir.string());
      env.insert(env.end(), extra_env.begin(), extra_env.end());
      std::vector<char*> envp;
      for (auto& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      std::string self = fs::read_symlink("/proc/self/exe").string(), filter = "[.dp-worker]";
      std::vector<char*> argv{self.data(), filter.data(), nullptr};
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      const std::string log = (dir / ("rank" + std::to_string(rank) + ".log")).string();
      posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, 1, 2);
      pid_t pid = 0;
      REQUIRE(posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), envp.data()) == 0);
      posix_spawn_file_actions_destroy(&actions);
      pids_.push_back(pid);
    }
    exits_.assign(pids_.size(), -1);
  }
  ~Ranks() {
    for (std::size_t r = 0; r < pids_.size(); ++r) {
      if (exits_[r] == -1) {
        ::kill(pids_[r], SIGKILL);
        ::waitpid(pids_[r], nullptr, 0);
      }
    }
  }

  // Waits up to `limit` for rank r; its exit status (-1: still running after the limit, 128 + n: killed by n).
  int wait(int rank, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    const auto r = static_cast<std::size_t>(rank);
    while (exits_[r] == -1) {
      int status = 0;
      if (::waitpid(pids_[r], &status, WNOHANG) == pids_[r]) {
        exits_[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return exits_[r];
  }
  std::string log(int rank) const { return read_text(dir_ / ("rank" + std::to_string(rank) + ".log")); }

 private:
  fs::path dir_;
  std::vector<pid_t> pids_;
  std::vector<int> exits_;
};

// What a rank does, by GRPO_DP_MODE: "train" (the run of run_config, then its parameters and advantages written to
// rank<r>.safetensors and rank<r>.advantages.json); "resume" (the same after resuming from GRPO_DP_RESUME);
// "exit" / "hang": rank 1 leaves after step 1 (exits, or sleeps
// for ten minutes) while rank 0 goes on with a ddp_timeout of 3 s.
int run_worker(const std::string& mode, const fs::path& dir) {
  const auto env = grpo::launch_environment();
  REQUIRE(env.has_value());
  auto config = run_config((dir / "run").string(), env->world_size);
  if (mode == "exit" || mode == "hang") config.ddp_timeout = 3;
  Trainer trainer(tiny_model(static_cast<uint64_t>(100 + env->rank)), tokenizer(), rewards(), config, data(),
                  std::nullopt, options());  // different initial weights on purpose: rank 0's are broadcast
  trainer.callbacks().remove<grpo::ConsoleReporter>();
  if (mode == "resume") trainer.resume_from_checkpoint(std::getenv("GRPO_DP_RESUME"));
  AdvantageLog advantages;
  struct LeaveAfterStepOne {
    std::string mode;
    int rank;
    void on_step_end(const grpo::TrainerState& state) {
      if (rank != 1 || state.global_step != 1) return;
      if (mode == "exit") std::_Exit(0);
      if (mode == "hang") std::this_thread::sleep_for(std::chrono::minutes(10));
    }
  } leave{mode, env->rank};
  try {
    trainer.train(advantages, leave);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker error: %s\n", e.what());
    return 2;
  }
  const std::string name = "rank" + std::to_string(env->rank);
  grpo::write_safetensors((dir / (name + ".safetensors")).string(), parameters_of(trainer.policy().model()));
  std::ofstream((dir / (name + ".advantages.json")).string()) << nlohmann::json(advantages.batches).dump();
  return 0;
}

}  // namespace dp_test

TEST_CASE("dp worker (run by the data-parallel tests)", "[.dp-worker]") {
  const char* mode = std::getenv("GRPO_DP_MODE");
  const char* dir = std::getenv("GRPO_DP_DIR");
  if (mode == nullptr) {
    SUCCEED("a rank of the data-parallel tests: nothing to do outside them");
    return;
  }
  REQUIRE(dir != nullptr);
  const int status = dp_test::run_worker(mode, dir);
  std::fflush(stderr);
  std::_Exit(status);  // skip Catch's report: the exit status is the result
}

TEST_CASE(
    "two processes train the parameters and advantages of one process over the same global batch, and "
    "one process resumes their checkpoint on the same trajectory",
    "[train][distributed]") {
  namespace fs = std::filesystem;
  grpo_test::ScopedTempDir dir;
  {
    dp_test::Ranks ranks("train", dir.path(), 2);
    for (int r = 0; r < 2; ++r) {
      INFO("rank " << r << " log:\n" << ranks.log(r));
      REQUIRE(ranks.wait(r, std::chrono::seconds(600)) == 0);
    }
  }
  const auto rank0 = grpo::read_safetensors(dir.file("rank0.safetensors")).tensors;
  const auto rank1 = grpo::read_safetensors(dir.file("rank1.safetensors")).tensors;
  for (const auto& [name, tensor] : rank0) {
    INFO("parameter " << name);
    CHECK(torch::equal(tensor, rank1.at(name)));  // replicas stay bit-identical
  }
  // Rank 0 alone wrote the logs: one metrics record per step.
  std::ifstream metrics(dir.path() / "run" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) lines += line.empty() ? 0 : 1;
  CHECK(lines == 4);

  // One process, B * P rows per micro-batch, from rank 0's initial weights.
  auto single_config = dp_test::run_config(dir.file("single"), 1);
  dp_test::Trainer single(dp_test::tiny_model(100), dp_test::tokenizer(), dp_test::rewards(), single_config,
                          dp_test::data(), std::nullopt, dp_test::options());
  single.callbacks().remove<grpo::ConsoleReporter>();
  dp_test::AdvantageLog advantages;
  single.train(advantages);
  const auto expected = dp_test::parameters_of(single.policy().model());
  CHECK(dp_test::max_difference(rank0, expected) <= 1e-6);
  CHECK(dp_test::max_difference(rank0, dp_test::parameters_of(*dp_test::tiny_model(100))) > 1e-3);  // it trained

  // Advantages of every generation batch: the same on both ranks and in the single process (a group spans ranks).
  for (int r = 0; r < 2; ++r) {
    const auto text = dp_test::read_text(dir.path() / ("rank" + std::to_string(r) + ".advantages.json"));
    const auto batches = nlohmann::json::parse(text).get<std::vector<std::vector<double>>>();
    REQUIRE(batches.size() == advantages.batches.size());
    for (std::size_t b = 0; b < batches.size(); ++b) {
      REQUIRE(batches[b].size() == 12);
      for (std::size_t i = 0; i < 12; ++i) CHECK(batches[b][i] == Approx(advantages.batches[b][i]).margin(1e-9));
    }
  }

  // A checkpoint of the two processes, resumed by one (mid generation batch after step 1, at its end after 2).
  for (const int from : {1, 2}) {
    INFO("resumed from checkpoint-" << from);
    auto config = dp_test::run_config(dir.file("resumed" + std::to_string(from)), 1);
    dp_test::Trainer resumed(dp_test::tiny_model(7), dp_test::tokenizer(), dp_test::rewards(), config, dp_test::data(),
                             std::nullopt, dp_test::options());
    resumed.callbacks().remove<grpo::ConsoleReporter>();
    resumed.resume_from_checkpoint((dir.path() / "run" / ("checkpoint-" + std::to_string(from))).string());
    CHECK(resumed.state().global_step == from);
    resumed.train();
    CHECK(dp_test::max_difference(dp_test::parameters_of(resumed.policy().model()), rank0) <= 1e-6);
  }
  // Two processes resume their own checkpoint (mid generation batch) and end bit-identical to their straight run.
  {
    grpo_test::ScopedTempDir again;
    dp_test::Ranks ranks("resume", again.path(), 2,
                         {"GRPO_DP_RESUME=" + (dir.path() / "run" / "checkpoint-1").string()});
    for (int r = 0; r < 2; ++r) {
      INFO("rank " << r << " log:\n" << ranks.log(r));
      REQUIRE(ranks.wait(r, std::chrono::seconds(600)) == 0);
    }
    const auto resumed = grpo::read_safetensors(again.file("rank1.safetensors")).tensors;
    for (const auto& [name, tensor] : rank0) {
      INFO("parameter " << name);
      CHECK(torch::equal(tensor, resumed.at(name)));
    }
  }
  // A checkpoint cannot be resumed with a different global batch.
  auto other = dp_test::run_config(dir.file("other"), 1);
  other.per_device_train_batch_size = 3;
  other.steps_per_generation = 4;
  dp_test::Trainer mismatched(dp_test::tiny_model(7), dp_test::tokenizer(), dp_test::rewards(), other, dp_test::data(),
                              std::nullopt, dp_test::options());
  CHECK_THROWS_WITH(mismatched.resume_from_checkpoint((dir.path() / "run" / "checkpoint-1").string()),
                    grpo_test::Contains("different config") && grpo_test::Contains("per_device_train_batch_size"));
}

TEST_CASE("a rank that exits or hangs ends the others with an error naming it within the timeout",
          "[train][distributed]") {
  for (const std::string mode : {"exit", "hang"}) {
    INFO("rank 1 " << mode << "s after step 1");
    grpo_test::ScopedTempDir dir;
    dp_test::Ranks ranks(mode, dir.path(), 2);
    // ddp_timeout is 3 s; two minutes covers start-up on a loaded machine. A hang here is the failure.
    const int status = ranks.wait(0, std::chrono::seconds(120));
    INFO("rank 0 log:\n" << ranks.log(0));
    CHECK(status == 2);
    CHECK_THAT(ranks.log(0), grpo_test::Contains("grpo::ProcessGroup: rank 0 of 2") &&
                                 grpo_test::Contains("timeout of 3 s") && grpo_test::Contains("rank 1 did not arrive"));
    if (mode == "hang") CHECK_THAT(ranks.log(0), grpo_test::Contains("Timed out"));
  }
}

TEST_CASE("the launch environment is read strictly, and a busy port or an absent master is reported",
          "[train][distributed]") {
  const auto env_of = [](std::map<std::string, std::string> vars) {
    return grpo::launch_environment([vars](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  CHECK_FALSE(env_of({}).has_value());
  const auto env = env_of({{"WORLD_SIZE", "4"},
                           {"RANK", "3"},
                           {"LOCAL_RANK", "1"},
                           {"MASTER_ADDR", "10.0.0.2"},
                           {"MASTER_PORT", "29501"},
                           {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                           {"TORCHELASTIC_RESTART_COUNT", "2"}});
  REQUIRE(env.has_value());
  CHECK(env->rank == 3);
  CHECK(env->world_size == 4);
  CHECK(env->local_rank == 1);
  CHECK(env->master_addr == "10.0.0.2");
  CHECK(env->master_port == 29501);
  CHECK(env->use_agent_store);
  CHECK(env->restart_count == "2");
  CHECK_THROWS_WITH(env_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "127.0.0.1"}}),
                    grpo_test::Contains("MASTER_PORT is not"));
  CHECK_THROWS_WITH(env_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}),
                    grpo_test::Contains("RANK=\"2\" is not an integer in [0, 1]"));
  CHECK_THROWS_WITH(env_of({{"WORLD_SIZE", "two"}}), grpo_test::Contains("WORLD_SIZE=\"two\""));

  // Rank 0 cannot serve the store on a port another socket holds.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;
  socklen_t size = sizeof address;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  grpo::LaunchEnvironment busy;
  busy.world_size = 2;
  busy.master_port = ntohs(address.sin_port);
  grpo::ProcessGroupOptions quick;
  quick.timeout = std::chrono::seconds(2);
  CHECK_THROWS_WITH(
      grpo::ProcessGroup::create(busy, quick),
      grpo_test::Contains("cannot serve the rendezvous store on 127.0.0.1:" + std::to_string(busy.master_port)) &&
          grpo_test::Contains("in use"));
  ::close(fd);

  // Rank 1 finds no store where MASTER_ADDR:MASTER_PORT point.
  grpo::LaunchEnvironment lonely;
  lonely.rank = 1;
  lonely.world_size = 2;
  lonely.master_port = dp_test::free_port();
  CHECK_THROWS_WITH(grpo::ProcessGroup::create(lonely, quick),
                    grpo_test::Contains("rank 1 of 2") && grpo_test::Contains("cannot reach the rendezvous store") &&
                        grpo_test::Contains("timeout of 2 s"));

  // num_processes must match the run.
  grpo_test::ScopedTempDir dir;
  auto config = dp_test::run_config(dir.file("out"), 1);
  config.num_processes = 2;
  CHECK_THROWS_WITH(dp_test::Trainer(dp_test::tiny_model(1), dp_test::tokenizer(), dp_test::rewards(), config,
                                     dp_test::data(), std::nullopt, dp_test::options()),
                    grpo_test::Contains("num_processes = 2 but this run has 1 process"));
}
