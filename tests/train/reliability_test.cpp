// Checkpoints that prove themselves: a manifest of sizes and XXH64 checksums verified at resume, resumes that are
// all or nothing, stale temporaries of dead writers removed, and a failed save (a full disk) that leaves the last
// good checkpoint usable.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arithmetic_task.hpp"

#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/trainer.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace reliability_test {

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

grpo::GRPOConfig config_in(const fs::path& dir) {
  grpo::GRPOConfig c;
  c.output_dir = dir.string();
  c.num_generations = 4;
  c.per_device_train_batch_size = 8;
  c.steps_per_generation = 2;
  c.max_completion_length = 3;
  c.learning_rate = 0.05;
  c.beta = 0.05;
  c.max_steps = 2;
  c.logging_steps = 1;
  c.save_steps = 1;
  c.seed = 5;
  return c;
}

std::unique_ptr<Trainer> trainer_in(const fs::path& dir, uint64_t seed = 1, int64_t max_steps = 2) {
  torch::manual_seed(seed);
  auto model = std::make_shared<grpo::LlamaModel>(grpo::LlamaConfig::tiny(tokenizer().vocab_size()));
  grpo::TrainerOptions options;
  options.torch_threads = 1;
  auto config = config_in(dir);
  config.max_steps = max_steps;
  auto t = std::make_unique<Trainer>(model, tokenizer(), rewards(), config,
                                     grpo_examples::arithmetic_dataset({0, 9, "+"}), std::nullopt, options);
  t->callbacks().remove<grpo::ConsoleReporter>();
  return t;
}

grpo::TensorMap parameters_of(Trainer& t) {
  grpo::TensorMap out;
  for (const auto& p : t.policy().model().named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

bool same(const grpo::TensorMap& a, const grpo::TensorMap& b) {
  for (const auto& [name, tensor] : a) {
    if (!torch::equal(tensor, b.at(name))) return false;
  }
  return true;
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// Kill-and-resume: a training process (this executable running "[.kill-worker]" on GRPO_KILL_DIR) that resumes from
// the latest checkpoint in GRPO_KILL_DIR/run when there is one, trains to the end and writes its parameters to
// GRPO_KILL_DIR/final.safetensors.
constexpr int kill_run_steps = 16;

int run_kill_worker(const fs::path& dir) {
  auto t = trainer_in(dir / "run", 1, kill_run_steps);
  const auto checkpoints = grpo::list_checkpoints((dir / "run").string());
  if (!checkpoints.empty()) t->resume_from_checkpoint(checkpoints.back());
  t->train();
  grpo::write_safetensors((dir / "final.safetensors").string(), parameters_of(*t));
  return 0;
}

// Starts the worker on `dir` with its output in dir/worker.log.
pid_t spawn_kill_worker(const fs::path& dir) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.push_back("GRPO_KILL_DIR=" + dir.string());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = fs::read_symlink("/proc/self/exe").string(), filter = "[.kill-worker]";
  std::vector<char*> argv{self.data(), filter.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = (dir / "worker.log").string();
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return spawned == 0 ? pid : -1;
}

bool has_checkpoint_temporary(const fs::path& run) {
  std::error_code ec;
  for (fs::directory_iterator it(run, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().find(".tmp-") != std::string::npos) return true;
  }
  return false;
}

}  // namespace reliability_test

TEST_CASE("XXH64 matches the published algorithm's values", "[train][reliability]") {
  const auto hash = [](const std::string& text) {
    grpo::detail::Xxh64 h;
    h.update(reinterpret_cast<const unsigned char*>(text.data()), text.size());
    return grpo::detail::hex64(h.digest());
  };
  CHECK(hash("") == "ef46db3751d8e999");
  CHECK(hash("abc") == "44bc2cf5ad770999");
  CHECK(hash("Nobody inspects the spammish repetition") == "fbcea83c8a378bf1");
  std::string long_text;
  for (int r = 0; r < 5; ++r) {
    for (int i = 0; i < 256; ++i) long_text.push_back(static_cast<char>(i));
  }
  long_text += "xyz";
  CHECK(hash(long_text) == "afd18a3957d3670a");  // 1283 bytes: stripes, 8-, 4- and 1-byte tails
  // Fed in uneven pieces, the same digest.
  grpo::detail::Xxh64 pieces;
  for (std::size_t at = 0; at < long_text.size(); at += 7) {
    const auto n = std::min<std::size_t>(7, long_text.size() - at);
    pieces.update(reinterpret_cast<const unsigned char*>(long_text.data() + at), n);
  }
  CHECK(grpo::detail::hex64(pieces.digest()) == "afd18a3957d3670a");
}

TEST_CASE(
    "a truncated, altered or missing checkpoint file is an error naming it, and a failed resume changes "
    "nothing",
    "[train][reliability]") {
  namespace fs = std::filesystem;
  using namespace reliability_test;
  grpo_test::ScopedTempDir dir;
  auto writer = trainer_in(dir.path() / "run");
  writer->train();
  const fs::path good = dir.path() / "run" / "checkpoint-1";
  REQUIRE(fs::exists(good / grpo::checkpoint_manifest_name));
  CHECK_NOTHROW(grpo::verify_checkpoint(good.string()));

  // A trainer one step in, whose state must survive every failed resume untouched.
  auto t = trainer_in(dir.path() / "victim", 2);
  t->train();
  const auto before = parameters_of(*t);
  const auto step_before = t->state().global_step;
  const auto check_unchanged = [&] {
    CHECK(same(parameters_of(*t), before));
    CHECK(t->state().global_step == step_before);
  };

  const fs::path bad = dir.path() / "bad";
  {
    INFO("truncated optimizer.pt");
    copy_tree(good, bad);
    fs::resize_file(bad / "optimizer.pt", fs::file_size(bad / "optimizer.pt") / 2);
    CHECK_THROWS_WITH(t->resume_from_checkpoint(bad.string()),
                      grpo_test::Contains((bad / "optimizer.pt").string()) && grpo_test::Contains("truncated"));
    check_unchanged();
  }
  {
    INFO("one byte altered in model.safetensors");
    copy_tree(good, bad);
    std::fstream f(bad / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-5, std::ios::end);
    const char c = static_cast<char>(f.get());
    f.seekp(-5, std::ios::end);
    f.put(static_cast<char>(c ^ 0x40));
    f.close();
    CHECK_THROWS_WITH(t->resume_from_checkpoint(bad.string()),
                      grpo_test::Contains((bad / "model.safetensors").string()) &&
                          grpo_test::Contains("does not match its checksum"));
    check_unchanged();
  }
  {
    INFO("trainer_state.json missing");
    copy_tree(good, bad);
    fs::remove(bad / "trainer_state.json");
    CHECK_THROWS_WITH(t->resume_from_checkpoint(bad.string()),
                      grpo_test::Contains((bad / "trainer_state.json").string()) && grpo_test::Contains("is missing"));
    check_unchanged();
  }
  {
    INFO("manifest missing");
    copy_tree(good, bad);
    fs::remove(bad / grpo::checkpoint_manifest_name);
    CHECK_THROWS_WITH(t->resume_from_checkpoint(bad.string()), grpo_test::Contains("manifest.json is missing"));
    check_unchanged();
  }
  {
    INFO("an optimizer file that passes its (rewritten) manifest but cannot be loaded: the last read fails");
    copy_tree(good, bad);
    std::ofstream(bad / "optimizer.pt", std::ios::binary | std::ios::trunc) << "not a torch archive";
    grpo::write_checkpoint_manifest(bad.string());
    CHECK_THROWS_WITH(t->resume_from_checkpoint(bad.string()),
                      grpo_test::Contains((bad / "optimizer.pt").string()) &&
                          grpo_test::Contains("cannot be loaded into the optimizer"));
    check_unchanged();
  }
  // The trainer still trains and resumes normally afterwards.
  CHECK_NOTHROW(t->resume_from_checkpoint(good.string()));
  CHECK(t->state().global_step == 1);
}

TEST_CASE("stale checkpoint temporaries of dead writers are removed; a failed save leaves the last checkpoint",
          "[train][reliability]") {
  namespace fs = std::filesystem;
  using namespace reliability_test;
  grpo_test::ScopedTempDir dir;
  const fs::path run = dir.path() / "run";
  fs::create_directories(run);
  // A writer that died: a reaped child's pid.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const fs::path stale = run / ("checkpoint-9.tmp-" + std::to_string(child));
  const fs::path alive = run / ("checkpoint-8.tmp-" + std::to_string(::getppid()));  // a running process's
  fs::create_directories(stale);
  fs::create_directories(alive);
  std::ofstream(stale / "model.safetensors") << "half written";

  auto t = trainer_in(run);
  t->train();  // saves checkpoint-1 and checkpoint-2
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(alive));
  CHECK_NOTHROW(grpo::verify_checkpoint((run / "checkpoint-2").string()));

  // A full disk while saving, made with a file-size limit: the save fails, says so, leaves no temporary folder,
  // and checkpoint-2 still verifies and resumes.
  struct rlimit old_limit {};
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ::setrlimit(RLIMIT_FSIZE, &small);
  std::string message;
  try {
    t->save_checkpoint();
  } catch (const std::exception& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  INFO(message);
  CHECK_THAT(message,
             grpo_test::Contains("grpo::GRPOTrainer::save_checkpoint: writing " + (run / "checkpoint-2").string()) &&
                 grpo_test::Contains("the last complete checkpoint"));
  bool temporaries = false;
  for (const auto& entry : fs::directory_iterator(run)) {
    temporaries |= entry.path().filename().string().rfind("checkpoint-2.tmp-", 0) == 0;
  }
  CHECK_FALSE(temporaries);
  // checkpoint-2 was the target: the failed rewrite must not have touched the existing one.
  CHECK_NOTHROW(grpo::verify_checkpoint((run / "checkpoint-2").string()));
  auto resumed = trainer_in(dir.path() / "resumed", 3);
  CHECK_NOTHROW(resumed->resume_from_checkpoint((run / "checkpoint-2").string()));
  CHECK(resumed->state().global_step == 2);
}

TEST_CASE(
    "a prompt that leaves no room for the completion in the model's positions is refused, or cut with one "
    "warning when asked",
    "[train][reliability]") {
  using namespace reliability_test;
  grpo_test::ScopedTempDir dir;
  auto make = [&](bool truncate) {
    torch::manual_seed(4);
    auto model_config = grpo::LlamaConfig::tiny(tokenizer().vocab_size());
    model_config.max_position_embeddings = 8;  // prompts "a+b=" are 4 tokens: 4 + 6 completion tokens do not fit
    auto config = config_in(dir.path() / (truncate ? "cut" : "refused"));
    config.max_completion_length = 6;
    config.truncate_prompts_to_model_positions = truncate;
    config.steps_per_generation = 1;  // two generation batches: the warning still comes once
    config.save_steps = 0;
    grpo::TrainerOptions options;
    options.torch_threads = 1;
    auto t = std::make_unique<Trainer>(std::make_shared<grpo::LlamaModel>(model_config), tokenizer(), rewards(), config,
                                       grpo_examples::arithmetic_dataset({0, 9, "+"}), std::nullopt, options);
    t->callbacks().remove<grpo::ConsoleReporter>();
    return t;
  };
  auto refused = make(false);
  CHECK_THROWS_WITH(refused->train(), grpo_test::Contains("the prompt of dataset row") &&
                                          grpo_test::Contains("has 4 tokens") &&
                                          grpo_test::Contains("needs 10 positions, but the model has 8") &&
                                          grpo_test::Contains("truncate_prompts_to_model_positions"));
  struct Warnings {
    std::vector<std::string> seen;
    void on_warning(const grpo::TrainerState&, const std::string& message) { seen.push_back(message); }
  } warnings;
  auto cut = make(true);
  cut->train(warnings);
  CHECK(cut->state().global_step == 2);
  int about_positions = 0;
  for (const auto& w : warnings.seen) about_positions += w.find("cut to their last 2 tokens") != std::string::npos;
  CHECK(about_positions == 1);
}

TEST_CASE("a safetensors header whose shape overflows 64-bit arithmetic is refused naming the file",
          "[train][reliability]") {
  grpo_test::ScopedTempDir dir;
  const auto write_header = [&](const std::string& name, const std::string& header) {
    std::string bytes(8, '\0');
    uint64_t length = header.size();
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
    return dir.write(name, bytes + header);
  };
  // 2^32 * 2^32 * 16 elements wrap to 0, which matched the empty data_offsets before the check.
  const auto wraps =
      write_header("wraps.safetensors", R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], )"
                                        R"("data_offsets": [0, 0]}})");
  CHECK_THROWS_WITH(grpo::read_safetensors(wraps),
                    grpo_test::Contains(wraps) && grpo_test::Contains("overflows 64-bit arithmetic"));
  // 2^62 float32 elements: the count fits, the byte size does not.
  const auto bytes = write_header("bytes.safetensors", R"({"w": {"dtype": "F32", "shape": [4611686018427387904], )"
                                                       R"("data_offsets": [0, 0]}})");
  CHECK_THROWS_WITH(grpo::read_safetensors(bytes),
                    grpo_test::Contains(bytes) && grpo_test::Contains("byte size overflows 64-bit arithmetic"));
}

TEST_CASE("kill-and-resume worker (run by the kill-and-resume test)", "[.kill-worker]") {
  const char* dir = std::getenv("GRPO_KILL_DIR");
  if (dir == nullptr) {
    SUCCEED("the process the kill-and-resume test kills: nothing to do outside it");
    return;
  }
  int status = 2;
  try {
    status = reliability_test::run_kill_worker(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker error: %s\n", e.what());
  }
  std::fflush(stderr);
  std::_Exit(status);  // skip Catch's report: the exit status is the result
}

TEST_CASE(
    "a run killed with SIGKILL at random moments, also inside checkpoint writes, resumes each time from its "
    "latest checkpoint and ends bit-identical to an uninterrupted run",
    "[train][reliability][kill-resume]") {
  namespace fs = std::filesystem;
  using namespace reliability_test;
  grpo_test::ScopedTempDir dir;
  const auto wait_exit = [](pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  };
  const fs::path reference = dir.path() / "reference", killed = dir.path() / "killed";
  fs::create_directories(reference);
  fs::create_directories(killed);
  const pid_t ref = spawn_kill_worker(reference);
  REQUIRE(ref > 0);
  {
    const int status = wait_exit(ref);
    INFO("reference run's log:\n" << grpo_test::read_text((reference / "worker.log").string()));
    REQUIRE(status == 0);
  }

  // Each attempt waits for 0 or 1 more checkpoints, then kills the worker either at once or a random 0-40 ms later
  // (inside a training step, a generation batch or a save) or the moment a checkpoint's temporary folder appears
  // (a write in progress); every attempt resumes from what the previous ones left. After `wanted_kills` the last
  // attempt runs to the end.
  std::mt19937 random(20261130);
  const auto checkpoint_count = [&] { return grpo::list_checkpoints((killed / "run").string()).size(); };
  int kills = 0, kills_inside_writes = 0, attempts = 0;
  constexpr int wanted_kills = 12;
  bool finished = false;
  while (!finished && attempts < 100) {
    ++attempts;
    const std::size_t target = checkpoint_count() + std::uniform_int_distribution<std::size_t>(0, 1)(random);
    const bool at_write = attempts % 2 == 0;
    const auto extra = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 40)(random));
    const pid_t pid = spawn_kill_worker(killed);
    REQUIRE(pid > 0);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int status = 0;
    bool exited = false;
    std::chrono::steady_clock::time_point kill_at = give_up;
    while (kills < wanted_kills && std::chrono::steady_clock::now() < std::min(kill_at, give_up)) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      if (kill_at == give_up && checkpoint_count() >= target) {
        if (!at_write) kill_at = std::chrono::steady_clock::now() + extra;
      }
      if (kill_at == give_up && at_write && checkpoint_count() >= target && has_checkpoint_temporary(killed / "run")) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!exited && kills < wanted_kills) {
      ::kill(pid, SIGKILL);
      status = wait_exit(pid);
      if (status == 128 + SIGKILL) {
        ++kills;
        kills_inside_writes += has_checkpoint_temporary(killed / "run");
        continue;
      }
    } else if (!exited) {
      status = wait_exit(pid);
    } else {
      status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    INFO("attempt " << attempts << " log:\n" << grpo_test::read_text((killed / "worker.log").string()));
    REQUIRE(status == 0);
    finished = true;
  }
  INFO(kills << " kills, " << kills_inside_writes << " inside checkpoint writes, " << attempts << " attempts");
  REQUIRE(finished);
  CHECK(kills == wanted_kills);
  CHECK(kills_inside_writes >= 1);
  // The last run cleaned up the temporaries of the killed writers, and its weights are the uninterrupted run's.
  CHECK_FALSE(has_checkpoint_temporary(killed / "run"));
  const auto expected = grpo::read_safetensors((reference / "final.safetensors").string()).tensors;
  const auto actual = grpo::read_safetensors((killed / "final.safetensors").string()).tensors;
  REQUIRE(expected.size() == actual.size());
  CHECK(same(expected, actual));
  CHECK(grpo::list_checkpoints((killed / "run").string()).back() ==
        (killed / "run" / grpo::checkpoint_name(kill_run_steps)).string());
}
