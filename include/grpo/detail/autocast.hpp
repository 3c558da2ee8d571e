#pragma once
// LibTorch's autocast (automatic mixed precision) state for one device type, read and set through the API of the
// LibTorch at hand: the device-generic calls of LibTorch >= 2.4 (the per-device ones are deprecated there), the
// per-device ones of older versions. Autocast is thread-local: matmuls and linear layers run in the lower
// precision dtype while the parameters stay in float32 (mixed precision with float32 master weights).

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#include <string>

#include "grpo/error.hpp"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define GRPO_TORCH_DEVICE_GENERIC_AUTOCAST 1
#else
#define GRPO_TORCH_DEVICE_GENERIC_AUTOCAST 0
#endif

namespace grpo::detail {

/// Whether autocast is on for a device type, and its lower precision dtype.
struct AutocastState {
  bool enabled = false;
  c10::ScalarType dtype = c10::ScalarType::BFloat16;
};

/// Autocast exists for CPU and CUDA tensors in every supported LibTorch.
inline bool autocast_supported(c10::DeviceType device) {
  return device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA;
}

/// This thread's autocast state for `device` (disabled for device types without autocast).
inline AutocastState autocast_state(c10::DeviceType device) {
  AutocastState s;
  if (!autocast_supported(device)) return s;
#if GRPO_TORCH_DEVICE_GENERIC_AUTOCAST
  s.enabled = at::autocast::is_autocast_enabled(device);
  s.dtype = at::autocast::get_autocast_dtype(device);
#else
  if (device == c10::DeviceType::CPU) {
    s.enabled = at::autocast::is_cpu_enabled();
    s.dtype = at::autocast::get_autocast_cpu_dtype();
  } else {
    s.enabled = at::autocast::is_enabled();
    s.dtype = at::autocast::get_autocast_gpu_dtype();
  }
#endif
  return s;
}

/// Sets this thread's autocast state for `device`; throws grpo::InvalidArgument when enabling it on a device type
/// without autocast.
inline void set_autocast_state(c10::DeviceType device, const AutocastState& s) {
  if (!autocast_supported(device)) {
    if (!s.enabled) return;
    throw InvalidArgument("grpo: mixed precision (autocast) needs a CPU or CUDA device, got " +
                          c10::DeviceTypeName(device));
  }
#if GRPO_TORCH_DEVICE_GENERIC_AUTOCAST
  at::autocast::set_autocast_dtype(device, s.dtype);
  at::autocast::set_autocast_enabled(device, s.enabled);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(s.dtype);
    at::autocast::set_cpu_enabled(s.enabled);
  } else {
    at::autocast::set_autocast_gpu_dtype(s.dtype);
    at::autocast::set_enabled(s.enabled);
  }
#endif
}

/// Sets the autocast state of `device` for the scope and restores the previous one after it. Like torch.autocast,
/// it counts the nesting and clears autocast's cache of lower precision weight copies when the outermost scope
/// ends (the copies would otherwise outlive an optimizer step that changes the weights).
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, const AutocastState& state)
      : device_(device), previous_(autocast_state(device)) {
    set_autocast_state(device_, state);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    try {
      set_autocast_state(device_, previous_);
    } catch (...) {  // cannot happen: previous_ was read from this device type
    }
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  AutocastState previous_;
};

}  // namespace grpo::detail
