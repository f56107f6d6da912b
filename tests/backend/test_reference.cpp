// The reference backend against values worked out by hand, so the yardstick itself is checked.
#include <gtest/gtest.h>

#include <vector>

#include "backend/backend.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::Tolerance;
constexpr Tolerance kExact{1e-6, 1e-6};

Tensor make(Shape shape, std::vector<float> values) {
  Tensor t = Tensor::empty(shape);
  KK_ASSERT(int64_t(values.size()) == t.numel());
  std::copy(values.begin(), values.end(), t.f32());
  return t;
}

Backend& ref() { return reference_backend(); }

TEST(ReferenceBackend, LinearAddsBias) {
  Tensor x = make({1, 2}, {1, 2});
  Tensor w = make({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor b = make({3}, {0.5f, 0, -1});
  Tensor y = Tensor::empty({1, 3});
  ref().linear(x, w, b, y);
  KK_EXPECT_CLOSE(y, make({1, 3}, {1.5f, 2, 2}), kExact);
}

TEST(ReferenceBackend, Conv2dValidAndPaddedStrided) {
  Tensor x = make({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor w = make({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor y = Tensor::empty({1, 1, 2, 2});
  ref().conv2d(x, w, {}, Conv2dParams{}, y);
  KK_EXPECT_CLOSE(y, make({1, 1, 2, 2}, {12, 16, 24, 28}), kExact);
  // Padding 1 all round, stride 2: windows start at -1 and 1.
  ref().conv2d(x, w, {}, Conv2dParams::symmetric(1, 2), y);
  KK_EXPECT_CLOSE(y, make({1, 1, 2, 2}, {1, 5, 11, 28}), kExact);
  // Asymmetric (0, 1, 0, 1) as the VAE encoder's downsampler: the extra zero row/column is at the end.
  Tensor y2 = Tensor::empty({1, 1, 2, 2});
  ref().conv2d(x, w, make({1}, {100}), Conv2dParams{2, 0, 1, 0, 1}, y2);
  KK_EXPECT_CLOSE(y2, make({1, 1, 2, 2}, {112, 109, 115, 109}), kExact);
}

TEST(ReferenceBackend, GroupNormWithSiLU) {
  Tensor x = make({1, 2, 2}, {1, 2, 3, 4});
  Tensor y = Tensor::empty({1, 2, 2});
  ref().group_norm(x, 1, {}, {}, 0.0f, Activation::None, y);
  KK_EXPECT_CLOSE(y, make({1, 2, 2}, {-1.3416408f, -0.4472136f, 0.4472136f, 1.3416408f}), kExact);
  // Two groups: each channel normalised alone; gamma 2, beta 1 on channel 1.
  ref().group_norm(x, 2, make({2}, {1, 2}), make({2}, {0, 1}), 0.0f, Activation::None, y);
  KK_EXPECT_CLOSE(y, make({1, 2, 2}, {-1, 1, -1, 3}), kExact);
  ref().group_norm(x, 2, {}, {}, 0.0f, Activation::SiLU, y);
  KK_EXPECT_CLOSE(y, make({1, 2, 2}, {-0.26894142f, 0.7310586f, -0.26894142f, 0.7310586f}), kExact);
}

TEST(ReferenceBackend, LayerNorm) {
  Tensor x = make({1, 3}, {1, 2, 3});
  Tensor y = Tensor::empty({1, 3});
  ref().layer_norm(x, {}, {}, 0.0f, y);
  KK_EXPECT_CLOSE(y, make({1, 3}, {-1.2247449f, 0, 1.2247449f}), kExact);
}

TEST(ReferenceBackend, Activations) {
  Tensor x = make({2}, {1, -2});
  Tensor y = Tensor::empty({2});
  ref().activation(x, Activation::SiLU, y);
  KK_EXPECT_CLOSE(y, make({2}, {0.7310586f, -0.23840584f}), kExact);
  ref().activation(x, Activation::GELU, y);
  KK_EXPECT_CLOSE(y, make({2}, {0.8413447f, -0.04550026f}), kExact);
  ref().activation(x, Activation::GELUTanh, y);
  EXPECT_NEAR(y.f32()[0], 0.84119199f, 1e-6);
  ref().activation(x, Activation::QuickGELU, y);
  EXPECT_NEAR(y.f32()[0], 0.84579577f, 1e-6);
  // TAESD's steps: ReLU, 3·tanh(x/3), (x+1)/2, 2x-1.
  ref().activation(x, Activation::ReLU, y);
  KK_EXPECT_CLOSE(y, make({2}, {1, 0}), kExact);
  ref().activation(x, Activation::SoftClamp3, y);
  KK_EXPECT_CLOSE(y, make({2}, {0.96453821f, -1.7483488f}), kExact);
  ref().activation(x, Activation::SignedToUnit, y);
  KK_EXPECT_CLOSE(y, make({2}, {1, -0.5f}), kExact);
  ref().activation(x, Activation::UnitToSigned, y);
  KK_EXPECT_CLOSE(y, make({2}, {1, -5}), kExact);
  Tensor g = make({1, 2}, {2, 1});
  Tensor gy = Tensor::empty({1, 1});
  ref().geglu(g, gy);
  EXPECT_NEAR(gy.f32()[0], 2 * 0.8413447f, 1e-6);
}

TEST(ReferenceBackend, AttentionOneHeadAndCausal) {
  Tensor q = make({1, 2, 2}, {1, 0, 1, 0});
  Tensor k = make({1, 2, 2}, {1, 0, 0, 1});
  Tensor v = make({1, 2, 2}, {1, 2, 3, 4});
  Tensor out = Tensor::empty({1, 2, 2});
  AttentionParams p;
  ref().attention(q, k, v, p, out);  // softmax([1, 0]) = [0.731, 0.269]
  KK_EXPECT_CLOSE(out, make({1, 2, 2}, {1.5378828f, 2.5378828f, 1.5378828f, 2.5378828f}), kExact);
  p.causal = true;  // query 0 sees key 0 only
  ref().attention(q, k, v, p, out);
  KK_EXPECT_CLOSE(out, make({1, 2, 2}, {1, 2, 1.5378828f, 2.5378828f}), kExact);
}

TEST(ReferenceBackend, UpsampleAndStridedCopy) {
  Tensor x = make({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor y = Tensor::empty({1, 1, 4, 4});
  ref().resize_nearest(x, y);
  KK_EXPECT_CLOSE(y, make({1, 1, 4, 4}, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}), kExact);
  Tensor t = Tensor::empty({2, 2});
  ref().copy(make({2, 2}, {1, 2, 3, 4}).view().permute({1, 0}), t);
  KK_EXPECT_CLOSE(t, make({2, 2}, {1, 3, 2, 4}), kExact);
}

TEST(ReferenceBackend, RejectsMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 3});
  Tensor w = Tensor::zeros({4, 5});
  Tensor y = Tensor::empty({2, 4});
  EXPECT_THROW(ref().linear(x, w, {}, y), Error);
  EXPECT_THROW(cpu_backend().linear(x, w, {}, y), Error);
  Tensor gn = Tensor::zeros({1, 6, 2});
  EXPECT_THROW(ref().group_norm(gn, 4, {}, {}, 1e-5f, Activation::None, gn), Error);
}

}  // namespace
}  // namespace kakusan
