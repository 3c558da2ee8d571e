#pragma once
// Crash-safe file replacement: readers see either the old file or the complete new one, never a torn write.
// POSIX only (open/fsync/rename); used by configs, charts and checkpoints.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "grpo/error.hpp"

namespace grpo::detail {

// "<what> '<path>': <strerror(errno)>" for error messages.
inline std::string file_errno_message(const std::string& what, const std::string& path, int error) {
  return what + " '" + path + "': " + std::strerror(error);
}

// Directory part of `path` ("." when it has none), for the directory fsync after the rename.
inline std::string parent_directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes `bytes` to `path` atomically: writes `<path>.tmp.<pid>` in the same directory, fsyncs it, renames it
// over `path` and fsyncs the directory so that the rename itself survives a crash. On any error the temporary
// file is removed and a grpo::RuntimeError names the path and the system's reason; its message starts with
// `where`, the public function that writes ("grpo::save_config: ").
inline void atomic_write_file(const std::string& path, std::string_view bytes,
                              const std::string& where = "grpo::detail::atomic_write_file: ") {
  if (path.empty()) throw RuntimeError(where + "empty path");
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw RuntimeError(file_errno_message(where + "cannot create temporary file for", path, errno) +
                       " (check that the directory exists and is writable)");
  }
  auto fail = [&](const char* what, int error) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw RuntimeError(file_errno_message(where + what, path, error));
  };
  const char* data = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", errno);
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  if (::fsync(fd) != 0) fail("cannot fsync", errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    throw RuntimeError(file_errno_message(where + "cannot close", path, error));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    throw RuntimeError(file_errno_message(where + "cannot rename temporary file onto", path, error));
  }
  // Persist the directory entry; a failure here leaves a complete file in place, so it is still reported.
  const std::string dir = parent_directory_of(path);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    throw RuntimeError(file_errno_message(where + "cannot open the directory of", path, errno));
  }
  const int sync_result = ::fsync(dir_fd);
  const int sync_error = errno;
  ::close(dir_fd);
  if (sync_result != 0) {
    throw RuntimeError(file_errno_message(where + "cannot fsync the directory of", path, sync_error));
  }
}

}  // namespace grpo::detail
