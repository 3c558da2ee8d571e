#pragma once
// Boundary checks on tensors with messages that name the tensor, its shape and the offending index.

#include <sstream>
#include <string>
#include <vector>

#include <torch/types.h>

#include "grpo/error.hpp"

namespace grpo::detail {

// "[2, 5]" for a tensor of that shape, "undefined" for an empty handle.
inline std::string shape_string(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// Throws unless `t` is defined and has exactly `expected` sizes.
inline void require_shape(const std::string& where, const char* name, const torch::Tensor& t,
                          torch::IntArrayRef expected, const char* expected_text) {
  if (!t.defined()) {
    std::ostringstream o;
    o << where << name << " is undefined; expected shape " << expected_text << " = " << expected;
    throw InvalidArgument(o.str());
  }
  if (t.sizes() != expected) {
    std::ostringstream o;
    o << where << name << " has shape " << t.sizes() << " but expected " << expected_text << " = " << expected;
    throw InvalidArgument(o.str());
  }
}

// Throws naming the first element (row-major) where `bad` (a bool tensor shaped like `t`) is true.
inline void throw_if_any(const std::string& where, const char* name, const torch::Tensor& t, const torch::Tensor& bad,
                         const char* what) {
  if (!bad.any().item<bool>()) return;
  const auto flat_index = bad.reshape({-1}).nonzero()[0][0].item<int64_t>();
  const double value = t.reshape({-1})[flat_index].item<double>();
  std::ostringstream o;
  o << where << name << " " << what << " (" << value << ") at [";
  int64_t rest = flat_index;
  std::vector<int64_t> coords(static_cast<std::size_t>(t.dim()));
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    coords[static_cast<std::size_t>(d)] = rest % t.size(d);
    rest /= t.size(d);
  }
  for (std::size_t d = 0; d < coords.size(); ++d) o << (d ? ", " : "") << coords[d];
  o << "] of shape " << t.sizes();
  throw InvalidArgument(o.str());
}

// Throws unless `t` lives on `device`.
inline void require_device(const std::string& where, const char* name, const torch::Tensor& t,
                           const char* reference_name, const torch::Tensor& reference) {
  if (t.device() != reference.device()) {
    std::ostringstream o;
    o << where << name << " is on " << t.device() << " but " << reference_name << " is on " << reference.device();
    throw InvalidArgument(o.str());
  }
}

}  // namespace grpo::detail
