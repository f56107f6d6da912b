// The CUDA tests' fixture: skips (with what was found) where no CUDA device can be used, and moves tensors
// between the host and the GPU. Output buffers start poisoned with NaN, so an element a kernel never writes
// fails the comparison instead of passing on leftover zeros.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/cuda_registration.h"
#include "backend/registry.h"
#include "backend/staged_tensor.h"

namespace kakusan::testing {

// Skips the test, saying why, when there is no usable CUDA device.
#define KK_REQUIRE_CUDA()                                                          \
  do {                                                                             \
    if (const std::string reason = ::kakusan::cuda_unavailable_reason(); !reason.empty()) \
      GTEST_SKIP() << "no CUDA device: " << reason;                                \
  } while (0)

class CudaTest : public ::testing::Test {
 public:
  void SetUp() override {
    KK_REQUIRE_CUDA();
    gpu_ = &backend_for_device("cuda");
  }

  Backend& gpu() { return *gpu_; }
  // Another device backend for the test's ops (after CudaTest::SetUp, when not skipped).
  void use_backend(Backend& backend) { gpu_ = &backend; }

  // A device copy of a host tensor, in `dtype` (default: the host's).
  Tensor up(const Tensor& host, std::optional<DType> dtype = std::nullopt) {
    Tensor d = gpu_->empty(host.shape(), dtype.value_or(host.dtype()));
    gpu_->upload(host, d);
    return d;
  }
  Tensor down(const TensorView& device) { return host_copy(*gpu_, device); }
  // A device f32 tensor full of NaN.
  Tensor poisoned(Shape shape) {
    return up(Tensor::full(shape, std::numeric_limits<float>::quiet_NaN()));
  }

 private:
  Backend* gpu_ = nullptr;
};

}  // namespace kakusan::testing
