#pragma once
// Checkpoint directories written atomically: everything goes into a temporary sibling directory, a manifest of
// every file's size and XXH64 checksum is added, every file is fsynced, then the directory is renamed into place,
// so a crash never leaves a half-written checkpoint and a later truncation or alteration is detected at resume.
// Temporary directories of writers that died are removed by the next writer.

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "grpo/detail/atomic_file.hpp"
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

// XXH64 (seed 0) of a byte stream, computed incrementally: the published xxHash64 algorithm (a checksum that
// catches truncation and corruption at memory speed, not a cryptographic hash).
class Xxh64 {
 public:
  void update(const unsigned char* data, std::size_t size) {
    length_ += size;
    while (size > 0) {
      const std::size_t take = std::min(size, std::size_t{32} - buffered_);
      std::memcpy(buffer_.data() + buffered_, data, take);
      buffered_ += take;
      data += take;
      size -= take;
      if (buffered_ == 32) {
        for (int lane = 0; lane < 4; ++lane) lanes_[lane] = round(lanes_[lane], read64(buffer_.data() + 8 * lane));
        buffered_ = 0;
        full_stripe_ = true;
      }
    }
  }
  uint64_t digest() const {
    uint64_t h = 0;
    if (full_stripe_) {
      h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
      for (const uint64_t lane : lanes_) h = (h ^ round(0, lane)) * p1 + p4;
    } else {
      h = p5;
    }
    h += length_;
    std::size_t i = 0;
    for (; i + 8 <= buffered_; i += 8) h = rotl(h ^ round(0, read64(buffer_.data() + i)), 27) * p1 + p4;
    if (i + 4 <= buffered_) {
      uint32_t word = 0;
      std::memcpy(&word, buffer_.data() + i, 4);
      h = rotl(h ^ (static_cast<uint64_t>(word) * p1), 23) * p2 + p3;
      i += 4;
    }
    for (; i < buffered_; ++i) h = rotl(h ^ (buffer_[i] * p5), 11) * p1;
    h ^= h >> 33;
    h *= p2;
    h ^= h >> 29;
    h *= p3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr uint64_t p1 = 11400714785074694791ULL, p2 = 14029467366897019727ULL, p3 = 1609587929392839161ULL,
                            p4 = 9650029242287828579ULL, p5 = 2870177450012600261ULL;
  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t round(uint64_t acc, uint64_t input) { return rotl(acc + input * p2, 31) * p1; }
  static uint64_t read64(const unsigned char* p) {
    uint64_t v = 0;
    std::memcpy(&v, p, 8);  // little-endian hosts (x86-64, arm64), as xxHash's canonical form
    return v;
  }
  std::array<uint64_t, 4> lanes_{p1 + p2, p2, 0, 0 - p1};
  std::array<unsigned char, 32> buffer_{};
  std::size_t buffered_ = 0;
  uint64_t length_ = 0;
  bool full_stripe_ = false;
};

// Size and XXH64 of a file; throws naming it.
inline std::pair<uint64_t, uint64_t> file_size_and_hash(const std::string& path, const std::string& where) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw RuntimeError(where + "cannot read " + path + ": " + std::strerror(errno));
  std::vector<unsigned char> block(1 << 20);
  Xxh64 hash;
  uint64_t size = 0;
  for (;;) {
    const std::size_t got = std::fread(block.data(), 1, block.size(), f);
    hash.update(block.data(), got);
    size += got;
    if (got < block.size()) break;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw RuntimeError(where + "error reading " + path);
  return {size, hash.digest()};
}

inline std::string hex64(uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

// Removes "<name>.tmp-<pid>" siblings in `parent` left by writers that no longer run (this machine's pids).
inline void remove_stale_checkpoint_temporaries(const std::filesystem::path& parent) {
  namespace fs = std::filesystem;
  static const std::regex pattern("checkpoint-[0-9]+\\.tmp-([0-9]+)");
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    std::smatch m;
    const std::string name = it->path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    const long pid = std::stol(m[1]);
    if (pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    std::error_code ignored;
    fs::remove_all(it->path(), ignored);
  }
}

}  // namespace detail

/// Name of the manifest a checkpoint directory holds: every other file's size and XXH64.
inline constexpr const char* checkpoint_manifest_name = "manifest.json";

/// Writes `dir`/manifest.json listing every regular file of `dir` with its size and XXH64.
inline void write_checkpoint_manifest(const std::string& dir) {
  namespace fs = std::filesystem;
  nlohmann::json files = nlohmann::json::object();
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename() != checkpoint_manifest_name) paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    const auto [size, hash] = detail::file_size_and_hash(path.string(), "grpo::write_checkpoint_manifest: ");
    files[path.filename().string()] = {{"bytes", size}, {"xxh64", detail::hex64(hash)}};
  }
  const nlohmann::json manifest = {{"format", "grpo-checkpoint/1"}, {"files", files}};
  detail::atomic_write_file((fs::path(dir) / checkpoint_manifest_name).string(), manifest.dump(2),
                            "grpo::write_checkpoint_manifest: ");
}

/// Checks checkpoint `dir` against its manifest before anything is read from it: every listed file must exist
/// with its size and checksum. Throws grpo::RuntimeError naming the file and what is wrong.
inline void verify_checkpoint(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string where = "grpo::verify_checkpoint: ";
  const auto manifest_path = (fs::path(dir) / checkpoint_manifest_name).string();
  if (!fs::is_directory(dir)) throw RuntimeError(where + dir + " is not a directory");
  std::ifstream in(manifest_path);
  if (!in) {
    throw RuntimeError(where + manifest_path + " is missing: " + dir +
                       " is not a complete checkpoint (checkpoints written before manifests existed lack it too)");
  }
  struct Entry {
    std::string name, xxh64;
    uint64_t bytes = 0;
  };
  std::vector<Entry> entries;
  try {  // every field is read here, so that a damaged manifest is one error naming it
    const auto manifest = nlohmann::json::parse(in);
    if (manifest.at("format") != "grpo-checkpoint/1") throw std::runtime_error("unknown format");
    for (const auto& [name, expected] : manifest.at("files").items()) {
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
        throw std::runtime_error("file name \"" + name + "\" is not a name inside the checkpoint");
      }
      entries.push_back({name, expected.at("xxh64").get<std::string>(), expected.at("bytes").get<uint64_t>()});
    }
  } catch (const std::exception& e) {
    throw RuntimeError(where + manifest_path + " is not a valid checkpoint manifest: " + e.what());
  }
  for (const auto& entry : entries) {
    const auto path = (fs::path(dir) / entry.name).string();
    if (!fs::exists(path)) throw RuntimeError(where + path + " is missing (listed in " + manifest_path + ")");
    const uint64_t bytes = entry.bytes;
    const uint64_t actual_bytes = fs::file_size(path);
    if (actual_bytes != bytes) {
      throw RuntimeError(where + path + " has " + std::to_string(actual_bytes) + " bytes but the manifest says " +
                         std::to_string(bytes) + " (truncated or replaced)");
    }
    const auto [size, hash] = detail::file_size_and_hash(path, where);
    (void)size;
    if (detail::hex64(hash) != entry.xxh64) {
      throw RuntimeError(where + path + " does not match its checksum in " + manifest_path + " (the file was altered)");
    }
  }
}

/// The directory name of the checkpoint after `step` optimizer steps: "checkpoint-<step>".
inline std::string checkpoint_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

/// Writes a checkpoint directory `final_dir` atomically: `write_files(tmp_dir)` fills a fresh temporary directory,
/// the manifest is added, every regular file in it is fsynced, an existing `final_dir` is replaced, and the rename
/// is made durable. On any error (a full disk included) the temporary directory is removed and the error rethrown;
/// `final_dir` and every other checkpoint are then untouched. Stale temporaries of dead writers are removed first.
inline void write_checkpoint_dir(const std::string& final_dir,
                                 const std::function<void(const std::string&)>& write_files) {
  namespace fs = std::filesystem;
  const std::string where = "grpo::write_checkpoint_dir: ";
  const fs::path target(final_dir);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent);
  detail::remove_stale_checkpoint_temporaries(parent);
  const fs::path tmp = parent / (target.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_files(tmp.string());
    write_checkpoint_manifest(tmp.string());
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
