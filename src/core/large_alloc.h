// Memory for the large buffers (tensors, activation arenas, kernel scratch): 64-byte aligned, and blocks of
// a megabyte or more are mapped straight from the OS so that freeing one gives it back at once. Through
// malloc they would not: glibc raises its mmap threshold after the first large free and serves later blocks
// below 32 MB from the heap, which keeps freed pages resident (about 75 MB more peak RSS at 512x512).
#pragma once

#include <cstddef>

namespace kakusan {

// `bytes` (> 0) of uninitialised memory, or nullptr when the system has none. Pages of a mapped block cost
// memory only once touched.
void* allocate_large(size_t bytes);
// Frees a block from allocate_large(bytes) (the same `bytes`); nullptr is ignored.
void free_large(void* p, size_t bytes);

}  // namespace kakusan
