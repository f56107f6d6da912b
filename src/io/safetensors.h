// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} with
// optional "__metadata__", then raw little-endian tensor data.
//
// Files are untrusted. open() validates everything before any tensor is touched: header length, JSON,
// dtypes, shapes (checked arithmetic), that every byte range lies inside the data section, matches
// shape x dtype, and that ranges neither overlap nor leave gaps. Errors name the file and the tensor.
// The format does not promise alignment (files written before safetensors 0.3 have unpadded headers), so a
// tensor whose bytes are not aligned to its element size is copied once into aligned memory at open():
// kernels may then read every view as typed elements.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace kakusan {

class SafetensorsFile {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    size_t begin;  // byte offset inside the data section
    size_t end;
  };

  // Maps and validates the file. Throws Error("<file>: <problem>") on anything malformed.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validates an in-memory image (used by the fuzzer and tests); `name` is used in messages.
  static SafetensorsFile parse(std::shared_ptr<const MappedFile> file);

  const std::filesystem::path& path() const { return file_->path(); }
  // Tensors in the order of their data offsets.
  const std::vector<Entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const Entry* find(const std::string& name) const;
  // A read-only view into the mapping. Throws Error naming file and tensor if absent.
  TensorView view(const std::string& name) const;
  // A tensor sharing the mapping (zero-copy; keeps the file mapped while it lives).
  Tensor borrow(const std::string& name) const;
  // A float32 copy (f16/bf16 converted).
  Tensor load_f32(const std::string& name) const;

  std::shared_ptr<const MappedFile> mapping() const { return file_; }

 private:
  // Fills tensor_data_, copying misaligned tensors into aligned_copy_.
  void locate_tensor_data(const std::byte* data_begin);
  struct TensorData {
    const std::byte* bytes;
    bool copied;  // true: in aligned_copy_, false: in the mapping
  };
  size_t index_of(const Entry& e) const { return size_t(&e - entries_.data()); }
  const std::byte* data_of(const Entry& e) const { return tensor_data_[index_of(e)].bytes; }
  std::shared_ptr<const void> owner_of(const Entry& e) const;

  std::shared_ptr<const MappedFile> file_;
  std::vector<Entry> entries_;
  std::vector<TensorData> tensor_data_;       // parallel to entries_
  std::shared_ptr<const void> aligned_copy_;  // holds the misaligned tensors' bytes, if any
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file atomically (temporary file in the same folder, then rename).
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, TensorView>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Largest header accepted (the format's own limit is 100 MB).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

}  // namespace kakusan
