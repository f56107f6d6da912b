#include "core/arena.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>


namespace kakusan {

namespace {
constexpr size_t kAlign = 64;
constexpr size_t kMinChunk = size_t(16) << 20;
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Arena::~Arena() {
  for (Chunk& c : chunks_) memory_.deallocate(c.data, c.size);
}

void Arena::reserve(size_t bytes) {
  if (capacity_bytes() >= bytes && chunks_.size() <= 1) return;
  KK_ASSERT(used_ == 0);
  for (Chunk& c : chunks_) memory_.deallocate(c.data, c.size);
  chunks_.clear();
  const size_t size = round_up(std::max(bytes, size_t(kAlign)));
  auto* p = static_cast<std::byte*>(memory_.allocate(size));
  if (p == nullptr) fail("out of memory reserving a ", size >> 20, " MiB activation arena");
  chunks_.push_back({p, size, 0});
  in_use_ = 0;
}

size_t Arena::capacity_bytes() const {
  size_t n = 0;
  for (const Chunk& c : chunks_) n += c.size;
  return n;
}

TensorView Arena::alloc(Shape shape, DType dtype) {
  const size_t bytes = round_up(size_t(shape.numel()) * dtype_size(dtype));
  while (in_use_ == 0 || chunks_[in_use_ - 1].offset + bytes > chunks_[in_use_ - 1].size) {
    if (in_use_ < chunks_.size()) {  // a chunk freed by an earlier release(): use it again
      chunks_[in_use_++].offset = 0;
      continue;
    }
    const size_t size = std::max(bytes, kMinChunk);
    auto* p = static_cast<std::byte*>(memory_.allocate(size));
    if (p == nullptr) fail("out of memory allocating ", bytes, " bytes of activations for shape ", shape.str());
    chunks_.push_back({p, size, 0});
    in_use_ = chunks_.size();
  }
  Chunk& c = chunks_[in_use_ - 1];
  void* data = c.data + c.offset;
  c.offset += bytes;
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return TensorView(data, dtype, memory_.device(), shape);
}

TensorView Arena::zeros(Shape shape, DType dtype) {
  TensorView v = alloc(shape, dtype);
  KK_ASSERT(v.on_host());
  std::memset(v.data, 0, v.nbytes());
  return v;
}

void Arena::release(const Mark& m) {
  // A mark from before reset() (which merges chunks) or from another arena cannot be released.
  KK_ASSERT(m.chunk <= chunks_.size() && m.used <= used_);
  // Chunks opened after the mark stay allocated for the next allocations (and are merged at reset()).
  for (size_t i = m.chunk; i < chunks_.size(); ++i) chunks_[i].offset = 0;
  if (m.chunk > 0) chunks_[m.chunk - 1].offset = m.offset;
  in_use_ = m.chunk;
  used_ = m.used;
}

uint64_t Arena::layout_hash() const {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over 64-bit words
  auto mix = [&h](uint64_t v) { h = (h ^ v) * 0x100000001b3ull; };
  for (const Chunk& c : chunks_) {
    mix(reinterpret_cast<uintptr_t>(c.data));
    mix(c.size);
  }
  mix(in_use_);
  mix(in_use_ == 0 ? 0 : chunks_[in_use_ - 1].offset);
  mix(used_);
  return h;
}

void Arena::reset() {
  used_ = 0;
  if (chunks_.size() > 1) {
    const size_t peak = peak_;
    for (Chunk& c : chunks_) memory_.deallocate(c.data, c.size);
    chunks_.clear();
    reserve(peak);
  }
  for (Chunk& c : chunks_) c.offset = 0;
  in_use_ = 0;
}

}  // namespace kakusan
