// policy_loss against values worked out by hand (docs/math.md §3-§6) on the small batch of loss_fixtures.hpp,
// in float32 and float64.
#include <cmath>

#include "support/loss_fixtures.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace {

// Per-token clip losses -min(rA, clamp(r, 0.8, 1.2)A) of the small batch (eps = 0.2):
//   row 0 (A = 1):  r = 1 -> -1;  r = 1.5 -> -1.2;  r = 0.5 -> -0.5;   sum -2.7 over L = 3
//   row 1 (A = -1): r = 0.7 -> 0.8;  r = 1.1 -> 1.1;  (pad r = 1 -> 1);  sum 1.9 over L = 2
constexpr double row0_sum = -2.7, row1_sum = 1.9;

double loss_of(grpo::LossType type, torch::ScalarType dtype, int grad_accum = 1,
               grpo::ImportanceSampling level = grpo::ImportanceSampling::token) {
  auto batch = grpo_test::small_batch(dtype);
  batch.grad_accum_steps = grad_accum;
  grpo::LossOptions options;
  options.loss_type = type;
  options.max_completion_length = 4;
  options.importance_sampling_level = level;
  return grpo::policy_loss(batch, options).loss.item<double>();
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

TEST_CASE("clip-family loss types aggregate the hand-computed per-token losses as TRL does", "[loss]") {
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    const double tol = dtype == torch::kFloat32 ? 1e-6 : 1e-12;
    INFO("dtype " << dtype);
    // grpo: mean of per-row means.
    CHECK(loss_of(grpo::LossType::grpo, dtype) == Approx((row0_sum / 3 + row1_sum / 2) / 2).margin(tol));
    CHECK(loss_of(grpo::LossType::grpo, dtype) == Approx(0.025).margin(tol));
    // bnpo: token mean over the micro-batch.
    CHECK(loss_of(grpo::LossType::bnpo, dtype) == Approx(-0.8 / 5).margin(tol));
    // dr_grpo: sum / (B * max_completion_length) = -0.8 / (2 * 4).
    CHECK(loss_of(grpo::LossType::dr_grpo, dtype) == Approx(-0.1).margin(tol));
    // dapo: sum / (num_items_in_batch / P) = -0.8 / 20.
    CHECK(loss_of(grpo::LossType::dapo, dtype) == Approx(-0.04).margin(tol));
    // luspo (token level): mean over all [B,T] of loss * L_i, padding included: (3 * -2.7 + 2 * 2.9) / 6.
    CHECK(loss_of(grpo::LossType::luspo, dtype) == Approx((3 * -2.7 + 2 * 2.9) / 6).margin(tol));
  }
}

TEST_CASE("gradient accumulation divides every loss type but dapo and cispo", "[loss]") {
  for (const auto type : {grpo::LossType::grpo, grpo::LossType::bnpo, grpo::LossType::dr_grpo, grpo::LossType::sapo,
                          grpo::LossType::luspo}) {
    INFO("loss_type " << grpo::to_string(type));
    CHECK(loss_of(type, torch::kFloat64, 4) == Approx(loss_of(type, torch::kFloat64, 1) / 4).epsilon(1e-12));
  }
  CHECK(loss_of(grpo::LossType::dapo, torch::kFloat64, 4) == Approx(-0.04).epsilon(1e-12));
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.num_processes = 2;  // dapo normaliser N / P = 10
  CHECK(grpo::policy_loss(batch, grpo::LossOptions{}).loss.item<double>() == Approx(-0.08).epsilon(1e-12));
}

TEST_CASE("sequence-level importance sampling uses one geometric-mean ratio per row", "[loss]") {
  // Row 0: r = (1 * 1.5 * 0.5)^(1/3) = 0.75^(1/3), inside [0.8, 1.2], A = 1 -> loss -r0.
  // Row 1: r = (0.7 * 1.1)^(1/2) = 0.77^(1/2) = 0.8775, A = -1 -> loss r1.
  const double r0 = std::cbrt(0.75), r1 = std::sqrt(0.77);
  const auto seq = grpo::ImportanceSampling::sequence;
  CHECK(loss_of(grpo::LossType::grpo, torch::kFloat64, 1, seq) == Approx((-r0 + r1) / 2).epsilon(1e-12));
  // bnpo broadcasts the row loss over its tokens: (3 * -r0 + 2 * r1) / 5.
  CHECK(loss_of(grpo::LossType::bnpo, torch::kFloat64, 1, seq) == Approx((-3 * r0 + 2 * r1) / 5).epsilon(1e-12));
  // luspo on [B,1]: mean over rows of loss * L_i.
  CHECK(loss_of(grpo::LossType::luspo, torch::kFloat64, 1, seq) == Approx((-3 * r0 + 2 * r1) / 2).epsilon(1e-12));
  CHECK(loss_of(grpo::LossType::luspo, torch::kFloat32, 1, seq) == Approx(-0.485344006).epsilon(1e-5));
}

TEST_CASE("cispo weights log-probs by the detached ratio capped at epsilon_high", "[loss]") {
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto batch = grpo_test::small_batch(dtype);
    grpo::LossOptions options;
    options.loss_type = grpo::LossType::cispo;
    options.epsilon_high = 1.2;
    const auto result = grpo::policy_loss(batch, options);
    // -min(r, 1.2) * A * logp: row 0: 1, 2.4, 0.25; row 1: -0.21, -1.65. Sum 1.79, / (20 / 1).
    CHECK(result.loss.item<double>() == Approx(1.79 / 20).epsilon(1e-6));
    CHECK(result.metrics.at("cispo_clip_ratio") == Approx(0.2).epsilon(1e-6));  // r = 1.5 with A > 0
    CHECK(result.metrics.count("clip_ratio/low_mean") == 0);
  }
}

TEST_CASE("sapo replaces clipping with a temperature-controlled sigmoid gate", "[loss]") {
  // Row 0 (tau 1): -sigmoid(r - 1) * 4 per token; sigmoid(x) + sigmoid(-x) = 1, so the row sums to -6.
  // Row 1 (tau 1.05, A = -1): +sigmoid(1.05 (r - 1)) * 4 / 1.05.
  const double row1 = (sigmoid(1.05 * -0.3) + sigmoid(1.05 * 0.1)) * 4.0 / 1.05;
  const double expected = (-6.0 / 3 + row1 / 2) / 2;
  CHECK(loss_of(grpo::LossType::sapo, torch::kFloat64) == Approx(expected).epsilon(1e-12));
  CHECK(loss_of(grpo::LossType::sapo, torch::kFloat32) == Approx(expected).epsilon(1e-6));
}

TEST_CASE("delta caps the unclipped ratio of negative-advantage tokens", "[loss]") {
  grpo::LossBatch batch;
  const auto logps = torch::tensor({{-1.0, -1.0}}, torch::kFloat64);
  batch.logps = logps.clone().requires_grad_();
  batch.old_logps = logps - std::log(2.0);  // r = 2 on both tokens
  batch.advantages = torch::tensor({-1.0}, torch::kFloat64);
  batch.mask = torch::ones({1, 2});
  grpo::LossOptions options;
  options.loss_type = grpo::LossType::bnpo;
  CHECK(grpo::policy_loss(batch, options).loss.item<double>() == Approx(2.0));  // -min(-2, -1.2)
  options.delta = 1.5;
  CHECK(grpo::policy_loss(batch, options).loss.item<double>() == Approx(1.5));  // -min(-1.5, -1.2)
}

TEST_CASE("beta adds the k3 KL after the policy loss, optionally weighted by the ratio", "[loss]") {
  // k3 = exp(d) - d - 1 for d = ref - logp: row 0: 0, e^.5 - 1.5, e^-.5 - .5; row 1: e - 2, e^-1.
  const double k[5] = {0.0, std::exp(0.5) - 1.5, std::exp(-0.5) - 0.5, std::exp(1.0) - 2.0, std::exp(-1.0)};
  const double kl_sum = k[0] + k[1] + k[2] + k[3] + k[4];
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto batch = grpo_test::small_batch(dtype);
    grpo::LossOptions options;
    options.loss_type = grpo::LossType::bnpo;
    options.beta = 0.1;
    auto result = grpo::policy_loss(batch, options);
    CHECK(result.loss.item<double>() == Approx((-0.8 + 0.1 * kl_sum) / 5).epsilon(1e-6));
    CHECK(result.metrics.at("kl") == Approx(kl_sum / 5).epsilon(1e-6));

    options.use_bias_correction_kl = true;  // kl * r with r = [1, 1.5, 0.5, 0.7, 1.1]
    const double weighted = k[0] * 1.0 + k[1] * 1.5 + k[2] * 0.5 + k[3] * 0.7 + k[4] * 1.1;
    result = grpo::policy_loss(batch, options);
    CHECK(result.loss.item<double>() == Approx((-0.8 + 0.1 * weighted) / 5).epsilon(1e-6));
    CHECK(result.metrics.at("kl") == Approx(weighted / 5).epsilon(1e-6));
  }
}

TEST_CASE("clip metrics count tokens clipped low with A < 0 and high with A > 0", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  const auto m = grpo::policy_loss(batch, grpo::LossOptions{}).metrics;
  // Low: r = 0.7 with A = -1 (row 1). High: r = 1.5 with A = 1 (row 0). r = 0.5 with A = 1 is not clipped.
  CHECK(m.at("clip_ratio/low_mean") == Approx(0.2));
  CHECK(m.at("clip_ratio/high_mean") == Approx(0.2));
  CHECK(m.at("clip_ratio/region_mean") == Approx(0.4));
  CHECK(m.at("clip_ratio/low_min") == Approx(0.0));         // per-row fractions 0 and 1/2
  CHECK(m.at("clip_ratio/high_max") == Approx(1.0 / 3.0));  // per-row fractions 1/3 and 0
  CHECK(m.count("kl") == 0);
  CHECK(m.count("cispo_clip_ratio") == 0);
}

TEST_CASE("on-policy (no old log-probs) the ratio is 1 and the gradient is -A over the token count", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  batch.old_logps = torch::Tensor();
  const auto result = grpo::policy_loss(batch, grpo::LossOptions{});
  // Loss value: -sum_i A_i L_i / N = -(3 - 2) / 20.
  CHECK(result.loss.item<double>() == Approx(-1.0 / 20));
  CHECK(result.metrics.at("clip_ratio/region_mean") == 0.0);
  result.loss.backward();
  const auto expected = -batch.advantages.unsqueeze(1) * batch.mask.to(torch::kFloat64) / 20.0;
  CHECK(torch::allclose(batch.logps.grad(), expected, 0, 1e-15));
}

TEST_CASE("non-finite log-probs on padding do not reach the loss", "[loss]") {
  auto batch = grpo_test::small_batch(torch::kFloat64);
  const auto reference = grpo::policy_loss(batch, grpo::LossOptions{}).loss.item<double>();
  auto logps = batch.logps.detach().clone();
  logps[1][2] = -std::numeric_limits<double>::infinity();  // a padded position
  batch.logps = logps.requires_grad_();
  const auto result = grpo::policy_loss(batch, grpo::LossOptions{});
  CHECK(result.loss.item<double>() == Approx(reference).epsilon(1e-12));
  result.loss.backward();
  CHECK(torch::isfinite(batch.logps.grad()).all().item<bool>());
  CHECK(batch.logps.grad()[1][2].item<double>() == 0.0);
}

TEST_CASE("an all-masked micro-batch gives a zero loss and zero gradient", "[loss]") {
  for (const auto type : {grpo::LossType::grpo, grpo::LossType::bnpo, grpo::LossType::dr_grpo, grpo::LossType::dapo,
                          grpo::LossType::cispo, grpo::LossType::sapo}) {
    INFO("loss_type " << grpo::to_string(type));
    auto batch = grpo_test::small_batch(torch::kFloat64);
    batch.mask = torch::zeros({2, 3});
    grpo::LossOptions options;
    options.loss_type = type;
    const auto result = grpo::policy_loss(batch, options);
    CHECK(result.loss.item<double>() == 0.0);
    result.loss.backward();
    CHECK(batch.logps.grad().abs().sum().item<double>() == 0.0);
  }
}
