// Test helpers: finding the golden kit and comparing tensors with a useful failure message.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace kakusan::testing {

// $KAKUSAN_GOLDEN_DIR, else ../shared/golden beside the source tree; nullopt if neither exists.
std::optional<std::filesystem::path> golden_dir();

// Opens golden/<relative> (a safetensors file).
SafetensorsFile open_golden(const std::string& relative);

struct Tolerance {
  double atol = 0;
  double rtol = 0;
};

// Checks |got - want| <= atol + rtol·|want| elementwise (f32/f16/bf16/i64 views of equal shape); on failure
// reports the worst element, its index and how many elements are off.
::testing::AssertionResult tensors_close(const TensorView& got, const TensorView& want, Tolerance tol,
                                         const std::string& what = "");

}  // namespace kakusan::testing

// Skips the current test (reported as skipped, never passed) when the golden kit is absent.
#define KK_REQUIRE_GOLDEN()                                                                          \
  do {                                                                                               \
    if (!::kakusan::testing::golden_dir())                                                           \
      GTEST_SKIP() << "golden kit not found: set KAKUSAN_GOLDEN_DIR or place it at ../shared/golden"; \
  } while (0)

#define KK_EXPECT_CLOSE(got, want, ...) EXPECT_TRUE(::kakusan::testing::tensors_close((got), (want), __VA_ARGS__))
