#pragma once
// Explicit SIMD for the library's CPU kernels, on the vector types of GCC and Clang (`vector_size`): the kernel
// body is written once over a vector type and compiled twice, with 16-byte vectors for the baseline instruction set
// (SSE2 on x86-64, NEON on arm64) and with 32-byte vectors inside a function marked target("avx2,fma"), chosen at
// run time. The arithmetic is spelled with the vector operators (+ - * / < ?: & |), so its speed does not depend
// on the optimisation level of the including program: nothing waits for the auto-vectoriser.
//
// Why not intrinsics: an intrinsic can only be inlined into a function compiled for its instruction set, so the
// body would have to be written once per target; the vector operators compile for whichever target the enclosing
// function has. Helpers below take and return vectors by reference: a 32-byte vector passed by value from a
// function compiled without AVX changes the calling convention (GCC's -Wpsabi warning in the user's build).
//
// Other compilers (no vector types): GRPO_HAS_SIMD is 0 and the callers use their composed LibTorch path.

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__)  // GCC and Clang
#define GRPO_HAS_SIMD 1
#else
#define GRPO_HAS_SIMD 0
#endif

#if GRPO_HAS_SIMD

namespace grpo::detail::simd {

// Vec<T, Bytes>: V (values), M (lane masks: all bits set where true, as the comparisons return them), I32 (int32
// lanes), D (the lanes widened to double), DHalf (half of D: a sum's accumulator), lanes.
template <typename T, int Bytes>
struct Vec;

template <>
struct Vec<float, 16> {
  using T = float;
  typedef float V __attribute__((vector_size(16)));
  typedef int32_t M __attribute__((vector_size(16)));
  typedef int32_t I32 __attribute__((vector_size(16)));
  typedef double D __attribute__((vector_size(32)));
  typedef double DHalf __attribute__((vector_size(16)));
  static constexpr int lanes = 4;
};
template <>
struct Vec<float, 32> {
  using T = float;
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t M __attribute__((vector_size(32)));
  typedef int32_t I32 __attribute__((vector_size(32)));
  typedef double D __attribute__((vector_size(64)));
  typedef double DHalf __attribute__((vector_size(32)));
  static constexpr int lanes = 8;
};
template <>
struct Vec<double, 16> {
  using T = double;
  typedef double V __attribute__((vector_size(16)));
  typedef int64_t M __attribute__((vector_size(16)));
  typedef int32_t I32 __attribute__((vector_size(8)));
  typedef double D __attribute__((vector_size(16)));
  typedef double DHalf __attribute__((vector_size(16)));  // double lanes are summed as they are: D itself
  static constexpr int lanes = 2;
};
template <>
struct Vec<double, 32> {
  using T = double;
  typedef double V __attribute__((vector_size(32)));
  typedef int64_t M __attribute__((vector_size(32)));
  typedef int32_t I32 __attribute__((vector_size(16)));
  typedef double D __attribute__((vector_size(32)));
  typedef double DHalf __attribute__((vector_size(32)));  // double lanes are summed as they are: D itself
  static constexpr int lanes = 4;
};

// v = p[0 .. lanes).
template <class S>
[[gnu::always_inline]] inline void load(typename S::V& v, const typename S::T* p) {
  std::memcpy(&v, p, sizeof v);
}
// v = p[0 .. n), zeros in the lanes from n on (n < lanes): the tail of a row.
template <class S>
[[gnu::always_inline]] inline void load_partial(typename S::V& v, const typename S::T* p, int n) {
  v = typename S::V{};
  for (int k = 0; k < n; ++k) v[k] = p[k];
}
template <class S>
[[gnu::always_inline]] inline void store(typename S::T* p, const typename S::V& v) {
  std::memcpy(p, &v, sizeof v);
}
template <class S>
[[gnu::always_inline]] inline void store_partial(typename S::T* p, const typename S::V& v, int n) {
  for (int k = 0; k < n; ++k) p[k] = v[k];
}

// mask = lanes [0, n) set.
template <class S>
[[gnu::always_inline]] inline void first_lanes(typename S::M& mask, int n) {
  typename S::M index{};
  for (int k = 0; k < S::lanes; ++k) index[k] = k;
  mask = index < n;
}

// finite = lanes that are neither infinite nor NaN, read from the exponent bits (valid under -ffast-math too).
template <class S>
[[gnu::always_inline]] inline void finite_lanes(typename S::M& finite, const typename S::V& v) {
  using M = typename S::M;
  M bits;
  std::memcpy(&bits, &v, sizeof bits);
  if constexpr (std::is_same_v<typename S::T, float>) {
    finite = (bits & 0x7f800000) != 0x7f800000;
  } else {
    const int64_t exponent = 0x7ff0000000000000LL;
    finite = (bits & exponent) != exponent;
  }
}

// A lane-wise sum in double of vectors of S: two accumulators of half the widened width (a 64-byte double vector
// would live in memory on AVX2), or one for double lanes.
template <class S>
struct DoubleSum {
  typename S::DHalf low{}, high{};
};

// sum += v, lane by lane, widened to double.
template <class S>
[[gnu::always_inline]] inline void accumulate(DoubleSum<S>& sum, const typename S::V& v) {
  if constexpr (std::is_same_v<typename S::T, float>) {
    const typename S::D wide = __builtin_convertvector(v, typename S::D);
    typename S::DHalf low, high;
    std::memcpy(&low, &wide, sizeof low);
    std::memcpy(&high, reinterpret_cast<const char*>(&wide) + sizeof low, sizeof high);
    sum.low += low;
    sum.high += high;
  } else {
    sum.low += v;
  }
}

// Σ of the lanes.
template <class W>
[[gnu::always_inline]] inline double lane_sum(const W& v) {
  constexpr int n = static_cast<int>(sizeof(W) / sizeof(v[0]));
  double total = 0;
  for (int k = 0; k < n; ++k) total += static_cast<double>(v[k]);
  return total;
}

template <class S>
[[gnu::always_inline]] inline double lane_sum(const DoubleSum<S>& sum) {
  return lane_sum(sum.low) + lane_sum(sum.high);
}

// Whether any lane of a mask is set.
template <class W>
[[gnu::always_inline]] inline bool any(const W& mask) {
  constexpr int n = static_cast<int>(sizeof(W) / sizeof(mask[0]));
  bool set = false;
  for (int k = 0; k < n; ++k) set |= mask[k] != 0;
  return set;
}

// x = e^x lane-wise. Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a Taylor polynomial in r (degree 7 for
// float, truncation < 1e-8 relative; degree 13 for double, < 1e-17), times 2^n built in the exponent bits as
// 2^floor(n/2) 2^(n - floor(n/2)), so that results down to the subnormals and up to overflow (inf) come out right
// without special cases. n is rounded with an integer conversion, not the 1.5 * 2^23 trick, which -ffast-math would
// fold away. Within 1 ulp of std::exp (measured over the whole range, both widths); exp(0) = 1 exactly; NaN stays
// NaN.
template <class S>
[[gnu::always_inline]] inline void exp_inplace(typename S::V& x) {
  using V = typename S::V;
  using I32 = typename S::I32;
  using T = typename S::T;
  constexpr bool is_float = std::is_same_v<T, float>;
  // Bounds beyond which e^x is 0 or inf in T; within them 2^floor(n/2) and 2^(n - floor(n/2)) are normal numbers.
  const T lowest = is_float ? T(-104.0) : T(-746.0);
  const T highest = is_float ? T(89.0) : T(710.0);
  const V above = x < lowest ? V{} + lowest : x;  // min/max as selects: a NaN x stays NaN
  const V xc = above > highest ? V{} + highest : above;
  const V scaled = xc * T(1.4426950408889634);  // x / ln2
  const V t = scaled == scaled ? scaled : V{};  // NaN converts to 0, not to an undefined integer
  const V half = t < T(0) ? V{} - T(0.5) : V{} + T(0.5);
  const I32 n_int = __builtin_convertvector(t + half, I32);  // rounded to nearest
  const V n = __builtin_convertvector(n_int, V);
  V p;
  if constexpr (is_float) {
    const V r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in a short high part and the rest
    p = V{} + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
  } else {
    const V r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    constexpr double inverse_factorials[] = {1.0 / 6227020800.0,
                                             1.0 / 479001600.0,
                                             1.0 / 39916800.0,
                                             1.0 / 3628800.0,
                                             1.0 / 362880.0,
                                             1.0 / 40320.0,
                                             1.0 / 5040.0,
                                             1.0 / 720.0,
                                             1.0 / 120.0,
                                             1.0 / 24.0,
                                             1.0 / 6.0,
                                             0.5,
                                             1.0,
                                             1.0};
    p = V{} + inverse_factorials[0];
    for (int k = 1; k < 14; ++k) p = p * r + inverse_factorials[k];
  }
  const I32 n_low = n_int >> 1;  // floor(n / 2)
  const I32 n_high = n_int - n_low;
  V scale_low, scale_high;
  if constexpr (is_float) {
    const I32 bits_low = (n_low + 127) << 23, bits_high = (n_high + 127) << 23;
    std::memcpy(&scale_low, &bits_low, sizeof scale_low);
    std::memcpy(&scale_high, &bits_high, sizeof scale_high);
  } else {
    using I64 = typename S::M;
    const I64 bits_low = (__builtin_convertvector(n_low, I64) + 1023) << 52;
    const I64 bits_high = (__builtin_convertvector(n_high, I64) + 1023) << 52;
    std::memcpy(&scale_low, &bits_low, sizeof scale_low);
    std::memcpy(&scale_high, &bits_high, sizeof scale_high);
  }
  x = p * scale_low * scale_high;
}

}  // namespace grpo::detail::simd

#endif  // GRPO_HAS_SIMD
