#pragma once
// The fused policy_loss kernel: one pass over the [B,T] inputs computes the loss (docs/math.md §3-§5), the
// gradient d loss / d logps and the metric sums (§6), rows in parallel (at::parallel_for). A custom autograd
// function saves the gradient; backward scales it by grad_output. Same values as the composed LibTorch ops of
// loss.hpp (grpo::detail::policy_loss_composed), including PyTorch's subgradient conventions at ties:
// clamp passes the gradient on its closed interval, min splits a tie 50/50.
// First derivatives only: backward with create_graph = true throws.
//
// The row loop is explicit SIMD (detail/simd.hpp), written once over a vector type and compiled twice: with
// 16-byte vectors for the baseline instruction set and, on x86-64, with 32-byte vectors for AVX2 + FMA, chosen
// at run time. Its speed therefore does not depend on the including program's optimisation flags.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/types.h>

#include "grpo/core/loss_options.hpp"
#include "grpo/detail/simd.hpp"
#include "grpo/error.hpp"

namespace grpo::detail {

// The three shapes of per-token loss (docs/math.md §4).
enum class FusedFamily { clip, sapo, cispo };

// Everything the kernel reads, in the logps dtype, contiguous; options resolved to scalars.
template <typename scalar_t>
struct FusedInputs {
  const scalar_t* logps = nullptr;       // [B,T]
  const scalar_t* old_logps = nullptr;   // [B,T], or logps itself on-policy (ratio 1)
  const scalar_t* ref_logps = nullptr;   // [B,T], null when beta == 0
  const scalar_t* advantages = nullptr;  // [B]
  const scalar_t* mask = nullptr;        // [B,T]
  scalar_t* grad = nullptr;              // [B,T] output: grad_scale · d (unscaled loss) / d logps
  int64_t rows = 0, tokens = 0;
  LossType loss_type = LossType::dapo;
  bool sequence = false;
  bool bias_correction = false;
  scalar_t beta = 0, clip_low = 0, clip_high = 0, delta = 0, cispo_cap = 0;
  scalar_t sapo_pos = 1, sapo_neg = 1;
  scalar_t grad_scale = 1;  // the loss's scale where known before the pass (all but bnpo)
  // Padding values enter the result (luspo's [B,T] mean, T = 1 metrics)...
  bool padding_counts = false;
  // ...and were non-finite somewhere, so the composed path reads them as zeros without gradient: the
  // pointers then hold copies with zeroed padding, and padding gets no gradient.
  bool sanitize_padding = false;
};

// Per-row results, reduced in row order after the parallel pass (deterministic).
struct FusedRow {
  double value = 0;                                 // Σ_t weight_t ℓ_t with the row factor applied
  double length = 0;                                // L_i
  double kl = 0;                                    // Σ metric-weight · kl
  double low = 0, high = 0, region = 0, cispo = 0;  // indicator sums (or row indicators)
  bool invalid = false;                             // mask not 0/1 or a non-finite active value
  bool padding_not_finite = false;                  // a non-finite value on padding
};

// Neither infinite nor NaN, from the exponent bits (valid under -ffast-math too).
template <typename scalar_t>
inline bool fused_finite(scalar_t v) {
  using Bits = std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint64_t>;
  Bits bits;
  std::memcpy(&bits, &v, sizeof bits);
  const Bits exponent = sizeof(scalar_t) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  return (bits & exponent) != exponent;
}

#if GRPO_HAS_SIMD

// ℓ(ρ) and dℓ/dρ of the ratio-only losses, lane-wise (S: a simd::Vec). Minima and maxima are selects on a
// comparison, min(a, b) = b < a ? b : a, as the composed path's ops pick them; ties follow clamp's and min's
// gradient conventions (see the top of this file).
template <class S, FusedFamily family>
[[gnu::always_inline]] inline void fused_ratio_loss(const FusedInputs<typename S::T>& in, const typename S::V& ratio,
                                                    typename S::T advantage, typename S::V& loss,
                                                    typename S::V& dloss_dratio) {
  using T = typename S::T;
  using V = typename S::V;
  using M = typename S::M;
  if constexpr (family == FusedFamily::clip) {
    const V a = V{} + advantage;
    const V unclipped = (in.delta < ratio ? V{} + in.delta : ratio) * advantage;
    const V above_low = ratio < in.clip_low ? V{} + in.clip_low : ratio;
    const V clipped = (in.clip_high < above_low ? V{} + in.clip_high : above_low) * advantage;
    const M inside = (ratio >= in.clip_low) & (ratio <= in.clip_high);  // clamp passes the gradient here
    const V d_unclipped = ratio <= in.delta ? a : V{};
    const V d_clipped = inside ? a : V{};
    const V d_tie = T(0.5) * (d_unclipped + d_clipped);  // min splits a tie
    const V d_not_less = clipped < unclipped ? d_clipped : d_tie;
    const V d_min = unclipped < clipped ? d_unclipped : d_not_less;
    loss = -(clipped < unclipped ? clipped : unclipped);
    dloss_dratio = -d_min;
  } else if constexpr (family == FusedFamily::sapo) {
    const T temperature = advantage > 0 ? in.sapo_pos : in.sapo_neg;
    V e = -(temperature * (ratio - T(1)));
    simd::exp_inplace<S>(e);
    const V s = T(1) / (T(1) + e);
    loss = -(s * T(4) / temperature * advantage);
    dloss_dratio = -(s * (T(1) - s) * T(4) * advantage);
  } else {
    loss = V{};
    dloss_dratio = V{};
  }
}

// One row: pass 1 counts L_i, validates and (sequence level) sums the log-ratio; pass 2 computes losses,
// gradients and metric sums; pass 3 (sequence level) adds the ratio's gradient, spread over the active tokens.
// Each pass runs over whole vectors and then once over the row's tail (fewer lanes, zeros beyond the row: an
// inactive position, kept out of every sum by `valid`).
// counts_padding: padding positions enter the sums (in.padding_counts: luspo, or T = 1); otherwise only active
// positions do, with one weight, which keeps the common loop short.
// scratch: two rows of T elements rounded up to whole vectors.
template <class S, FusedFamily family, bool sequence, bool with_kl, bool counts_padding>
[[gnu::always_inline]] inline FusedRow fused_row(const FusedInputs<typename S::T>& inputs, int64_t i,
                                                 typename S::T* scratch) {
  using T = typename S::T;
  using V = typename S::V;
  using M = typename S::M;
  using Sum = simd::DoubleSum<S>;
  constexpr int W = S::lanes;
  // A local copy: the gradient stores cannot alias it, so the loops keep the options in registers.
  const FusedInputs<T> in = inputs;
  const int64_t tokens = in.tokens;
  const T* x = in.logps + i * tokens;
  const T* o = in.old_logps + i * tokens;
  const T* ref = with_kl ? in.ref_logps + i * tokens : x;
  const T* m = in.mask + i * tokens;
  T* g = in.grad + i * tokens;
  const T A = in.advantages[i];
  const int64_t whole = tokens - tokens % W;
  const int tail = static_cast<int>(tokens - whole);
  const M all = ~M{}, none = M{};
  FusedRow row;

  // Runs block(t, lanes, partial) over the row: whole vectors, then the tail.
  const auto for_blocks = [&](auto&& block) __attribute__((always_inline)) {
    for (int64_t t = 0; t < whole; t += W) block(t, W, std::false_type{});
    if (tail > 0) block(whole, tail, std::true_type{});
  };
  const auto load = [](V & v, const T* p, int64_t t, int n, auto partial) __attribute__((always_inline)) {
    if constexpr (decltype(partial)::value) {
      simd::load_partial<S>(v, p + t, n);
    } else {
      simd::load<S>(v, p + t);
    }
  };

  // Validation, folded into the first pass that reads the values: the mask is 0/1 and the values are finite where
  // it is 1; non-finite padding is noted (the caller then zeroes it where it counts). Also counts L_i.
  M invalid = none, padding_bad = none, active_lanes = none;
  const auto check = [&](const M& active, const V& mv, const V& xv, const V& ov, int64_t t, int n, auto partial)
      __attribute__((always_inline)) {
    M finite, finite_old;
    simd::finite_lanes<S>(finite, xv);
    simd::finite_lanes<S>(finite_old, ov);
    finite &= finite_old;
    if constexpr (with_kl) {
      V rv;
      M finite_ref;
      load(rv, ref, t, n, partial);
      simd::finite_lanes<S>(finite_ref, rv);
      finite &= finite_ref;
    }
    invalid |= active & ((mv != T(1)) | ~finite);
    padding_bad |= ~active & ~finite;
    active_lanes -= active;  // a set lane is -1
  };
  const auto finish_checks = [&] {
    row.invalid = simd::any(invalid);
    row.padding_not_finite = simd::any(padding_bad);
    row.length = simd::lane_sum(active_lanes);
  };

  // Pass 1. Sequence level: validates, counts L_i and sums the log-ratios. Token level: only the losses whose
  // weights need L_i before pass 2 (grpo and sapo: 1 / L_i; luspo: L_i) count the mask's ones here.
  const bool luspo = in.loss_type == LossType::luspo;
  const bool per_row_factor = in.loss_type == LossType::grpo || in.loss_type == LossType::sapo;
  Sum log_ratio_sum;
  double active_count = 0;
  if constexpr (sequence) {
    for_blocks([&](int64_t t, int n, auto partial) __attribute__((always_inline)) {
      V mv, xv, ov;
      load(mv, m, t, n, partial);
      load(xv, x, t, n, partial);
      load(ov, o, t, n, partial);
      const M active = mv != T(0);
      check(active, mv, xv, ov, t, n, partial);
      simd::accumulate<S>(log_ratio_sum, active ? xv - ov : V{});
    });
    finish_checks();
    if (row.invalid) return row;
    active_count = row.length;
  } else if (per_row_factor || luspo) {
    M counted = none;
    for_blocks([&](int64_t t, int n, auto partial) __attribute__((always_inline)) {
      V mv;
      load(mv, m, t, n, partial);
      counted -= mv != T(0);
    });
    active_count = simd::lane_sum(counted);
  }
  const auto length = static_cast<T>(active_count);

  // Token level: the ratios exp(x_t - o_t), and exp(ref_t - x_t) for the KL, into the scratch rows, while
  // validating. Short loop bodies with independent iterations, which the CPU overlaps: a single loop doing
  // everything is bound by the latency of its dependency chain (exp, then the clip's compares and selects).
  T* const ratios = scratch;
  T* const kl_exps = scratch + (whole + (tail > 0 ? W : 0));
  if constexpr (!sequence) {
    for_blocks([&](int64_t t, int n, auto partial) __attribute__((always_inline)) {
      V mv, xv, ov;
      load(mv, m, t, n, partial);
      load(xv, x, t, n, partial);
      load(ov, o, t, n, partial);
      check(mv != T(0), mv, xv, ov, t, n, partial);
      V ratio = xv - ov;
      simd::exp_inplace<S>(ratio);
      simd::store<S>(ratios + t, ratio);  // whole vectors: the scratch rows are padded
      if constexpr (with_kl) {
        V rv;
        load(rv, ref, t, n, partial);
        V e = rv - xv;
        simd::exp_inplace<S>(e);
        simd::store<S>(kl_exps + t, e);
      }
    });
    finish_checks();
    if (row.invalid) return row;
  }

  const T row_factor = per_row_factor ? T(1) / std::max(length, T(1)) : T(1);
  // Loss weight of an active and of a padding position.
  const T active_weight = luspo ? length : row_factor;
  const T padding_weight = luspo ? length : T(0);
  const T active_grad_factor = active_weight * in.grad_scale;
  const M one_token = tokens == 1 ? all : none;  // metrics of a [B,1] tensor are plain means over rows
  const M padding_gets_grad = in.sanitize_padding ? none : all;
  const M positive = A > 0 ? all : none;
  // A token is clipped low (A < 0, ratio < 1 - ε_low) or high (A > 0, ratio > 1 + ε_high): one comparison
  // sign(A) ratio > bound, with the bound +inf when A = 0. The row's count is low or high by the sign of A.
  const T clip_sign = A < 0 ? T(-1) : T(1);
  const T clip_bound = A < 0 ? -in.clip_low : (A > 0 ? in.clip_high : std::numeric_limits<T>::infinity());
  const T beta = in.beta;
  const bool bias_correction = in.bias_correction;

  // Sequence level: one ratio per row (docs/math.md §3) and its ratio-only loss.
  T row_ratio = 1, row_loss = 0, row_dloss = 0;
  if constexpr (sequence) {
    const auto mean_log_ratio = static_cast<T>(simd::lane_sum(log_ratio_sum) / std::max<double>(active_count, 1.0));
    row_ratio = std::exp(mean_log_ratio);
    V loss, dloss;
    fused_ratio_loss<S, family>(in, V{} + row_ratio, A, loss, dloss);
    row_loss = loss[0], row_dloss = dloss[0];
  }

  // Pass 2.
  Sum value_sum, kl_sum, dratio_sum;
  M clipped = none, capped = none;
  for_blocks([&](int64_t t, int n, auto partial) __attribute__((always_inline)) {
    V mv, xv, ov;  // padding already zeroed when sanitize_padding
    load(mv, m, t, n, partial);
    load(xv, x, t, n, partial);
    load(ov, o, t, n, partial);
    const M active = mv != T(0);
    M counts = active, metric = active;
    V weight = V{} + active_weight, grad_weight = weight, grad_factor = V{} + active_grad_factor;
    if constexpr (counts_padding) {
      M valid = all;
      if constexpr (decltype(partial)::value) simd::first_lanes<S>(valid, n);
      weight = active ? weight : V{} + padding_weight;
      counts = valid;
      metric = (active | one_token) & valid;
      grad_weight = (active | padding_gets_grad) ? weight : V{};
      grad_factor = grad_weight * in.grad_scale;
    }

    V ratio = V{} + row_ratio, loss = V{}, dloss_dratio = V{}, dloss_dx = V{};
    if constexpr (!sequence) {
      simd::load<S>(ratio, ratios + t);
      fused_ratio_loss<S, family>(in, ratio, A, loss, dloss_dratio);
    }
    if constexpr (family == FusedFamily::cispo) {
      const V cap = (in.cispo_cap < ratio ? V{} + in.cispo_cap : ratio) * A;
      loss = -(cap * xv);
      dloss_dx = -cap;
      if constexpr (!sequence) capped -= metric & (ratio > in.cispo_cap) & positive;
    }
    if constexpr (with_kl) {
      V rv;
      load(rv, ref, t, n, partial);
      const V d = rv - xv;
      V e;
      if constexpr (sequence) {
        e = d;
        simd::exp_inplace<S>(e);
      } else {
        simd::load<S>(e, kl_exps + t);
      }
      const V k3 = e - d - T(1);
      const V dk3 = T(1) - e;
      // use_bias_correction_kl: kl · ρ, whose gradient also flows through ρ.
      const V kl_factor = bias_correction ? ratio : V{} + T(1);
      const V kl = k3 * kl_factor;
      const V kl_dratio = bias_correction ? beta * k3 : V{};
      dloss_dx += beta * dk3 * kl_factor;
      if constexpr (sequence) {
        simd::accumulate<S>(dratio_sum, counts ? grad_weight * kl_dratio : V{});
      } else {
        dloss_dratio += kl_dratio;
      }
      loss += beta * kl;
      simd::accumulate<S>(kl_sum, metric ? kl : V{});
    }
    if constexpr (!sequence) {
      dloss_dx += dloss_dratio * ratio;  // dρ/dx = ρ at token level
      if constexpr (family == FusedFamily::clip) {
        clipped -= metric & (ratio * clip_sign > clip_bound);
      }
    }
    simd::accumulate<S>(value_sum, counts ? weight * loss : V{});
    const V grad = counts ? grad_factor * dloss_dx : V{};
    if constexpr (decltype(partial)::value) {
      simd::store_partial<S>(g + t, grad, n);
    } else {
      simd::store<S>(g + t, grad);
    }
  });
  double value = simd::lane_sum(value_sum);
  double dratio = simd::lane_sum(dratio_sum);
  row.kl = simd::lane_sum(kl_sum);
  row.region = simd::lane_sum(clipped);
  (A < 0 ? row.low : row.high) = row.region;
  row.cispo = simd::lane_sum(capped);
  if constexpr (sequence) {
    // Σ of the weights of the counted positions.
    const double weight_sum =
        active_count * static_cast<double>(active_weight) +
        (counts_padding ? static_cast<double>(tokens - static_cast<int64_t>(active_count)) * padding_weight : 0.0);
    // The ratio-only part ℓ(ρ_i) is the same at every counted position (or once per row for luspo's [B,1]).
    const bool row_shaped = luspo && !with_kl && family != FusedFamily::cispo;
    const double row_weight = row_shaped ? active_count : weight_sum;
    if constexpr (family != FusedFamily::cispo) {
      value += row_weight * static_cast<double>(row_loss);
      dratio += row_weight * static_cast<double>(row_dloss);
    }
    // Pass 3: dρ_i/dx_t = ρ_i m_t / max(L_i, 1).
    const auto spread = static_cast<T>(dratio * static_cast<double>(row_ratio) / std::max(active_count, 1.0) *
                                       static_cast<double>(in.grad_scale));
    for_blocks([&](int64_t t, int n, auto partial) __attribute__((always_inline)) {
      V mv, gv;
      load(mv, m, t, n, partial);
      load(gv, g, t, n, partial);
      gv += mv != T(0) ? V{} + spread : V{};
      if constexpr (decltype(partial)::value) {
        simd::store_partial<S>(g + t, gv, n);
      } else {
        simd::store<S>(g + t, gv);
      }
    });
    if constexpr (family == FusedFamily::clip) {
      const bool is_low = row_ratio < in.clip_low && A < 0;
      const bool is_high = row_ratio > in.clip_high && A > 0;
      row.low = is_low, row.high = is_high, row.region = is_low || is_high;
    }
    if constexpr (family == FusedFamily::cispo) row.cispo = row_ratio > in.cispo_cap && A > 0;
  }
  row.value = value;
  return row;
}

// Rows [begin, end) with vectors of S.
template <class S, FusedFamily family, bool sequence, bool with_kl, bool counts_padding>
[[gnu::always_inline]] inline void fused_rows_with(const FusedInputs<typename S::T>& in, std::vector<FusedRow>& rows,
                                                   int64_t begin, int64_t end) {
  const int64_t padded = (in.tokens + S::lanes - 1) / S::lanes * S::lanes;
  std::vector<typename S::T> scratch(static_cast<std::size_t>(2 * padded));
  for (int64_t i = begin; i < end; ++i) {
    rows[static_cast<std::size_t>(i)] = fused_row<S, family, sequence, with_kl, counts_padding>(in, i, scratch.data());
  }
}

// Rows [begin, end) with 16-byte vectors in the instruction set the including code is compiled for (x86-64:
// SSE2 by default; arm64: NEON).
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl, bool counts_padding>
inline void fused_chunk(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows, int64_t begin, int64_t end) {
  fused_rows_with<simd::Vec<scalar_t, 16>, family, sequence, with_kl, counts_padding>(in, rows, begin, end);
}

#if defined(__x86_64__)
// The same rows with 32-byte vectors compiled for AVX2 + FMA (the always-inline body takes this function's
// instruction set), chosen at run time when the CPU has them.
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl, bool counts_padding>
[[gnu::target("avx2,fma")]] inline void fused_chunk_avx2(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows,
                                                         int64_t begin, int64_t end) {
  fused_rows_with<simd::Vec<scalar_t, 32>, family, sequence, with_kl, counts_padding>(in, rows, begin, end);
}

inline bool fused_cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

// Runs the rows in parallel chunks; invalid rows stop early and are reported in their FusedRow.
template <typename scalar_t, FusedFamily family, bool sequence, bool with_kl, bool counts_padding>
inline void fused_rows(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(in.tokens, 1));
#if defined(__x86_64__)
  const bool avx2 = fused_cpu_has_avx2();
#endif
  at::parallel_for(0, in.rows, grain, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (avx2) return fused_chunk_avx2<scalar_t, family, sequence, with_kl, counts_padding>(in, rows, begin, end);
#endif
    fused_chunk<scalar_t, family, sequence, with_kl, counts_padding>(in, rows, begin, end);
  });
}

// Calls f(std::true_type{}) or f(std::false_type{}): a run-time flag to a template argument.
template <typename F>
inline void fused_with_flag(bool flag, F&& f) {
  flag ? f(std::true_type{}) : f(std::false_type{});
}

template <typename scalar_t, FusedFamily family>
inline void fused_rows_dispatch_level(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows) {
  fused_with_flag(in.sequence, [&](auto sequence) {
    fused_with_flag(in.ref_logps != nullptr, [&](auto with_kl) {
      fused_with_flag(in.padding_counts, [&](auto counts_padding) {
        fused_rows<scalar_t, family, decltype(sequence)::value, decltype(with_kl)::value,
                   decltype(counts_padding)::value>(in, rows);
      });
    });
  });
}

template <typename scalar_t>
inline void fused_rows_dispatch(const FusedInputs<scalar_t>& in, std::vector<FusedRow>& rows) {
  switch (in.loss_type) {
    case LossType::sapo:
      return fused_rows_dispatch_level<scalar_t, FusedFamily::sapo>(in, rows);
    case LossType::cispo:
      return fused_rows_dispatch_level<scalar_t, FusedFamily::cispo>(in, rows);
    default:
      return fused_rows_dispatch_level<scalar_t, FusedFamily::clip>(in, rows);
  }
}

// What the fused pass hands back besides the loss.
struct FusedOutcome {
  bool invalid = false;     // the caller re-runs the full validation, which throws the exact message
  double local_tokens = 0;  // Σ m over the micro-batch
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

// The factor that turns the sum of the per-token terms into the micro-step loss (docs/math.md §5); bnpo's needs the
// micro-batch's token count, which the pass finds.
inline double fused_loss_scale(const LossOptions& o, const FusedTensors& ts, double rows, int64_t tokens_per_row,
                               double active_tokens) {
  const double ga = ts.grad_accum_steps;
  switch (o.loss_type) {
    case LossType::grpo:
    case LossType::sapo:
      return 1.0 / (rows * ga);
    case LossType::bnpo:
      return 1.0 / (std::max(active_tokens, 1.0) * ga);
    case LossType::dr_grpo:
      return 1.0 / (rows * static_cast<double>(o.max_completion_length) * ga);
    case LossType::dapo:
    case LossType::cispo:
      return ts.num_processes / std::max(ts.num_items_in_batch, 1.0);
    case LossType::luspo: {
      const bool row_shaped = o.importance_sampling_level == ImportanceSampling::sequence && o.beta == 0.0;
      return 1.0 / (rows * (row_shaped ? 1.0 : static_cast<double>(tokens_per_row)) * ga);
    }
  }
  return 1.0;
}

// Fills the loss value, its gradient with respect to logps and the outcome.
template <typename scalar_t>
inline void fused_policy_loss_impl(const FusedTensors& ts, torch::Tensor& grad, double& loss_value) {
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
  const bool scale_known = o.loss_type != LossType::bnpo;
  if (scale_known)
    in.grad_scale = static_cast<scalar_t>(fused_loss_scale(o, ts, static_cast<double>(in.rows), in.tokens, 0));

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
  if (out.invalid) return;
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
      const double row_low =
          row_metrics ? r.low : static_cast<double>(static_cast<scalar_t>(r.low) / static_cast<scalar_t>(r.length));
      const double row_high =
          row_metrics ? r.high : static_cast<double>(static_cast<scalar_t>(r.high) / static_cast<scalar_t>(r.length));
      low_min = std::isnan(low_min) ? row_low : std::min(low_min, row_low);
      high_max = std::isnan(high_max) ? row_high : std::max(high_max, row_high);
    }
  }
  out.local_tokens = tokens;

  const double scale = fused_loss_scale(o, ts, B, in.tokens, tokens);
  if (!scale_known) grad.mul_(scale);
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
}

// The autograd node: forward runs the fused pass and saves the gradient, already scaled; backward hands it on
// as it is when grad_output is 1 (loss.backward()), without a copy: the engine releases the saved tensor after the
// node ran (unless the graph is retained), so the gradient of a leaf is moved into .grad, not copied.
struct FusedPolicyLossFunction : public torch::autograd::Function<FusedPolicyLossFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logps,
                               const FusedTensors* tensors) {
    (void)logps;  // the graph's input; the kernel reads tensors->logps (the same values, contiguous)
    torch::Tensor grad;
    double value = 0;
    if (tensors->logps.scalar_type() == torch::kFloat) {
      fused_policy_loss_impl<float>(*tensors, grad, value);
    } else {
      fused_policy_loss_impl<double>(*tensors, grad, value);
    }
    ctx->save_for_backward({grad});
    return torch::scalar_tensor(value, tensors->logps.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (torch::GradMode::is_enabled()) {
      throw RuntimeError(
          "grpo::policy_loss: double backward (create_graph = true) through the fused kernel is not supported; use "
          "grpo::detail::policy_loss_composed for higher-order gradients");
    }
    torch::Tensor grad = ctx->get_saved_variables()[0];
    const auto& grad_output = grad_outputs[0];
    if (grad_output.numel() == 1 && grad_output.item<double>() == 1.0) return {grad, torch::Tensor()};
    return {grad * grad_output, torch::Tensor()};
  }
};

#endif  // GRPO_HAS_SIMD

}  // namespace grpo::detail
