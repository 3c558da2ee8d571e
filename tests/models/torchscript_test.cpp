// A TorchScript module saved by the test, loaded back and run through TorchScriptLM: forward, generation,
// policy log-probs with gradients, and a frozen reference copy.
#include "grpo/models/torchscript.hpp"

#include <torch/script.h>
#include <torch/types.h>

#include <memory>

#include "grpo/generation/generate.hpp"
#include "grpo/train/policy.hpp"
#include "models/model_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

static_assert(grpo::is_causal_lm_v<grpo::TorchScriptLM>);

TEST_CASE("a TorchScript module saved by the test runs through the adapter as policy, reference and generator",
          "[torchscript]") {
  grpo::testing::TempDir tmp;
  const int64_t vocab = 13;
  const auto embed = torch::randn({vocab, 8}), head = torch::randn({vocab, 8});
  {
    torch::jit::Module m("lm");
    m.register_attribute("training", c10::BoolType::get(), true);  // scripted Python modules have it too
    m.register_parameter("embed", embed.clone().requires_grad_(), false);
    m.register_parameter("head", head.clone().requires_grad_(), false);
    // Causal by construction: position t sums the embeddings of the real tokens up to t.
    m.define(R"JIT(
def forward(self, input_ids, attention_mask):
    h = torch.embedding(self.embed, input_ids) * attention_mask.unsqueeze(-1).to(self.embed.dtype)
    return torch.matmul(torch.cumsum(h, dim=1), self.head.t())
)JIT");
    m.save(tmp.file("lm.pt"));
  }
  auto model = grpo::TorchScriptLM::load(tmp.file("lm.pt"));
  const auto [ids, mask] = grpo::testing::left_pad({{1, 2, 3}, {4}});
  const auto expected = torch::matmul(
      torch::cumsum(embed.index_select(0, ids.reshape({-1})).view({2, 3, 8}) * mask.unsqueeze(-1).to(torch::kFloat), 1),
      head.t());
  CHECK(torch::allclose(model->forward(ids, mask, nullptr), expected, 1e-5, 1e-6));
  CHECK(model->parameters().size() == 2);

  grpo::Policy<grpo::TorchScriptLM> policy(model);
  CHECK_FALSE(model->is_training());
  auto reference = grpo::make_reference(policy, 0.1);
  REQUIRE(reference.has_value());

  grpo::GenerationOptions options;
  options.max_new_tokens = 6;
  options.seed = 5;
  const auto generated = policy.generate(ids, mask, options);
  CHECK(generated.completion_ids.sizes() == torch::IntArrayRef({2, 6}));
  CHECK((generated.completion_ids >= 0).all().item<bool>());
  CHECK((generated.completion_ids < vocab).all().item<bool>());
  // Row 1 alone (no padding) generates the same tokens with its seed.
  options.row_seeds = {grpo::row_seed(5, 1)};
  const auto alone = policy.generate(grpo::testing::row_tensor({4}), {}, options);
  CHECK(torch::equal(alone.completion_ids[0], generated.completion_ids[1]));

  const auto logps = policy.completion_logps(ids, mask, generated.completion_ids, generated.completion_mask, 1.0, 1);
  CHECK(logps.logps.sizes() == torch::IntArrayRef({2, 6}));
  logps.logps.sum().backward();
  REQUIRE(model->parameters()[0].grad().defined());
  CHECK(model->parameters()[0].grad().abs().sum().item<double>() > 0);

  const auto ref_before = reference->completion_logps(ids, mask, generated.completion_ids, generated.completion_mask);
  CHECK(torch::allclose(ref_before.logps, logps.logps.detach()));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(0.5);
  }
  CHECK(torch::equal(reference->completion_logps(ids, mask, generated.completion_ids, generated.completion_mask).logps,
                     ref_before.logps));
  for (const auto& p : reference->model().parameters()) CHECK_FALSE(p.requires_grad());
  reference->sync_from(policy, 1.0);
  CHECK(torch::equal(reference->model().parameters()[1], model->parameters()[1].detach()));

  CHECK_THROWS_WITH(grpo::TorchScriptLM::load(tmp.file("missing.pt")), grpo_test::Contains("missing.pt"));
}
