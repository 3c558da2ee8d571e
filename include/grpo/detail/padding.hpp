#pragma once
// Token-id rows of different lengths -> one padded [N, L] tensor and its 0/1 mask.

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace grpo::detail {

// [N, L] int64 tensor of `rows` padded with `pad` on the left (prompts) or the right (completions), L = the
// longest row (at least min_length), and the matching 0/1 int64 mask. CPU tensors.
inline std::pair<torch::Tensor, torch::Tensor> pad_rows(const std::vector<std::vector<int64_t>>& rows, int64_t pad,
                                                        bool left, int64_t min_length = 0) {
  std::size_t longest = static_cast<std::size_t>(std::max<int64_t>(min_length, 0));
  for (const auto& r : rows) longest = std::max(longest, r.size());
  const auto n = static_cast<int64_t>(rows.size()), width = static_cast<int64_t>(longest);
  auto ids = torch::full({n, width}, pad, torch::kLong);
  auto mask = torch::zeros({n, width}, torch::kLong);
  auto* id_data = ids.data_ptr<int64_t>();
  auto* mask_data = mask.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& r = rows[static_cast<std::size_t>(i)];
    const int64_t offset = left ? width - static_cast<int64_t>(r.size()) : 0;
    for (std::size_t t = 0; t < r.size(); ++t) {
      id_data[i * width + offset + static_cast<int64_t>(t)] = r[t];
      mask_data[i * width + offset + static_cast<int64_t>(t)] = 1;
    }
  }
  return {ids, mask};
}

}  // namespace grpo::detail
