// Degenerate and boundary shapes on every op of both host backends: zero-sized dimensions, inputs smaller than
// the kernel, group counts, odd embedding widths, blend extents, fabricated views. Each call either throws
// Error or gives a defined result (an empty output is nothing to do, as torch's empty tensors); outputs start
// as NaN, so an element a kernel leaves unwritten shows. Run under KAKUSAN_SANITIZE to catch what is read or
// written out of bounds.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>

#include "backend/backend.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::random_tensor;
using testing::random_weights;
using testing::Tolerance;
constexpr Tolerance kSame{0, 0};
constexpr Tolerance kSum{1e-5, 1e-5};

// The host backends, each op's reference and its fast kernels.
std::array<Backend*, 2> backends() { return {&reference_backend(), &cpu_backend()}; }

Tensor nans(Shape shape) { return Tensor::full(shape, std::numeric_limits<float>::quiet_NaN()); }

std::string trace(const Backend& be, DType dtype) {
  return std::string(be.name()) + " " + std::string(dtype_name(dtype));
}

bool all_nan(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isnan(t.f32()[i])) return false;
  return true;
}

// `bias` repeated over [batch, channels, plane] (NCHW, plane elements per channel).
Tensor broadcast_bias(const Tensor& bias, int64_t batch, int64_t plane) {
  Tensor t = Tensor::empty({batch, bias.numel(), plane});
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = bias.f32()[i / plane % bias.numel()];
  return t;
}

// Empty batches, no output features, no rows: nothing to write, in every weight dtype (an f16 weight is
// widened in panels of its rows, and zero rows make zero panels).
TEST(DegenerateShapes, LinearWithoutRowsOrOutputs) {
  for (Backend* be : backends()) {
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
      SCOPED_TRACE(trace(*be, dtype));
      const Tensor w = random_weights({6, 4}, 4, 1, dtype), bias = random_tensor({6}, 2);
      Tensor empty_batch = Tensor::empty({0, 3, 6});
      EXPECT_NO_THROW(be->linear(Tensor::empty({0, 3, 4}), w, bias, empty_batch));
      const Tensor x = random_tensor({2, 3, 4}, 3);
      Tensor no_outputs = Tensor::empty({2, 3, 0});
      EXPECT_NO_THROW(be->linear(x, Tensor::empty({0, 4}).to(dtype), Tensor(), no_outputs));
      Tensor wrong = nans({2, 3, 5});
      EXPECT_THROW(be->linear(x, w, bias, wrong), Error);
    }
  }
}

// A kernel of zero rows or columns has no taps and would make an output larger than the input: refused on
// every backend (the cpu backend divided by its tap count).
TEST(DegenerateShapes, Conv2dRefusesAnEmptyKernel) {
  const Tensor x = random_tensor({1, 2, 4, 4}, 4);
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor y = nans({1, 3, 5, 3});
    EXPECT_THROW(be->conv2d(x, Tensor::empty({3, 2, 0, 2}), Tensor(), Conv2dParams{}, y), Error);
    Tensor too_small = nans({1, 3, 1, 1});
    EXPECT_THROW(be->conv2d(x, random_tensor({3, 2, 7, 1}, 5), Tensor(), Conv2dParams{}, too_small), Error);
  }
}

// Inputs smaller than the kernel but not than the padded input: a 1x1 image under a 3x3 kernel with padding 1
// meets only the centre tap.
TEST(DegenerateShapes, Conv2dOfAnInputSmallerThanTheKernel) {
  const Tensor x = random_tensor({2, 3, 1, 1}, 6), w = random_tensor({4, 3, 3, 3}, 7), bias = random_tensor({4}, 8);
  Tensor want = Tensor::empty({2, 4, 1, 1});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t o = 0; o < 4; ++o) {
      double acc = bias.f32()[o];
      for (int64_t i = 0; i < 3; ++i) acc += double(x.f32()[n * 3 + i]) * w.f32()[(o * 3 + i) * 9 + 4];
      want.f32()[n * 4 + o] = float(acc);
    }
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor y = nans({2, 4, 1, 1});
    be->conv2d(x, w, bias, Conv2dParams::symmetric(1), y);
    KK_EXPECT_CLOSE(y, want, kSum);
  }
}

// No input pixels (height 0, all padding) or no input channels: the bias alone. The first shape is large
// enough for the cpu backend's Winograd path.
TEST(DegenerateShapes, Conv2dWithoutInputPixelsIsTheBias) {
  struct Case {
    Shape x, w;
    Conv2dParams p;
    Shape y;
  };
  const Case cases[] = {
      {{1, 32, 0, 600}, {32, 32, 3, 3}, Conv2dParams::symmetric(2), {1, 32, 2, 602}},
      {{2, 3, 0, 5}, {4, 3, 3, 3}, Conv2dParams{2, 2, 1, 0, 1}, {2, 4, 1, 2}},
      {{2, 0, 5, 5}, {4, 0, 3, 3}, Conv2dParams::symmetric(1), {2, 4, 5, 5}},
  };
  for (Backend* be : backends()) {
    for (DType dtype : {DType::F32, DType::F16}) {
      for (const Case& c : cases) {
        SCOPED_TRACE(trace(*be, dtype) + " x " + c.x.str());
        const Tensor bias = random_tensor({c.w[0]}, 9);
        Tensor y = nans(c.y);
        be->conv2d(Tensor::empty(c.x), random_weights(c.w, 9, 10, dtype), bias, c.p, y);
        KK_EXPECT_CLOSE(y.view().reshape({c.y[0], c.y[1], c.y[2] * c.y[3]}),
                        broadcast_bias(bias, c.y[0], c.y[2] * c.y[3]), kSame);
      }
    }
  }
}

// No images, or no output channels: nothing to write, whatever the weight's dtype.
TEST(DegenerateShapes, Conv2dWithoutImagesOrOutputChannels) {
  for (Backend* be : backends()) {
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
      SCOPED_TRACE(trace(*be, dtype));
      Tensor no_images = Tensor::empty({0, 4, 6, 6});
      EXPECT_NO_THROW(be->conv2d(Tensor::empty({0, 3, 6, 6}), random_weights({4, 3, 3, 3}, 27, 11, dtype),
                                 Tensor(), Conv2dParams::symmetric(1), no_images));
      Tensor no_channels = Tensor::empty({2, 0, 6, 6});
      for (const Shape& w : {Shape{0, 3, 3, 3}, Shape{0, 3, 1, 1}})
        EXPECT_NO_THROW(be->conv2d(random_tensor({2, 3, 6, 6}, 12), Tensor::empty(w).to(dtype), Tensor(),
                                   Conv2dParams::symmetric(w[2] / 2), no_channels));
    }
  }
}

// Group counts: 0 and counts that do not divide the channels are errors (torch's too); no channels, no
// pixels or no images leave nothing to normalise.
TEST(DegenerateShapes, GroupNormGroupsAndEmptyGroups) {
  const Tensor x = random_tensor({2, 6, 3, 3}, 13);
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor y = nans({2, 6, 3, 3});
    for (int groups : {0, -2, 4, 7}) EXPECT_THROW(be->group_norm(x, groups, {}, {}, 1e-5f, Activation::None, y), Error);
    for (const Shape& s : {Shape{2, 0, 3, 3}, Shape{2, 6, 0, 3}, Shape{0, 6, 3, 3}, Shape{2, 6}}) {
      SCOPED_TRACE(s.str());
      Tensor out = nans(s);
      be->group_norm(s.numel() ? random_tensor(s, 14) : Tensor::empty(s), 3, {}, {}, 1e-5f, Activation::SiLU, out);
      if (s.numel() > 0) {
        EXPECT_FALSE(std::isnan(out.f32()[0]));  // [2, 6]: one pixel per channel
      }
    }
  }
}

// eps 0 over a constant group or row: variance 0, so 0 · ∞ = NaN, as torch gives.
TEST(DegenerateShapes, NormsWithoutEpsilonOverConstantsGiveNaN) {
  const Tensor x = Tensor::full({1, 4, 2, 2}, 3.0f);
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor y = Tensor::zeros({1, 4, 2, 2});
    be->group_norm(x, 2, {}, {}, 0.0f, Activation::None, y);
    EXPECT_TRUE(all_nan(y));
    Tensor z = Tensor::zeros({1, 4, 2, 2});
    be->layer_norm(x, {}, {}, 0.0f, z);
    EXPECT_TRUE(all_nan(z));
  }
}

TEST(DegenerateShapes, LayerNormWithoutRowsOrColumns) {
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    for (const Shape& s : {Shape{0, 4}, Shape{3, 0}, Shape{2, 0, 5}}) {
      Tensor y = Tensor::empty(s);
      EXPECT_NO_THROW(be->layer_norm(Tensor::empty(s), {}, {}, 1e-5f, y));
    }
    Tensor gamma_mismatch = Tensor::empty({3, 0});
    EXPECT_THROW(be->layer_norm(Tensor::empty({3, 0}), random_tensor({4}, 15), {}, 1e-5f, gamma_mismatch), Error);
  }
}

// Attention with no batch, no queries, no value width: nothing to write. A head width of 0 makes every score
// 0: a uniform softmax, each output row the mean of the values.
TEST(DegenerateShapes, AttentionWithEmptyDimensions) {
  for (Backend* be : backends()) {
    for (AttentionStrategy strategy : {AttentionStrategy::Full, AttentionStrategy::Sliced, AttentionStrategy::Flash}) {
      SCOPED_TRACE(std::string(be->name()) + " strategy " + std::to_string(int(strategy)));
      AttentionParams p;
      p.heads = 2;
      p.strategy = strategy;
      for (const auto& [b, tq, tk, dv] : {std::tuple{0, 3, 4, 8}, {2, 0, 4, 8}, {2, 3, 4, 0}}) {
        Tensor out = Tensor::empty({b, tq, dv});
        EXPECT_NO_THROW(be->attention(Tensor::empty({b, tq, 8}), Tensor::empty({b, tk, 8}),
                                      b * tk * dv > 0 ? random_tensor({b, tk, dv}, 16) : Tensor::empty({b, tk, dv}), p,
                                      out));
      }
      const Tensor v = random_tensor({1, 4, 6}, 17);
      Tensor out = nans({1, 3, 6});
      be->attention(Tensor::empty({1, 3, 0}), Tensor::empty({1, 4, 0}), v, p, out);
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t e = 0; e < 6; ++e) {
          double mean = 0;
          for (int64_t j = 0; j < 4; ++j) mean += v.f32()[j * 6 + e] / 4.0;
          EXPECT_NEAR(out.f32()[i * 6 + e], mean, 1e-6) << i << ", " << e;
        }
    }
  }
}

// Views whose token stride does not span a row: one token with a stride of 0 (a size-1 dimension's stride is
// never stepped), and tokens that overlap (a sliding window over one buffer). The same result as dense
// operands; the cpu backend handed such strides to its GEMMs as leading dimensions, which oneDNN refused
// (abort).
TEST(DegenerateShapes, AttentionOverViewsWhoseTokenStrideIsNotARow) {
  const Tensor q = random_tensor({2, 1, 8}, 18), k = random_tensor({2, 1, 8}, 19), v = random_tensor({2, 1, 8}, 20);
  AttentionParams p;
  p.heads = 2;
  p.scale = 0.5f;
  Tensor want = Tensor::empty({2, 1, 8});
  reference_backend().attention(q, k, v, p, want);
  auto zero_token_stride = [](const Tensor& t) { return t.view().as_strided(t.shape(), Shape{8, 0, 1}); };
  for (Backend* be : backends()) {
    for (AttentionStrategy strategy : {AttentionStrategy::Full, AttentionStrategy::Flash}) {
      SCOPED_TRACE(std::string(be->name()) + " strategy " + std::to_string(int(strategy)));
      p.strategy = strategy;
      Tensor out = nans({2, 1, 8});
      be->attention(zero_token_stride(q), zero_token_stride(k), zero_token_stride(v), p, out);
      KK_EXPECT_CLOSE(out, want, kSum);
      // Tokens t of the window read buffer[t : t + 8]: each a row of 8, 1 apart.
      const Tensor buffer = random_tensor({1, 12}, 21);
      const TensorView window = buffer.view().as_strided(Shape{1, 5, 8}, Shape{12, 1, 1});
      Tensor windowed_want = Tensor::empty({1, 5, 8}), windowed = nans({1, 5, 8});
      const Tensor dense = Tensor::copy_of(window);
      reference_backend().attention(dense, dense, dense, p, windowed_want);
      be->attention(window, window, window, p, windowed);
      KK_EXPECT_CLOSE(windowed, windowed_want, kSum);
    }
  }
}

// The elementwise ops and copies on empty tensors and on scalars (rank 0, one element).
TEST(DegenerateShapes, ElementwiseOpsOnEmptyAndScalarTensors) {
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    for (const Shape& s : {Shape{0}, Shape{3, 0, 2}, Shape{}}) {
      SCOPED_TRACE(s.str());
      const Tensor a = random_tensor(s, 21), b = random_tensor(s, 22);
      Tensor y = nans(s);
      be->activation(a, Activation::SiLU, y);
      be->add(a, b, y);
      if (s.numel()) {
        EXPECT_EQ(y.f32()[0], a.f32()[0] + b.f32()[0]);
      }
      be->scale(a, 2.0f, y);
      be->divide(a, 4.0f, y);
      if (s.numel()) {
        EXPECT_EQ(y.f32()[0], a.f32()[0] / 4.0f);
      }
      be->copy(b, y);
      if (s.numel()) {
        EXPECT_EQ(y.f32()[0], b.f32()[0]);
      }
    }
    Tensor guided = Tensor::empty({0, 4});
    EXPECT_NO_THROW(be->cfg_combine(Tensor::empty({0, 4}), 7.5f, guided));
    Tensor halves = nans({1, 0});
    EXPECT_NO_THROW(be->cfg_combine(Tensor::empty({2, 0}), 7.5f, halves));
    Tensor gated = Tensor::empty({3, 0});
    EXPECT_NO_THROW(be->geglu(Tensor::empty({3, 0}), gated));
    Tensor odd = nans({3, 1});
    EXPECT_THROW(be->geglu(random_tensor({3, 3}, 23), odd), Error);
  }
}

// Resizing to an empty size is nothing to do; resizing an empty image to a non-empty size has no source pixel.
TEST(DegenerateShapes, ResizeNearestToAndFromEmpty) {
  const Tensor x = random_tensor({1, 2, 3, 3}, 24);
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    for (const Shape& s : {Shape{1, 2, 0, 0}, Shape{1, 2, 6, 0}, Shape{1, 2, 0, 5}}) {
      Tensor y = Tensor::empty(s);
      EXPECT_NO_THROW(be->resize_nearest(x, y));
    }
    Tensor from_empty = Tensor::empty({1, 2, 0, 0});
    EXPECT_NO_THROW(be->resize_nearest(Tensor::empty({1, 2, 0, 0}), from_empty));
    for (const Shape& s : {Shape{1, 2, 0, 3}, Shape{1, 2, 3, 0}}) {
      Tensor y = nans({1, 2, 4, 4});
      EXPECT_THROW(be->resize_nearest(Tensor::empty(s), y), Error);
    }
  }
}

// dim 1 holds only the padding column; dim 0 nothing. dim / 2 − freq_shift = 0 would divide by zero (torch
// gives NaN there): an error instead.
TEST(DegenerateShapes, TimestepEmbeddingOfTinyWidths) {
  Tensor t = Tensor::empty({2});
  t.f32()[0] = 1.0f;
  t.f32()[1] = 500.0f;
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor one = nans({2, 1});
    be->timestep_embedding(t, false, 1, one);  // no frequencies: nothing divides
    EXPECT_EQ(one.f32()[0], 0.0f);
    EXPECT_EQ(one.f32()[1], 0.0f);
    Tensor none = Tensor::empty({2, 0});
    EXPECT_NO_THROW(be->timestep_embedding(t, true, 0, none));
    Tensor no_batch = Tensor::empty({0, 4});
    EXPECT_NO_THROW(be->timestep_embedding(Tensor::empty({0}), true, 0, no_batch));
    Tensor two = nans({2, 2});
    be->timestep_embedding(t, false, 0, two);  // one frequency, 1: [sin t | cos t]
    EXPECT_EQ(two.f32()[2], float(std::sin(500.0)));
    EXPECT_EQ(two.f32()[3], float(std::cos(500.0)));
    for (int64_t dim : {2, 3}) {
      Tensor y = nans({2, dim});
      EXPECT_THROW(be->timestep_embedding(t, false, 1, y), Error);
    }
    Tensor many = nans({2, 6});
    be->timestep_embedding(t, false, 5, many);  // dim / 2 − freq_shift < 0 is defined: torch's formula
    EXPECT_FALSE(std::isnan(many.f32()[7]));
  }
}

// No ids, or rows of no width; an id outside the table is an error even when the rows are empty.
TEST(DegenerateShapes, EmbeddingOfNoIdsOrNoWidth) {
  Tensor ids = Tensor::empty({2}, DType::I64);
  static_cast<int64_t*>(ids.data())[0] = 1;
  static_cast<int64_t*>(ids.data())[1] = 5;
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor y = Tensor::empty({0, 3});
    EXPECT_NO_THROW(be->embedding(random_tensor({4, 3}, 25), Tensor::empty({0}, DType::I64), y));
    Tensor narrow = Tensor::empty({2, 0});
    EXPECT_THROW(be->embedding(Tensor::empty({4, 0}), ids, narrow), Error);
  }
}

TEST(DegenerateShapes, GaussianSampleOfEmptyLatents) {
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    for (const Shape& s : {Shape{0, 4, 2, 2}, Shape{2, 0, 2, 2}, Shape{2, 4, 0, 2}}) {
      Tensor y = Tensor::empty(s);
      EXPECT_NO_THROW(be->gaussian_sample(Tensor::empty({s[0], 2 * s[1], s[2], s[3]}), Tensor::empty(s), y));
    }
  }
}

// Extent 0 leaves b as it is; an extent past either tile is capped at it (the same as the tile's size).
TEST(DegenerateShapes, BlendTilesExtents) {
  const Tensor a = random_tensor({1, 2, 3, 4}, 26), b = random_tensor({1, 2, 5, 4}, 27);
  for (Backend* be : backends()) {
    for (bool vertical : {true, false}) {
      SCOPED_TRACE(std::string(be->name()) + (vertical ? " vertical" : " horizontal"));
      const Tensor bh = vertical ? b.clone() : random_tensor({1, 2, 3, 6}, 28);
      Tensor untouched = bh.clone();
      be->blend_tiles(a, untouched, 0, vertical);
      KK_EXPECT_CLOSE(untouched, bh, kSame);
      Tensor capped = bh.clone(), whole = bh.clone();
      be->blend_tiles(a, capped, 1000, vertical);
      be->blend_tiles(a, whole, vertical ? 3 : 4, vertical);
      KK_EXPECT_CLOSE(capped, whole, kSame);
      Tensor empty_tile = Tensor::empty({1, 2, 0, 0});
      EXPECT_NO_THROW(be->blend_tiles(Tensor::empty({1, 2, 0, 0}), empty_tile, 4, vertical));
    }
  }
}

// Tiles blend along one side: a must reach across b's other side (diffusers blends tiles of one column, or of
// one row, of equal sides). A narrower a was read past its rows, past its end for the last plane.
TEST(DegenerateShapes, BlendTilesRefuseANarrowerNeighbour) {
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    Tensor b = random_tensor({1, 2, 4, 6}, 29);
    EXPECT_THROW(be->blend_tiles(random_tensor({1, 2, 4, 3}, 30), b, 2, true), Error);
    EXPECT_THROW(be->blend_tiles(random_tensor({1, 2, 2, 6}, 31), b, 2, false), Error);
  }
}

// Views with a negative dimension or dimensions whose product overflows int64 (no allocation has them; a
// fabricated view may): an error naming the op, not loops that never run or sizes that wrap.
TEST(DegenerateShapes, FabricatedViewsWithImpossibleShapesAreRefused) {
  float storage[16] = {};
  const int64_t huge = int64_t(1) << 40;
  for (Backend* be : backends()) {
    SCOPED_TRACE(be->name());
    const TensorView negative(storage, Shape{-1, 4});
    EXPECT_THROW(be->add(negative, negative, negative), Error);
    const TensorView w(storage, Shape{2, 0});
    const TensorView x(storage, DType::F32, Shape{huge, huge, 0}, Shape{0, 0, 1});
    const TensorView y(storage, DType::F32, Shape{huge, huge, 2}, Shape{0, 0, 1});
    try {
      be->linear(x, w, TensorView(), y);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("linear"), std::string::npos) << e.what();
    }
  }
}


}  // namespace
}  // namespace kakusan
