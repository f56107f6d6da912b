// Arena: scratch memory for activations, handed out in stack order and released by marks.
//
// The first pass through a model allocates chunks as it goes and records the peak; reset() then replaces
// them with one block of that peak size, so every later pass (each denoising step) allocates nothing.
// Chunks come from a DeviceAllocator (a backend's memory; host memory by default), so a dry pass on a
// backend that computes nothing measures the same peak without touching the memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"

namespace kakusan {

class Arena {
 public:
  explicit Arena(DeviceAllocator& memory = host_allocator()) : memory_(memory) {}
  explicit Arena(size_t reserve_bytes) : Arena(host_allocator(), reserve_bytes) {}
  Arena(DeviceAllocator& memory, size_t reserve_bytes) : memory_(memory) { reserve(reserve_bytes); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  // A view of uninitialised, 64-byte aligned memory valid until the enclosing mark is released.
  TensorView alloc(Shape shape, DType dtype = DType::F32);
  // Zero-filled; host arenas only (a device's memory is filled by its backend).
  TensorView zeros(Shape shape, DType dtype = DType::F32);
  Device device() const { return memory_.device(); }

  struct Mark {
    size_t chunk;
    size_t offset;
    size_t used;
  };
  Mark mark() const { return {in_use_, in_use_ == 0 ? 0 : chunks_[in_use_ - 1].offset, used_}; }
  void release(const Mark& m);

  // Frees everything; if several chunks were needed, replaces them with one block of the peak size.
  void reset();
  void reserve(size_t bytes);

  // Where the next allocations land: the chunks' addresses and sizes and the position in them, hashed. Equal
  // values before two passes that allocate alike mean both get the same addresses (what a replayed graph of
  // the pass relies on).
  uint64_t layout_hash() const;

  size_t used_bytes() const { return used_; }
  size_t peak_bytes() const { return peak_; }
  size_t capacity_bytes() const;

 private:
  struct Chunk {
    std::byte* data;
    size_t size;
    size_t offset;
  };
  DeviceAllocator& memory_;
  std::vector<Chunk> chunks_;
  size_t in_use_ = 0;  // chunks [0, in_use_) hold live data; allocation happens in the last of them
  size_t used_ = 0;
  size_t peak_ = 0;
};

// Releases everything allocated in a scope when it ends.
class ArenaScope {
 public:
  explicit ArenaScope(Arena& arena) : arena_(arena), mark_(arena.mark()) {}
  ~ArenaScope() { arena_.release(mark_); }
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;

 private:
  Arena& arena_;
  Arena::Mark mark_;
};

}  // namespace kakusan
