#include "core/allocator.h"

#include "core/large_alloc.h"

namespace kakusan {

void* DeviceAllocator::allocate(size_t bytes) { return allocate_large(bytes); }

void DeviceAllocator::deallocate(void* p, size_t bytes) { free_large(p, bytes); }

Tensor DeviceAllocator::empty(Shape shape, DType dtype) {
  const size_t bytes = tensor_bytes(shape, dtype);
  const size_t size = bytes == 0 ? 64 : bytes;  // a real block even for no elements: data() is never null
  void* p = allocate(size);
  if (p == nullptr)
    fail("out of memory allocating ", bytes, " bytes on ", device().str(), " for a tensor of shape ", shape.str());
  std::shared_ptr<const void> owner(p, [this, size](const void* q) { deallocate(const_cast<void*>(q), size); });
  return Tensor::adopt(p, dtype, device(), shape, std::move(owner));
}

DeviceAllocator& host_allocator() {
  static DeviceAllocator host;
  return host;
}

}  // namespace kakusan
