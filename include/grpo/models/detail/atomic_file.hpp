#pragma once
// Atomic file writes: <path>.tmp, write, fsync, rename, so that readers never see a half-written file.
// POSIX (open/write/fsync); rename replaces the destination atomically on the same file system.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace grpo::detail {

// Writes `size` bytes to `path` atomically; on failure removes the temporary file and throws naming `path`.
inline void write_bytes_atomically(const std::string& path, const char* data, std::size_t size) {
  const std::string tmp = path + ".tmp";
  const auto fail = [&](const char* what) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + what + " failed (" + reason + ")");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("open of the temporary file");
  std::size_t written = 0;
  while (written < size) {
    const auto n = ::write(fd, data + written, size - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("write");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync");
  }
  if (::close(fd) != 0) fail("close");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
}

// Writes `text` to `path` atomically.
inline void write_file_atomically(const std::string& path, const std::string& text) {
  write_bytes_atomically(path, text.data(), text.size());
}

}  // namespace grpo::detail
