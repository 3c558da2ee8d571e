// compute_advantages against values worked out by hand from docs/math.md §1.
#include <cmath>
#include <limits>
#include <string>

#include "support/catch.hpp"

#include "grpo/core/advantages.hpp"

namespace {

constexpr double none = std::numeric_limits<double>::quiet_NaN();
constexpr double eps = 1e-4;

Eigen::MatrixXd column(std::initializer_list<double> values) {
  Eigen::MatrixXd m(static_cast<Eigen::Index>(values.size()), 1);
  Eigen::Index i = 0;
  for (double v : values) m(i++, 0) = v;
  return m;
}

grpo::AdvantageOptions options_with(int g, grpo::ScaleRewards scale = grpo::ScaleRewards::group) {
  grpo::AdvantageOptions o;
  o.num_generations = g;
  o.scale_rewards = scale;
  return o;
}

}  // namespace

TEST_CASE("group scaling divides the centred reward by the group's unbiased std plus 1e-4", "[advantages]") {
  // Group 1: rewards 1,0,0,1: mean 0.5, unbiased std sqrt(1/3). Group 2: all 2: std 0, advantage 0.
  const auto r = grpo::compute_advantages(column({1, 0, 0, 1, 2, 2, 2, 2}), options_with(4));
  const double sigma = std::sqrt(1.0 / 3.0);
  CHECK(r.advantages[0] == Approx(0.5 / (sigma + eps)).epsilon(1e-12));
  CHECK(r.advantages[1] == Approx(-0.5 / (sigma + eps)).epsilon(1e-12));
  CHECK(r.advantages[0] == Approx(0.8658754297607016).epsilon(1e-12));
  for (int i = 4; i < 8; ++i) CHECK(r.advantages[i] == 0.0);
  CHECK(r.std[0] == Approx(sigma));
  CHECK(r.std[4] == 0.0);
  CHECK_FALSE(r.zero_std[0]);
  CHECK(r.zero_std[4]);
  CHECK(r.rewards[5] == 2.0);
}

TEST_CASE("batch scaling keeps the group mean but divides by the std of the whole batch", "[advantages]") {
  const auto r = grpo::compute_advantages(column({1, 0, 0, 1, 2, 2, 2, 2}), options_with(4, grpo::ScaleRewards::batch));
  // All 8 rewards: mean 1.25, squared deviations sum to 5.5, unbiased variance 5.5 / 7.
  const double sigma = std::sqrt(5.5 / 7.0);
  CHECK(r.std[0] == Approx(sigma).epsilon(1e-12));
  CHECK(r.std[7] == Approx(sigma).epsilon(1e-12));
  CHECK(r.advantages[0] == Approx(0.5 / (sigma + eps)).epsilon(1e-12));
  CHECK(r.advantages[0] == Approx(0.5640124456324701).epsilon(1e-12));
  CHECK(r.advantages[4] == 0.0);  // centred on its own group's mean
  CHECK_FALSE(r.zero_std[4]);     // the batch std is what is flagged
}

TEST_CASE("scale none only centres, and still reports the group std for logging", "[advantages]") {
  const auto r = grpo::compute_advantages(column({3, 1, 5, 5}), options_with(2, grpo::ScaleRewards::none));
  CHECK(r.advantages[0] == 1.0);
  CHECK(r.advantages[1] == -1.0);
  CHECK(r.advantages[2] == 0.0);
  CHECK(r.std[0] == Approx(std::sqrt(2.0)));
  CHECK(r.zero_std[2]);
}

TEST_CASE("weights multiply each function and none terms are skipped in the sum", "[advantages]") {
  Eigen::MatrixXd m(2, 2);
  m << 1.0, 4.0,  //
      none, 2.0;
  auto o = options_with(2);
  o.weights = {2.0, 0.5};
  const auto r = grpo::compute_advantages(m, o);
  CHECK(r.rewards[0] == 4.0);  // 2*1 + 0.5*4
  CHECK(r.rewards[1] == 1.0);  // none skipped: 0.5*2
  // mean 2.5, std sqrt(4.5)
  CHECK(r.advantages[0] == Approx(1.5 / (std::sqrt(4.5) + eps)).epsilon(1e-12));
}

TEST_CASE("unscorable rows get advantage 0 and are left out of their group's statistics", "[advantages]") {
  Eigen::MatrixXd m(3, 2);
  m << 1.0, none,  //
      none, none,  //
      0.0, none;
  const auto r = grpo::compute_advantages(m, options_with(3));
  CHECK(std::isnan(r.rewards[1]));
  CHECK(r.advantages[1] == 0.0);
  // Scorable rows 1 and 0: mean 0.5, std sqrt(0.5).
  CHECK(r.advantages[0] == Approx(0.5 / (std::sqrt(0.5) + eps)).epsilon(1e-12));
  CHECK(r.advantages[2] == Approx(-0.5 / (std::sqrt(0.5) + eps)).epsilon(1e-12));
}

TEST_CASE("a group with fewer than 2 scorable rows has NaN std and all-zero advantages", "[advantages]") {
  const auto r = grpo::compute_advantages(column({5, none, none, 1, 2, 3}), options_with(3));
  CHECK(std::isnan(r.std[0]));
  CHECK(r.advantages[0] == 0.0);
  CHECK(r.advantages[1] == 0.0);
  CHECK_FALSE(r.zero_std[0]);  // NaN is not "zero std"
  CHECK(r.advantages[4] == 0.0);
  CHECK(r.advantages[3] == Approx(-1.0 / (1.0 + eps)).epsilon(1e-12));
}

TEST_CASE("normalize_then_sum z-scores each function per group, sums with weights, then z-scores the batch",
          "[advantages]") {
  // f1 = [1,0 | 3,1], f2 = [0,2 | none,4], weights [1, 0.5], G = 2.
  Eigen::MatrixXd m(4, 2);
  m << 1, 0,    //
      0, 2,     //
      3, none,  //
      1, 4;
  grpo::AdvantageOptions o = options_with(2, grpo::ScaleRewards::none);  // scale_rewards is ignored in this mode
  o.aggregation = grpo::RewardAggregation::normalize_then_sum;
  o.weights = {1.0, 0.5};
  const auto r = grpo::compute_advantages(m, o);
  // Group 1: f1 z = ±0.5/(sqrt(.5)+eps); f2 z = ∓1/(sqrt(2)+eps). Group 2: f1 z = ±1/(sqrt(2)+eps); f2 has one
  // value, so its z is NaN and drops out of the sum.
  const double s0 = 0.5 / (std::sqrt(0.5) + eps) - 0.5 * 1.0 / (std::sqrt(2.0) + eps);
  const double s2 = 1.0 / (std::sqrt(2.0) + eps);
  // s = [s0, -s0, s2, -s2]: batch mean 0, unbiased std sqrt((2 s0^2 + 2 s2^2) / 3).
  const double sigma = std::sqrt((2 * s0 * s0 + 2 * s2 * s2) / 3.0);
  CHECK(r.advantages[0] == Approx(s0 / (sigma + eps)).epsilon(1e-12));
  CHECK(r.advantages[1] == Approx(-s0 / (sigma + eps)).epsilon(1e-12));
  CHECK(r.advantages[2] == Approx(s2 / (sigma + eps)).epsilon(1e-12));
  CHECK(r.advantages[0] == Approx(0.5475757574365391).epsilon(1e-10));
  CHECK(r.std[0] == Approx(sigma).epsilon(1e-12));
  CHECK(r.rewards[1] == 1.0);  // logged reward is the weighted raw sum: 0 + 0.5*2
}

TEST_CASE("normalize_then_sum keeps unscorable rows at 0 and scorable rows with no z-score at 0", "[advantages]") {
  Eigen::MatrixXd m(4, 1);
  m << 1, none,  // group 1: one scorable row only -> its z is NaN -> s = 0
      2, 0;
  grpo::AdvantageOptions o = options_with(2);
  o.aggregation = grpo::RewardAggregation::normalize_then_sum;
  const auto r = grpo::compute_advantages(m, o);
  // s = [0, NaN, z, -z] with z = 1/(sqrt(2)+eps): mean over the 3 values is 0, std = sqrt(2 z^2 / 2) = z.
  const double z = 1.0 / (std::sqrt(2.0) + eps);
  CHECK(r.advantages[0] == 0.0);
  CHECK(r.advantages[1] == 0.0);
  CHECK(r.advantages[2] == Approx(z / (z + eps)).epsilon(1e-12));
}

TEST_CASE("compute_advantages rejects bad input with messages that say what and where", "[advantages]") {
  using grpo_test::Contains;
  CHECK_THROWS_WITH(grpo::compute_advantages(column({1, 2, 3, 4, 5}), options_with(2)),
                    Contains("N = 5 rows") && Contains("not divisible by num_generations = 2"));
  auto o = options_with(2);
  o.weights = {1.0, 2.0, 3.0};
  CHECK_THROWS_WITH(grpo::compute_advantages(column({1, 2}), o),
                    Contains("weights has 3 entries") && Contains("K = 1 columns"));
  CHECK_THROWS_WITH(grpo::compute_advantages(column({1, std::numeric_limits<double>::infinity()}), options_with(2)),
                    Contains("rewards_per_func(1, 0) is infinite"));
  CHECK_THROWS_WITH(grpo::compute_advantages(column({1, 2}), options_with(0)),
                    Contains("num_generations must be >= 1"));
  CHECK_THROWS_AS(grpo::compute_advantages(column({1, 2, 3}), options_with(2)), std::invalid_argument);
}
