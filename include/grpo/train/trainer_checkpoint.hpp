#pragma once
// A trainer checkpoint directory (written atomically, train/checkpoint.hpp): model.safetensors, reference.safetensors
// (beta != 0), optimizer.pt, trainer_tensors.safetensors (LibTorch's CPU generator state, the generation buffer) and
// trainer_state.json (progress, sampler position, config, generation count, buffer metadata). Reading loads and
// checks everything before anything is applied.

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "grpo/data/sampler.hpp"
#include "grpo/detail/atomic_file.hpp"
#include "grpo/detail/tensor_checks.hpp"
#include "grpo/distributed/process_group.hpp"
#include "grpo/error.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/train/buffer.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/policy.hpp"
#include "grpo/train/state.hpp"

namespace grpo {

namespace detail {

// State of LibTorch's default CPU generator (dropout, torch::rand in user code), saved in checkpoints.
inline torch::Tensor cpu_generator_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}
inline void set_cpu_generator_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// Named parameters of a model: HF-style names for torch::nn::Module, "parameters.<i>" otherwise.
template <class M>
TensorMap named_parameters_of(M& model) {
  TensorMap out;
  if constexpr (std::is_base_of_v<torch::nn::Module, M>) {
    for (const auto& item : model.named_parameters()) out[item.key()] = item.value();
  } else {
    std::size_t i = 0;
    for (const auto& p : model.parameters()) out["parameters." + std::to_string(i++)] = p;
  }
  return out;
}

// Checks that `stored` has every parameter of the model with its shape; throws naming the file and the tensor.
template <class M>
void check_parameters(M& model, const TensorMap& stored, const std::string& path) {
  for (const auto& [name, param] : named_parameters_of(model)) {
    const auto it = stored.find(name);
    if (it == stored.end()) {
      throw RuntimeError("grpo::GRPOTrainer::resume_from_checkpoint: " + path + " lacks tensor " + name);
    }
    if (it->second.sizes() != param.sizes()) {
      throw RuntimeError("grpo::GRPOTrainer::resume_from_checkpoint: " + path + ": tensor " + name + " has shape " +
                         shape_string(it->second) + " but the model's is " + shape_string(param));
    }
  }
}

// Copies `stored` into the model's parameters after check_parameters.
template <class M>
void load_parameters(M& model, const TensorMap& stored, const std::string& path) {
  check_parameters(model, stored, path);
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : named_parameters_of(model)) {
    auto target = param;
    target.copy_(stored.at(name).to(param.options()));
  }
}

}  // namespace detail

/// Where a run stands, besides the tensors: what trainer_state.json holds.
struct TrainerProgress {
  TrainerState state;
  SamplerState sampler;
  /// Training generation rounds made so far (they seed the next ones).
  uint64_t generation_calls = 0;
};

/// Writes checkpoint `dir` atomically. With a process group of P > 1 ranks a collective (the buffer's per-rank
/// log-probs are gathered) after which rank 0 alone writes; the replicas' weights and optimizer states are equal.
template <class Model>
void write_trainer_checkpoint(const std::string& dir, Policy<Model>& policy,
                              const std::optional<Reference<Model>>& reference, torch::optim::Optimizer& optimizer,
                              const GenerationBuffer& buffer, const TrainerProgress& progress, const GRPOConfig& config,
                              ProcessGroup* group = nullptr) {
  namespace fs = std::filesystem;
  TensorMap extra = buffer.tensors(group);
  if (group != nullptr && group->rank() != 0) return;
  write_checkpoint_dir(dir, [&](const std::string& tmp) {
    TensorMap weights;
    for (const auto& [name, tensor] : detail::named_parameters_of(policy.model())) weights[name] = tensor.detach();
    write_safetensors((fs::path(tmp) / "model.safetensors").string(), weights);
    if (reference) {
      TensorMap ref;
      for (const auto& [name, tensor] : detail::named_parameters_of(reference->model())) ref[name] = tensor.detach();
      write_safetensors((fs::path(tmp) / "reference.safetensors").string(), ref);
    }
    torch::save(optimizer, (fs::path(tmp) / "optimizer.pt").string());
    extra["rng/cpu"] = detail::cpu_generator_state();
    write_safetensors((fs::path(tmp) / "trainer_tensors.safetensors").string(), extra);
    nlohmann::json meta;
    meta["trainer_state"] = progress.state;
    meta["sampler_state"] = progress.sampler;
    meta["config"] = config;
    meta["generation_calls"] = progress.generation_calls;
    meta["buffer"] = buffer.meta();
    detail::atomic_write_file((fs::path(tmp) / "trainer_state.json").string(), meta.dump(2),
                              "grpo::write_trainer_checkpoint: ");
  });
}

/// What a checkpoint holds, read into memory (nothing applied yet).
struct TrainerCheckpoint {
  std::string dir;
  nlohmann::json meta;
  GRPOConfig config;
  TrainerProgress progress;
  TensorMap model, reference, extra;
};

/// Reads checkpoint `dir` whole after verifying it against its manifest (verify_checkpoint); errors name the file.
inline TrainerCheckpoint read_trainer_checkpoint(const std::string& dir, bool with_reference) {
  namespace fs = std::filesystem;
  verify_checkpoint(dir);
  TrainerCheckpoint c;
  c.dir = dir;
  const auto state_path = (fs::path(dir) / "trainer_state.json").string();
  std::ifstream in(state_path);
  if (!in) throw RuntimeError("grpo::read_trainer_checkpoint: cannot read " + state_path);
  try {
    c.meta = nlohmann::json::parse(in);
    c.config = c.meta.at("config").get<GRPOConfig>();
    c.progress.state = c.meta.at("trainer_state").get<TrainerState>();
    c.progress.sampler = c.meta.at("sampler_state").get<SamplerState>();
    c.progress.generation_calls = c.meta.at("generation_calls").get<uint64_t>();
  } catch (const std::exception& e) {
    throw RuntimeError("grpo::read_trainer_checkpoint: " + state_path + " is not a valid trainer state: " + e.what());
  }
  c.model = read_safetensors((fs::path(dir) / "model.safetensors").string()).tensors;
  if (with_reference) c.reference = read_safetensors((fs::path(dir) / "reference.safetensors").string()).tensors;
  c.extra = read_safetensors((fs::path(dir) / "trainer_tensors.safetensors").string()).tensors;
  if (c.extra.count("rng/cpu") == 0) {
    throw RuntimeError("grpo::read_trainer_checkpoint: " + dir + "/trainer_tensors.safetensors lacks rng/cpu");
  }
  return c;
}

}  // namespace grpo
