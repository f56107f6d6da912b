// A read-only memory mapping of a whole file. Shared (shared_ptr) so tensors borrowed from it keep it alive.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace kakusan {

class MappedFile {
 public:
  // Throws Error naming the file if it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  // An in-memory image treated like a file called `name` (tests, fuzzers).
  static std::shared_ptr<const MappedFile> from_bytes(std::string bytes, const std::filesystem::path& name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Releases the resident pages of a mapped file (a no-op for from_bytes images). The mapping is private and
  // read-only, never written, so only clean pages are dropped: the next access faults them back from the
  // file (the page cache). Memory written into such a mapping would be lost: owned copies hold changes.
  void drop_pages() const;
  // The same for the whole pages inside [p, p + bytes) when that range lies in this mapping (else nothing): a
  // tensor read once (the base of a LoRA merge) need not stay resident.
  void drop_range(const void* p, size_t bytes) const;

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string owned_;
};

}  // namespace kakusan
