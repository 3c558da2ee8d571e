#pragma once
// A reward model (a torch module with a scalar head over token ids) as a batch RewardFunction.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "grpo/error.hpp"
#include "grpo/rewards/reward_function.hpp"

namespace grpo {

/// How texts reach the reward model.
struct RewardModelOptions {
  /// Name of the RewardFunction (metrics: rewards/<name>/mean).
  std::string name = "reward_model";
  /// The reward model's tokenizer: text -> token ids. Required.
  std::function<std::vector<int64_t>(const std::string&)> encode;
  /// Id used to right-pad the batch.
  int64_t pad_token_id = 0;
  /// Completions scored per forward pass.
  int64_t batch_size = 8;
};

namespace detail {
template <class M, class = void>
struct is_reward_model : std::false_type {};
template <class M>
struct is_reward_model<
    M, std::void_t<decltype(std::declval<M&>().forward(std::declval<torch::Tensor>(), std::declval<torch::Tensor>()))>>
    : std::true_type {};

template <class M>
torch::Device module_device(M& model) {
  if constexpr (std::is_base_of_v<torch::nn::Module, M>) {
    const auto params = model.parameters();
    if (!params.empty()) return params.front().device();
  }
  return torch::kCPU;
}
}  // namespace detail

/// Wraps `model` as a RewardFunction. The text scored is prompt + completion (as TRL does for plain text),
/// tokenized with options.encode and right-padded; `model.forward(input_ids [B,L], attention_mask [B,L])` returns
/// one scalar per position ([B,L] or [B,L,1]) and the score is the one at the last non-pad token. Runs without
/// gradient, in batches of options.batch_size, on the model's device.
template <class Model>
RewardFunction reward_model_function(std::shared_ptr<Model> model, RewardModelOptions options) {
  static_assert(detail::is_reward_model<Model>::value,
                "grpo::reward_model_function: the model needs `torch::Tensor forward(const torch::Tensor& "
                "input_ids, const torch::Tensor& attention_mask)` returning [B,L] or [B,L,1] scores");
  if (!model) throw InvalidArgument("grpo::reward_model_function: model is null");
  if (!options.encode) {
    throw InvalidArgument("grpo::reward_model_function: options.encode (the tokenizer) is required");
  }
  if (options.batch_size < 1) throw InvalidArgument("grpo::reward_model_function: batch_size must be >= 1");
  if constexpr (std::is_base_of_v<torch::nn::Module, Model>) model->eval();
  const std::string name = options.name;
  auto score = [model, options = std::move(options)](const RewardInputs& inputs) {
    torch::NoGradGuard no_grad;
    const auto device = detail::module_device(*model);
    std::vector<double> rewards(inputs.size());
    for (std::size_t start = 0; start < inputs.size(); start += static_cast<std::size_t>(options.batch_size)) {
      const std::size_t stop = std::min(inputs.size(), start + static_cast<std::size_t>(options.batch_size));
      std::vector<std::vector<int64_t>> encoded;
      std::size_t longest = 0;
      for (std::size_t i = start; i < stop; ++i) {
        encoded.push_back(options.encode(inputs.prompts[i] + inputs.completions[i]));
        if (encoded.back().empty()) {
          throw InvalidArgument("grpo::reward_model_function: reward model \"" + options.name +
                                "\": prompt + completion of sample " + std::to_string(i) + " encodes to no tokens");
        }
        longest = std::max(longest, encoded.back().size());
      }
      const auto rows = static_cast<int64_t>(encoded.size());
      auto ids = torch::full({rows, static_cast<int64_t>(longest)}, options.pad_token_id, torch::kLong);
      auto mask = torch::zeros({rows, static_cast<int64_t>(longest)}, torch::kLong);
      for (int64_t r = 0; r < rows; ++r) {
        const auto& row = encoded[static_cast<std::size_t>(r)];
        const auto length = static_cast<int64_t>(row.size());
        ids[r].slice(0, 0, length).copy_(torch::tensor(row, torch::kLong));
        mask[r].slice(0, 0, length).fill_(1);
      }
      torch::Tensor scores = model->forward(ids.to(device), mask.to(device));
      if (scores.dim() == 3 && scores.size(2) == 1) scores = scores.squeeze(2);
      if (scores.dim() != 2 || scores.size(0) != rows || scores.size(1) != static_cast<int64_t>(longest)) {
        std::ostringstream shape;
        shape << scores.sizes();
        throw InvalidArgument("grpo::reward_model_function: reward model \"" + options.name +
                              "\" returned scores of shape " + shape.str() + "; expected [B,L] or [B,L,1] with B = " +
                              std::to_string(rows) + ", L = " + std::to_string(longest));
      }
      const auto last = (mask.sum(1) - 1).to(device).unsqueeze(1);
      const torch::Tensor picked = scores.gather(1, last).squeeze(1).to(torch::kCPU, torch::kDouble).contiguous();
      const double* data = picked.data_ptr<double>();
      for (int64_t r = 0; r < rows; ++r) rewards[start + static_cast<std::size_t>(r)] = data[r];
    }
    return rewards;
  };
  return RewardFunction(name, std::move(score));
}

}  // namespace grpo
