#pragma once
// The library's seeded randomness, identical on every platform (std::shuffle and std::uniform_int_distribution
// differ between standard libraries): SplitMix64 (Steele, Lea, Flood 2014), seeds derived from (seed, stream),
// and seeded permutations. Torch-free.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace grpo::detail {

// A tiny generator whose output sequence is a pure function of its seed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform integer in [0, bound) without modulo bias (rejection of the short top range); bound > 0.
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  uint64_t state_;
};

// A seed for stream `stream` of a base seed (one SplitMix64 step from seed + stream · golden ratio): decorrelated
// seeds for generation calls, rows, epochs.
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A seeded permutation of 0..n-1 (Fisher-Yates with unbiased draws), a pure function of (n, seed, stream).
inline std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream = 0) {
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  SplitMix64 mixer(seed);
  SplitMix64 rng(mixer.next() ^ (stream * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

}  // namespace grpo::detail
