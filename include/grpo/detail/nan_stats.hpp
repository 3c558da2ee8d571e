#pragma once
// NaN-aware statistics over Eigen vectors and blocks (NaN means "none": left out).

#include <cmath>
#include <limits>

namespace grpo::detail {

inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// Mean of the non-NaN values; NaN when there are none.
template <class Vector>
double nanmean(const Vector& v) {
  double sum = 0.0;
  long count = 0;
  for (long i = 0; i < static_cast<long>(v.size()); ++i) {
    if (!std::isnan(v[i])) {
      sum += v[i];
      ++count;
    }
  }
  return count > 0 ? sum / static_cast<double>(count) : nan;
}

// Unbiased (n-1) standard deviation of the non-NaN values; NaN when fewer than 2 values (docs/math.md §1).
template <class Vector>
double nanstd(const Vector& v) {
  const double mean = nanmean(v);
  double squares = 0.0;
  long count = 0;
  for (long i = 0; i < static_cast<long>(v.size()); ++i) {
    if (!std::isnan(v[i])) {
      squares += (v[i] - mean) * (v[i] - mean);
      ++count;
    }
  }
  return count >= 2 ? std::sqrt(squares / static_cast<double>(count - 1)) : nan;
}

}  // namespace grpo::detail
