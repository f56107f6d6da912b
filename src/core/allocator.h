// DeviceAllocator: the memory of one device, handed out in blocks. Arenas and tensors allocate through it;
// every Backend is one (its memory is where its ops run), and host_allocator() is plain host memory.
#pragma once

#include <cstddef>

#include "core/tensor.h"

namespace kakusan {

class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;

  // Where allocate() puts memory.
  virtual Device device() const { return Device::host(); }
  // `bytes` (> 0) of uninitialised, 64-byte aligned memory on device(), or nullptr when there is none.
  // Host memory comes from allocate_large: mapped pages that cost nothing until touched.
  virtual void* allocate(size_t bytes);
  // Frees a block from allocate(bytes) (the same `bytes`); nullptr is ignored.
  virtual void deallocate(void* p, size_t bytes);

  // An uninitialised contiguous tensor in this memory, freed (through deallocate) with its last owner; the
  // allocator must outlive the tensors it made.
  Tensor empty(Shape shape, DType dtype = DType::F32);
};

// Host memory (allocate_large).
DeviceAllocator& host_allocator();

}  // namespace kakusan
