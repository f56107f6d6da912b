// count_non_finite on every floating dtype, including the largest finite values and subnormals.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/finite.h"

namespace kakusan {
namespace {

TEST(CountNonFinite, EveryFloatDtype) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  Tensor t = Tensor::empty({8});
  const float values[8] = {0.0f, -1.5f, nan, inf, -inf, 65504.0f, 1e-7f, -nan};
  for (int i = 0; i < 8; ++i) t.f32()[i] = values[i];
  for (const DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    const NonFiniteCount c = count_non_finite(t.to(dtype));
    EXPECT_EQ(c.nan, 2) << dtype_name(dtype);
    EXPECT_EQ(c.inf, 2) << dtype_name(dtype);
    EXPECT_TRUE(c.any());
  }
  // Largest finite values are finite; 1e6 overflows f16 (as a converted checkpoint would).
  Tensor big = Tensor::full({2}, 3.0e38f);
  EXPECT_FALSE(count_non_finite(big).any());
  big.f32()[1] = 1.0e6f;
  EXPECT_EQ(count_non_finite(big.to(DType::F16)).inf, 2);
  EXPECT_FALSE(count_non_finite(Tensor::zeros({3}, DType::I64)).any());
}

}  // namespace
}  // namespace kakusan
