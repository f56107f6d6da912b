// Writing output files so that a reader never sees half a file: write to a temporary file beside the
// target, then rename over it. If anything fails, the temporary is removed and the target is untouched.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string_view>

namespace kakusan {

class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& target);
  ~AtomicFile();  // removes the temporary unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  FILE* stream() const { return file_; }
  void write(const void* data, size_t size);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Flushes, closes and renames onto the target. Throws Error on failure.
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace kakusan
