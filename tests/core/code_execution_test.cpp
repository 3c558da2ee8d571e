// The sandbox (rewards/sandbox.hpp) and the code-execution reward: limits, isolation, test parsing and scoring.
// The programs are Python, run by python3 from the sandbox's PATH (cmake/install-deps.sh installs it). As root (CI)
// every isolation step must work; an unprivileged user without user namespaces gets none, and then the tests check
// the refusal instead of the isolation and run the rest without it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/catch.hpp"

#include "grpo/app/reward_registry.hpp"
#include "grpo/rewards/builtin/code_execution.hpp"
#include "grpo/rewards/sandbox.hpp"
#include "support/error_checks.hpp"
#include "support/scoped_temp_dir.hpp"

using grpo_test::Contains;

namespace {

// Why the sandbox's isolation is refused to this process, or empty. Never for root, to whom the kernel grants every
// step (so there a refusal fails the tests); an unprivileged user may have no user namespaces.
const std::string& isolation_refusal() {
  static const std::string refusal = [] {
    if (::geteuid() == 0) return std::string();
    grpo::SandboxCommand command;
    command.argv = {"true"};
    try {
      grpo::run_sandboxed(command);
      return std::string();
    } catch (const grpo::RuntimeError& e) {
      return std::string(e.what());
    }
  }();
  return refusal;
}

// True when the test can check the isolation; otherwise it checks that the refusal names the failed step.
bool isolation_available() {
  if (isolation_refusal().empty()) return true;
  WARN("isolation not checked: " << isolation_refusal());
  CHECK_THAT(isolation_refusal(), Contains("grpo::run_sandboxed: "));
  CHECK_THAT(isolation_refusal(), Contains(" failed: "));
  return false;
}

// Options with isolation required wherever this process can have it.
grpo::SandboxOptions quick_sandbox(double timeout_seconds = 5.0) {
  grpo::SandboxOptions options;
  options.timeout_seconds = timeout_seconds;
  options.require_isolation = isolation_refusal().empty();
  return options;
}

// Runs Python `code` (as program.py) with `options`, plus extra arguments and stdin.
grpo::SandboxResult run_python(const std::string& code, const grpo::SandboxOptions& options = quick_sandbox(),
                               const std::vector<std::string>& arguments = {}, const std::string& input = "") {
  grpo::SandboxCommand command;
  command.argv = {"python3", "program.py"};
  command.argv.insert(command.argv.end(), arguments.begin(), arguments.end());
  command.files = {{"program.py", code, false}};
  command.stdin_data = input;
  return grpo::run_sandboxed(command, options);
}

// A name no other test run uses.
std::string unique_name(const std::string& stem) {
  static std::atomic<int> counter{0};
  return stem + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

// Processes on the machine whose command line contains `marker`.
int processes_with(const std::string& marker) {
  int count = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string pid = it->path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(it->path() / "cmdline", std::ios::binary);
    const std::string cmdline{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (cmdline.find(marker) != std::string::npos) ++count;
  }
  return count;
}

// Open file descriptors of this process.
int open_fd_count() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

// Whether this process has a child process, running or a zombie.
bool has_children() { return ::waitpid(-1, nullptr, WNOHANG) != -1 || errno != ECHILD; }

// One completion with a "tests" column value.
grpo::RewardInputs tests_row(const std::string& completion, const nlohmann::json& tests) {
  grpo::RewardInputs in;
  in.prompts = {"write add"};
  in.completions = {completion};
  in.completion_ids = {{1}};
  in.columns = grpo::Columns::from_rows({{{"tests", tests}}});
  return in;
}

grpo::CodeExecutionReward quick_reward(double timeout_seconds = 5.0) {
  grpo::CodeExecutionReward reward;
  reward.sandbox = quick_sandbox(timeout_seconds);
  return reward;
}

std::optional<double> code_score(const grpo::CodeExecutionReward& reward, const std::string& completion,
                                 const nlohmann::json& tests) {
  const auto in = tests_row(completion, tests);
  return reward(in.completions[0], grpo::Row(in, 0));
}

}  // namespace

TEST_CASE("a sandboxed program runs in a fresh working directory that is removed afterwards", "[rewards][sandbox]") {
  grpo_test::ScopedTempDir parent;
  auto options = quick_sandbox();
  options.temp_parent = parent.path().string();
  const auto result = run_python(
      "import os\n"
      "open('made.txt', 'w').write('inside')\n"
      "print(os.getcwd(), os.environ['HOME'], os.environ['TMPDIR'], open('made.txt').read(), os.getuid(),\n"
      "      sorted(os.listdir('.')))\n",
      options);
  INFO(result.stderr_text);
  REQUIRE(result.succeeded());
  std::istringstream words(result.stdout_text);
  std::string cwd, home, tmpdir, content;
  int uid = -1;
  words >> cwd >> home >> tmpdir >> content >> uid;
  CHECK(std::filesystem::path(cwd).parent_path() == std::filesystem::canonical(parent.path()));
  CHECK(home == cwd);
  CHECK(tmpdir == cwd);
  CHECK(content == "inside");
  CHECK(uid != 0);  // a root caller's program runs as run_as_uid
  CHECK_THAT(result.stdout_text, Contains("['made.txt', 'program.py']"));
  CHECK_FALSE(std::filesystem::exists(cwd));
  CHECK(std::filesystem::is_empty(parent.path()));
  CHECK(result.wall_seconds > 0.0);
  CHECK(result.wall_seconds < 5.0);
}

TEST_CASE("an infinite loop is killed at the timeout and its directory removed", "[rewards][sandbox]") {
  grpo_test::ScopedTempDir parent;
  auto options = quick_sandbox(1.0);
  options.temp_parent = parent.path().string();
  const int fds_before = open_fd_count();
  const auto result = run_python("import os\nprint(os.getcwd(), flush=True)\nwhile True:\n    pass\n", options);
  CHECK(result.timed_out);
  CHECK(result.signal == SIGKILL);
  CHECK(result.exit_code == -1);
  CHECK_FALSE(result.succeeded());
  CHECK(result.wall_seconds >= 1.0);
  CHECK(result.wall_seconds < 1.0 + 1.5);
  const std::string cwd = result.stdout_text.substr(0, result.stdout_text.find('\n'));
  CHECK_FALSE(cwd.empty());
  CHECK_FALSE(std::filesystem::exists(cwd));
  CHECK(std::filesystem::is_empty(parent.path()));
  CHECK(open_fd_count() == fds_before);
  CHECK_FALSE(has_children());

  // In the reward the looping test scores 0, the other one 1.
  const auto reward = quick_reward(1.0);
  const auto value =
      code_score(reward, "```python\ndef f(x):\n    return x\n```", {"assert f(1) == 1", "while f(1) == 1:\n    pass"});
  REQUIRE(value.has_value());
  CHECK(*value == Approx(0.5));
}

TEST_CASE("a busy program is killed at its CPU-time limit before the timeout", "[rewards][sandbox]") {
  auto options = quick_sandbox(10.0);
  options.cpu_seconds = 1;
  const auto result = run_python("while True:\n    pass\n", options);
  CHECK_FALSE(result.timed_out);
  CHECK(result.signal == SIGKILL);
  CHECK(result.wall_seconds >= 1.0);
  CHECK(result.wall_seconds < 10.0);
}

TEST_CASE("a memory hog is stopped by the address-space limit", "[rewards][sandbox]") {
  auto options = quick_sandbox();
  options.memory_mb = 256;
  const auto result = run_python(
      "blocks = []\n"
      "while True:\n"
      "    blocks.append(bytearray(8 * 1024 * 1024))\n",
      options);
  INFO(result.stderr_text);
  CHECK_FALSE(result.succeeded());
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 1);
  CHECK_THAT(result.stderr_text, Contains("MemoryError"));
}

TEST_CASE("a file larger than the file-size limit is refused", "[rewards][sandbox]") {
  auto options = quick_sandbox();
  options.file_size_mb = 1;
  const auto result = run_python(
      "import os\n"
      "try:\n"
      "    with open('big.bin', 'wb') as f:\n"
      "        f.write(b'x' * (2 * 1024 * 1024))\n"
      "except OSError as e:\n"
      "    print('refused', e.strerror)\n"
      "print('size', os.path.getsize('big.bin'))\n",
      options);
  INFO(result.stderr_text);
  REQUIRE(result.succeeded());
  CHECK_THAT(result.stdout_text, Contains("refused File too large"));
  CHECK_THAT(result.stdout_text, Contains("size 1048576"));
}

TEST_CASE("a fork bomb is contained and nothing of it survives", "[rewards][sandbox]") {
  if (!isolation_available()) return;  // without a PID namespace, processes that called setsid() would survive
  auto options = quick_sandbox(0.5);
  options.max_processes = 16;
  // Every process carries the marker in its command line; children leave the session and the process group.
  const std::string marker = unique_name("grpo-fork-bomb");
  const auto bomb = run_python(
      "import os\n"
      "while True:\n"
      "    try:\n"
      "        if os.fork() == 0:\n"
      "            os.setsid()\n"
      "    except OSError:\n"
      "        pass\n",
      options, {marker});
  CHECK(bomb.timed_out);
  CHECK(bomb.wall_seconds < 0.5 + 1.5);
  CHECK(processes_with(marker) == 0);

  // RLIMIT_NPROC applies (also when the caller is root: the program then runs as run_as_uid), and processes the
  // program leaves behind die with it.
  const std::string sleepers = unique_name("grpo-sleepers");
  const auto limited = run_python(
      "import os, time\n"
      "started = 0\n"
      "for _ in range(40):\n"
      "    try:\n"
      "        pid = os.fork()\n"
      "    except OSError:\n"
      "        break\n"
      "    if pid == 0:\n"
      "        os.setsid()\n"
      "        time.sleep(60)\n"
      "        os._exit(0)\n"
      "    started += 1\n"
      "print(started)\n",
      options, {sleepers});
  INFO(limited.stderr_text);
  REQUIRE(limited.succeeded());
  CHECK(std::stoi(limited.stdout_text) < 16);
  CHECK(std::stoi(limited.stdout_text) > 0);
  CHECK(processes_with(sleepers) == 0);
}

TEST_CASE("writes outside the working directory are refused", "[rewards][sandbox]") {
  if (!isolation_available()) return;
  // A world-writable directory of the test next to it (file permissions allow the write), a file in /tmp, and one
  // in "/", which every user can reach: creating it fails with EROFS, which the kernel checks before permissions.
  const auto outside = std::filesystem::current_path() / unique_name("grpo_sandbox_outside");
  std::error_code ec;
  std::filesystem::create_directory(outside, ec);
  REQUIRE_FALSE(ec);
  std::filesystem::permissions(outside, std::filesystem::perms::all);
  const std::string in_outside = (outside / "escaped.txt").string();
  const std::string in_tmp = "/tmp/" + unique_name("grpo_sandbox_escaped") + ".txt";
  const std::string in_root = "/" + unique_name("grpo_sandbox_escaped") + ".txt";
  const auto result = run_python(
      "import sys\n"
      "for path in sys.argv[1:] + ['inside.txt']:\n"
      "    try:\n"
      "        with open(path, 'w') as f:\n"
      "            f.write('x')\n"
      "        print('wrote', path)\n"
      "    except OSError as e:\n"
      "        print('refused', path, e.strerror)\n",
      quick_sandbox(), {in_outside, in_tmp, in_root});
  const bool outside_exists = std::filesystem::exists(in_outside);
  const bool tmp_exists = std::filesystem::exists(in_tmp);
  const bool root_exists = std::filesystem::exists(in_root);
  std::filesystem::remove_all(outside, ec);
  std::filesystem::remove(in_tmp, ec);
  std::filesystem::remove(in_root, ec);
  INFO(result.stdout_text << result.stderr_text);
  REQUIRE(result.succeeded());
  CHECK_FALSE(outside_exists);
  CHECK_FALSE(tmp_exists);
  CHECK_FALSE(root_exists);
  CHECK_THAT(result.stdout_text, Contains("refused " + in_outside));
  CHECK_THAT(result.stdout_text, Contains("refused " + in_tmp));
  CHECK_THAT(result.stdout_text, Contains("refused " + in_root + " Read-only file system"));
  CHECK_THAT(result.stdout_text, Contains("wrote inside.txt"));
  CHECK(result.isolation.read_only_filesystem);
  CHECK(result.isolation.missing.empty());
}

TEST_CASE("the program sees no inherited file descriptor and only its own processes", "[rewards][sandbox]") {
  grpo_test::ScopedTempDir dir;
  const std::string secret = dir.write("inherited_secret.txt", "secret");
  const int fd = ::open(secret.c_str(), O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(fd >= 0);
  const int high_fd = ::fcntl(fd, F_DUPFD, 100);  // F_DUPFD does not set FD_CLOEXEC either
  REQUIRE(high_fd >= 100);
  const auto result = run_python(
      "import os\n"
      "for fd in sorted(os.listdir('/proc/self/fd'), key=int):\n"
      "    try:\n"
      "        print('fd', fd, os.readlink('/proc/self/fd/' + fd))\n"
      "    except OSError:\n"
      "        print('fd', fd, '?')\n"
      "print('processes', len([p for p in os.listdir('/proc') if p.isdigit()]))\n");
  ::close(high_fd);
  ::close(fd);
  INFO(result.stdout_text << result.stderr_text);
  REQUIRE(result.succeeded());
  CHECK_THAT(result.stdout_text, Contains("fd 0 pipe:"));
  CHECK_THAT(result.stdout_text, Contains("fd 2 pipe:"));
  CHECK_THAT(result.stdout_text, !Contains("inherited_secret"));
  CHECK_THAT(result.stdout_text, !Contains("fd " + std::to_string(high_fd) + " "));
  if (!isolation_available()) return;
  // The sandbox's init and the program (the caller's processes are not visible).
  CHECK_THAT(result.stdout_text, Contains("processes 2"));
  CHECK(result.isolation.pid_namespace);
  CHECK(result.isolation.private_proc);
}

TEST_CASE("the program has no network", "[rewards][sandbox]") {
  if (!isolation_available()) return;
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const int port = ntohs(address.sin_port);
  const auto result = run_python(
      "import socket, sys\n"
      "try:\n"
      "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=0.5)\n"
      "    print('connected')\n"
      "except OSError as e:\n"
      "    print('no network:', e)\n",
      quick_sandbox(), {std::to_string(port)});
  const int accepted = ::accept(listener, nullptr, nullptr);
  if (accepted >= 0) ::close(accepted);
  ::close(listener);
  INFO(result.stdout_text << result.stderr_text);
  REQUIRE(result.succeeded());
  CHECK_THAT(result.stdout_text, Contains("no network"));
  CHECK(accepted < 0);
  CHECK(result.isolation.network_namespace);
}

TEST_CASE("stdin is fed and output is capped without deadlock", "[rewards][sandbox]") {
  // A megabyte each way: more than a pipe holds, so both directions must be served at once.
  auto options = quick_sandbox();
  options.max_output_bytes = 1000;
  const std::string input(1 << 20, 'a');
  const auto echo = run_python(
      "import sys\n"
      "data = sys.stdin.read()\n"
      "for _ in range(64):\n"
      "    sys.stdout.write('o' * 16384)\n"
      "    sys.stderr.write('e' * 16384)\n"
      "print(len(data), file=sys.stderr)\n",
      options, {}, input);
  REQUIRE(echo.succeeded());
  CHECK(echo.stdout_text == std::string(1000, 'o'));
  CHECK(echo.stderr_text == std::string(1000, 'e'));
  CHECK(echo.stdout_truncated);
  CHECK(echo.stderr_truncated);

  // A program that never reads its stdin, and one that closes it, do not hang the caller nor kill it (SIGPIPE).
  const auto ignores = run_python("print('done')\n", quick_sandbox(), {}, input);
  CHECK(ignores.succeeded());
  CHECK(ignores.stdout_text == "done\n");
  const auto closes = run_python("import os\nos.close(0)\nprint('closed')\n", quick_sandbox(), {}, input);
  CHECK(closes.succeeded());
  CHECK(closes.stdout_text == "closed\n");
  CHECK_FALSE(closes.stdout_truncated);
}

TEST_CASE("sandboxes run concurrently from several threads", "[rewards][sandbox]") {
  std::vector<std::string> outputs(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    threads.emplace_back([&outputs, i] {
      try {
        outputs[i] =
            run_python("import sys\nprint(int(sys.argv[1]) * 2)\n", quick_sandbox(), {std::to_string(i)}).stdout_text;
      } catch (const std::exception& e) {
        outputs[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < outputs.size(); ++i) CHECK(outputs[i] == std::to_string(2 * i) + "\n");
}

TEST_CASE("a failed setup step is reported by name, not as an exit code", "[rewards][sandbox]") {
  grpo_test::ScopedTempDir parent;
  auto in_parent = quick_sandbox();
  in_parent.temp_parent = parent.path().string();
  const int fds_before = open_fd_count();
  grpo::SandboxCommand missing_interpreter;
  missing_interpreter.argv = {"./program"};
  missing_interpreter.files = {{"program", "#!/no/such/interpreter\n", true}};
  const auto exec =
      grpo_test::catch_error<std::runtime_error>([&] { grpo::run_sandboxed(missing_interpreter, in_parent); });
  CHECK(exec.as_grpo_error);
  CHECK(exec.as_std_type);
  CHECK_THAT(exec.message, Contains("grpo::run_sandboxed: execve(\"./program\") failed: No such file or directory"));
  // Nothing of the failed runs is left: no working directory, no fd, no child process.
  CHECK(std::filesystem::is_empty(parent.path()));
  CHECK(open_fd_count() == fds_before);
  CHECK_FALSE(has_children());

  grpo::SandboxCommand unknown;
  unknown.argv = {"no-such-program-grpo"};
  const auto lookup = grpo_test::catch_error<std::invalid_argument>([&] { grpo::run_sandboxed(unknown); });
  CHECK(lookup.as_std_type);
  CHECK_THAT(lookup.message, Contains("\"no-such-program-grpo\" is not in the sandbox's PATH"));

  auto options = quick_sandbox();
  options.timeout_seconds = 0;
  const auto bad = grpo_test::catch_error<std::invalid_argument>([&] { run_python("pass", options); });
  CHECK_THAT(bad.message, Contains("grpo::SandboxOptions: timeout_seconds must be in (0, 1e6]"));
  options = quick_sandbox();
  options.run_as_uid = 0;
  const auto as_root = grpo_test::catch_error<std::invalid_argument>([&] { run_python("pass", options); });
  CHECK_THAT(as_root.message, Contains("grpo::SandboxOptions: run_as_uid and run_as_gid must not be 0"));
}

TEST_CASE("programs are taken from the last python or unlabeled fenced block", "[rewards][sandbox]") {
  CHECK(grpo::extract_program("Here:\n```python\nprint(1)\n```\nthen\n```\nprint(2)\n```\ndone") == "print(2)\n");
  CHECK(grpo::extract_program("```py\nx = 1\n```\n```bash\nrm -rf /\n```") == "x = 1\n");
  CHECK(grpo::extract_program("  ```Python3 title=a.py\n  y = 2\n  ```") == "  y = 2\n");
  CHECK(grpo::extract_program("```python\ns = '```'\n```") == "s = '```'\n");  // a fence is a line of backticks
  CHECK(grpo::extract_program("```python\nunclosed = True") == "unclosed = True");
  CHECK(grpo::extract_program("print('no fence')") == "print('no fence')");
  CHECK(grpo::extract_program("```bash\nls\n```") == "```bash\nls\n```");  // no python block: everything
  CHECK(grpo::extract_program("```js\nf()\n```", {"js"}) == "f()\n");
  CHECK(grpo::normalize_program_output("3  \r\n4\t\n\n\n") == "3\n4");
  CHECK(grpo::normalize_program_output("3\n 4") == "3\n 4");
  CHECK(grpo::normalize_program_output("3\n4") != grpo::normalize_program_output("3 4"));
}

TEST_CASE("the code-execution reward is the fraction of tests passed", "[rewards][sandbox]") {
  const auto reward = quick_reward();
  const std::string add = "Sure.\n```python\ndef add(a, b):\n    return a + b\n```\n";
  // Assertions: 2 of 3 pass.
  const auto asserts =
      code_score(reward, add, {"assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(1, 1) == 3"});
  REQUIRE(asserts.has_value());
  CHECK(*asserts == Approx(2.0 / 3.0));
  // The same tests given as a JSON string.
  CHECK(code_score(reward, add, R"(["assert add(1, 2) == 3", "assert add(5, 5) == 11"])").value_or(-1) == Approx(0.5));
  // Standard input and output, trailing whitespace ignored; a crash fails its test.
  const std::string sum = "```python\na, b = map(int, input().split())\nprint(a + b, ' ')\nprint()\n```";
  const auto io = code_score(reward, sum,
                             {{{"input", "1 2\n"}, {"output", "3"}},
                              {{"input", "5 5"}, {"output", "10\n"}},
                              {{"input", "1 1"}, {"output", "3"}},
                              {{"input", "x"}, {"output", ""}}});
  REQUIRE(io.has_value());
  CHECK(*io == Approx(0.5));
  // Mixed kinds.
  CHECK(code_score(reward, add, {"assert add(0, 0) == 0", {{"output", ""}}}) == 1.0);
  // No code: 0 without running anything; no tests: none.
  CHECK(code_score(reward, "   \n", {"assert True"}) == 0.0);
  CHECK(code_score(reward, "```python\n```", {"assert True"}) == 0.0);
  CHECK_FALSE(code_score(reward, add, nullptr).has_value());
  CHECK_FALSE(code_score(reward, add, nlohmann::json::array()).has_value());

  // As a RewardFunction: per-completion, requiring its column.
  const auto function = grpo::code_execution_reward(quick_reward());
  CHECK(function.name() == "code_execution");
  CHECK(function.required_columns() == std::vector<std::string>{"tests"});
  REQUIRE(function.is_per_completion());
  const auto in = tests_row(add, {"assert add(1, 2) == 3"});
  CHECK(function.call_single(in.completions[0], grpo::Row(in, 0)) == 1.0);
}

TEST_CASE("errors of the code-execution reward name the reward, the row, the column and the test",
          "[rewards][sandbox]") {
  auto reward = quick_reward();
  reward.name = "unit_tests";
  grpo::RewardInputs in;
  in.prompts = {"a", "b"};
  in.completions = {"pass", "pass"};
  in.completion_ids = {{1}, {1}};
  in.columns = grpo::Columns::from_rows({{{"answer", 1}}, {{"answer", 2}}});
  const auto missing = grpo_test::catch_error<std::invalid_argument>([&] { reward("pass", grpo::Row(in, 1)); });
  CHECK(missing.as_std_type);
  CHECK_THAT(missing.message, Contains("grpo::code_execution_reward: reward \"unit_tests\", row 1: column \"tests\" "
                                       "is not in the dataset (available columns: answer)"));

  const auto message_for = [&](const nlohmann::json& tests) {
    return grpo_test::catch_error<std::invalid_argument>([&] { code_score(reward, "pass", tests); }).message;
  };
  CHECK_THAT(message_for(42), Contains("reward \"unit_tests\", row 0: column \"tests\" must be a JSON array"));
  CHECK_THAT(message_for(42), Contains("got number: 42"));
  CHECK_THAT(message_for("not json ["), Contains("column \"tests\" holds a string that is not JSON"));
  CHECK_THAT(message_for({"assert True", 7}), Contains("column \"tests\" test 1 must be an assertion string"));
  CHECK_THAT(message_for({{{"input", "1"}}}), Contains("test 0 must be an assertion string or an object"));
  CHECK_THAT(message_for({{{"input", 1}, {"output", "1"}}}), Contains("got {\"input\":1,\"output\":\"1\"}"));

  // A run that cannot start names the test too.
  reward.interpreter = {"/no/such/python3"};
  const auto run = grpo_test::catch_error<std::runtime_error>([&] { code_score(reward, "pass", {"assert True"}); });
  CHECK(run.as_std_type);
  CHECK_THAT(run.message, Contains("grpo::code_execution_reward: reward \"unit_tests\", row 0, column \"tests\", "
                                   "test 0: grpo::run_sandboxed: execve(\"/no/such/python3\") failed"));
}

TEST_CASE("grpo-train configs build the code_execution reward and reject unknown options", "[rewards][sandbox]") {
  const auto configured = grpo::reward_from_config({{"type", "code_execution"},
                                                    {"column", "unit_tests"},
                                                    {"timeout_seconds", 2},
                                                    {"memory_mb", 256},
                                                    {"interpreter", "python3"},
                                                    {"require_isolation", isolation_refusal().empty()},
                                                    {"name", "code"},
                                                    {"weight", 0.5}},
                                                   "run.json: rewards[0]: ", 64);
  CHECK(configured.function.name() == "code");
  CHECK(configured.weight == 0.5);
  CHECK(configured.function.required_columns() == std::vector<std::string>{"unit_tests"});
  grpo::RewardInputs in;
  in.prompts = {"p"};
  in.completions = {"```python\nprint(input())\n```"};
  in.completion_ids = {{1}};
  in.columns = grpo::Columns::from_rows({{{"unit_tests", {{{"input", "hi"}, {"output", "hi"}}}}}});
  CHECK(configured.function.call_single(in.completions[0], grpo::Row(in, 0)) == 1.0);

  const auto error_for = [](const nlohmann::json& entry) {
    return grpo_test::catch_error<std::invalid_argument>([&] { grpo::reward_from_config(entry, "run.json: ", 64); })
        .message;
  };
  CHECK_THAT(error_for({{"type", "code_execution"}, {"timeout", 2}}),
             Contains("run.json: unknown key \"timeout\" (this type takes: column, interpreter"));
  CHECK_THAT(error_for({{"type", "code_execution"}, {"interpreter", {"no-such-python-grpo"}}}),
             Contains("run.json: grpo::code_execution_reward: reward \"code_execution\": the interpreter "
                      "\"no-such-python-grpo\" is not in the sandbox's PATH"));
  CHECK_THAT(error_for({{"type", "code_execution"}, {"memory_mb", -1}}), Contains("memory_mb must be in [0, 2^40]"));
  CHECK_THAT(error_for({{"type", "code_execution"}, {"require_isolation", "yes"}}),
             Contains("\"require_isolation\" has the wrong type"));
}
