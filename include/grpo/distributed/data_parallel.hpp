#pragma once
// Data parallelism over a ProcessGroup: replicas start from rank 0's parameters (broadcast, then checked equal),
// and their gradients are averaged once per accumulation window in buckets (like DDP's 25 MB buckets: few large
// messages instead of one per tensor).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "grpo/distributed/process_group.hpp"
#include "grpo/error.hpp"

namespace grpo {

namespace detail {

// Consecutive runs of `tensors` (same dtype and device) of at most `bucket_bytes` each (a larger tensor alone).
inline std::vector<std::vector<std::size_t>> tensor_buckets(const std::vector<at::Tensor>& tensors,
                                                            int64_t bucket_bytes) {
  std::vector<std::vector<std::size_t>> buckets;
  int64_t bytes = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const int64_t size = static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
    const bool same_kind = !buckets.empty() && tensors[buckets.back().front()].scalar_type() == t.scalar_type() &&
                           tensors[buckets.back().front()].device() == t.device();
    if (buckets.empty() || !same_kind || bytes + size > bucket_bytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += size;
  }
  return buckets;
}

// The bucket's tensors flattened into one (a copy); dtypes Gloo cannot reduce travel as float32.
inline at::Tensor flatten_bucket(const std::vector<at::Tensor>& tensors, const std::vector<std::size_t>& bucket,
                                 bool for_reduction) {
  std::vector<at::Tensor> flat;
  for (const auto i : bucket) flat.push_back(tensors[i].reshape({-1}));
  auto out = at::cat(flat);
  const auto type = out.scalar_type();
  if (for_reduction && type != at::kFloat && type != at::kDouble) out = out.to(at::kFloat);
  return out;
}

inline void unflatten_bucket(const at::Tensor& flat, std::vector<at::Tensor>& tensors,
                             const std::vector<std::size_t>& bucket) {
  int64_t offset = 0;
  for (const auto i : bucket) {
    auto& t = tensors[i];
    t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace detail

/// Bucket size of gradient all-reduces and parameter broadcasts (DDP's default, 25 MB).
inline constexpr int64_t default_bucket_bytes = 25 * 1024 * 1024;

/// Copies rank 0's values of `tensors` (parameters and buffers of a replica) into every rank's, in place.
inline void broadcast_tensors(ProcessGroup& group, std::vector<at::Tensor> tensors, const std::string& what,
                              int64_t bucket_bytes = default_bucket_bytes) {
  at::NoGradGuard no_grad;
  for (const auto& bucket : detail::tensor_buckets(tensors, bucket_bytes)) {
    std::vector<at::Tensor> flat{detail::flatten_bucket(tensors, bucket, /*for_reduction=*/false)};
    if (flat[0].scalar_type() == at::kBFloat16 || flat[0].scalar_type() == at::kHalf) {
      flat[0] = flat[0].view(at::kShort);  // bit-exact copy; older Gloo builds lack 16-bit float types
      group.broadcast(flat, 0, what);
      flat[0] = flat[0].view(tensors[bucket.front()].scalar_type());
    } else {
      group.broadcast(flat, 0, what);
    }
    detail::unflatten_bucket(flat[0], tensors, bucket);
  }
}

/// Fails unless every rank holds bit-identical `tensors`: a checksum per tensor is compared with rank 0's, and
/// the error names the first differing tensor (`names`, same order) and rank.
inline void check_replicas_equal(ProcessGroup& group, const std::vector<at::Tensor>& tensors,
                                 const std::vector<std::string>& names, const std::string& what) {
  std::string sums;
  for (const auto& t : tensors) {
    // A hash of the bits (FNV-1a over 64-bit words, then the tail bytes): equal values give equal hashes.
    const auto bytes = t.detach().contiguous().to(at::kCPU);
    const auto n = static_cast<std::size_t>(bytes.numel()) * static_cast<std::size_t>(bytes.element_size());
    const auto* data = static_cast<const uint8_t*>(bytes.data_ptr());
    uint64_t sum = 1469598103934665603ULL;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t word = 0;
      std::memcpy(&word, data + i, 8);
      sum = (sum ^ word) * 1099511628211ULL;
    }
    for (; i < n; ++i) sum = (sum ^ data[i]) * 1099511628211ULL;
    sums.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  }
  const auto all = group.all_gather_bytes(sums, what);
  for (std::size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    std::size_t first = 0;
    while (first < tensors.size() && std::memcmp(all[r].data() + first * 8, all[0].data() + first * 8, 8) == 0) {
      ++first;
    }
    throw RuntimeError("grpo::check_replicas_equal: " + what + ": rank " + std::to_string(r) + "'s " +
                       (first < names.size() ? names[first] : "tensor " + std::to_string(first)) +
                       " differs from rank 0's");
  }
}

/// Averages the gradients of `parameters` over the ranks in place (sum / size), in buckets. A parameter with no
/// gradient on any rank keeps none; one with a gradient on some ranks gets zeros on the others first.
inline void all_reduce_gradients(ProcessGroup& group, const std::vector<at::Tensor>& parameters,
                                 const std::string& what, int64_t bucket_bytes = default_bucket_bytes) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> has_grad{at::zeros({static_cast<int64_t>(parameters.size())}, at::kLong)};
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (parameters[i].grad().defined()) has_grad[0][static_cast<int64_t>(i)] = 1;
  }
  group.all_reduce_sum(has_grad, what + " (which parameters have gradients)");
  std::vector<at::Tensor> grads;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (has_grad[0][static_cast<int64_t>(i)].item<int64_t>() == 0) continue;
    auto p = parameters[i];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  const double scale = 1.0 / static_cast<double>(group.size());
  for (const auto& bucket : detail::tensor_buckets(grads, bucket_bytes)) {
    std::vector<at::Tensor> flat{detail::flatten_bucket(grads, bucket, /*for_reduction=*/true)};
    group.all_reduce_sum(flat, what);
    flat[0].mul_(scale);
    detail::unflatten_bucket(flat[0], grads, bucket);
  }
}

}  // namespace grpo
