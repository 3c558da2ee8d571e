#pragma once
// Activation (gradient) checkpointing for one block of a model: the forward runs without recording the block's
// internals; the backward runs the block again with autograd on and differentiates that (torch.utils.checkpoint's
// non-reentrant idea, for LibTorch's C++ API, which has none). The block must be deterministic (dropout off, as
// GRPO's policy is) and its only differentiable input is `input`; the gradients of the block's parameters are
// accumulated into their .grad as a plain backward would. The recomputation runs under the autocast (mixed
// precision) state of the forward, as torch.utils.checkpoint's does, so that it computes the same values.

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/types.h>

#include <functional>
#include <utility>
#include <vector>

#include "grpo/detail/autocast.hpp"

namespace grpo::detail {

// What the backward needs besides the saved input: the block and its parameters.
struct CheckpointedBlock : torch::CustomClassHolder {
  std::function<torch::Tensor(const torch::Tensor&)> run;
  std::vector<torch::Tensor> parameters;
  AutocastState cpu_autocast, cuda_autocast;  // at the forward
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const c10::intrusive_ptr<CheckpointedBlock>& block) {
    ctx->save_for_backward({input});
    ctx->saved_data["block"] = c10::IValue::make_capsule(block);
    torch::NoGradGuard no_grad;
    return block->run(input);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto block = c10::static_intrusive_pointer_cast<CheckpointedBlock>(ctx->saved_data["block"].toCapsule());
    const torch::Tensor input = saved[0].detach().requires_grad_(true);
    torch::Tensor output;
    {
      AutocastScope cpu(c10::DeviceType::CPU, block->cpu_autocast);
      AutocastScope cuda(c10::DeviceType::CUDA, block->cuda_autocast);
      torch::AutoGradMode enable(true);
      output = block->run(input);
    }
    std::vector<torch::Tensor> wrt = {input};
    std::vector<std::size_t> trainable;
    for (std::size_t i = 0; i < block->parameters.size(); ++i) {
      if (block->parameters[i].requires_grad()) {
        trainable.push_back(i);
        wrt.push_back(block->parameters[i]);
      }
    }
    const auto grads = torch::autograd::grad({output}, wrt, {grad_outputs[0]}, /*retain_graph=*/false,
                                             /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t k = 0; k < trainable.size(); ++k) {
      const auto& g = grads[k + 1];
      if (!g.defined()) continue;
      auto& parameter = block->parameters[trainable[k]];
      if (parameter.grad().defined()) {
        parameter.mutable_grad().add_(g);
      } else {
        parameter.mutable_grad() = g.clone();
      }
    }
    return {grads[0], torch::Tensor()};
  }
};

// run(input), with the activations inside `run` recomputed in the backward instead of kept (when autograd is on
// and `input` requires grad; otherwise a plain call).
inline torch::Tensor checkpointed(std::function<torch::Tensor(const torch::Tensor&)> run, const torch::Tensor& input,
                                  std::vector<torch::Tensor> parameters) {
  if (!torch::GradMode::is_enabled() || !input.requires_grad()) return run(input);
  auto block = c10::make_intrusive<CheckpointedBlock>();
  block->run = std::move(run);
  block->parameters = std::move(parameters);
  block->cpu_autocast = autocast_state(c10::DeviceType::CPU);
  block->cuda_autocast = autocast_state(c10::DeviceType::CUDA);
  return CheckpointFunction::apply(input, block);
}

}  // namespace grpo::detail
