#pragma once
// Batches shared by the loss tests.

#include <cmath>
#include <functional>

#include <torch/types.h>

#include "grpo/core/loss.hpp"

namespace grpo_test {

// B = 2, T = 3, mask [[1,1,1],[1,1,0]], advantages [1, -1], ratios exp(logp - old):
// row 0: [1, 1.5, 0.5], row 1: [0.7, 1.1, (pad) 1]. Values worked out by hand in loss_values_test.cpp.
inline grpo::LossBatch small_batch(torch::ScalarType dtype) {
  const auto opts = torch::TensorOptions().dtype(dtype);
  grpo::LossBatch b;
  const auto logps = torch::tensor({-1.0, -2.0, -0.5, -0.3, -1.5, -1.0}, opts).reshape({2, 3});
  const auto log_ratio =
      torch::tensor({0.0, std::log(1.5), std::log(0.5), std::log(0.7), std::log(1.1), 0.0}, opts).reshape({2, 3});
  b.logps = logps.clone().requires_grad_();
  b.old_logps = logps - log_ratio;
  b.advantages = torch::tensor({1.0, -1.0}, opts);
  b.mask = torch::tensor({1, 1, 1, 1, 1, 0}, torch::kInt64).reshape({2, 3});
  b.num_items_in_batch = 20;
  // ref - logp = [[0, .5, -.5], [1, -1, 0]]
  b.ref_logps = logps + torch::tensor({0.0, 0.5, -0.5, 1.0, -1.0, 0.0}, opts).reshape({2, 3});
  return b;
}

// A random off-policy float64 batch: B rows, T tokens, some padding, log-ratios in about [-0.4, 0.4].
inline grpo::LossBatch random_batch(int64_t rows, int64_t tokens, uint64_t seed) {
  torch::manual_seed(seed);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  grpo::LossBatch b;
  const auto logps = -torch::rand({rows, tokens}, opts) * 3.0 - 0.05;
  b.logps = logps.clone().requires_grad_();
  b.old_logps = logps + (torch::rand({rows, tokens}, opts) - 0.5) * 0.8;
  b.ref_logps = logps + (torch::rand({rows, tokens}, opts) - 0.5) * 1.0;
  b.advantages = torch::randn({rows}, opts);
  auto mask = torch::ones({rows, tokens}, opts);
  for (int64_t i = 0; i < rows; ++i) {
    const auto length = 1 + (i * 7) % tokens;  // varied lengths, every row has >= 1 token
    mask.index_put_({i, torch::indexing::Slice(length, torch::indexing::None)}, 0.0);
  }
  b.mask = mask;
  b.num_items_in_batch = mask.sum().item<double>();
  return b;
}

// Central finite differences of loss(logps) for every element of batch.logps.
inline torch::Tensor finite_difference_grad(const grpo::LossBatch& batch, const grpo::LossOptions& options,
                                            double h = 1e-6) {
  torch::NoGradGuard no_grad;
  const auto base = batch.logps.detach().clone();
  auto grad = torch::zeros_like(base);
  auto eval = [&](const torch::Tensor& logps) {
    grpo::LossBatch b = batch;
    b.logps = logps;
    return grpo::policy_loss(b, options).loss.item<double>();
  };
  for (int64_t i = 0; i < base.size(0); ++i) {
    for (int64_t t = 0; t < base.size(1); ++t) {
      auto plus = base.clone(), minus = base.clone();
      plus[i][t] += h;
      minus[i][t] -= h;
      grad[i][t] = (eval(plus) - eval(minus)) / (2 * h);
    }
  }
  return grad;
}

// Autograd gradient of the loss with respect to batch.logps.
inline torch::Tensor autograd_grad(const grpo::LossBatch& batch, const grpo::LossOptions& options) {
  grpo::LossBatch b = batch;
  b.logps = batch.logps.detach().clone().requires_grad_();
  grpo::policy_loss(b, options).loss.backward();
  return b.logps.grad();
}

}  // namespace grpo_test
