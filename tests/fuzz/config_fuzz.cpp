// libFuzzer target: grpo::load_config (from memory: JSON, strict from_json of GRPOConfig, validate()). A config
// that loads must also survive save_config's text: written with to_json and read back, it loads to the same JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "fuzz_support.hpp"
#include "grpo/error.hpp"
#include "grpo/train/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  grpo::GRPOConfig config;
  try {
    std::istringstream in(grpo_fuzz::as_text(data, size));
    config = grpo::detail::parse_config(in, "fuzz.json");
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
    return 0;
  }
  // What save_config writes, loaded back as load_config would.
  const std::string saved = nlohmann::json(config).dump(2) + "\n";
  std::istringstream again(saved);
  grpo::GRPOConfig reloaded;
  try {
    reloaded = grpo::detail::parse_config(again, "saved.json");
  } catch (const grpo::Error& e) {
    std::fprintf(stderr, "%s\nsaved config:\n%s", e.what(), saved.c_str());
    grpo_fuzz::require(false, "a config that validates loads back from what save_config writes");
  }
  grpo_fuzz::require(nlohmann::json(reloaded).dump() == nlohmann::json(config).dump(),
                     "a saved config loads back to the same values");
  // The derived quantities the trainer divides by.
  (void)config.generation_batch_size();
  (void)config.prompts_per_generation();
  (void)config.micro_steps_per_generation();
  return 0;
}
