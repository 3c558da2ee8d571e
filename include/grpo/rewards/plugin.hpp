#pragma once
// Reward functions compiled into shared libraries (plugins) and loaded at run time, for programs such as
// grpo-train that are built once and take the user's reward from a config file. Torch-free (grpo::core; links
// the dynamic loader, CMAKE_DL_LIBS).
//
// Writing a plugin (examples/reward_plugin.cpp; built with the package's grpo_add_reward_plugin() CMake helper):
//
//   #include <grpo/rewards/plugin.hpp>
//   GRPO_REWARD_PLUGIN(make_length_reward, options) {             // options: the config's JSON object
//     const double target = options.value("target", 20.0);
//     return grpo::RewardFunction("length", [target](std::string_view completion, const grpo::Row&) {
//       return -std::abs(static_cast<double>(completion.size()) - target);
//     });
//   }
//
// The macro defines the C entry point `make_length_reward` with the ABI below; a config names the library and
// the factory: {"plugin": "./liblength_reward.so", "factory": "make_length_reward", "options": {"target": 20}}.
//
// ABI: extern "C" int <factory>(int abi, const char* options_json, grpo::RewardFunction** out, char* error,
// std::size_t error_size). The loader passes GRPO_REWARD_PLUGIN_ABI; a plugin built against other grpo-cpp headers
// or another C++ standard library refuses with an error instead of crashing (a RewardFunction crosses the
// boundary as a C++ object, so plugin and program must share the compiler's C++ ABI, as they do when both are
// built against the same installed package). Returns 0 and sets *out on success; else writes a message to
// `error` and returns non-zero. Exceptions never cross the C boundary.

#include <dlfcn.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"

/// The plugin ABI version: bumped when RewardFunction, RewardInputs, Row or Columns change layout. Combined with
/// the standard library's ABI markers, so that a plugin built with another library refuses to load.
#define GRPO_REWARD_PLUGIN_ABI_VERSION 1
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define GRPO_REWARD_PLUGIN_ABI (GRPO_REWARD_PLUGIN_ABI_VERSION * 100 + 10 + _GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define GRPO_REWARD_PLUGIN_ABI (GRPO_REWARD_PLUGIN_ABI_VERSION * 100 + 20)
#else
#define GRPO_REWARD_PLUGIN_ABI (GRPO_REWARD_PLUGIN_ABI_VERSION * 100)
#endif

namespace grpo {

/// Signature of a plugin's factory (see the top of this file).
using RewardPluginFactory = int (*)(int abi, const char* options_json, RewardFunction** out, char* error,
                                    std::size_t error_size);

namespace detail {

// Copies `message` into the plugin's error buffer, truncated and NUL-terminated.
inline void plugin_error(char* error, std::size_t error_size, const std::string& message) {
  if (error == nullptr || error_size == 0) return;
  const std::size_t n = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

// The body of a GRPO_REWARD_PLUGIN factory: checks the ABI, parses the options, calls `make`, catches everything.
template <class Make>
int run_reward_plugin_factory(Make make, int abi, const char* options_json, RewardFunction** out, char* error,
                              std::size_t error_size) {
  if (abi != GRPO_REWARD_PLUGIN_ABI) {
    plugin_error(error, error_size,
                 "the plugin was built for reward-plugin ABI " + std::to_string(GRPO_REWARD_PLUGIN_ABI) +
                     " but the program uses " + std::to_string(abi) +
                     " (rebuild the plugin against the grpo-cpp headers the program was built with)");
    return 2;
  }
  try {
    const auto options = nlohmann::json::parse(options_json != nullptr ? options_json : "{}");
    *out = new RewardFunction(make(options));
    return 0;
  } catch (const std::exception& e) {
    plugin_error(error, error_size, e.what());
  } catch (...) {
    plugin_error(error, error_size, "an exception that is not a std::exception");
  }
  return 1;
}

}  // namespace detail

/// Loads reward plugin `library` (a path; one without a '/' is searched as dlopen searches) and calls its
/// `factory` with `options` (a JSON object). The library stays loaded while the returned function (or a copy)
/// lives. Errors (grpo::InvalidArgument) name the library and the factory: a library that cannot be loaded (with
/// the loader's reason), a missing factory, an ABI mismatch, a factory that throws. Errors the plugin's reward
/// throws while scoring are prefixed with the library and factory too.
inline RewardFunction load_reward_plugin(const std::string& library, const std::string& factory,
                                         const nlohmann::json& options = nlohmann::json::object()) {
  const std::string where = "grpo::load_reward_plugin: " + library + ": ";
  ::dlerror();
  void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = ::dlerror();
    throw InvalidArgument(where + "cannot load the library: " + (reason != nullptr ? reason : "unknown reason"));
  }
  std::shared_ptr<void> keep(handle, [](void* h) { ::dlclose(h); });
  ::dlerror();
  void* symbol = ::dlsym(handle, factory.c_str());
  if (symbol == nullptr) {
    throw InvalidArgument(where + "no factory \"" + factory + "\" in the library (define it with GRPO_REWARD_PLUGIN(" +
                          factory + ", options))");
  }
  RewardPluginFactory make = nullptr;
  static_assert(sizeof(make) == sizeof(symbol), "function and object pointers differ in size");
  std::memcpy(&make, &symbol, sizeof make);
  char error[2048] = {0};
  RewardFunction* made = nullptr;
  const std::string options_text = options.is_null() ? "{}" : options.dump();
  if (make(GRPO_REWARD_PLUGIN_ABI, options_text.c_str(), &made, error, sizeof error) != 0 || made == nullptr) {
    throw InvalidArgument(where + "factory \"" + factory + "\" failed: " + (error[0] != '\0' ? error : "no reason"));
  }
  // The function made by the plugin, then the library: members are destroyed in reverse order, so the plugin's
  // code outlives every object it made.
  struct Loaded {
    std::shared_ptr<void> library;
    std::unique_ptr<RewardFunction> function;
  };
  auto loaded = std::make_shared<Loaded>(Loaded{std::move(keep), std::unique_ptr<RewardFunction>(made)});
  const std::string label = "grpo::reward plugin " + library + " (" + factory + "), reward \"" + made->name() + "\": ";
  if (made->is_per_completion()) {
    return RewardFunction(
        made->name(),
        [loaded, label](std::string_view completion, const Row& row) -> double {
          try {
            return loaded->function->call_single(completion, row);
          } catch (const std::exception& e) {
            throw RuntimeError(label + e.what());
          }
        },
        made->required_columns());
  }
  return RewardFunction(
      made->name(),
      [loaded, label](const RewardInputs& inputs) -> std::vector<double> {
        try {
          return loaded->function->call_batch(inputs);
        } catch (const std::exception& e) {
          throw RuntimeError(label + e.what());
        }
      },
      made->required_columns());
}

}  // namespace grpo

/// Defines reward plugin factory `name`: `GRPO_REWARD_PLUGIN(name, options) { return grpo::RewardFunction(...); }`,
/// where `options` is the config's JSON object (const nlohmann::json&). See the top of grpo/rewards/plugin.hpp.
#define GRPO_REWARD_PLUGIN(name, options)                                                                   \
  static grpo::RewardFunction name##_make(const nlohmann::json& options);                                   \
  extern "C" __attribute__((visibility("default"))) int name(                                               \
      int abi, const char* options_json, grpo::RewardFunction** out, char* error, std::size_t error_size) { \
    return grpo::detail::run_reward_plugin_factory(name##_make, abi, options_json, out, error, error_size); \
  }                                                                                                         \
  static grpo::RewardFunction name##_make(const nlohmann::json& options)
