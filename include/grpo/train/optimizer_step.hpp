#pragma once
// The optimizer step every gradient_accumulation_steps micro-steps: clip the global gradient norm, set the
// scheduled learning rate on every parameter group, step, and release the gradients (not zero-filled tensors:
// the next backward allocates them again, and between steps they take no memory). Works with any
// torch::optim::Optimizer (AdamW by default in the trainer).

#include <limits>
#include <memory>
#include <vector>

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "grpo/train/config.hpp"

namespace grpo {

/// AdamW with the config's learning rate, betas, epsilon and weight decay (Hugging Face's default optimizer).
inline std::unique_ptr<torch::optim::Optimizer> make_adamw(const std::vector<torch::Tensor>& parameters,
                                                           const GRPOConfig& config) {
  torch::optim::AdamWOptions options(config.learning_rate);
  options.betas({config.adam_beta1, config.adam_beta2}).eps(config.adam_epsilon).weight_decay(config.weight_decay);
  return std::make_unique<torch::optim::AdamW>(parameters, options);
}

/// Clips the gradients of `parameters` to max_grad_norm (0: no clipping), sets `learning_rate`, steps and
/// releases the gradients; returns the gradient norm before clipping.
inline double optimizer_step(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& parameters,
                             double max_grad_norm, double learning_rate) {
  std::vector<torch::Tensor> params = parameters;
  const double grad_norm = max_grad_norm > 0
                               ? torch::nn::utils::clip_grad_norm_(params, max_grad_norm)
                               : torch::nn::utils::clip_grad_norm_(params, std::numeric_limits<double>::infinity());
  for (auto& group : optimizer.param_groups()) group.options().set_lr(learning_rate);
  optimizer.step();
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  return grad_norm;
}

}  // namespace grpo
