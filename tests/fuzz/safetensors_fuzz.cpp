// libFuzzer target: grpo::read_safetensors (from memory), then every tensor it returns is read through. Only
// grpo::Error may escape; what a header claims is checked against the input's size before anything is allocated.
#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_support.hpp"
#include "grpo/error.hpp"
#include "grpo/models/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::istringstream in(grpo_fuzz::as_text(data, size));
  try {
    const auto file = grpo::detail::read_safetensors_stream(in, "fuzz.safetensors");
    uint64_t bytes = 0;
    for (const auto& [name, tensor] : file.tensors) {
      grpo_fuzz::require(tensor.defined() && tensor.device().is_cpu(), "tensors are defined and on the CPU");
      bytes += static_cast<uint64_t>(tensor.nbytes());
      if (tensor.numel() > 0) (void)tensor.reshape({-1}).select(0, tensor.numel() - 1).item();
    }
    grpo_fuzz::require(bytes <= size, "the tensors hold no more bytes than the file");
  } catch (const grpo::Error& e) {
    grpo_fuzz::expected(e);
  }
  return 0;
}
