// Generation: batched left-padded == one by one, seeds, EOS / stop handling (the model's EOS ids by default), the
// KV cache against recomputation, the logits filters on fixed distributions, and text in / text out.
#include <torch/script.h>
#include <torch/types.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "grpo/generation/generate.hpp"
#include "grpo/generation/sampling.hpp"
#include "grpo/generation/text.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/torchscript.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "models/model_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

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

// A LlamaModel built from `config` with the weights of `source` (same shapes; only the configuration differs).
grpo::LlamaModel copy_with_config(grpo::LlamaModel& source, const grpo::LlamaConfig& config) {
  grpo::LlamaModel copy(config);
  torch::NoGradGuard no_grad;
  auto source_parameters = source.named_parameters();
  for (auto& item : copy.named_parameters()) item.value().copy_(source_parameters[item.key()]);
  return copy;
}

// The length each row of a free run would have if `eos` ended it (max_new_tokens when it never occurs).
std::vector<int64_t> lengths_ending_at(const torch::Tensor& free_run, int64_t eos) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < free_run.size(0); ++b) {
    int64_t length = free_run.size(1);
    for (int64_t t = 0; t < free_run.size(1); ++t) {
      if (free_run[b][t].item<int64_t>() == eos) {
        length = t + 1;
        break;
      }
    }
    out.push_back(length);
  }
  return out;
}

std::vector<int64_t> to_vector(const torch::Tensor& lengths) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < lengths.size(0); ++b) out.push_back(lengths[b].item<int64_t>());
  return out;
}

// A CharTokenizer whose EOS id is chosen by the test (to make the tiny model's own output an EOS).
struct CharTokenizerWithEos {
  grpo::CharTokenizer chars;
  int64_t eos;
  std::vector<int64_t> encode(const std::string& text) const { return chars.encode(text); }
  std::string decode(const std::vector<int64_t>& ids) const { return chars.decode(ids); }
  int64_t vocab_size() const { return chars.vocab_size(); }
  int64_t pad_token_id() const { return chars.pad_token_id(); }
  int64_t eos_token_id() const { return eos; }
};

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
  options.eos_token_ids = std::vector<int64_t>{};
  options.stop_token_ids = {eos};
  CHECK(torch::equal(grpo::generate(model, ids, mask, options).lengths, stopped.lengths));
  options.max_new_tokens = 0;
  CHECK(grpo::generate(model, ids, mask, options).completion_ids.sizes() == torch::IntArrayRef({3, 0}));
  options.top_p = 1.5;
  CHECK_THROWS_WITH(grpo::generate(model, ids, mask, options), grpo_test::Contains("top_p"));
}

TEST_CASE("generation stops at the model's own EOS ids unless the options say otherwise", "[generation]") {
  grpo::LlamaModel plain(grpo::testing::tiny_gqa());  // config without eos_token_id
  const auto [ids, mask] = grpo::testing::left_pad(prompts);
  grpo::GenerationOptions options;
  options.max_new_tokens = 10;
  options.do_sample = false;
  REQUIRE_FALSE(options.eos_token_ids.has_value());  // the default: the model's
  const auto free_run = grpo::generate(plain, ids, mask, options).completion_ids;
  REQUIRE(free_run.size(1) == 10);
  const auto eos = free_run[0][2].item<int64_t>();
  const auto expected = lengths_ending_at(free_run, eos);

  auto config = grpo::testing::tiny_gqa();
  config.eos_token_ids = {eos};
  auto model = copy_with_config(plain, config);
  CHECK(grpo::resolve_eos_token_ids(model, options) == std::vector<int64_t>{eos});
  CHECK(grpo::resolve_eos_token_ids(plain, options).empty());
  const auto stopped = grpo::generate(model, ids, mask, options);  // the caller passes no EOS
  CHECK(to_vector(stopped.lengths) == expected);
  CHECK(stopped.lengths[0].item<int64_t>() <= 3);
  CHECK_FALSE(stopped.truncated[0].item<bool>());
  CHECK(torch::equal(stopped.completion_ids[0].slice(0, 0, stopped.lengths[0].item<int64_t>()),
                     free_run[0].slice(0, 0, stopped.lengths[0].item<int64_t>())));

  // An explicit empty list turns EOS off; explicit ids replace the model's.
  options.eos_token_ids = std::vector<int64_t>{};
  CHECK(grpo::generate(model, ids, mask, options).lengths.equal(torch::full({3}, 10, torch::kLong)));
  const auto other = free_run[1][0].item<int64_t>();
  options.eos_token_ids = std::vector<int64_t>{other};
  CHECK(to_vector(grpo::generate(model, ids, mask, options).lengths) == lengths_ending_at(free_run, other));

  // The TorchScript adapter reads an eos_token_id attribute (int or list) or takes the ids from the caller.
  const int64_t vocab = 13;
  torch::jit::Module m("lm");
  m.register_parameter("embed", torch::randn({vocab, 8}), false);
  m.register_parameter("head", torch::randn({vocab, 8}), false);
  m.define(R"JIT(
def forward(self, input_ids, attention_mask):
    h = torch.embedding(self.embed, input_ids) * attention_mask.unsqueeze(-1).to(self.embed.dtype)
    return torch.matmul(torch.cumsum(h, dim=1), self.head.t())
)JIT");
  grpo::GenerationOptions greedy;
  greedy.max_new_tokens = 6;
  greedy.do_sample = false;
  const auto [small_ids, small_mask] = grpo::testing::left_pad({{1, 2, 3}, {4}, {5, 6}});
  grpo::TorchScriptLM without(m);
  CHECK(without.eos_token_ids().empty());
  const auto script_run = grpo::generate(without, small_ids, small_mask, greedy).completion_ids;
  REQUIRE(script_run.size(1) == 6);
  const auto script_eos = script_run[2][1].item<int64_t>();
  m.register_attribute("eos_token_id", c10::IntType::get(), script_eos);
  grpo::TorchScriptLM with_int(m);
  CHECK(with_int.eos_token_ids() == std::vector<int64_t>{script_eos});
  CHECK(to_vector(grpo::generate(with_int, small_ids, small_mask, greedy).lengths) ==
        lengths_ending_at(script_run, script_eos));
  CHECK(with_int.clone()->eos_token_ids() == std::vector<int64_t>{script_eos});
  without.set_eos_token_ids({script_eos});
  CHECK(to_vector(grpo::generate(without, small_ids, small_mask, greedy).lengths) ==
        lengths_ending_at(script_run, script_eos));
  torch::jit::Module listed("lm_list");
  listed.register_parameter("embed", torch::randn({vocab, 8}), false);
  listed.register_parameter("head", torch::randn({vocab, 8}), false);
  listed.register_attribute("eos_token_id", c10::ListType::ofInts(), c10::List<int64_t>({7, 9}));
  listed.define(R"JIT(
def forward(self, input_ids, attention_mask):
    return torch.matmul(torch.embedding(self.embed, input_ids), self.head.t())
)JIT");
  CHECK(grpo::TorchScriptLM(listed).eos_token_ids() == std::vector<int64_t>{7, 9});
  torch::jit::Module wrong("lm_wrong");
  wrong.register_attribute("eos_token_id", c10::StringType::get(), std::string("</s>"));
  wrong.define("def forward(self, input_ids, attention_mask):\n    return input_ids\n");
  CHECK_THROWS_WITH(grpo::TorchScriptLM(wrong), grpo_test::Contains("eos_token_id attribute must be an int"));
}

TEST_CASE("generate_text turns prompt strings into decoded completions, like generate() on padded ids",
          "[generation]") {
  const grpo::CharTokenizer chars("0123456789+= ");
  auto config = grpo::LlamaConfig::tiny(chars.vocab_size());
  grpo::LlamaModel plain(config);
  const std::vector<std::string> texts = {"12+7=", "3", "100+250="};
  grpo::GenerationOptions options;
  options.max_new_tokens = 8;
  options.do_sample = false;
  options.eos_token_ids = std::vector<int64_t>{};  // first a free run: no EOS at all

  const auto free = grpo::generate_text(plain, chars, texts, options);
  REQUIRE(free.completions.size() == 3);
  REQUIRE(free.completion_ids.size() == 3);
  REQUIRE(free.truncated.size() == 3);
  std::vector<std::vector<int64_t>> encoded;
  for (const auto& t : texts) encoded.push_back(chars.encode(t));
  const auto [ids, mask] = grpo::testing::left_pad(encoded, chars.pad_token_id());
  const auto reference = grpo::generate(plain, ids, mask, options);
  for (int64_t b = 0; b < 3; ++b) {
    INFO("prompt " << b);
    const auto& row = free.completion_ids[static_cast<std::size_t>(b)];
    CHECK(row.size() == 8);
    CHECK(free.truncated[static_cast<std::size_t>(b)]);
    CHECK(torch::equal(torch::tensor(row, torch::kLong), reference.completion_ids[b]));
    CHECK(free.completions[static_cast<std::size_t>(b)] == chars.decode(row));
    // Padding does not leak into a row: each prompt alone gives the same completion.
    const auto alone = grpo::generate_text(plain, chars, {texts[static_cast<std::size_t>(b)]}, options);
    CHECK(alone.completion_ids[0] == row);
    CHECK(alone.completions[0] == free.completions[static_cast<std::size_t>(b)]);
  }

  // The model's EOS ends a row and is stripped from the text but kept in the ids.
  const auto eos = free.completion_ids[0][2];
  const auto expected =
      lengths_ending_at(torch::tensor(free.completion_ids[0], torch::kLong).unsqueeze(0), eos)[0];  // <= 3
  config.eos_token_ids = {eos};
  auto model = copy_with_config(plain, config);
  options.eos_token_ids.reset();  // default: the model's EOS (plus the tokenizer's)
  const auto ended = grpo::generate_text(model, chars, texts, options);
  const auto& first = ended.completion_ids[0];
  REQUIRE(static_cast<int64_t>(first.size()) == expected);
  CHECK(first.back() == eos);
  CHECK_FALSE(ended.truncated[0]);
  CHECK(ended.completions[0] == chars.decode(std::vector<int64_t>(first.begin(), first.end() - 1)));
  CHECK(ended.completions[0] + chars.decode({eos}) == chars.decode(first));  // the EOS character is not in the text
  CHECK(free.completions[0].rfind(ended.completions[0], 0) == 0);            // a prefix of the free run

  // Unset options also stop at the tokenizer's EOS; an explicit list replaces both.
  const CharTokenizerWithEos custom{chars, free.completion_ids[1][0]};
  const auto by_tokenizer = grpo::generate_text(plain, custom, texts, options);
  CHECK(by_tokenizer.completion_ids[1] == std::vector<int64_t>{custom.eos});
  CHECK(by_tokenizer.completions[1].empty());
  options.eos_token_ids = std::vector<int64_t>{};
  CHECK(grpo::generate_text(model, custom, texts, options).completion_ids == free.completion_ids);

  CHECK_THROWS_WITH(grpo::generate_text(model, chars, {}, options), grpo_test::Contains("the prompt list is empty"));
  CHECK_THROWS_WITH(grpo::generate_text(model, chars, {"1+1=", "2", ""}, options),
                    grpo_test::Contains("prompt 2 (\"\") encodes to no tokens"));
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

TEST_CASE("forward_last gives forward's last-position logits and extends the cache over every position",
          "[generation]") {
  static_assert(grpo::detail::has_forward_last<grpo::LlamaModel>::value);
  torch::manual_seed(8);
  grpo::LlamaModel model(grpo::testing::tiny_qwen2());
  const auto [ids, mask] = grpo::testing::left_pad({{3, 4, 5, 6}, {7, 8}});
  torch::NoGradGuard no_grad;
  grpo::KVCache full_cache, last_cache;
  const auto full = model.forward(ids, mask, &full_cache);
  const auto last = grpo::forward_last_logits(model, ids, mask, &last_cache);
  REQUIRE(last.sizes() == torch::IntArrayRef({2, 1, full.size(2)}));
  CHECK(torch::allclose(last, full.slice(1, 3), 1e-6, 1e-6));
  CHECK(last_cache.length == full_cache.length);
  const auto next = torch::tensor({{9}, {10}}, torch::kLong);
  const auto next_mask = torch::cat({mask, torch::ones({2, 1}, torch::kLong)}, 1);
  CHECK(torch::allclose(model.forward(next, next_mask, &last_cache), model.forward(next, next_mask, &full_cache), 1e-6,
                        1e-6));
}

TEST_CASE("grouped prompts are prefilled once and give the plain path's tokens, greedy and with a seed",
          "[generation]") {
  torch::manual_seed(12);
  grpo::LlamaModel model(grpo::testing::tiny_gqa());
  // Three prompts, each repeated G = 4 times consecutively, as GRPO's rollouts lay them out.
  std::vector<std::vector<int64_t>> rows;
  for (const auto& p : prompts) {
    for (int g = 0; g < 4; ++g) rows.push_back(p);
  }
  const auto [ids, mask] = grpo::testing::left_pad(rows);
  for (const bool sample : {false, true}) {
    INFO("sample " << sample);
    grpo::GenerationOptions options;
    options.max_new_tokens = 12;
    options.do_sample = sample;
    options.seed = 21;
    options.eos_token_ids = std::vector<int64_t>{3};
    const auto plain = grpo::generate(model, ids, mask, options);
    options.prompt_group_size = 4;
    const auto grouped = grpo::generate(model, ids, mask, options);
    CHECK(torch::equal(grouped.completion_ids, plain.completion_ids));
    CHECK(torch::equal(grouped.lengths, plain.lengths));
    if (sample) {  // the rows of a group differ: each samples with its own seed
      CHECK_FALSE(torch::equal(grouped.completion_ids[0], grouped.completion_ids[1]));
    }
  }
  grpo::GenerationOptions bad;
  bad.max_new_tokens = 2;
  bad.prompt_group_size = 5;
  CHECK_THROWS_WITH(grpo::generate(model, ids, mask, bad),
                    grpo_test::Contains("prompt_group_size 5 does not divide the 12 rows"));
  bad.prompt_group_size = 3;
  CHECK_THROWS_WITH(grpo::generate(model, ids, mask, bad),
                    grpo_test::Contains("the rows of a group hold different prompts"));
}

TEST_CASE("finished rows leave the batch without changing any row's tokens", "[generation]") {
  torch::manual_seed(13);
  grpo::LlamaModel model(grpo::testing::tiny_gqa());
  std::vector<std::vector<int64_t>> rows;
  for (int r = 0; r < 12; ++r) rows.push_back(prompts[static_cast<std::size_t>(r) % prompts.size()]);
  const auto [ids, mask] = grpo::testing::left_pad(rows);
  grpo::GenerationOptions options;
  options.max_new_tokens = 24;
  options.seed = 5;
  // A third of the vocabulary ends a row: rows finish at different steps and the batch shrinks several times.
  std::vector<int64_t> ends;
  for (int64_t id = 0; id < model.config().vocab_size; id += 3) ends.push_back(id);
  options.eos_token_ids = ends;
  const auto shrinking = grpo::generate(model, ids, mask, options);
  // Row by row (nothing to drop): the same tokens and lengths.
  for (int64_t b = 0; b < 12; ++b) {
    INFO("row " << b);
    grpo::GenerationOptions one = options;
    one.seed.reset();
    one.row_seeds = {grpo::row_seed(5, static_cast<uint64_t>(b))};
    const auto row = grpo::testing::row_tensor(rows[static_cast<std::size_t>(b)]);
    const auto alone = grpo::generate(model, row, torch::ones_like(row), one);
    const auto length = shrinking.lengths[b].item<int64_t>();
    REQUIRE(alone.lengths[0].item<int64_t>() == length);
    CHECK(torch::equal(alone.completion_ids[0].slice(0, 0, length), shrinking.completion_ids[b].slice(0, 0, length)));
  }
  const auto lengths = shrinking.lengths;
  CHECK(lengths.min().item<int64_t>() < lengths.max().item<int64_t>());  // rows did end at different steps
}
