// GPU timing for the device check's measurement lines: CUDA events on the default stream around each run.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <vector>

namespace kakusan::testing {

// Milliseconds of one run of `run` (which enqueues work on the default stream): the median of 15 after 3
// warm-ups.
inline float median_gpu_ms(const std::function<void()>& run) {
  constexpr int kRuns = 15;
  for (int i = 0; i < 3; ++i) run();
  std::vector<cudaEvent_t> events(2 * kRuns);
  for (cudaEvent_t& e : events) cudaEventCreate(&e);
  for (int i = 0; i < kRuns; ++i) {
    cudaEventRecord(events[2 * i], nullptr);
    run();
    cudaEventRecord(events[2 * i + 1], nullptr);
  }
  EXPECT_EQ(cudaEventSynchronize(events.back()), cudaSuccess);
  std::vector<float> ms(kRuns);
  for (int i = 0; i < kRuns; ++i) cudaEventElapsedTime(&ms[i], events[2 * i], events[2 * i + 1]);
  for (cudaEvent_t& e : events) cudaEventDestroy(e);
  std::nth_element(ms.begin(), ms.begin() + kRuns / 2, ms.end());
  return ms[kRuns / 2];
}

}  // namespace kakusan::testing
