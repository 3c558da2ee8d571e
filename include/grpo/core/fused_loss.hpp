#pragma once
// The fused policy_loss kernel: one pass over the [B,T] inputs computes the loss (grpo-math.md §3-§5), the
// gradient d loss / d logps and the metric sums (§6), rows in parallel (at::parallel_for). A custom autograd
// function saves the gradient; backward scales it by grad_output. Same values as the composed LibTorch ops of
// loss.hpp (grpo::detail::policy_loss_composed), including PyTorch's subgradient conventions at ties:
// clamp passes the gradient on its closed interval, min splits a tie 50/50.
// First derivatives only: backward with create_graph = true throws.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/types.h>

#include "grpo/core/loss_options.hpp"

// The kernel's loops vectorise only if GCC may compute float operations of both arms of a select
// unconditionally; floating-point exceptions are never inspected here, so trapping math is switched off for
// this section (results are unchanged: it affects exception flags only).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#define GRPO_FUSED_LOSS_POP_OPTIONS
#endif

namespace grpo::detail {

// min and max by value with the comparison first (std::min selects a reference, which can keep GCC from
// if-converting the loop).
template <typename scalar_t>
[[gnu::always_inline]] inline scalar_t fused_min(scalar_t a, scalar_t b) {
  const bool b_less = b < a;
  return b_less ? b : a;
}
template <typename scalar_t>
[[gnu::always_inline]] inline scalar_t fused_max(scalar_t a, scalar_t b) {
  const bool a_less = a < b;
  return a_less ? b : a;
}

// exp in float32 written so that GCC vectorises the loops calling it (libm's expf is a scalar call):
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial (truncation < 1e-8 relative),
// times 2^n built in the exponent bits. Within 2 ulp of expf; exp(0) = 1 exactly.
[[gnu::always_inline]] inline float fused_exp(float x) {
  const float clamped = fused_min(fused_max(x, -87.0f), 88.5f);
  const float shifted = clamped * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: round to nearest
  const float n = shifted - 12582912.0f;
  const float r = (clamped - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  const float result = p * two_n;
  // Every comparison is evaluated unconditionally: GCC does not speculate a possibly trapping float compare,
  // so a short-circuited one would keep the loop from vectorising.
  const bool overflow = x > 88.72283f, underflow = x < -87.0f;
  const float bounded = underflow ? 0.0f : result;
  return overflow ? std::numeric_limits<float>::infinity() : bounded;
}
[[gnu::always_inline]] inline double fused_exp(double x) { return std::exp(x); }

// Σ v[0..n) in double with four independent accumulators (an in-order float reduction does not vectorise).
template <typename scalar_t>
[[gnu::always_inline]] inline double fused_sum(const scalar_t* v, int64_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    a0 += static_cast<double>(v[t]);
    a1 += static_cast<double>(v[t + 1]);
    a2 += static_cast<double>(v[t + 2]);
    a3 += static_cast<double>(v[t + 3]);
  }
  for (; t < n; ++t) a0 += static_cast<double>(v[t]);
  return (a0 + a1) + (a2 + a3);
}

// The three shapes of per-token loss (grpo-math.md §4).
enum class FusedFamily { clip, sapo, cispo };

// Everything the kernel reads, in the logps dtype, contiguous; options resolved to scalars.
template <typename scalar_t>
struct FusedInputs {
  const scalar_t* logps = nullptr;      // [B,T]
  const scalar_t* old_logps = nullptr;  // [B,T], or logps itself on-policy (ratio 1)
  const scalar_t* ref_logps = nullptr;  // [B,T], null when beta == 0
  const scalar_t* advantages = nullptr; // [B]
  const scalar_t* mask = nullptr;       // [B,T]
  scalar_t* grad = nullptr;             // [B,T] output: d (unscaled loss) / d logps
  int64_t rows = 0, tokens = 0;
  LossType loss_type = LossType::dapo;
  bool sequence = false;
  bool bias_correction = false;
  scalar_t beta = 0, clip_low = 0, clip_high = 0, delta = 0, cispo_cap = 0;
  scalar_t sapo_pos = 1, sapo_neg = 1;
  // Padding values enter the result (luspo's [B,T] mean, T = 1 metrics)...
  bool padding_counts = false;
  // ...and were non-finite somewhere, so the composed path reads them as zeros without gradient: the
  // pointers then hold copies with zeroed padding, and padding gets no gradient.
  bool sanitize_padding = false;
};

// Per-row results, reduced in row order after the parallel pass (deterministic).
struct FusedRow {
  double value = 0;     // Σ_t weight_t ℓ_t with the row factor applied
  double length = 0;    // L_i
  double kl = 0;        // Σ metric-weight · kl
  double low = 0, high = 0, region = 0, cispo = 0;  // indicator sums (or row indicators)
  bool invalid = false;            // mask not 0/1 or a non-finite active value
  bool padding_not_finite = false; // a non-finite value on padding
};

template <typename scalar_t>
[[gnu::always_inline]] inline bool fused_finite(scalar_t v) {
  return v - v == scalar_t(0);  // false for inf and NaN; vectorises, unlike std::isfinite
}

// ℓ(ρ) and dℓ/dρ of the ratio-only losses for one ratio value.
template <typename scalar_t, FusedFamily family>
[[gnu::always_inline]] inline void fused_ratio_loss(const FusedInputs<scalar_t>& in, scalar_t ratio, scalar_t advantage, scalar_t& loss,
                             scalar_t& dloss_dratio) {
  if constexpr (family == FusedFamily::clip) {
    const scalar_t unclipped = fused_min(ratio, in.delta) * advantage;
    const scalar_t clipped = fused_min(fused_max(ratio, in.clip_low), in.clip_high) * advantage;
    // clamp's gradient passes on the closed interval; min's splits ties.
    // (Comparisons first, then selects: see fused_exp.)
    const bool below_delta = ratio <= in.delta;
    const bool above_low = ratio >= in.clip_low, below_high = ratio <= in.clip_high;
    const bool unclipped_less = unclipped < clipped, clipped_less = clipped < unclipped;
    const scalar_t d_unclipped = below_delta ? advantage : scalar_t(0);
    const scalar_t d_clipped_high = below_high ? advantage : scalar_t(0);
    const scalar_t d_clipped = above_low ? d_clipped_high : scalar_t(0);
    const scalar_t d_tie = scalar_t(0.5) * (d_unclipped + d_clipped);
    const scalar_t d_not_less = clipped_less ? d_clipped : d_tie;
    const scalar_t d_min = unclipped_less ? d_unclipped : d_not_less;
    loss = -fused_min(unclipped, clipped);
    dloss_dratio = -d_min;
  } else if constexpr (family == FusedFamily::sapo) {
    const scalar_t temperature = advantage > 0 ? in.sapo_pos : in.sapo_neg;
    const scalar_t s = scalar_t(1) / (scalar_t(1) + fused_exp(-(temperature * (ratio - scalar_t(1)))));
    loss = -(s * scalar_t(4) / temperature * advantage);
    dloss_dratio = -(s * (scalar_t(1) - s) * scalar_t(4) * advantage);
  } else {
    loss = 0;
    dloss_dratio = 0;
  }
}

// One row: pass 1 counts L_i, validates and (sequence level) sums the log-ratio; pass 2 computes losses,
// gradients and metric sums; pass 3 (sequence level) adds the ratio's gradient, spread over the active tokens.
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl>
[[gnu::always_inline]] inline FusedRow fused_row_body(const FusedInputs<scalar_t>& inputs, int64_t i, const scalar_t* __restrict x,
                               const scalar_t* __restrict o, const scalar_t* __restrict ref,
                               const scalar_t* __restrict m, scalar_t* __restrict g,
                               scalar_t* __restrict value_terms, scalar_t* __restrict kl_terms,
                               scalar_t* __restrict dratio_terms) {
  // A local copy: the gradient stores cannot alias it, so the loops keep the options in registers.
  const FusedInputs<scalar_t> in = inputs;
  const int64_t T = in.tokens;
  const scalar_t A = in.advantages[i];
  FusedRow row;


  // Pass 1.
  int32_t active_count = 0;
  int invalid = 0, padding_bad = 0;
  for (int64_t t = 0; t < T; ++t) {
    const scalar_t mv = m[t], xv = x[t], ov = o[t], rv = ref[t];
    const bool active = mv != scalar_t(0);
    const bool finite = fused_finite(xv) & fused_finite(ov) & fused_finite(rv);
    invalid |= static_cast<int>(active & ((mv != scalar_t(1)) | !finite));
    padding_bad |= static_cast<int>(!active & !finite);
    active_count += static_cast<int32_t>(active);
    if constexpr (sequence) {
      const scalar_t log_ratio = xv - ov;
      value_terms[t] = active ? log_ratio : scalar_t(0);
    }
  }
  const auto length = static_cast<scalar_t>(active_count);
  row.invalid = invalid != 0;
  row.padding_not_finite = padding_bad != 0;
  row.length = static_cast<double>(length);
  if (row.invalid) return row;

  const bool luspo = in.loss_type == LossType::luspo;
  const bool per_row_factor = in.loss_type == LossType::grpo || in.loss_type == LossType::sapo;
  const scalar_t row_factor = per_row_factor ? scalar_t(1) / std::max(length, scalar_t(1)) : scalar_t(1);
  // Loss weight of an active and of a padding position.
  const scalar_t active_weight = luspo ? length : row_factor;
  const scalar_t padding_weight = luspo ? length : scalar_t(0);
  const bool padding_counts = in.padding_counts, sanitize = in.sanitize_padding;
  const bool one_token = T == 1;  // metrics of a [B,1] tensor are plain means over rows
  const scalar_t beta = in.beta;
  const scalar_t low_bound = in.clip_low, high_bound = in.clip_high;

  // Sequence level: one ratio per row (grpo-math.md §3) and its ratio-only loss.
  scalar_t row_ratio = 1, row_loss = 0, row_dloss = 0;
  if constexpr (sequence) {
    const auto log_ratio_sum = static_cast<scalar_t>(fused_sum(value_terms, T));
    row_ratio = fused_exp(static_cast<scalar_t>(log_ratio_sum / std::max(length, scalar_t(1))));
    fused_ratio_loss<scalar_t, family>(in, row_ratio, A, row_loss, row_dloss);
  }

  // Pass 2. Loads, arithmetic and comparisons are unconditional and results are picked by selects, so that
  // GCC if-converts and vectorises the loop (it does not speculate possibly trapping float operations).
  int32_t low = 0, high = 0, region = 0, capped = 0;
  const bool bias_correction = in.bias_correction;
  const scalar_t padding_counts_flag = padding_counts ? 1 : 0, one_token_flag = one_token ? 1 : 0;
  const scalar_t keep_padding_flag = sanitize ? 0 : 1;
  for (int64_t t = 0; t < T; ++t) {
    // Conditions are float comparisons (mv is 0 or 1 here): combining bools would mix vector widths.
    const scalar_t mv = m[t], xv = x[t], ov = o[t];  // padding already zeroed when sanitize_padding
    const scalar_t weight = mv != scalar_t(0) ? active_weight : padding_weight;
    const bool counts = mv + padding_counts_flag != scalar_t(0);   // active or padding_counts
    const bool metric = mv + one_token_flag != scalar_t(0);        // active or T == 1
    const bool gets_grad = mv + keep_padding_flag != scalar_t(0);  // active or not sanitising
    const scalar_t grad_weight = gets_grad ? weight : scalar_t(0);

    scalar_t ratio = row_ratio, loss = 0, dloss_dratio = 0, dloss_dx = 0;
    if constexpr (!sequence) {
      ratio = fused_exp(static_cast<scalar_t>(xv - ov));
      fused_ratio_loss<scalar_t, family>(in, ratio, A, loss, dloss_dratio);
    }
    if constexpr (family == FusedFamily::cispo) {
      const scalar_t cap = fused_min(ratio, in.cispo_cap) * A;
      loss = -(cap * xv);
      dloss_dx = -cap;
      if constexpr (!sequence) capped += (metric & (ratio > in.cispo_cap) & (A > 0)) ? 1 : 0;
    }
    if constexpr (with_kl) {
      const scalar_t d = ref[t] - xv;
      const scalar_t e = fused_exp(d);
      const scalar_t k3 = e - d - scalar_t(1);
      const scalar_t dk3 = scalar_t(1) - e;
      // use_bias_correction_kl: kl · ρ, whose gradient also flows through ρ.
      const scalar_t kl_factor = bias_correction ? ratio : scalar_t(1);
      const scalar_t kl = k3 * kl_factor;
      const scalar_t kl_dratio = bias_correction ? beta * k3 : scalar_t(0);
      dloss_dx += beta * dk3 * kl_factor;
      if constexpr (sequence) {
        const scalar_t weighted = grad_weight * kl_dratio;
        dratio_terms[t] = counts ? weighted : scalar_t(0);
      } else {
        dloss_dratio += kl_dratio;
      }
      loss += beta * kl;
      kl_terms[t] = metric ? kl : scalar_t(0);
    }
    if constexpr (!sequence) {
      dloss_dx += dloss_dratio * ratio;  // dρ/dx = ρ at token level
      if constexpr (family == FusedFamily::clip) dratio_terms[t] = metric ? ratio : scalar_t(1);
    }
    const scalar_t contribution = weight * loss;
    value_terms[t] = counts ? contribution : scalar_t(0);
    const scalar_t grad = grad_weight * dloss_dx;
    g[t] = counts ? grad : scalar_t(0);
  }
  if constexpr (!sequence && family == FusedFamily::clip) {
    // Clip indicators from the ratios pass 2 left in dratio_terms (1, inside the range, where not counted).
    const bool negative = A < 0, positive = A > 0;
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t ratio = dratio_terms[t];
      const bool is_low = (ratio < low_bound) & negative;
      const bool is_high = (ratio > high_bound) & positive;
      low += static_cast<int32_t>(is_low);
      high += static_cast<int32_t>(is_high);
      region += static_cast<int32_t>(is_low | is_high);
    }
  }
  double value = fused_sum(value_terms, T);
  const double kl_sum = with_kl ? fused_sum(kl_terms, T) : 0.0;
  double dratio_sum = (sequence && with_kl) ? fused_sum(dratio_terms, T) : 0.0;
  // Σ of the weights of the counted positions.
  const double weight_sum = static_cast<double>(length) * static_cast<double>(active_weight) +
                            (padding_counts ? static_cast<double>(T - active_count) * static_cast<double>(padding_weight) : 0.0);

  if constexpr (sequence) {
    // The ratio-only part ℓ(ρ_i) is the same at every counted position (or once per row for luspo's [B,1]).
    const bool row_shaped = luspo && !with_kl && family != FusedFamily::cispo;
    const double row_weight = row_shaped ? static_cast<double>(length) : weight_sum;
    if constexpr (family != FusedFamily::cispo) {
      value += row_weight * static_cast<double>(row_loss);
      dratio_sum += row_weight * static_cast<double>(row_dloss);
    }
    // Pass 3: dρ_i/dx_t = ρ_i m_t / max(L_i, 1).
    const scalar_t spread =
        static_cast<scalar_t>(dratio_sum * static_cast<double>(row_ratio) / std::max(static_cast<double>(length), 1.0));
    for (int64_t t = 0; t < T; ++t) {
      const bool active = m[t] != scalar_t(0);
      g[t] += active ? spread : scalar_t(0);
    }
    if constexpr (family == FusedFamily::clip) {
      const bool is_low = (row_ratio < low_bound) & (A < 0);
      const bool is_high = (row_ratio > high_bound) & (A > 0);
      low = is_low, high = is_high, region = is_low | is_high;
    }
    if constexpr (family == FusedFamily::cispo) capped = (row_ratio > in.cispo_cap) & (A > 0);
  }
  row.value = value;
  row.kl = kl_sum;
  row.low = low, row.high = high, row.region = region, row.cispo = capped;
  return row;
}

// One row's pointers; __restrict parameters tell GCC that the outputs (gradient, scratch) never overlap the
// inputs (without it the loop needs more run-time alias checks than GCC allows and stays scalar). Inputs may
// alias each other (on-policy, old = logps): they are only read. Per-element terms of the float sums go to
// scratch rows, summed afterwards (fused_sum): an in-loop float reduction would not vectorise.
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl>
[[gnu::always_inline]] inline FusedRow fused_row(const FusedInputs<scalar_t>& in, int64_t i, scalar_t* scratch) {
  const int64_t T = in.tokens;
  const scalar_t* x = in.logps + i * T;
  return fused_row_body<scalar_t, family, sequence, with_kl>(
      in, i, x, in.old_logps + i * T, with_kl ? in.ref_logps + i * T : x, in.mask + i * T, in.grad + i * T, scratch,
      scratch + T, scratch + 2 * T);
}

// Rows [begin, end) in the instruction set the including code is compiled for (x86-64: SSE2 by default).
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl>
inline void fused_chunk(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows, int64_t begin, int64_t end,
                        scalar_t* scratch) {
  for (int64_t i = begin; i < end; ++i) {
    rows[static_cast<std::size_t>(i)] = fused_row<scalar_t, family, sequence, with_kl>(in, i, scratch);
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
// The same rows compiled for AVX2 + FMA (the always-inline helpers take this function's instruction set), chosen
// at run time when the CPU has them: the default x86-64 flags give 4-wide SSE2 vectors and 3-instruction selects,
// which make the loop compute bound (benchmarks/RESULTS.md); AVX2 is about 3.5x faster.
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl>
[[gnu::target("avx2,fma")]] inline void fused_chunk_avx2(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows,
                                                          int64_t begin, int64_t end, scalar_t* scratch) {
  for (int64_t i = begin; i < end; ++i) {
    rows[static_cast<std::size_t>(i)] = fused_row<scalar_t, family, sequence, with_kl>(in, i, scratch);
  }
}

inline bool fused_cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

// Runs the rows in parallel chunks; invalid rows stop early and are reported in their FusedRow.
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl>
inline void fused_rows(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(in.tokens, 1));
#if defined(__GNUC__) && defined(__x86_64__)
  const bool avx2 = fused_cpu_has_avx2();
#endif
  at::parallel_for(0, in.rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> scratch(static_cast<std::size_t>(3 * in.tokens));
#if defined(__GNUC__) && defined(__x86_64__)
    if (avx2) return fused_chunk_avx2<scalar_t, family, sequence, with_kl>(in, rows, begin, end, scratch.data());
#endif
    fused_chunk<scalar_t, family, sequence, with_kl>(in, rows, begin, end, scratch.data());
  });
}

template <typename scalar_t, FusedFamily family>
inline void fused_rows_dispatch_level(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows) {
  const bool kl = in.ref_logps != nullptr;
  if (in.sequence) {
    kl ? fused_rows<scalar_t, family, true, true>(in, rows) : fused_rows<scalar_t, family, true, false>(in, rows);
  } else {
    kl ? fused_rows<scalar_t, family, false, true>(in, rows) : fused_rows<scalar_t, family, false, false>(in, rows);
  }
}

template <typename scalar_t>
inline void fused_rows_dispatch(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows) {
  switch (in.loss_type) {
    case LossType::sapo: return fused_rows_dispatch_level<scalar_t, FusedFamily::sapo>(in, rows);
    case LossType::cispo: return fused_rows_dispatch_level<scalar_t, FusedFamily::cispo>(in, rows);
    default: return fused_rows_dispatch_level<scalar_t, FusedFamily::clip>(in, rows);
  }
}

}  // namespace grpo::detail

#ifdef GRPO_FUSED_LOSS_POP_OPTIONS
#pragma GCC pop_options
#undef GRPO_FUSED_LOSS_POP_OPTIONS
#endif

namespace grpo::detail {

// What the fused pass hands back besides the loss.
struct FusedOutcome {
  bool invalid = false;          // the caller re-runs the full validation, which throws the exact message
  double local_tokens = 0;       // Σ m over the micro-batch
  std::map<std::string, double> metrics;
};

// Tensors of one fused call, already converted to the logps dtype and made contiguous.
struct FusedTensors {
  torch::Tensor logps, old_logps, ref_logps, advantages, mask;
  const LossOptions* options = nullptr;
  double num_items_in_batch = 0;
  int num_processes = 1, grad_accum_steps = 1;
  FusedOutcome* outcome = nullptr;
};

// Fills the loss value, the unscaled gradient and the outcome; returns the gradient scale of the loss.
template <typename scalar_t>
inline double fused_policy_loss_impl(const FusedTensors& ts, torch::Tensor& grad, double& loss_value) {
  const LossOptions& o = *ts.options;
  FusedInputs<scalar_t> in;
  in.rows = ts.logps.size(0);
  in.tokens = ts.logps.size(1);
  in.logps = ts.logps.data_ptr<scalar_t>();
  in.old_logps = ts.old_logps.defined() ? ts.old_logps.data_ptr<scalar_t>() : in.logps;
  in.ref_logps = o.beta != 0.0 ? ts.ref_logps.data_ptr<scalar_t>() : nullptr;
  in.advantages = ts.advantages.data_ptr<scalar_t>();
  in.mask = ts.mask.data_ptr<scalar_t>();
  grad = torch::empty_like(ts.logps);
  in.grad = grad.data_ptr<scalar_t>();
  in.loss_type = o.loss_type;
  in.sequence = o.importance_sampling_level == ImportanceSampling::sequence;
  in.bias_correction = o.use_bias_correction_kl;
  in.beta = static_cast<scalar_t>(o.beta);
  in.clip_low = static_cast<scalar_t>(1.0 - o.epsilon);
  in.clip_high = static_cast<scalar_t>(1.0 + o.epsilon_high_or_low());
  in.delta = o.delta ? static_cast<scalar_t>(*o.delta) : std::numeric_limits<scalar_t>::infinity();
  in.cispo_cap = static_cast<scalar_t>(o.epsilon_high_or_low());
  in.sapo_pos = static_cast<scalar_t>(o.sapo_temperature_pos);
  in.sapo_neg = static_cast<scalar_t>(o.sapo_temperature_neg);
  const bool luspo = o.loss_type == LossType::luspo;
  in.padding_counts = luspo || in.tokens == 1;

  FusedOutcome& out = *ts.outcome;
  for (int64_t i = 0; i < in.rows; ++i) {
    if (!fused_finite(in.advantages[i])) out.invalid = true;
  }
  std::vector<FusedRow> rows(static_cast<std::size_t>(in.rows));
  fused_rows_dispatch(in, rows);
  bool padding_not_finite = false;
  for (const auto& r : rows) {
    out.invalid = out.invalid || r.invalid;
    padding_not_finite = padding_not_finite || r.padding_not_finite;
  }
  if (out.invalid) return 0;
  if (padding_not_finite && in.padding_counts) {
    // Rare: the padding values matter and hold inf/NaN; the composed path then reads all padding as zeros.
    const auto keep = ts.mask != 0;
    const auto zeroed = [&](const torch::Tensor& t) -> torch::Tensor {
      return torch::where(keep, t, torch::zeros_like(t)).contiguous();
    };
    const torch::Tensor logps = zeroed(ts.logps);
    const torch::Tensor old_logps = ts.old_logps.defined() ? zeroed(ts.old_logps) : logps;
    const torch::Tensor ref_logps = in.ref_logps ? zeroed(ts.ref_logps) : torch::Tensor();
    in.logps = logps.data_ptr<scalar_t>();
    in.old_logps = old_logps.data_ptr<scalar_t>();
    if (in.ref_logps) in.ref_logps = ref_logps.data_ptr<scalar_t>();
    in.sanitize_padding = true;
    fused_rows_dispatch(in, rows);
  }

  const auto B = static_cast<double>(in.rows);
  double value = 0, tokens = 0, kl = 0, low = 0, high = 0, region = 0, capped = 0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double low_min = nan, high_max = nan;
  const bool row_metrics = in.sequence || in.tokens == 1;
  for (const auto& r : rows) {
    value += r.value;
    tokens += r.length;
    kl += r.kl;
    low += r.low, high += r.high, region += r.region, capped += r.cispo;
    if (row_metrics || r.length > 0) {
      // Per-row fractions as the composed path computes them, in the input dtype.
      const double row_low = row_metrics ? r.low : static_cast<double>(static_cast<scalar_t>(r.low) / static_cast<scalar_t>(r.length));
      const double row_high = row_metrics ? r.high : static_cast<double>(static_cast<scalar_t>(r.high) / static_cast<scalar_t>(r.length));
      low_min = std::isnan(low_min) ? row_low : std::min(low_min, row_low);
      high_max = std::isnan(high_max) ? row_high : std::max(high_max, row_high);
    }
  }
  out.local_tokens = tokens;

  const double ga = ts.grad_accum_steps;
  double scale = 1;
  switch (o.loss_type) {
    case LossType::grpo:
    case LossType::sapo: scale = 1.0 / (B * ga); break;
    case LossType::bnpo: scale = 1.0 / (std::max(tokens, 1.0) * ga); break;
    case LossType::dr_grpo: scale = 1.0 / (B * static_cast<double>(o.max_completion_length) * ga); break;
    case LossType::dapo:
    case LossType::cispo: scale = ts.num_processes / std::max(ts.num_items_in_batch, 1.0); break;
    case LossType::luspo: {
      const bool row_shaped = in.sequence && o.beta == 0.0;
      scale = 1.0 / (B * (row_shaped ? 1.0 : static_cast<double>(in.tokens)) * ga);
      break;
    }
  }
  loss_value = value * scale;

  // §6, with the composed path's denominators: masked token means, or plain row means for [B,1] tensors.
  const double token_denominator = std::max(tokens, 1.0);
  const double kl_denominator = in.tokens == 1 ? B : token_denominator;
  const double indicator_denominator = row_metrics ? B : token_denominator;
  if (o.beta != 0.0) out.metrics["kl"] = kl / kl_denominator;
  if (o.loss_type == LossType::cispo) {
    out.metrics["cispo_clip_ratio"] = capped / indicator_denominator;
  } else if (o.loss_type != LossType::sapo) {
    out.metrics["clip_ratio/low_mean"] = low / indicator_denominator;
    out.metrics["clip_ratio/high_mean"] = high / indicator_denominator;
    out.metrics["clip_ratio/region_mean"] = region / indicator_denominator;
    out.metrics["clip_ratio/low_min"] = low_min;
    out.metrics["clip_ratio/high_max"] = high_max;
  }
  return scale;
}

// The autograd node: forward runs the fused pass, backward returns grad_output · scale · saved gradient.
struct FusedPolicyLossFunction : public torch::autograd::Function<FusedPolicyLossFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logps,
                               const FusedTensors* tensors) {
    (void)logps;  // the graph's input; the kernel reads tensors->logps (the same values, contiguous)
    torch::Tensor grad;
    double value = 0, scale = 1;
    if (tensors->logps.scalar_type() == torch::kFloat) {
      scale = fused_policy_loss_impl<float>(*tensors, grad, value);
    } else {
      scale = fused_policy_loss_impl<double>(*tensors, grad, value);
    }
    ctx->saved_data["grad"] = grad;
    ctx->saved_data["scale"] = scale;
    return torch::scalar_tensor(value, tensors->logps.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (torch::GradMode::is_enabled()) {
      throw std::runtime_error(
          "grpo::policy_loss (fused): double backward (create_graph = true) is not supported; use "
          "grpo::detail::policy_loss_composed for higher-order gradients");
    }
    const auto grad = ctx->saved_data["grad"].toTensor();
    const double scale = ctx->saved_data["scale"].toDouble();
    return {grad * (grad_outputs[0] * scale), torch::Tensor()};
  }
};

}  // namespace grpo::detail
