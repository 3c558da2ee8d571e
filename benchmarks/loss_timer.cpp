// Times grpo::policy_loss (forward + backward + clip metrics, default options: dapo, epsilon 0.2) on the loss
// inputs that bench_peer_compare wrote to DIR (inputs.safetensors, run.json), and prints one JSON object:
//   {"loss": {"<B>x<T>": {"median_ms": ..., "loss": ...}}, "build": "<flags>"}
// Built twice, with the project's Release flags (-O3) and with RelWithDebInfo's (-O2 -g): the fused loss is a
// header, so it runs with the optimisation level of the program that includes it, and bench_peer_compare runs both
// builds beside the Python peer in one run.
//
// Usage: bench_loss_timer DIR
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <grpo/core/loss.hpp>
#include <grpo/models/safetensors.hpp>

#ifndef GRPO_LOSS_TIMER_BUILD
#define GRPO_LOSS_TIMER_BUILD "unknown"
#endif

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int run(const std::string& dir) {
  nlohmann::json info;
  std::ifstream(dir + "/run.json") >> info;
  torch::set_num_threads(info.at("threads").get<int>());
  const int reps = info.value("loss_reps", info.at("reps").get<int>());
  const auto inputs = grpo::read_safetensors(dir + "/inputs.safetensors").tensors;
  nlohmann::json out = {{"build", GRPO_LOSS_TIMER_BUILD}, {"loss", nlohmann::json::object()}};
  for (const auto& shape : info.at("loss_shapes")) {
    const std::string key = std::to_string(shape[0].get<int64_t>()) + "x" + std::to_string(shape[1].get<int64_t>());
    grpo::LossBatch batch;
    batch.old_logps = inputs.at(key + "/old_logps");
    batch.advantages = inputs.at(key + "/advantages");
    batch.mask = inputs.at(key + "/mask");
    batch.num_items_in_batch = batch.mask.sum().item<double>();
    const auto& base = inputs.at(key + "/logps");
    const grpo::LossOptions options;
    grpo::LossResult result;
    std::vector<double> samples;
    for (int i = -2; i < reps; ++i) {               // two warm-up calls
      batch.logps = base.clone().requires_grad_();  // a fresh leaf, outside the timed region
      const auto start = std::chrono::steady_clock::now();
      result = grpo::policy_loss(batch, options);
      result.loss.backward();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (i >= 0) samples.push_back(seconds);
    }
    out["loss"][key] = {{"median_ms", 1e3 * median(samples)}, {"loss", result.loss.item<double>()}};
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR (written by bench_peer_compare)\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}
