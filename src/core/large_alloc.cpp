#include "core/large_alloc.h"

#include <sys/mman.h>

#include <cstdlib>

namespace kakusan {
namespace {

constexpr size_t kMapThreshold = size_t(1) << 20;
constexpr size_t kAlign = 64;

}  // namespace

void* allocate_large(size_t bytes) {
  if (bytes < kMapThreshold) return std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void free_large(void* p, size_t bytes) {
  if (p == nullptr) return;
  if (bytes < kMapThreshold)
    std::free(p);
  else
    ::munmap(p, bytes);
}

}  // namespace kakusan
