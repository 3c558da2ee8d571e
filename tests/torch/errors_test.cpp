// The tensor side of the error contract: policy_loss shape errors and safetensors file errors are grpo::Errors and
// still their standard exceptions, with messages that start with "grpo::" and keep the shapes and the file.
#include <stdexcept>
#include <string>

#include <torch/types.h>

#include "grpo/core/logprobs.hpp"
#include "grpo/core/loss.hpp"
#include "grpo/error.hpp"
#include "grpo/models/safetensors.hpp"
#include "support/error_checks.hpp"
#include "support/loss_fixtures.hpp"
#include "support/scoped_temp_dir.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

using Catch::Matchers::StartsWith;
using grpo_test::Contains;

namespace grpo_errors_torch_test {
// The four ways to catch it all work, and the message starts with `prefix` (which starts with "grpo::").
void check_caught(const grpo_test::CaughtError& e, const std::string& prefix) {
  INFO(e.message);
  CHECK(e.as_grpo_error);
  CHECK(e.error_is_std_type);
  CHECK(e.as_std_type);
  CHECK(e.as_std_exception);
  CHECK_THAT(e.message, StartsWith("grpo::"));
  CHECK_THAT(e.message, StartsWith(prefix));
}
}  // namespace grpo_errors_torch_test

TEST_CASE("tensor and safetensors errors are grpo::Errors and their standard types", "[errors]") {
  using grpo_errors_torch_test::check_caught;
  using grpo_test::catch_error;

  // A tensor shape in policy_loss: the tensor and both shapes stay in the message.
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.mask = torch::ones({2, 4});
  auto e = catch_error<std::invalid_argument>([&] { (void)grpo::policy_loss(batch, grpo::LossOptions{}); });
  check_caught(e, "grpo::policy_loss: mask has shape [2, 4]");
  CHECK_THAT(e.message, Contains("[B,T] like logps = [2, 3]"));
  e = catch_error<std::invalid_argument>([] {
    (void)grpo::selective_log_softmax(torch::zeros({2, 3, 5}), torch::full({2, 3}, 7, torch::kLong));
  });
  check_caught(e, "grpo::selective_log_softmax: index");

  // Safetensors files: reading garbage, writing an unsupported dtype, a checkpoint folder without weights.
  grpo_test::ScopedTempDir dir;
  const std::string garbage = dir.write("bad.safetensors", "abc");
  e = catch_error<std::runtime_error>([&] { (void)grpo::read_safetensors(garbage); });
  check_caught(e, "grpo::read_safetensors: " + garbage + ": shorter than the 8-byte header length");
  e = catch_error<std::runtime_error>([&] { (void)grpo::read_safetensors(dir.file("missing.safetensors")); });
  check_caught(e, "grpo::read_safetensors: cannot open");
  CHECK_THAT(e.message, Contains("missing.safetensors"));
  const std::string target = dir.file("x.safetensors");
  e = catch_error<std::invalid_argument>([&] {
    grpo::write_safetensors(target, {{"z", torch::zeros({2}, torch::kComplexFloat)}});
  });
  check_caught(e, "grpo::write_safetensors: " + target + ": tensor \"z\" has unsupported dtype");
  e = catch_error<std::runtime_error>([&] {
    grpo::write_safetensors(dir.file("no/such/dir/x.safetensors"), {{"z", torch::zeros({2})}});
  });
  check_caught(e, "grpo::write_safetensors: cannot create temporary file for");
  e = catch_error<std::runtime_error>([&] { (void)grpo::read_safetensors_dir(dir.path().string()); });
  check_caught(e, "grpo::read_safetensors_dir: no model.safetensors");
}
