#pragma once
// ProcessGroup: the processes of a data-parallel run, on PyTorch's own engine (c10d): a TCP store for the
// rendezvous (rank 0 serves it at MASTER_ADDR:MASTER_PORT, or torchrun's agent does), Gloo for CPU tensors and
// byte messages, NCCL for CUDA tensors when this LibTorch was built with it (USE_C10D_NCCL, set by LibTorch's CMake
// targets). Every collective is named; a failure (a rank that exited, hangs past the timeout, or threw) becomes one
// grpo::RuntimeError naming the collective, the ranks that did not reach it and what they reported.

#include <signal.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define GRPO_HAS_GLOO 1
#else
#define GRPO_HAS_GLOO 0
#endif
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define GRPO_HAS_NCCL 1
#else
#define GRPO_HAS_NCCL 0
#endif

#include "grpo/distributed/launch_environment.hpp"
#include "grpo/error.hpp"

namespace grpo {

/// How a process group waits.
struct ProcessGroupOptions {
  /// How long a collective (and the rendezvous) waits for the other ranks before failing (torch's default,
  /// GRPOConfig::ddp_timeout: 30 minutes). Longer than any rank's lead over another: generation lengths differ.
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
};

namespace detail {

// The message of an exception without LibTorch's backtrace.
inline std::string exception_text(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// Turns off TCPStoreOptions::useLibUV where the field exists (LibTorch >= 2.2); false when it does not.
template <class Options>
auto disable_libuv(Options& o, int) -> decltype(o.useLibUV = false, bool()) {
  o.useLibUV = false;
  return true;
}
template <class Options>
bool disable_libuv(Options&, long) {
  return false;
}

inline std::string store_text(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }
inline std::vector<uint8_t> store_bytes(const std::string& text) {
  return std::vector<uint8_t>(text.begin(), text.end());
}

}  // namespace detail

/// The ranks of a data-parallel run. Collectives must be called by every rank in the same order.
class ProcessGroup {
 public:
  /// Joins the run `env` describes: connects to (rank 0: serves) the store at MASTER_ADDR:MASTER_PORT and sets up
  /// Gloo. Waits up to options.timeout for every rank; a port in use, an unreachable master or a missing rank is
  /// an error saying which.
  static std::shared_ptr<ProcessGroup> create(const LaunchEnvironment& env, ProcessGroupOptions options = {}) {
    return std::shared_ptr<ProcessGroup>(new ProcessGroup(env, options));
  }

  /// The run this process was launched into (launch_environment()), or null for a plain single-process run
  /// (WORLD_SIZE unset or 1).
  static std::shared_ptr<ProcessGroup> from_environment(ProcessGroupOptions options = {}) {
    const auto env = launch_environment();
    if (!env || env->world_size == 1) return nullptr;
    return create(*env, options);
  }

  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  /// This process's rank and the number of processes.
  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }
  /// Rank on this machine (which GPU to use).
  int local_rank() const { return env_.local_rank; }
  const LaunchEnvironment& environment() const { return env_; }
  std::chrono::milliseconds timeout() const { return options_.timeout; }

  /// Sums `tensors` over the ranks in place (same shapes and dtypes on every rank). `what` names the collective in
  /// errors ("gradients of step 12").
  void all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& what) {
    run(what, [&] {
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        on_backend(t, [&](auto& backend) { backend.allreduce(one)->wait(); });
      }
    });
  }

  /// Copies rank `root`'s `tensors` into every rank's, in place.
  void broadcast(std::vector<at::Tensor>& tensors, int root, const std::string& what) {
    run(what, [&] {
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        on_backend(t, [&](auto& backend) { backend.broadcast(one, opts)->wait(); });
      }
    });
  }

  /// Every rank's `bytes`, indexed by rank (any sizes).
  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& what) {
    std::vector<std::string> out;
    run(what, [&] {
      auto sizes = all_gather_cpu(at::tensor({static_cast<int64_t>(bytes.size())}, at::kLong));
      int64_t longest = 1;
      for (const auto& s : sizes) longest = std::max(longest, s.item<int64_t>());
      auto buffer = at::zeros({longest}, at::kByte);
      if (!bytes.empty()) std::memcpy(buffer.data_ptr<uint8_t>(), bytes.data(), bytes.size());
      const auto parts = all_gather_cpu(buffer);
      for (std::size_t r = 0; r < parts.size(); ++r) {
        const auto* data = reinterpret_cast<const char*>(parts[r].data_ptr<uint8_t>());
        out.emplace_back(data, static_cast<std::size_t>(sizes[r].item<int64_t>()));
      }
    });
    return out;
  }

  /// Every rank's `tensor` (same shape and dtype on every rank), indexed by rank, on the CPU.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what) {
    std::vector<at::Tensor> out;
    run(what, [&] { out = all_gather_cpu(tensor.to(at::kCPU).contiguous()); });
    return out;
  }

  /// Whether `flag` is true on any rank.
  bool any(bool flag, const std::string& what) {
    std::vector<at::Tensor> t{at::tensor({flag ? int64_t{1} : int64_t{0}}, at::kLong)};
    all_reduce_sum(t, what);
    return t[0].item<int64_t>() > 0;
  }

  /// Waits until every rank gets here.
  void barrier(const std::string& what) {
    run(what, [&] {
      std::vector<at::Tensor> t{at::zeros({1}, at::kLong)};
      on_backend(t[0], [&](auto& backend) { backend.allreduce(t)->wait(); });
    });
  }

  /// Tells the other ranks why this one is about to stop (shown in their errors); never throws.
  void report_failure(const std::string& message) noexcept {
    try {
      store_->set("failed/" + std::to_string(env_.rank), detail::store_bytes(message.substr(0, 2000)));
    } catch (...) {
    }
  }

 private:
  ProcessGroup(const LaunchEnvironment& env, ProcessGroupOptions options) : env_(env), options_(options) {
    const std::string where =
        "grpo::ProcessGroup: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": ";
    const std::string address = env.master_addr + ":" + std::to_string(env.master_port);
    const bool serve = env.rank == 0 && !env.use_agent_store;
    // A peer that exits closes its sockets; writing to one then raises SIGPIPE, whose default action kills this
    // process silently (Python, torch's usual host, ignores it). Ignore it unless the program installed a handler,
    // so that the write fails and the collective reports the missing rank.
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
    try {
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(env.master_port);
      o.isServer = serve;
      o.numWorkers = static_cast<std::size_t>(env.world_size);
      o.waitWorkers = !env.use_agent_store;
      o.timeout = options.timeout;
      try {
        tcp_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      } catch (const std::exception& e) {
        // LibTorch >= 2.4 asks for the libuv backend by default; builds without libuv (Debian 13's) refuse it.
        if (detail::exception_text(e).find("libuv") == std::string::npos || !detail::disable_libuv(o, 0)) throw;
        tcp_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      }
    } catch (const std::exception& e) {
      const std::string text = detail::exception_text(e);
      if (serve && text.find("ddress already in use") != std::string::npos) {
        throw RuntimeError(where + "cannot serve the rendezvous store on " + address +
                           ": the port is in use (another run, or a previous one still exiting?); set MASTER_PORT "
                           "to a free port. (" +
                           text + ")");
      }
      throw RuntimeError(where +
                         (serve ? "serving the rendezvous store on " + address +
                                      " failed: not every rank connected within the timeout of " + seconds_text() +
                                      " (are all WORLD_SIZE=" + std::to_string(env.world_size) + " processes started?)"
                                : "cannot reach the rendezvous store at MASTER_ADDR:MASTER_PORT = " + address +
                                      " within the timeout of " + seconds_text() +
                                      " (is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same on every "
                                      "rank?)") +
                         ". (" + text + ")");
    }
    c10::intrusive_ptr<c10d::Store> base = tcp_;
    if (env.use_agent_store)
      base = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + env.restart_count, base);
    store_ = c10::make_intrusive<c10d::PrefixStore>("grpo", base);
#if GRPO_HAS_GLOO
    try {
      auto o = c10d::ProcessGroupGloo::Options::create(options.timeout);
      o->devices.push_back(gloo_device(env));
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_),
                                                          env.rank, env.world_size, o);
    } catch (const std::exception& e) {
      throw RuntimeError(where + "connecting the Gloo transport to the other ranks failed within " + seconds_text() +
                         ": " + detail::exception_text(e));
    }
#else
    throw RuntimeError(where +
                       "this LibTorch was built without Gloo, or its headers are missing (Debian: libgloo-dev); "
                       "multi-process training needs them");
#endif
  }

#if GRPO_HAS_GLOO
  // The network device Gloo uses: GLOO_SOCKET_IFNAME's interface when set (several machines whose host names
  // resolve to loopback need it), loopback when the master is on this machine's loopback, else the address this
  // machine's host name resolves to.
  static std::shared_ptr<::gloo::transport::Device> gloo_device(const LaunchEnvironment& env) {
    if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME")) {
      return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
    }
    if (env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0) {
      return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    }
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }
#endif

  // Calls f(backend) with the backend for a tensor's device: NCCL for CUDA tensors when this LibTorch has it,
  // Gloo otherwise (Gloo also takes CUDA tensors, through host copies).
  template <class F>
  void on_backend([[maybe_unused]] const at::Tensor& t, F&& f) {
#if GRPO_HAS_NCCL
    if (t.is_cuda()) {
      if (!nccl_) {
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = options_.timeout;
        nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store_),
                                                            env_.rank, env_.world_size, o);
      }
      f(*nccl_);
      return;
    }
#endif
#if GRPO_HAS_GLOO
    f(*gloo_);
#else
    (void)f;
#endif
  }

  std::vector<at::Tensor> all_gather_cpu(const at::Tensor& input) {
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < env_.world_size; ++r) out[0].push_back(at::empty_like(input));
    std::vector<at::Tensor> in{input};
#if GRPO_HAS_GLOO
    gloo_->allgather(out, in)->wait();
#endif
    return out[0];
  }

  std::string seconds_text() const {
    std::ostringstream s;
    s << static_cast<double>(options_.timeout.count()) / 1000.0 << " s";
    return s.str();
  }

  // Runs collective `what`: records it in the store (so that a failing rank can tell who did not arrive), runs it,
  // and turns a failure into an error naming the ranks that did not reach it.
  template <class Collective>
  void run(const std::string& what, Collective&& collective) {
    const uint64_t sequence = ++sequence_;
    try {
      store_->set("progress/" + std::to_string(env_.rank), detail::store_bytes(std::to_string(sequence) + " " + what));
    } catch (const std::exception& e) {
      fail(what, sequence, "the rendezvous store (served by rank 0) is unreachable: " + detail::exception_text(e));
    }
    try {
      collective();
    } catch (const std::exception& e) {
      fail(what, sequence, detail::exception_text(e));
    }
  }

  [[noreturn]] void fail(const std::string& what, uint64_t sequence, const std::string& cause) {
    std::string who;
    try {
      tcp_->setTimeout(std::chrono::milliseconds(2000));
      for (int r = 0; r < env_.world_size; ++r) {
        if (r == env_.rank) continue;
        const std::string rank = "rank " + std::to_string(r);
        if (store_->check({"failed/" + std::to_string(r)})) {
          who += "; " + rank + " failed: " + detail::store_text(store_->get("failed/" + std::to_string(r)));
          continue;
        }
        const std::string key = "progress/" + std::to_string(r);
        if (!store_->check({key})) {
          who += "; " + rank + " never reached a collective (it exited or hangs)";
          continue;
        }
        const std::string progress = detail::store_text(store_->get(key));
        const uint64_t its = std::stoull(progress.substr(0, progress.find(' ')));
        if (its < sequence) {
          who += "; " + rank + " did not arrive (it exited or hangs); its last collective was #" + progress;
        }
      }
    } catch (const std::exception&) {
      who += "; the rendezvous store is gone, so rank 0 (which serves it) exited";
    }
    if (who.empty()) who = "; every other rank had reached it (a transport error)";
    const std::string message = "grpo::ProcessGroup: rank " + std::to_string(env_.rank) + " of " +
                                std::to_string(env_.world_size) + ": collective #" + std::to_string(sequence) + " (" +
                                what + ") failed within the timeout of " + seconds_text() + who.substr(1) +
                                ". Cause: " + cause;
    report_failure("rank " + std::to_string(env_.rank) + " stopped in collective #" + std::to_string(sequence) + " (" +
                   what + ")");
    throw RuntimeError(message);
  }

  LaunchEnvironment env_;
  ProcessGroupOptions options_;
  c10::intrusive_ptr<c10d::TCPStore> tcp_;
  c10::intrusive_ptr<c10d::Store> store_;
#if GRPO_HAS_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_;
#endif
#if GRPO_HAS_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_;
#endif
  uint64_t sequence_ = 0;
};

}  // namespace grpo
