#pragma once
// Helpers shared by the libFuzzer targets: the input as text, a per-process scratch file for readers that take a
// path, and the property check that aborts (a finding) when the library breaks a promise without throwing.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "grpo/error.hpp"

namespace grpo_fuzz {

// An error the library may throw for a bad input; printed when GRPO_FUZZ_VERBOSE is set (to see why a seed is
// rejected: GRPO_FUZZ_VERBOSE=1 ./gguf_fuzz corpus/gguf/*).
inline void expected(const grpo::Error& error) {
  static const bool verbose = std::getenv("GRPO_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "grpo fuzz: expected error: %s\n", error.what());
}

inline std::string as_text(const uint8_t* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// A file in the temp directory named after the process (parallel fuzzers do not share it), rewritten for every
// input and removed at normal exit.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& suffix)
      : path_(
            (std::filesystem::temp_directory_path() / ("grpo_fuzz_" + std::to_string(::getpid()) + suffix)).string()) {}
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  // Replaces the file's contents with `size` bytes at `data`; returns the path.
  const std::string& write(const uint8_t* data, std::size_t size) const {
    std::FILE* file = std::fopen(path_.c_str(), "wb");
    if (file == nullptr || (size > 0 && std::fwrite(data, 1, size, file) != size) || std::fclose(file) != 0) {
      std::perror(path_.c_str());
      std::abort();
    }
    return path_;
  }

 private:
  std::string path_;
};

// A broken promise of the library (a round trip that does not hold, ...): printed, then a crash for libFuzzer.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "grpo fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace grpo_fuzz
