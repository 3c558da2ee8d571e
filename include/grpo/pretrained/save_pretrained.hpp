#pragma once
// Saving a chat model with its tokenizer and chat template as a Hugging Face folder, which grpo::load_pretrained and
// transformers (AutoModelForCausalLM, AutoTokenizer, apply_chat_template) load back to the same logits, ids and
// renderings, whether the model came from a folder, from a GGUF file or from training:
//
//   grpo::Pretrained p = grpo::load_pretrained("SmolLM2-135M-Instruct.Q4_1.gguf");
//   ...  // train p.model
//   grpo::save_pretrained(p, "out/smollm2-grpo");
//
// The folder holds config.json and model.safetensors (LlamaModel::save_pretrained: the parameters in their dtype),
// generation_config.json (bos, eos list and pad ids), tokenizer.json and tokenizer_config.json
// (BpeTokenizer::to_tokenizer_json, tokenizer_config_json) with the chat template (its "chat_template" key, which
// every transformers version reads) and the special tokens the template sees.
// The whole folder is written next to its destination and renamed into place, so an interrupted save leaves either
// the previous folder or the complete new one (or, where the system cannot exchange two folders at once, briefly
// none), never a mix of the two.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/detail/atomic_file.hpp"
#include "grpo/error.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/pretrained/pretrained.hpp"
#include "grpo/tokenizers/bpe_tokenizer.hpp"
#include "grpo/tokenizers/chat_template.hpp"

namespace grpo {

namespace detail {

// True for the files a Hugging Face model folder holds (what save_pretrained may replace), and for the temporary
// files an interrupted atomic write of one leaves ("config.json.tmp.123").
inline bool is_model_folder_file(const std::string& name) {
  static const char* const names[] = {"config.json",
                                      "generation_config.json",
                                      "model.safetensors",
                                      safetensors_index_name,
                                      "tokenizer.json",
                                      "tokenizer_config.json",
                                      "special_tokens_map.json",
                                      "added_tokens.json",
                                      "chat_template.jinja",
                                      "chat_template.json",
                                      "vocab.json",
                                      "merges.txt"};
  const std::string file = name.substr(0, name.find(".tmp."));
  for (const char* known : names) {
    if (file == known) return true;
  }
  const std::string suffix = ".safetensors";  // model-00001-of-00002.safetensors
  return file.rfind("model-", 0) == 0 && file.size() > suffix.size() &&
         file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Fsyncs the folder `path` so that a rename inside it survives a crash.
inline void sync_directory(const std::filesystem::path& path, const std::string& where) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw RuntimeError(file_errno_message(where + "cannot open the folder", path.string(), errno));
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) throw RuntimeError(file_errno_message(where + "cannot fsync the folder", path.string(), error));
}

// Puts the complete folder `fresh` at `target` (a sibling): a rename when `target` does not exist; otherwise an
// atomic exchange where the system has one (Linux's renameat2), else `target` renamed aside, `fresh` renamed in
// and the old folder removed.
inline void replace_directory(const std::filesystem::path& fresh, const std::filesystem::path& target,
                              const std::string& where) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::exists(target, error)) {
    if (::rename(fresh.c_str(), target.c_str()) != 0) {
      throw RuntimeError(file_errno_message(where + "cannot rename the new folder onto", target.string(), errno));
    }
    sync_directory(target.parent_path(), where);
    return;
  }
#if defined(__linux__) && defined(RENAME_EXCHANGE)
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
    sync_directory(target.parent_path(), where);
    fs::remove_all(fresh, error);  // now the previous folder
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    throw RuntimeError(file_errno_message(where + "cannot exchange the new folder with", target.string(), errno));
  }
#endif
  const fs::path old = target.string() + ".old." + std::to_string(static_cast<long>(::getpid()));
  fs::remove_all(old, error);
  if (::rename(target.c_str(), old.c_str()) != 0) {
    throw RuntimeError(file_errno_message(where + "cannot move aside the previous folder", target.string(), errno));
  }
  if (::rename(fresh.c_str(), target.c_str()) != 0) {
    const int rename_error = errno;
    (void)::rename(old.c_str(), target.c_str());
    throw RuntimeError(file_errno_message(where + "cannot rename the new folder onto", target.string(), rename_error));
  }
  sync_directory(target.parent_path(), where);
  fs::remove_all(old, error);
}

// tokenizer_config.json of `tokenizer` with `chat_template` and the special tokens it sees. The tokenizer's
// bos/eos/pad/unk tokens are the ones a reloaded template sees too, so a template that reads one of them
// (its source names it) must see the tokenizer's; sep/cls/mask tokens, which the tokenizer does not use, are
// written for a template that reads them.
inline nlohmann::json tokenizer_config_with_template(const BpeTokenizer& tokenizer,
                                                     const std::optional<ChatTemplate>& chat_template,
                                                     const std::string& where) {
  nlohmann::json config = tokenizer.tokenizer_config_json();
  if (!chat_template) return config;
  const std::string& source = chat_template->source();
  const SpecialTokens& seen = chat_template->special_tokens();
  const std::pair<const char*, const std::optional<std::string>*> tokens[] = {
      {"bos_token", &seen.bos_token},  {"eos_token", &seen.eos_token}, {"pad_token", &seen.pad_token},
      {"unk_token", &seen.unk_token},  {"sep_token", &seen.sep_token}, {"cls_token", &seen.cls_token},
      {"mask_token", &seen.mask_token}};
  const auto show = [](const std::optional<std::string>& token) { return token ? "'" + *token + "'" : "none"; };
  for (const auto& [key, template_token] : tokens) {
    const auto it = config.find(key);
    const std::optional<std::string> written =
        it != config.end() && it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
    if (*template_token == written || source.find(key) == std::string::npos) continue;
    const std::string name = key;
    if (name == "sep_token" || name == "cls_token" || name == "mask_token") {
      config[key] = *template_token ? nlohmann::json(**template_token) : nlohmann::json(nullptr);
      continue;
    }
    throw InvalidArgument(where + "the chat template reads " + name + ", which it sees as " + show(*template_token) +
                          " but the tokenizer has as " + show(written) +
                          "; a saved folder has one for both (tokenizer_config.json): build the ChatTemplate with "
                          "the tokenizer's special tokens");
  }
  config["chat_template"] = source;
  return config;
}

// Tokenizer's id from an accessor that throws when there is none.
template <class Accessor>
std::optional<int64_t> optional_token_id(Accessor&& accessor) {
  try {
    return accessor();
  } catch (const InvalidArgument&) {
    return std::nullopt;
  }
}

}  // namespace detail

/// generation_config.json of `model` and `tokenizer`: bos_token_id, eos_token_id (a list) and pad_token_id from the
/// model's configuration, each falling back to the tokenizer's when the configuration has none; ids nobody knows
/// are left out.
inline nlohmann::ordered_json generation_config_json(const LlamaModel& model, const BpeTokenizer& tokenizer) {
  const LlamaConfig& config = model.config();
  nlohmann::ordered_json generation = nlohmann::ordered_json::object();
  const auto bos = config.bos_token_id ? config.bos_token_id : tokenizer.bos_token_id();
  std::vector<int64_t> eos = config.eos_token_ids;
  if (eos.empty()) {
    if (const auto id = detail::optional_token_id([&] { return tokenizer.eos_token_id(); })) eos.push_back(*id);
  }
  const auto pad =
      config.pad_token_id ? config.pad_token_id : detail::optional_token_id([&] { return tokenizer.pad_token_id(); });
  if (bos) generation["bos_token_id"] = *bos;
  if (!eos.empty()) generation["eos_token_id"] = eos;
  if (pad) generation["pad_token_id"] = *pad;
  return generation;
}

/// Saves `model`, `tokenizer` and `chat_template` (none for a base model) as the Hugging Face folder `directory`
/// (see the top of this file for the files), replacing the whole folder at once. An existing `directory` may hold
/// only the files of a model folder (config.json, *.safetensors, tokenizer files, ...): anything else throws
/// InvalidArgument naming it rather than being deleted. A template that reads bos/eos/pad/unk_token must see the
/// tokenizer's (one tokenizer_config.json holds both), else InvalidArgument. Errors name `directory` and the file;
/// nothing is left behind but the previous folder.
inline void save_pretrained(const LlamaModel& model, const BpeTokenizer& tokenizer,
                            const std::optional<ChatTemplate>& chat_template, const std::string& directory) {
  namespace fs = std::filesystem;
  const std::string where = "grpo::save_pretrained: " + directory + ": ";
  if (directory.empty()) throw InvalidArgument("grpo::save_pretrained: empty folder path");
  fs::path target = fs::absolute(fs::path(directory)).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "out/" -> "out"
  std::error_code error;
  if (fs::exists(target, error)) {
    if (!fs::is_directory(target, error)) throw InvalidArgument(where + "exists and is not a folder");
    for (fs::directory_iterator it(target, error), end; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (!it->is_regular_file(error) || !detail::is_model_folder_file(name)) {
        throw InvalidArgument(where + "the folder holds '" + name +
                              "', which is not a file of a saved model; save_pretrained replaces the whole folder "
                              "and does not delete it (move it away, or save to another folder)");
      }
    }
    if (error) throw RuntimeError(where + "cannot list the folder: " + error.message());
  }
  // Everything that can fail on the content fails before the disk is touched.
  const std::string tokenizer_json = detail::tokenizer_json::dump(tokenizer.to_tokenizer_json(), where);
  const std::string tokenizer_config =
      detail::tokenizer_json::dump(detail::tokenizer_config_with_template(tokenizer, chat_template, where), where);
  const std::string generation_config = generation_config_json(model, tokenizer).dump(2) + "\n";

  const fs::path fresh = target.string() + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  fs::remove_all(fresh, error);  // left by an interrupted save of a process with the same id
  try {
    fs::create_directories(target.parent_path());
    fs::create_directory(fresh);
    model.save_pretrained(fresh.string());
    detail::atomic_write_file((fresh / "generation_config.json").string(), generation_config, where);
    detail::atomic_write_file((fresh / "tokenizer.json").string(), tokenizer_json, where);
    detail::atomic_write_file((fresh / "tokenizer_config.json").string(), tokenizer_config, where);
    detail::replace_directory(fresh, target, where);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(fresh, error);
    throw RuntimeError(where + e.what());
  } catch (...) {
    fs::remove_all(fresh, error);
    throw;
  }
}

/// Saves `pretrained` (its model, tokenizer and chat template) as the Hugging Face folder `directory`; see the
/// overload above. load_pretrained(directory) gives the same logits, ids and renderings.
inline void save_pretrained(const Pretrained& pretrained, const std::string& directory) {
  if (!pretrained.model) throw InvalidArgument("grpo::save_pretrained: " + directory + ": the Pretrained has no model");
  save_pretrained(*pretrained.model, pretrained.tokenizer, pretrained.chat_template, directory);
}

}  // namespace grpo
