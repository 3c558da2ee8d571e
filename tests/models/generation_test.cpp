// Generation: batched left-padded == one by one, seeds, EOS / stop handling, the KV cache against recomputation,
// and the logits filters on fixed distributions.
#include <torch/types.h>

#include <cmath>
#include <limits>
#include <vector>

#include "grpo/generation/generate.hpp"
#include "grpo/generation/sampling.hpp"
#include "grpo/models/llama.hpp"
#include "models/model_fixtures.hpp"
#include "support/catch_torch.hpp"  // last: restores Catch's CHECK

namespace {

const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7, 8, 9, 10}, {11, 12}, {13, 14, 15, 16}};

// Generates each prompt alone (no padding) with the seed its row had in the batch.
std::vector<torch::Tensor> one_by_one(grpo::LlamaModel& model, grpo::GenerationOptions options, uint64_t seed) {
  std::vector<torch::Tensor> rows;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    options.row_seeds = {grpo::row_seed(seed, b)};
    options.seed.reset();
    const auto result = grpo::generate(model, grpo::testing::row_tensor(prompts[b]), {}, options);
    rows.push_back(result.completion_ids[0].slice(0, 0, result.lengths[0].item<int64_t>()));
  }
  return rows;
}

std::vector<bool> kept(const torch::Tensor& filtered) {
  std::vector<bool> out;
  for (int64_t v = 0; v < filtered.size(-1); ++v) out.push_back(std::isfinite(filtered[0][v].item<double>()));
  return out;
}

}  // namespace

TEST_CASE("left-padded batched generation equals one-by-one generation, greedy and sampled", "[generation]") {
  grpo::LlamaModel model(grpo::testing::tiny_gqa());
  const auto [ids, mask] = grpo::testing::left_pad(prompts);
  for (const bool sample : {false, true}) {
    INFO("do_sample " << sample);
    grpo::GenerationOptions options;
    options.max_new_tokens = 12;
    options.do_sample = sample;
    options.temperature = 0.8;
    options.top_k = 20;
    options.repetition_penalty = 1.3;
    options.seed = 1234;
    const auto batched = grpo::generate(model, ids, mask, options);
    REQUIRE(batched.completion_ids.sizes() == torch::IntArrayRef({3, 12}));
    CHECK(batched.lengths.equal(torch::full({3}, 12, torch::kLong)));
    CHECK(batched.truncated.all().item<bool>());
    CHECK_FALSE(batched.completion_ids.is_inference());
    const auto singles = one_by_one(model, options, 1234);
    for (std::size_t b = 0; b < singles.size(); ++b) {
      INFO("row " << b);
      CHECK(torch::equal(batched.completion_ids[static_cast<int64_t>(b)], singles[b]));
    }
    // Recomputing the whole sequence at each step gives the same tokens as the KV cache.
    options.use_cache = false;
    CHECK(torch::equal(grpo::generate(model, ids, mask, options).completion_ids, batched.completion_ids));
  }
}

TEST_CASE("sampled generation is reproducible with a seed and changes with it", "[generation]") {
  grpo::LlamaModel model(grpo::testing::tiny_gqa());
  const auto [ids, mask] = grpo::testing::left_pad(prompts);
  grpo::GenerationOptions options;
  options.max_new_tokens = 16;
  options.seed = 7;
  const auto a = grpo::generate(model, ids, mask, options);
  const auto b = grpo::generate(model, ids, mask, options);
  CHECK(torch::equal(a.completion_ids, b.completion_ids));
  options.seed = 8;
  CHECK_FALSE(torch::equal(grpo::generate(model, ids, mask, options).completion_ids, a.completion_ids));
  // Without a seed, torch::manual_seed governs the draw.
  options.seed.reset();
  torch::manual_seed(3);
  const auto c = grpo::generate(model, ids, mask, options);
  torch::manual_seed(3);
  CHECK(torch::equal(grpo::generate(model, ids, mask, options).completion_ids, c.completion_ids));
}

TEST_CASE("generation stops rows at EOS or stop tokens, pads after them and flags the rest as truncated",
          "[generation]") {
  grpo::LlamaModel model(grpo::testing::tiny_gqa());
  const auto [ids, mask] = grpo::testing::left_pad(prompts);
  grpo::GenerationOptions options;
  options.max_new_tokens = 10;
  options.do_sample = false;
  options.pad_token_id = 36;
  const auto free_run = grpo::generate(model, ids, mask, options).completion_ids;
  // Make the third greedy token of row 0 the EOS; every row then ends at its first occurrence (if any).
  const auto eos = free_run[0][2].item<int64_t>();
  options.eos_token_ids = {eos};
  const auto stopped = grpo::generate(model, ids, mask, options);
  int64_t longest = 0;
  for (int64_t b = 0; b < 3; ++b) {
    INFO("row " << b);
    int64_t expected_length = 10;
    for (int64_t t = 0; t < 10; ++t) {
      if (free_run[b][t].item<int64_t>() == eos) {
        expected_length = t + 1;
        break;
      }
    }
    longest = std::max(longest, expected_length);
    CHECK(stopped.lengths[b].item<int64_t>() == expected_length);
    CHECK(stopped.truncated[b].item<bool>() == (expected_length == 10 && free_run[b][9].item<int64_t>() != eos));
  }
  CHECK(stopped.lengths[0].item<int64_t>() <= 3);
  REQUIRE(stopped.completion_ids.size(1) == longest);
  for (int64_t b = 0; b < 3; ++b) {
    const auto n = stopped.lengths[b].item<int64_t>();
    CHECK(torch::equal(stopped.completion_ids[b].slice(0, 0, n), free_run[b].slice(0, 0, n)));
    CHECK((stopped.completion_ids[b].slice(0, n) == 36).all().item<bool>());
    CHECK(stopped.completion_mask[b].sum().item<int64_t>() == n);
  }
  // A stop token acts like EOS.
  options.eos_token_ids.clear();
  options.stop_token_ids = {eos};
  CHECK(torch::equal(grpo::generate(model, ids, mask, options).lengths, stopped.lengths));
  options.max_new_tokens = 0;
  CHECK(grpo::generate(model, ids, mask, options).completion_ids.sizes() == torch::IntArrayRef({3, 0}));
  options.top_p = 1.5;
  CHECK_THROWS_WITH(grpo::generate(model, ids, mask, options), grpo_test::Contains("top_p"));
}

TEST_CASE("top_k, top_p, min_p and repetition_penalty act as specified on fixed distributions", "[sampling]") {
  // p = [0.5, 0.2, 0.15, 0.1, 0.05]
  const auto logits = torch::log(torch::tensor({0.5, 0.2, 0.15, 0.1, 0.05}, torch::kDouble)).unsqueeze(0);
  using V = std::vector<bool>;
  CHECK(kept(grpo::top_k_filter(logits, 2)) == V{true, true, false, false, false});
  CHECK(kept(grpo::top_k_filter(logits, 0)) == V{true, true, true, true, true});
  CHECK(kept(grpo::top_k_filter(torch::tensor({1.0, 2.0, 2.0, 0.5}).unsqueeze(0), 2)) == V{false, true, true, false});
  CHECK(kept(grpo::top_p_filter(logits, 0.69)) == V{true, true, false, false, false});
  CHECK(kept(grpo::top_p_filter(logits, 0.71)) == V{true, true, true, false, false});
  CHECK(kept(grpo::top_p_filter(logits, 0.3)) == V{true, false, false, false, false});
  CHECK(kept(grpo::top_p_filter(logits.flip(1), 0.3)) == V{false, false, false, false, true});  // order-free
  CHECK(kept(grpo::top_p_filter(logits, 1.0)) == V{true, true, true, true, true});
  CHECK(kept(grpo::min_p_filter(logits, 0.3)) == V{true, true, true, false, false});  // p >= 0.15
  CHECK(kept(grpo::min_p_filter(logits, 0.5)) == V{true, false, false, false, false});
  CHECK(kept(grpo::min_p_filter(logits, 0.0)) == V{true, true, true, true, true});
  // Kept logits are unchanged.
  const auto filtered = grpo::top_k_filter(logits, 3);
  CHECK(torch::equal(filtered.slice(1, 0, 3), logits.slice(1, 0, 3)));

  const auto raw = torch::tensor({2.0, -1.0, 3.0, 0.5}).unsqueeze(0);
  const auto seen = torch::tensor({true, true, false, false}).unsqueeze(0);
  CHECK(torch::allclose(grpo::apply_repetition_penalty(raw, seen, 2.0),
                        torch::tensor({1.0, -2.0, 3.0, 0.5}).unsqueeze(0)));
  CHECK(torch::equal(grpo::apply_repetition_penalty(raw, seen, 1.0), raw));

  // The per-row sampler follows the distribution and never draws a removed token.
  std::vector<std::mt19937_64> rngs;
  for (uint64_t b = 0; b < 4000; ++b) rngs.emplace_back(grpo::row_seed(99, b));
  const auto probs = torch::softmax(grpo::top_k_filter(logits, 4), -1).expand({4000, 5});
  const auto draws = grpo::sample_rows(probs, rngs);
  const auto freq = torch::bincount(draws, {}, 5).to(torch::kDouble) / 4000.0;
  CHECK(freq[4].item<double>() == 0.0);
  CHECK(
      torch::allclose(freq.slice(0, 0, 4), (torch::tensor({0.5, 0.2, 0.15, 0.1}) / 0.95).to(torch::kDouble), 0, 0.03));
}
