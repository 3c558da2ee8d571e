// The fused policy_loss kernel against the composed LibTorch ops (grpo::detail::policy_loss_composed): loss,
// gradient and metrics over a randomized grid of options, dtypes, shapes, masks and padding.
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <torch/csrc/autograd/autograd.h>

#include "grpo/core/loss.hpp"

#include "support/catch_torch.hpp"  // last, in a block of its own: restores Catch's CHECK

namespace {

using torch::indexing::Slice;

enum class Padding { finite, non_finite };

struct BatchSpec {
  int64_t rows = 4, tokens = 7;
  torch::ScalarType dtype = torch::kFloat64;
  bool on_policy = false;
  bool empty_row = true;  // row 0 fully masked
  torch::ScalarType mask_dtype = torch::kInt64;
  Padding padding = Padding::finite;
  double spread = 0.8;  // log-ratios in [-spread/2, spread/2]
};

grpo::LossBatch make_batch(const BatchSpec& s, uint64_t seed) {
  torch::manual_seed(seed);
  const auto opts = torch::TensorOptions().dtype(s.dtype);
  grpo::LossBatch b;
  const auto logps = -torch::rand({s.rows, s.tokens}, opts) * 3.0 - 0.05;
  auto old_logps = logps + (torch::rand({s.rows, s.tokens}, opts) - 0.5) * s.spread;
  auto ref_logps = logps + (torch::rand({s.rows, s.tokens}, opts) - 0.5);
  auto mask = torch::ones({s.rows, s.tokens}, torch::kFloat64);
  for (int64_t i = 0; i < s.rows; ++i) {
    const auto length = (s.empty_row && i == 0) ? 0 : 1 + (i * 5 + seed) % s.tokens;
    mask.index_put_({i, Slice(length, torch::indexing::None)}, 0.0);
  }
  auto policy = logps.clone();
  if (s.padding == Padding::non_finite) {
    const auto inactive = mask == 0;
    policy = policy.masked_fill(inactive, -std::numeric_limits<double>::infinity());
    old_logps = old_logps.masked_fill(inactive, std::nan(""));
    ref_logps = ref_logps.masked_fill(inactive, std::numeric_limits<double>::infinity());
  }
  b.logps = policy.requires_grad_();
  if (!s.on_policy) b.old_logps = old_logps;
  b.ref_logps = ref_logps;
  b.advantages = torch::randn({s.rows}, opts);
  if (s.rows > 1) b.advantages[1] = 0.0;
  b.mask = mask.to(s.mask_dtype);
  b.num_items_in_batch = mask.sum().item<double>() + 3;
  b.grad_accum_steps = 1 + static_cast<int>(seed % 3);
  b.num_processes = 1 + static_cast<int>(seed % 2);
  return b;
}

std::string describe(const BatchSpec& s, const grpo::LossOptions& o) {
  std::ostringstream out;
  out << "B=" << s.rows << " T=" << s.tokens << " dtype=" << s.dtype << " on_policy=" << s.on_policy
      << " mask=" << s.mask_dtype << " padding=" << (s.padding == Padding::finite ? "finite" : "non-finite")
      << " options=" << nlohmann::json(o).dump();
  return out.str();
}

struct Run {
  bool fused_kernel = false;  // the loss came from the fused kernel's autograd node
  double loss = 0;
  torch::Tensor grad;
  std::map<std::string, double> metrics;
};

// The autograd node that produced a loss: the fused kernel's is grpo::detail::FusedPolicyLossFunction.
bool made_by_fused_kernel(const torch::Tensor& loss) {
  return loss.grad_fn() && loss.grad_fn()->name().find("FusedPolicyLossFunction") != std::string::npos;
}

Run run(const grpo::LossBatch& batch, const grpo::LossOptions& options, bool fused) {
  grpo::LossBatch b = batch;
  b.logps = batch.logps.detach().clone().requires_grad_();
  auto result = fused ? grpo::policy_loss(b, options) : grpo::detail::policy_loss_composed(b, options);
  // grpo::policy_loss takes the fused kernel exactly when it applies (CPU, float32/64, mask of a usable dtype).
  const bool fused_kernel = made_by_fused_kernel(result.loss);
  CHECK(fused_kernel == (fused && grpo::detail::fused_policy_loss_applies(b)));
  result.loss.backward();
  return {fused_kernel, result.loss.item<double>(), b.logps.grad().to(torch::kFloat64), result.metrics};
}

// |fused - composed| <= tol * max(|composed|, scale): relative, with `scale` guarding values near zero.
bool close(double fused, double composed, double tol, double scale) {
  if (std::isnan(composed)) return std::isnan(fused);
  return std::abs(fused - composed) <= tol * std::max(std::abs(composed), scale);
}

// Compares grpo::policy_loss with the composed ops; returns whether the fused kernel computed it.
bool check_same(const BatchSpec& spec, const grpo::LossOptions& options, uint64_t seed) {
  const auto batch = make_batch(spec, seed);
  const double tol = spec.dtype == torch::kFloat64 ? 1e-12 : 1e-6;
  INFO(describe(spec, options) << " seed=" << seed);
  const Run fused = run(batch, options, true);
  const Run composed = run(batch, options, false);
  // The loss sums terms of both signs: its rounding error scales with the sum of their magnitudes, which the
  // same loss with |A| measures.
  grpo::LossBatch magnitudes = batch;
  magnitudes.advantages = batch.advantages.abs();
  const double loss_scale = std::abs(run(magnitudes, options, false).loss);
  INFO("loss fused " << fused.loss << " composed " << composed.loss << " scale " << loss_scale);
  CHECK(close(fused.loss, composed.loss, tol, loss_scale));
  const double grad_scale = std::max(composed.grad.abs().max().item<double>(), 1e-30);
  const auto error = (fused.grad - composed.grad).abs() - tol * torch::clamp_min(composed.grad.abs(), grad_scale);
  INFO("max gradient error " << (fused.grad - composed.grad).abs().max().item<double>() << " scale " << grad_scale);
  CHECK(error.max().item<double>() <= 0.0);
  REQUIRE(fused.metrics.size() == composed.metrics.size());
  for (const auto& [name, value] : composed.metrics) {
    INFO("metric " << name << " fused " << fused.metrics.at(name) << " composed " << value);
    // k3 = exp(ref - logp) - (ref - logp) - 1 cancels terms of size about 1: its float32 rounding (in either
    // path) is about 1e-7 of 1, not of the result, so "kl" is compared relative to max(|kl|, 1).
    CHECK(close(fused.metrics.at(name), value, tol, name == "kl" ? 1.0 : 1e-6));
  }
  return fused.fused_kernel;
}

std::vector<grpo::LossOptions> option_grid() {
  std::vector<grpo::LossOptions> grid;
  for (auto type : {grpo::LossType::grpo, grpo::LossType::bnpo, grpo::LossType::dr_grpo, grpo::LossType::dapo,
                    grpo::LossType::cispo, grpo::LossType::sapo, grpo::LossType::luspo}) {
    for (auto level : {grpo::ImportanceSampling::token, grpo::ImportanceSampling::sequence}) {
      for (int variant = 0; variant < 4; ++variant) {
        grpo::LossOptions o;
        o.loss_type = type;
        o.importance_sampling_level = level;
        o.max_completion_length = 9;
        if (variant == 1) {
          o.epsilon_high = type == grpo::LossType::cispo ? 1.1 : 0.28;
          o.beta = 0.04;
        }
        if (variant == 2) {
          o.delta = type == grpo::LossType::cispo ? 2.0 : 1.25;
          o.beta = 0.1;
          o.use_bias_correction_kl = true;
          if (type == grpo::LossType::cispo) o.epsilon_high = 0.95;
        }
        if (variant == 3) {
          o.epsilon = 0.05;
          o.epsilon_high = type == grpo::LossType::cispo ? 1.02 : 0.03;
          o.sapo_temperature_pos = 2.0;
          o.sapo_temperature_neg = 0.5;
        }
        grid.push_back(o);
      }
    }
  }
  return grid;
}

}  // namespace

TEST_CASE("the fused kernel matches the composed ops in loss, gradient and metrics over an option grid", "[loss]") {
  const auto grid = option_grid();
  uint64_t seed = 1;
  int checked = 0, by_fused_kernel = 0;
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const auto& [rows, tokens] :
         std::vector<std::pair<int64_t, int64_t>>{{4, 7}, {1, 5}, {3, 1}, {1, 1}, {6, 40}}) {
      for (bool on_policy : {false, true}) {
        for (const auto& options : grid) {
          BatchSpec spec;
          spec.rows = rows, spec.tokens = tokens, spec.dtype = dtype, spec.on_policy = on_policy;
          spec.empty_row = rows > 1;
          spec.mask_dtype = seed % 3 == 0 ? torch::kBool : (seed % 3 == 1 ? torch::kInt64 : dtype);
          spec.spread = options.importance_sampling_level == grpo::ImportanceSampling::sequence ? 2.0 : 0.8;
          by_fused_kernel += check_same(spec, options, seed++) ? 1 : 0;
          ++checked;
        }
      }
    }
  }
  CHECK(checked == 2 * 5 * 2 * 56);
  CHECK(by_fused_kernel == checked);  // every batch of the grid went through the fused kernel, not a fallback
}

TEST_CASE("non-finite padding is read as zeros by the fused kernel as by the composed ops", "[loss]") {
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const auto& [rows, tokens] : std::vector<std::pair<int64_t, int64_t>>{{5, 9}, {4, 1}}) {
      for (const auto& options : option_grid()) {
        BatchSpec spec;
        spec.rows = rows, spec.tokens = tokens, spec.dtype = dtype, spec.padding = Padding::non_finite;
        check_same(spec, options, 7);
        // The padding really holds non-finite values, so the comparison above is not vacuous.
        const auto batch = make_batch(spec, 7);
        CHECK_FALSE(torch::isfinite(batch.logps).all().item<bool>());
      }
    }
  }
}

TEST_CASE("on-policy ties at the clip bounds follow clamp's and min's gradient conventions", "[loss]") {
  // epsilon = 0: ratio 1 sits on both clamp bounds and unclipped == clipped, so the gradient is A per token.
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    BatchSpec spec;
    spec.dtype = dtype, spec.on_policy = true, spec.empty_row = false, spec.mask_dtype = torch::kBool;
    grpo::LossOptions options;
    options.epsilon = 0.0;
    options.loss_type = grpo::LossType::bnpo;
    check_same(spec, options, 3);
    const auto batch = make_batch(spec, 3);
    const Run fused = run(batch, options, true);
    const auto mask = batch.mask.to(torch::kFloat64);
    const auto expected = -batch.advantages.to(torch::kFloat64).unsqueeze(1) * mask / mask.sum();
    CHECK(torch::allclose(fused.grad, expected, 1e-6, 1e-9));
  }
}

TEST_CASE("the fused path reports bad values with the composed path's messages", "[loss]") {
  BatchSpec spec;
  spec.dtype = torch::kFloat32;
  auto batch = make_batch(spec, 5);
  batch.logps = batch.logps.detach().clone();
  batch.logps[2][0] = std::nan("");
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}),
                    grpo_test::Contains("logps is not finite on an active token (nan) at [2, 0]"));
  batch = make_batch(spec, 5);
  batch.advantages[3] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}), grpo_test::Contains("advantages is not finite"));
  batch = make_batch(spec, 5);
  batch.num_items_in_batch = 1;
  CHECK_THROWS_WITH(grpo::policy_loss(batch, grpo::LossOptions{}), grpo_test::Contains("num_items_in_batch = 1"));
}

TEST_CASE("the fused path refuses double backward instead of returning a wrong second derivative", "[loss]") {
  BatchSpec spec;
  auto batch = make_batch(spec, 11);
  const auto loss = grpo::policy_loss(batch, grpo::LossOptions{}).loss;
  CHECK_THROWS_WITH(torch::autograd::grad({loss}, {batch.logps}, {}, true, true),
                    grpo_test::Contains("double backward"));
}

TEST_CASE("the baseline build of the fused row loop agrees with the one chosen at run time", "[loss]") {
  // On CPUs with AVX2 the dispatch takes the AVX2 + FMA loop; the baseline loop must give the same rows.
  BatchSpec spec;
  spec.rows = 5, spec.tokens = 37, spec.dtype = torch::kFloat32, spec.mask_dtype = torch::kFloat32;
  const auto batch = make_batch(spec, 13);
  grpo::detail::FusedInputs<float> in;
  const auto logps = batch.logps.detach().contiguous();
  const auto old_logps = batch.old_logps.contiguous();
  const auto ref_logps = batch.ref_logps.contiguous();
  const auto advantages = batch.advantages.contiguous();
  const auto mask = batch.mask.contiguous();
  in.rows = spec.rows, in.tokens = spec.tokens;
  in.logps = logps.data_ptr<float>(), in.old_logps = old_logps.data_ptr<float>();
  in.ref_logps = ref_logps.data_ptr<float>(), in.advantages = advantages.data_ptr<float>();
  in.mask = mask.data_ptr<float>();
  in.loss_type = grpo::LossType::grpo, in.beta = 0.04f, in.bias_correction = true;
  in.clip_low = 0.8f, in.clip_high = 1.2f, in.delta = 1.5f;
  auto grad_dispatch = torch::empty_like(logps), grad_baseline = torch::empty_like(logps);
  std::vector<grpo::detail::FusedRow> dispatched(5), baseline(5);
  using grpo::detail::FusedFamily;
  in.grad = grad_dispatch.data_ptr<float>();
  grpo::detail::fused_rows<float, FusedFamily::clip, false, true, false>(in, dispatched);
  in.grad = grad_baseline.data_ptr<float>();
  grpo::detail::fused_chunk<float, FusedFamily::clip, false, true, false>(in, baseline, 0, 5);
  CHECK(torch::allclose(grad_dispatch, grad_baseline, 1e-5, 1e-7));
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(dispatched[i].value == Approx(baseline[i].value).epsilon(1e-5).margin(1e-7));
    CHECK(dispatched[i].kl == Approx(baseline[i].kl).epsilon(1e-5).margin(1e-7));
    CHECK(dispatched[i].low == baseline[i].low);
    CHECK(dispatched[i].high == baseline[i].high);
  }
}
