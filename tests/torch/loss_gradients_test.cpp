// policy_loss gradients against central finite differences in float64, and the micro-batch invariance of dapo.

#include "support/loss_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace {

// True when autograd's gradient equals central finite differences (and is not all zero, so the check is not
// vacuous); on failure both gradients are printed.
bool gradient_matches(const grpo::LossBatch& batch, const grpo::LossOptions& options) {
  const auto analytic = grpo_test::autograd_grad(batch, options);
  const auto numeric = grpo_test::finite_difference_grad(batch, options);
  UNSCOPED_INFO("autograd\n" << analytic << "\nfinite differences\n" << numeric);
  return torch::allclose(analytic, numeric, 1e-6, 1e-8) && analytic.abs().sum().item<double>() > 0;
}

}  // namespace

TEST_CASE("every ratio-based loss type has the finite-difference gradient, token and sequence level", "[loss]") {
  const auto batch = grpo_test::random_batch(4, 5, 7);
  for (const auto level : {grpo::ImportanceSampling::token, grpo::ImportanceSampling::sequence}) {
    for (const auto type : {grpo::LossType::grpo, grpo::LossType::bnpo, grpo::LossType::dr_grpo, grpo::LossType::dapo,
                            grpo::LossType::sapo, grpo::LossType::luspo}) {
      INFO("loss_type " << grpo::to_string(type) << ", importance_sampling_level " << grpo::to_string(level));
      grpo::LossOptions options;
      options.loss_type = type;
      options.importance_sampling_level = level;
      options.epsilon_high = 0.28;
      CHECK(gradient_matches(batch, options));
    }
  }
}

TEST_CASE("delta and the KL term, with and without bias correction, have the finite-difference gradient", "[loss]") {
  const auto batch = grpo_test::random_batch(3, 6, 11);
  for (const auto level : {grpo::ImportanceSampling::token, grpo::ImportanceSampling::sequence}) {
    for (const bool bias_correction : {false, true}) {
      INFO("level " << grpo::to_string(level) << ", use_bias_correction_kl " << bias_correction);
      grpo::LossOptions options;
      options.loss_type = grpo::LossType::grpo;
      options.importance_sampling_level = level;
      options.beta = 0.3;
      options.use_bias_correction_kl = bias_correction;
      CHECK(gradient_matches(batch, options));
      options.delta = 1.25;  // tight enough that the random ratios hit it
      CHECK(gradient_matches(batch, options));
    }
  }
}

TEST_CASE("cispo's gradient treats the capped ratio as a constant (stop-gradient)", "[loss]") {
  // d/dlogp of -sg(min(r, cap)) A logp / N is -min(r, cap) A m / N: the ratio is not differentiated.
  const auto batch = grpo_test::random_batch(4, 5, 3);
  for (const auto level : {grpo::ImportanceSampling::token, grpo::ImportanceSampling::sequence}) {
    grpo::LossOptions options;
    options.loss_type = grpo::LossType::cispo;
    options.epsilon_high = 1.05;
    options.importance_sampling_level = level;
    const auto mask = batch.mask;
    auto log_ratio = batch.logps.detach() - batch.old_logps;
    if (level == grpo::ImportanceSampling::sequence) log_ratio = (log_ratio * mask).sum(1, true) / mask.sum(1, true);
    const auto capped = log_ratio.exp().clamp_max(1.05);
    const auto expected = -capped * batch.advantages.unsqueeze(1) * mask / batch.num_items_in_batch;
    CHECK(torch::allclose(grpo_test::autograd_grad(batch, options), expected.expand_as(mask), 1e-12, 1e-14));
    CHECK((capped == 1.05).any().item<bool>());  // the cap is exercised
  }
}

TEST_CASE("dapo over micro-batches of one generation batch sums to the full-batch loss and gradient", "[loss]") {
  const auto full = grpo_test::random_batch(6, 5, 5);
  for (const auto type : {grpo::LossType::dapo, grpo::LossType::cispo}) {
    for (const auto level : {grpo::ImportanceSampling::token, grpo::ImportanceSampling::sequence}) {
      INFO("loss_type " << grpo::to_string(type) << ", level " << grpo::to_string(level));
      grpo::LossOptions options;
      options.loss_type = type;
      options.importance_sampling_level = level;
      options.beta = 0.05;
      const auto full_grad = grpo_test::autograd_grad(full, options);
      const double full_loss = grpo::policy_loss(full, options).loss.item<double>();

      auto logps = full.logps.detach().clone().requires_grad_();
      double summed = 0;
      for (int64_t start = 0; start < 6; start += 2) {
        grpo::LossBatch micro = full;  // same num_items_in_batch: the generation batch's token count
        const auto rows = torch::indexing::Slice(start, start + 2);
        micro.logps = logps.index({rows});
        micro.old_logps = full.old_logps.index({rows});
        micro.ref_logps = full.ref_logps.index({rows});
        micro.advantages = full.advantages.index({rows});
        micro.mask = full.mask.index({rows});
        micro.grad_accum_steps = 3;  // ignored by dapo: the normaliser already spans the generation batch
        const auto loss = grpo::policy_loss(micro, options).loss;
        loss.backward();
        summed += loss.item<double>();
      }
      CHECK(summed == Approx(full_loss).epsilon(1e-12));
      CHECK(torch::allclose(logps.grad(), full_grad, 1e-12, 1e-15));
    }
  }
}
