#pragma once
// Checkpoint directories written atomically: everything goes into a temporary sibling directory, every file is
// fsynced, then the directory is renamed into place, so a crash never leaves a half-written checkpoint.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "grpo/error.hpp"

namespace grpo {

namespace detail {

// fsync a file or directory by path; throws naming the path, the message starting with `where` (the public
// caller, "grpo::write_checkpoint_dir: ").
inline void fsync_path(const std::string& where, const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw RuntimeError(where + "cannot open " + path + " to sync it: " + std::strerror(errno));
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) throw RuntimeError(where + "fsync of " + path + " failed: " + std::strerror(error));
}

}  // namespace detail

/// The directory name of the checkpoint after `step` optimizer steps: "checkpoint-<step>".
inline std::string checkpoint_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

/// Writes a checkpoint directory `final_dir` atomically: `write_files(tmp_dir)` fills a fresh temporary directory,
/// every regular file in it is fsynced, an existing `final_dir` is replaced, and the rename is made durable.
/// On any error the temporary directory is removed and the error rethrown; `final_dir` is then untouched.
inline void write_checkpoint_dir(const std::string& final_dir,
                                 const std::function<void(const std::string&)>& write_files) {
  namespace fs = std::filesystem;
  const std::string where = "grpo::write_checkpoint_dir: ";
  const fs::path target(final_dir);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent);
  const fs::path tmp = parent / (target.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_files(tmp.string());
    for (const auto& entry : fs::directory_iterator(tmp)) {
      if (entry.is_regular_file()) detail::fsync_path(where, entry.path().string(), false);
    }
    detail::fsync_path(where, tmp.string(), true);
    if (fs::exists(target)) fs::remove_all(target);
    fs::rename(tmp, target);
    detail::fsync_path(where, parent.string(), true);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
}

/// Checkpoint directories "checkpoint-<step>" under `output_dir`, oldest (smallest step) first.
inline std::vector<std::string> list_checkpoints(const std::string& output_dir) {
  namespace fs = std::filesystem;
  std::vector<std::pair<int64_t, std::string>> found;
  if (!fs::exists(output_dir)) return {};
  static const std::regex pattern("checkpoint-([0-9]+)");
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, m, pattern))
      found.emplace_back(std::stoll(m[1]), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

/// Deletes the oldest checkpoints so that at most `limit` remain.
inline void prune_checkpoints(const std::string& output_dir, int limit) {
  auto all = list_checkpoints(output_dir);
  for (std::size_t i = 0;
       limit >= 0 && all.size() > static_cast<std::size_t>(limit) && i < all.size() - static_cast<std::size_t>(limit);
       ++i) {
    std::filesystem::remove_all(all[i]);
  }
}

}  // namespace grpo
