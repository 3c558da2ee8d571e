// Torch-free use of grpo-cpp: group advantages of two prompts with two completions each, and a byte-level BPE
// tokenizer (which links PCRE2 through grpo::core).
#include <cmath>
#include <cstdio>
#include <string>

#include <grpo/core/advantages.hpp>
#include <grpo/rewards/inputs.hpp>
#include <grpo/rewards/plugin.hpp>
#include <grpo/rewards/scoring.hpp>
#include <grpo/tokenizers/bpe_tokenizer.hpp>

namespace {

// A byte-level BPE over the 256 bytes with the merges h+i and ' '+hi ("Ġhi"), and an end token.
bool tokenizer_works() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto code_points = grpo::detail::byte_level_code_points();
  for (int b = 0; b < 256; ++b) {
    std::string token;
    grpo::detail::utf8::append(token, code_points[static_cast<std::size_t>(b)]);
    vocab[token] = b;
  }
  vocab["hi"] = 256;
  vocab["\xC4\xA0hi"] = 257;  // "Ġhi"
  const nlohmann::json tokenizer = {{"added_tokens", {{{"id", 258}, {"content", "<|end|>"}, {"special", true}}}},
                                    {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                                    {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h i", "\xC4\xA0 hi"}}}}};
  const auto bpe = grpo::BpeTokenizer::from_json(tokenizer, {{"eos_token", "<|end|>"}});
  const auto ids = bpe.encode("hi hi!<|end|>");
  std::printf("consumer_core: BPE ids of \"hi hi!<|end|>\": %zu tokens\n", ids.size());
  return ids == std::vector<int64_t>{256, 257, '!', 258} && bpe.decode(ids) == "hi hi!" && bpe.eos_token_id() == 258;
}

// The plugin built by grpo_add_reward_plugin, loaded and scored: lengths times the option "scale".
bool plugin_works() {
  const auto reward = grpo::load_reward_plugin(CONSUMER_PLUGIN, "make_consumer_reward", {{"scale", 2.0}});
  grpo::RewardScorer scorer({reward});
  const auto scores = scorer.score(grpo::make_reward_inputs({{{"prompt", "p"}}}, {"abc", "hello"}, 2));
  std::printf("consumer_core: plugin rewards %.1f %.1f\n", scores.rewards_per_func(0, 0),
              scores.rewards_per_func(1, 0));
  return reward.name() == "consumer_length" && scores.rewards_per_func(0, 0) == 6.0 &&
         scores.rewards_per_func(1, 0) == 10.0;
}

}  // namespace

int main() {
  Eigen::MatrixXd rewards(4, 1);
  rewards << 1.0, 0.0, 2.0, 2.0;
  grpo::AdvantageOptions options;
  options.num_generations = 2;
  const auto result = grpo::compute_advantages(rewards, options);
  // Group 1: mean 0.5, std sqrt(0.5); group 2 has zero spread.
  const double expected = 0.5 / (std::sqrt(0.5) + 1e-4);
  const bool ok = std::abs(result.advantages[0] - expected) < 1e-12 && result.advantages[2] == 0.0 &&
                  result.zero_std[2] && tokenizer_works() && plugin_works();
  std::printf("consumer_core: advantages %.6f %.6f %.6f %.6f -> %s\n", result.advantages[0], result.advantages[1],
              result.advantages[2], result.advantages[3], ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
