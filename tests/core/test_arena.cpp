// Arena: stack-order allocation, marks, scopes, peak tracking and the single-block reset.
#include "core/arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

namespace kakusan {
namespace {

bool aligned64(const TensorView& v) { return reinterpret_cast<uintptr_t>(v.data) % 64 == 0; }

TEST(Arena, AllocationsAreAlignedAndDisjoint) {
  Arena arena;
  const TensorView a = arena.alloc(Shape{3});  // 12 bytes, rounded up to 64
  const TensorView b = arena.alloc(Shape{5}, DType::F16);
  const TensorView c = arena.zeros(Shape{100});
  EXPECT_TRUE(aligned64(a) && aligned64(b) && aligned64(c));
  EXPECT_GE(static_cast<char*>(b.data) - static_cast<char*>(a.data), 64);
  EXPECT_EQ(arena.used_bytes(), 64u + 64u + 448u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.f32()[i], 0.0f);
  EXPECT_EQ(b.dtype, DType::F16);
  EXPECT_EQ(c.shape, (Shape{100}));
  // Writing one allocation does not touch another.
  std::memset(a.data, 0xff, a.nbytes());
  EXPECT_EQ(c.f32()[0], 0.0f);
}

// Host memory that calls itself device 2 and counts what it hands out.
class CountingAllocator final : public DeviceAllocator {
 public:
  Device device() const override { return Device::backend(2); }
  void* allocate(size_t bytes) override {
    ++allocations;
    live += bytes;
    return DeviceAllocator::allocate(bytes);
  }
  void deallocate(void* p, size_t bytes) override {
    live -= bytes;
    DeviceAllocator::deallocate(p, bytes);
  }
  int allocations = 0;
  size_t live = 0;
};

TEST(Arena, AllocatesThroughItsAllocator) {
  CountingAllocator memory;
  {
    Arena arena(memory, 4096);
    EXPECT_EQ(arena.device(), Device::backend(2));
    EXPECT_EQ(memory.allocations, 1);
    const TensorView a = arena.alloc(Shape{8});
    EXPECT_EQ(a.device, Device::backend(2));  // the views know whose memory they are
    arena.alloc(Shape{8 << 20});              // beyond the reserve: a second chunk, from the same allocator
    EXPECT_EQ(memory.allocations, 2);
    arena.reset();  // merged into one block of the peak
    EXPECT_EQ(memory.allocations, 3);
    EXPECT_EQ(memory.live, arena.capacity_bytes());
    const Tensor t = memory.empty({3, 5}, DType::F16);
    EXPECT_EQ(t.device(), Device::backend(2));
    EXPECT_EQ(memory.allocations, 4);
  }
  EXPECT_EQ(memory.live, 0u);  // everything went back through deallocate
}

TEST(Arena, MarksReleaseInStackOrder) {
  Arena arena(1 << 20);
  const TensorView keep = arena.alloc(Shape{16});
  const Arena::Mark m = arena.mark();
  const TensorView t1 = arena.alloc(Shape{1000});
  arena.alloc(Shape{1000});
  EXPECT_EQ(arena.used_bytes(), 64u + 4032u + 4032u);
  arena.release(m);
  EXPECT_EQ(arena.used_bytes(), 64u);
  const TensorView again = arena.alloc(Shape{10});
  EXPECT_EQ(again.data, t1.data);  // the released memory is reused
  EXPECT_NE(again.data, keep.data);
  EXPECT_EQ(arena.peak_bytes(), 64u + 4032u + 4032u);
}

TEST(Arena, ScopeReleasesOnExit) {
  Arena arena(1 << 16);
  arena.alloc(Shape{8});
  const size_t before = arena.used_bytes();
  void* inner = nullptr;
  {
    ArenaScope scope(arena);
    inner = arena.alloc(Shape{256}).data;
    {
      ArenaScope nested(arena);
      arena.alloc(Shape{256});
    }
    EXPECT_EQ(arena.alloc(Shape{1}).data, static_cast<char*>(inner) + 1024);  // nested scope's memory reused
  }
  EXPECT_EQ(arena.used_bytes(), before);
  EXPECT_EQ(arena.alloc(Shape{4}).data, inner);
}

TEST(Arena, GrowsByChunksAndResetMergesThemIntoOneBlock) {
  Arena arena;  // no reservation: the first pass learns the size
  constexpr int64_t kBig = int64_t(6) << 20;  // 24 MiB of floats per allocation, above the 16 MiB chunk minimum
  auto pass = [&] {
    ArenaScope scope(arena);
    const TensorView a = arena.alloc(Shape{kBig});
    const TensorView b = arena.alloc(Shape{kBig});
    const TensorView c = arena.alloc(Shape{kBig / 2});
    static_cast<float*>(a.data)[kBig - 1] = 1;  // all of it is usable memory
    static_cast<float*>(b.data)[kBig - 1] = 2;
    static_cast<float*>(c.data)[kBig / 2 - 1] = 3;
    EXPECT_EQ(static_cast<float*>(a.data)[kBig - 1], 1);
  };
  pass();
  const size_t peak = arena.peak_bytes();
  EXPECT_EQ(peak, size_t(kBig * 4 * 2 + kBig * 2));
  EXPECT_GE(arena.capacity_bytes(), peak);
  arena.reset();
  EXPECT_EQ(arena.used_bytes(), 0u);
  EXPECT_EQ(arena.capacity_bytes(), peak);  // one block of exactly the peak
  pass();  // the same pass now fits without new chunks
  EXPECT_EQ(arena.capacity_bytes(), peak);
  EXPECT_EQ(arena.peak_bytes(), peak);
  arena.reset();
  EXPECT_EQ(arena.capacity_bytes(), peak);  // a single block is kept as is
}

TEST(Arena, ReleaseAcrossChunks) {
  Arena arena(4096);
  const TensorView first = arena.alloc(Shape{512});  // fills the reservation
  const Arena::Mark m = arena.mark();
  arena.alloc(Shape{2048});  // opens a second chunk
  EXPECT_EQ(arena.used_bytes(), 2048u + 8192u);
  arena.release(m);
  EXPECT_EQ(arena.used_bytes(), 2048u);
  const TensorView next = arena.alloc(Shape{16});
  EXPECT_NE(next.data, first.data);
  static_cast<float*>(next.data)[0] = 5;
  EXPECT_EQ(arena.peak_bytes(), 2048u + 8192u);
}

// A loop of scoped passes that each spill past the first chunk must reuse the chunks it opened before,
// not open new ones every pass (the pipeline runs one such pass per denoising step).
TEST(Arena, RepeatedPassesReuseReleasedChunks) {
  Arena arena(4096);
  const TensorView first = arena.alloc(Shape{512});  // fills the reservation
  const Arena::Mark before = arena.mark();
  arena.alloc(Shape{int64_t(8) << 20});  // 32 MiB: opens a second chunk
  arena.alloc(Shape{int64_t(8) << 20});  // and a third
  const size_t capacity = arena.capacity_bytes();
  arena.release(before);
  for (int pass = 0; pass < 5; ++pass) {
    ArenaScope scope(arena);
    const TensorView a = arena.alloc(Shape{int64_t(8) << 20});
    const TensorView b = arena.alloc(Shape{int64_t(8) << 20});
    EXPECT_NE(a.data, first.data);
    EXPECT_NE(a.data, b.data);
  }
  EXPECT_EQ(arena.capacity_bytes(), capacity);
  EXPECT_EQ(arena.used_bytes(), 2048u);
}

}  // namespace
}  // namespace kakusan
