// The process-wide pool: chunks cover the range exactly once, nested calls run inline, exceptions reach the
// caller, and resizing works.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/thread_pool.h"

namespace kakusan {
namespace {

TEST(ThreadPool, CoversEveryIndexOnceInContiguousChunks) {
  for (int64_t n : {0, 1, 2, 3, 17, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int> chunks{0};
    parallel_for(n, [&](int64_t begin, int64_t end) {
      EXPECT_LT(begin, end);
      ++chunks;
      for (int64_t i = begin; i < end; ++i) ++hits[size_t(i)];
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[size_t(i)].load(), 1) << "n " << n << " index " << i;
    EXPECT_LE(chunks.load(), std::max(1, num_threads()));
  }
}

TEST(ThreadPool, GrainLimitsTheNumberOfChunks) {
  std::atomic<int> chunks{0};
  parallel_for(10, [&](int64_t, int64_t) { ++chunks; }, 100);
  EXPECT_EQ(chunks.load(), 1);
}

TEST(ThreadPool, NestedCallsRunInline) {
  std::atomic<int64_t> total{0};
  parallel_for(8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      parallel_for(100, [&](int64_t b, int64_t e) { total += e - b; });
  });
  EXPECT_EQ(total.load(), 800);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  EXPECT_THROW(parallel_for(100, [](int64_t, int64_t) {
                 throw std::runtime_error("boom");
               }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int64_t> total{0};
  parallel_for(100, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total.load(), 100);
}

TEST(ThreadPool, Resizes) {
  const int before = num_threads();
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  std::atomic<int> chunks{0};
  parallel_for(300, [&](int64_t, int64_t) { ++chunks; });
  EXPECT_EQ(chunks.load(), 3);
  set_num_threads(before);
  EXPECT_EQ(num_threads(), before);
}

}  // namespace
}  // namespace kakusan
