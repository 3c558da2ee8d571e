#pragma once
// A read-only view of a whole file: memory-mapped on POSIX systems (the pages are read on first touch and belong
// to the page cache, so a 100 MB model is not copied into the process), read into memory elsewhere.

#include <cstdint>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define GRPO_GGUF_MMAP 1
#else
#include <fstream>
#include <iterator>
#endif

#include "grpo/error.hpp"

namespace grpo::detail {

class MappedFile {
 public:
  // `where` starts error messages ("grpo::GgufFile: ").
  MappedFile(const std::string& path, const std::string& where) {
#ifdef GRPO_GGUF_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw RuntimeError(where + "cannot open " + path);
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw RuntimeError(where + path + " is not a regular file");
    }
    size_ = static_cast<uint64_t>(info.st_size);
    if (size_ > 0) {
      void* address = ::mmap(nullptr, static_cast<std::size_t>(size_), PROT_READ, MAP_PRIVATE, fd, 0);
      if (address == MAP_FAILED) {
        ::close(fd);
        throw RuntimeError(where + "cannot map " + path + " into memory");
      }
      data_ = static_cast<const unsigned char*>(address);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
#else
    std::ifstream in(path, std::ios::binary);
    if (!in) throw RuntimeError(where + "cannot open " + path);
    buffer_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    size_ = buffer_.size();
    data_ = reinterpret_cast<const unsigned char*>(buffer_.data());
#endif
  }
  ~MappedFile() {
#ifdef GRPO_GGUF_MMAP
    if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), static_cast<std::size_t>(size_));
#endif
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
#ifndef GRPO_GGUF_MMAP
  std::vector<char> buffer_;
#endif
};

}  // namespace grpo::detail

#undef GRPO_GGUF_MMAP
