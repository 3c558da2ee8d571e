#pragma once
// Where this process stands in a multi-process launch, read from the variables torchrun (and other launchers:
// torch.distributed.launch, SLURM scripts, Kubernetes operators) set: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT, and torchrun's TORCHELASTIC_USE_AGENT_STORE / TORCHELASTIC_RESTART_COUNT. Torch-free.

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

#include "grpo/error.hpp"

namespace grpo {

/// One process's place in a launch.
struct LaunchEnvironment {
  /// This process's rank, 0 <= rank < world_size (RANK).
  int rank = 0;
  /// Processes in the run (WORLD_SIZE).
  int world_size = 1;
  /// Rank among the processes of this machine (LOCAL_RANK; RANK when unset): which GPU to use.
  int local_rank = 0;
  /// Host and port of the rendezvous store that rank 0 serves (MASTER_ADDR, MASTER_PORT).
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// torchrun serves the store itself (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a client, and keys live
  /// under /worker/attempt_<restart_count>/ as torch.distributed does.
  bool use_agent_store = false;
  std::string restart_count = "0";
};

namespace detail {

inline int launch_integer(const char* name, const std::string& text, int64_t low, int64_t high) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || value < low || value > high) {
    throw InvalidArgument("grpo::launch_environment: environment variable " + std::string(name) + "=\"" + text +
                          "\" is not an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]");
  }
  return static_cast<int>(value);
}

}  // namespace detail

/// The launch this process belongs to, from the environment (`getenv` returns a variable or null; the process's
/// environment by default); unset when WORLD_SIZE is not set (a plain single-process run). A malformed or missing
/// variable is an error naming it.
inline std::optional<LaunchEnvironment> launch_environment(const std::function<const char*(const char*)>& getenv =
                                                               [](const char* name) { return std::getenv(name); }) {
  const char* world = getenv("WORLD_SIZE");
  if (world == nullptr) return std::nullopt;
  LaunchEnvironment env;
  env.world_size = detail::launch_integer("WORLD_SIZE", world, 1, 1 << 20);
  const auto required = [&](const char* name) -> std::string {
    const char* value = getenv(name);
    if (value == nullptr || *value == '\0') {
      throw InvalidArgument("grpo::launch_environment: WORLD_SIZE=" + std::string(world) + " is set but " + name +
                            " is not; a launcher such as `torchrun --nproc-per-node N ./trainer` sets RANK, "
                            "WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT");
    }
    return value;
  };
  if (env.world_size == 1 && getenv("RANK") == nullptr) return env;  // WORLD_SIZE=1 alone: one process
  env.rank = detail::launch_integer("RANK", required("RANK"), 0, env.world_size - 1);
  const char* local = getenv("LOCAL_RANK");
  env.local_rank = local ? detail::launch_integer("LOCAL_RANK", local, 0, env.world_size - 1) : env.rank;
  env.master_addr = required("MASTER_ADDR");
  env.master_port = detail::launch_integer("MASTER_PORT", required("MASTER_PORT"), 1, 65535);
  const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  env.use_agent_store = agent != nullptr && std::string(agent) == "True";
  if (const char* restart = getenv("TORCHELASTIC_RESTART_COUNT")) env.restart_count = restart;
  return env;
}

}  // namespace grpo
