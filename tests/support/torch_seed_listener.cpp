// Seeds LibTorch from Catch's --rng-seed before every test case, so a failing run can be replayed.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // listener base classes
#include <catch2/catch.hpp>
#include <torch/types.h>

namespace {
struct TorchSeedListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo&) override { torch::manual_seed(Catch::rngSeed()); }
};
}  // namespace
CATCH_REGISTER_LISTENER(TorchSeedListener)
