// Seeds LibTorch from Catch's --rng-seed before every test case, so a failing run can be replayed.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // Catch2 2: the listener base classes (Catch2 3 has them always)
#include "support/catch.hpp"

#include <cstdint>

#include <torch/types.h>

namespace {
#if GRPO_CATCH2_MAJOR >= 3
using ListenerBase = Catch::EventListenerBase;
inline uint32_t catch_seed() { return Catch::getSeed(); }
#else
using ListenerBase = Catch::TestEventListenerBase;
inline uint32_t catch_seed() { return Catch::rngSeed(); }
#endif

struct TorchSeedListener : ListenerBase {
  using ListenerBase::ListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo&) override { torch::manual_seed(catch_seed()); }
};
}  // namespace
CATCH_REGISTER_LISTENER(TorchSeedListener)
