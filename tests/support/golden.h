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
// Why golden_dir() found nothing, naming where it looked (for skip messages).
std::string golden_absent_reason();

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

// Skips the current test (reported as skipped with the reason, never passed) when the golden kit is absent.
// A value-parameterised golden suite gets one placeholder parameter without the kit and calls this first, so
// that it reports SKIPPED rather than running zero cases in silence.
#define KK_REQUIRE_GOLDEN()                                                 \
  do {                                                                      \
    if (!::kakusan::testing::golden_dir())                                  \
      GTEST_SKIP() << ::kakusan::testing::golden_absent_reason();           \
  } while (0)

#define KK_EXPECT_CLOSE(got, want, ...) EXPECT_TRUE(::kakusan::testing::tensors_close((got), (want), __VA_ARGS__))
