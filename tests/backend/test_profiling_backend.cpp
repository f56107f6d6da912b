// ProfilingBackend forwards to the wrapped backend unchanged and counts calls per op and shape.
#include <gtest/gtest.h>

#include "backend/profiling_backend.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

TEST(ProfilingBackend, ForwardsAndCounts) {
  ProfilingBackend profiler(cpu_backend());
  Tensor x = testing::random_tensor({3, 8}, 1), w = testing::random_weights({5, 8}, 8, 2);
  Tensor got = Tensor::empty({3, 5}), want = Tensor::empty({3, 5});
  profiler.linear(x, w, {}, got);
  profiler.linear(x, w, {}, got);
  cpu_backend().linear(x, w, {}, want);
  KK_EXPECT_CLOSE(got, want, testing::Tolerance{0, 0});
  const std::string report = profiler.report();
  EXPECT_NE(report.find("| linear [3, 8] [5, 8] | 2 |"), std::string::npos) << report;
  profiler.reset();
  EXPECT_EQ(profiler.report().find("linear"), std::string::npos);
  // Errors of the wrapped backend pass through.
  Tensor bad = Tensor::empty({3, 4});
  EXPECT_THROW(profiler.linear(x, w, {}, bad), Error);
}

}  // namespace
}  // namespace kakusan
