#pragma once
// TorchScriptLM: a torch::jit::Module (e.g. exported from Python with torch.jit.script / torch.jit.save) as a
// CausalLM. The module's forward must be
//   forward(self, input_ids: Tensor [B,L] int64, attention_mask: Tensor [B,L] int64 0/1) -> Tensor [B,L,V]
// There is no KV cache through this adapter: the cache argument is left empty, so generate() recomputes the whole
// sequence at each step (correct, but each new token costs a full forward).
// EOS ids: a module attribute `eos_token_id` (int, List[int] or None; e.g. `self.eos_token_id: int = 2` in the
// scripted Python class) is read at construction; set_eos_token_ids() sets or overrides them.

#include <torch/script.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpo/detail/tensor_checks.hpp"
#include "grpo/error.hpp"
#include "grpo/models/causal_lm.hpp"

namespace grpo {

/// Adapter that makes a TorchScript module with forward(input_ids, attention_mask) -> logits a CausalLM.
class TorchScriptLM {
 public:
  /// Wraps a loaded module (it is shared, not copied).
  explicit TorchScriptLM(torch::jit::Module module) : module_(std::move(module)) {
    if (!module_.find_method("forward")) {
      throw InvalidArgument("grpo::TorchScriptLM: the TorchScript module has no forward method");
    }
    eos_token_ids_ = eos_attribute(module_);
  }

  /// Loads a module saved with torch.jit.save / Module::save from `path`, onto `device`.
  static std::shared_ptr<TorchScriptLM> load(const std::string& path, torch::Device device = torch::kCPU) {
    try {
      return std::make_shared<TorchScriptLM>(torch::jit::load(path, device));
    } catch (const c10::Error& e) {
      throw RuntimeError("grpo::TorchScriptLM: cannot load " + path + ": " + e.what_without_backtrace());
    }
  }

  /// Logits [B,L,V] for input_ids [B,L]; attention_mask [B,L] 0/1 (undefined: all ones). `cache` is not used
  /// (it stays empty); passing a non-empty cache is an error.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, KVCache* cache) {
    const std::string where = "grpo::TorchScriptLM::forward: ";
    if (cache != nullptr && !cache->empty()) {
      throw InvalidArgument(where + "TorchScript models have no KV cache; pass an empty cache or nullptr");
    }
    const auto mask = attention_mask.defined() ? attention_mask.to(torch::kLong) : torch::ones_like(input_ids);
    const auto out = module_.forward({input_ids, mask});
    if (!out.isTensor() || out.toTensor().dim() != 3 || out.toTensor().size(0) != input_ids.size(0) ||
        out.toTensor().size(1) != input_ids.size(1)) {
      throw RuntimeError(where + "the module must return logits [B,L,V] for input_ids " +
                         detail::shape_string(input_ids) + ", got " +
                         (out.isTensor() ? detail::shape_string(out.toTensor()) : out.tagKind()));
    }
    return out.toTensor();
  }

  /// The module's parameters (recursively).
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& p : module_.parameters()) out.push_back(p);
    return out;
  }

  /// Training (true) or evaluation (false) mode, recursively.
  void train(bool on) { module_.train(on); }
  /// True in training mode.
  bool is_training() const { return module_.is_training(); }
  /// A deep copy (new parameter storage, leaf parameters with the same requires_grad), used by Reference.
  std::shared_ptr<TorchScriptLM> clone() const {
    auto copy = module_.deepcopy();
    // deepcopy clones tensors through autograd; detach so the copies are leaves like the originals.
    for (auto sub : copy.modules()) {
      for (const auto& p : sub.named_parameters(/*recurse=*/false)) {
        sub.setattr(p.name, p.value.detach().requires_grad_(p.value.requires_grad()));
      }
    }
    auto lm = std::make_shared<TorchScriptLM>(copy);
    lm->eos_token_ids_ = eos_token_ids_;
    return lm;
  }
  /// The wrapped module.
  torch::jit::Module& module() { return module_; }

  /// End-of-sequence ids (from the module's `eos_token_id` attribute or set_eos_token_ids; empty: none);
  /// generate() stops at them by default.
  std::vector<int64_t> eos_token_ids() const { return eos_token_ids_; }
  /// Sets the end-of-sequence ids (the module itself is not changed).
  void set_eos_token_ids(std::vector<int64_t> ids) { eos_token_ids_ = std::move(ids); }

 private:
  // The module's `eos_token_id` attribute as a list of ids: absent or None -> none; int -> one; list of ints.
  static std::vector<int64_t> eos_attribute(const torch::jit::Module& module) {
    if (!module.hasattr("eos_token_id")) return {};
    const auto value = module.attr("eos_token_id");
    if (value.isNone()) return {};
    if (value.isInt()) return {value.toInt()};
    if (value.isList()) {
      std::vector<int64_t> ids;
      for (const auto& id : value.toListRef()) {
        if (!id.isInt()) break;
        ids.push_back(id.toInt());
      }
      if (ids.size() == value.toListRef().size()) return ids;
    }
    throw InvalidArgument(
        "grpo::TorchScriptLM: the module's eos_token_id attribute must be an int, a list of ints or None, got " +
        value.type()->str());
  }

  torch::jit::Module module_;
  std::vector<int64_t> eos_token_ids_;
};

static_assert(check_causal_lm<TorchScriptLM>());

}  // namespace grpo
