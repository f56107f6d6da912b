// Every fast CPU op against the reference backend on random inputs, at awkward shapes: odd sizes, batch > 1,
// strided and f16/bf16 inputs, asymmetric padding, stride 2, several group counts.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>

#include "backend/backend.h"
#include "backend/cpu/scratch.h"
#include "linear_cases.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::LinearCase;
using testing::linear_fast_and_reference;
using testing::random_tensor;
using testing::random_weights;
using testing::Tolerance;

constexpr Tolerance kGemm{2e-5, 2e-5};
constexpr Tolerance kElementwise{2e-6, 2e-6};

Backend& fast() { return cpu_backend(); }
Backend& ref() { return reference_backend(); }

class CpuLinear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(CpuLinear, MatchesReference) {
  const auto [got, want] = linear_fast_and_reference(GetParam(), 1);
  KK_EXPECT_CLOSE(got, want, kGemm);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuLinear,
                         ::testing::Values(LinearCase{{1, 1}, 1, DType::F32, true},
                                           LinearCase{{7, 13}, 5, DType::F32, true},
                                           LinearCase{{2, 77, 32}, 37, DType::F32, false},
                                           LinearCase{{3, 9, 40}, 64, DType::F16, true},
                                           LinearCase{{2, 5, 33}, 19, DType::BF16, true}));

TEST(CpuOps, LinearReadsStridedInput) {
  Tensor fused = random_tensor({2, 6, 24}, 4);
  TensorView x = fused.view().narrow(2, 8, 8);  // the middle third of a fused projection
  Tensor w = random_weights({5, 8}, 8, 5);
  Tensor got = Tensor::empty({2, 6, 5}), want = Tensor::empty({2, 6, 5});
  fast().linear(x, w, {}, got);
  ref().linear(x, w, {}, want);
  KK_EXPECT_CLOSE(got, want, kGemm);
}

struct ConvCase {
  int64_t batch, in, height, width, out, kernel;
  Conv2dParams params;
  DType weight_dtype = DType::F32;
  bool bias = true;
};

class CpuConv2d : public ::testing::TestWithParam<ConvCase> {};

// The case on random inputs (drawn from `seed`), fast against reference.
void expect_conv_matches_reference(const ConvCase& c, uint32_t seed) {
  Tensor x = random_tensor({c.batch, c.in, c.height, c.width}, seed);
  Tensor w = random_weights({c.out, c.in, c.kernel, c.kernel}, c.in * c.kernel * c.kernel, seed + 1, c.weight_dtype);
  Tensor b = c.bias ? random_tensor({c.out}, seed + 2) : Tensor();
  const Conv2dParams& p = c.params;
  const int64_t ho = (c.height + p.pad_top + p.pad_bottom - c.kernel) / p.stride + 1;
  const int64_t wo = (c.width + p.pad_left + p.pad_right - c.kernel) / p.stride + 1;
  Tensor got = Tensor::empty({c.batch, c.out, ho, wo}), want = Tensor::empty({c.batch, c.out, ho, wo});
  fast().conv2d(x, w, b, p, got);
  ref().conv2d(x, w, b, p, want);
  KK_EXPECT_CLOSE(got, want, kGemm);
}

TEST_P(CpuConv2d, MatchesReference) { expect_conv_matches_reference(GetParam(), 12); }

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuConv2d,
    ::testing::Values(ConvCase{1, 3, 7, 5, 4, 3, Conv2dParams::symmetric(1)},
                      ConvCase{2, 5, 9, 8, 6, 3, Conv2dParams::symmetric(1, 2)},
                      ConvCase{1, 4, 9, 9, 3, 3, Conv2dParams{2, 0, 1, 0, 1}},  // VAE encoder downsampler
                      ConvCase{2, 4, 8, 10, 4, 3, Conv2dParams{2, 0, 1, 0, 1}},
                      ConvCase{2, 7, 5, 6, 3, 1, Conv2dParams{}},                // 1x1: direct GEMM
                      ConvCase{2, 40, 6, 5, 24, 1, Conv2dParams{}, DType::F16},  // ... f16 weight widened
                      ConvCase{1, 4, 6, 6, 5, 1, Conv2dParams::symmetric(0, 2)}, // 1x1 strided: im2col
                      ConvCase{1, 3, 6, 7, 2, 2, Conv2dParams{1, 1, 0, 0, 1}},
                      ConvCase{1, 6, 5, 5, 4, 3, Conv2dParams::symmetric(1), DType::F16, false},
                      ConvCase{1, 64, 64, 64, 16, 3, Conv2dParams::symmetric(1)},  // several im2col tiles
                      ConvCase{2, 8, 3, 3, 8, 3, Conv2dParams::symmetric(1), DType::BF16},
                      // Winograd F(2x2, 3x3): odd sizes (partial edge tiles), no padding, asymmetric padding,
                      // several tile blocks, f16 weights, batch 2.
                      ConvCase{1, 32, 33, 35, 40, 3, Conv2dParams::symmetric(1)},
                      ConvCase{1, 32, 34, 34, 32, 3, Conv2dParams{}},
                      ConvCase{2, 48, 32, 32, 32, 3, Conv2dParams{1, 0, 1, 0, 1}, DType::F32, false},
                      ConvCase{1, 32, 64, 64, 33, 3, Conv2dParams::symmetric(1)},
                      ConvCase{2, 32, 40, 40, 32, 3, Conv2dParams::symmetric(1), DType::F16},
                      ConvCase{1, 128, 32, 32, 128, 3, Conv2dParams::symmetric(1)},  // UNet-like depth
                      // Tiles numbered across the batch: blocks that span images and end mid-row.
                      ConvCase{2, 32, 40, 42, 32, 3, Conv2dParams::symmetric(1)},
                      ConvCase{3, 32, 24, 26, 32, 3, Conv2dParams::symmetric(1)}));

// With the scratch bounds shrunk, the same sizes take the bounded paths: f16/bf16 weights widened in chunks
// of input columns (accumulated) and panels of output channels (a last panel shorter than the rest), several
// im2col tiles spanning the batch,
// Winograd's U in panels of output channels and V in chunks of input channels.
class SmallScratch {
 public:
  SmallScratch() : saved_(cpu::scratch_limits()) {
    cpu::ScratchLimits& l = cpu::scratch_limits();
    l.weight_panel = 700;  // widened weights: chunks of 5 columns, panels spread over the threads
    l.im2col = 3000;
    l.winograd_weights = 16 * 32 * 20;  // 20 output channels of 32 inputs per panel
    l.winograd_inputs = 16 * 512 * 12;  // chunks of 12 input channels (blocks of up to 512 tiles)
  }
  ~SmallScratch() { cpu::scratch_limits() = saved_; }

 private:
  cpu::ScratchLimits saved_;
};

TEST_P(CpuConv2d, MatchesReferenceInBoundedScratch) {
  const SmallScratch small;
  expect_conv_matches_reference(GetParam(), 22);
}

// The pipeline gives the kernels' scratch back between phases: every thread's buffers are freed.
TEST(CpuOps, ScratchIsCountedAndReleased) {
  Tensor x = random_tensor({2, 32, 40, 40}, 28);
  Tensor w = random_weights({32, 32, 3, 3}, 32 * 9, 29, DType::F16);
  Tensor y = Tensor::empty({2, 32, 40, 40});
  fast().conv2d(x, w, Tensor(), Conv2dParams::symmetric(1), y);
  EXPECT_GT(fast().scratch_bytes(), size_t(16 * 32 * 32 * sizeof(float)));  // at least Winograd's U
  fast().release_scratch();
  EXPECT_EQ(fast().scratch_bytes(), size_t(0));
  Tensor again = Tensor::empty({2, 32, 40, 40});
  fast().conv2d(x, w, Tensor(), Conv2dParams::symmetric(1), again);  // buffers come back on demand
  KK_EXPECT_CLOSE(again, y, Tolerance{0.0, 0.0});
}

// A second pipeline on another thread giving its scratch back while this thread's kernels run: nothing in
// use is freed (ASan would report it) and the results stay exact.
TEST(CpuOps, ReleasingScratchWhileAnotherThreadComputes) {
  Tensor x = random_tensor({2, 32, 40, 40}, 30);
  Tensor w = random_weights({32, 32, 3, 3}, 32 * 9, 31, DType::F16);
  Tensor want = Tensor::empty({2, 32, 40, 40});
  fast().conv2d(x, w, Tensor(), Conv2dParams::symmetric(1), want);
  std::atomic<bool> stop{false};
  std::thread releaser([&] {
    while (!stop) fast().release_scratch();
  });
  for (int i = 0; i < 40; ++i) {
    Tensor got = Tensor::empty({2, 32, 40, 40});
    fast().conv2d(x, w, Tensor(), Conv2dParams::symmetric(1), got);
    KK_EXPECT_CLOSE(got, want, Tolerance{0.0, 0.0});
  }
  stop = true;
  releaser.join();
}

// No input features (k = 0): no products, so the output is the bias, or zeros without one, in every dtype.
TEST(CpuOps, NoInputFeaturesGiveTheBiasOrZeros) {
  for (const DType wt : {DType::F32, DType::F16})
    for (const bool with_bias : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "weight " << dtype_name(wt) << (with_bias ? ", bias" : ", no bias"));
      Tensor b = with_bias ? random_tensor({4}, 40) : Tensor();
      Tensor x = Tensor::empty({3, 0}), w = Tensor::empty({4, 0}).to(wt);
      Tensor got = Tensor::empty({3, 4}), want = Tensor::empty({3, 4});
      std::fill(got.f32(), got.f32() + got.numel(), 7.0f);  // whatever the output held before
      fast().linear(x, w, b, got);
      ref().linear(x, w, b, want);
      KK_EXPECT_CLOSE(got, want, Tolerance{0.0, 0.0});
      Tensor xc = Tensor::empty({2, 0, 5, 5}), wc = Tensor::empty({4, 0, 3, 3}).to(wt);
      Tensor got_c = Tensor::empty({2, 4, 5, 5}), want_c = Tensor::empty({2, 4, 5, 5});
      std::fill(got_c.f32(), got_c.f32() + got_c.numel(), 7.0f);
      fast().conv2d(xc, wc, b, Conv2dParams::symmetric(1), got_c);
      ref().conv2d(xc, wc, b, Conv2dParams::symmetric(1), want_c);
      KK_EXPECT_CLOSE(got_c, want_c, Tolerance{0.0, 0.0});
      EXPECT_EQ(got_c.f32()[0], with_bias ? b.f32()[0] : 0.0f);
    }
}

TEST(CpuOps, LinearConvertsF16WeightsInPanels) {
  const SmallScratch small;
  for (const int64_t out : {int64_t(37), int64_t(64)}) {
    Tensor x = random_tensor({5, 48}, 25);
    Tensor w = random_weights({out, 48}, 48, 26, DType::F16), b = random_tensor({out}, 27);
    Tensor got = Tensor::empty({5, out}), want = Tensor::empty({5, out});
    fast().linear(x, w, b, got);
    ref().linear(x, w, b, want);
    KK_EXPECT_CLOSE(got, want, kGemm);
  }
}

// A weight that is a strided view (the interface takes any view; a model's weights are dense) is made dense
// float32 whole, also where the bounded scratch splits a dense f16 weight's columns into chunks.
TEST(CpuOps, StridedF16WeightsMatchTheReference) {
  const SmallScratch small;
  const Tensor wide = random_weights({24, 96}, 48, 63, DType::F16);
  const TensorView w = wide.view().narrow(1, 0, 48);  // rows of 48 at a stride of 96
  const Tensor x = random_tensor({3, 7, 48}, 64), b = random_tensor({24}, 65);
  Tensor got = Tensor::empty({3, 7, 24}), want = Tensor::empty({3, 7, 24});
  fast().linear(x, w, b, got);
  ref().linear(x, w, b, want);
  KK_EXPECT_CLOSE(got, want, kGemm, "linear");
  const Tensor wide_c = random_weights({8, 12, 3, 3}, 6 * 9, 66, DType::F16);
  const TensorView wc = wide_c.view().narrow(1, 3, 6);  // 6 of 12 input channels
  // 9x9: im2col (too few tiles for Winograd) at stride 1 and 2; 32x32 at stride 1: Winograd.
  for (const auto& [in_side, stride] : {std::pair{9, 1}, std::pair{9, 2}, std::pair{32, 1}}) {
    const Tensor xc = random_tensor({2, 6, in_side, in_side}, 67);
    const Conv2dParams p = Conv2dParams::symmetric(1, stride);
    const int64_t side = (in_side + 2 - 3) / stride + 1;
    Tensor got_c = Tensor::empty({2, 8, side, side}), want_c = Tensor::empty({2, 8, side, side});
    fast().conv2d(xc, wc, b.view().narrow(0, 0, 8), p, got_c);
    ref().conv2d(xc, wc, b.view().narrow(0, 0, 8), p, want_c);
    KK_EXPECT_CLOSE(got_c, want_c, kGemm,
                    "conv2d " + std::to_string(in_side) + ", stride " + std::to_string(stride));
  }
}

TEST(CpuOps, GroupNormMatchesReference) {
  for (int groups : {1, 2, 5})
    for (Activation act : {Activation::None, Activation::SiLU}) {
      SCOPED_TRACE(::testing::Message() << groups << " groups, act " << int(act));
      Tensor x = random_tensor({2, 10, 7, 3}, 15, 3.0f);
      // A large common offset: the statistics must not cancel catastrophically.
      for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += 50.0f;
      Tensor g = random_tensor({10}, 16).to(DType::F16), b = random_tensor({10}, 17);
      Tensor got = Tensor::empty(x.shape()), want = Tensor::empty(x.shape());
      fast().group_norm(x, groups, g, b, 1e-5f, act, got);
      ref().group_norm(x, groups, g, b, 1e-5f, act, want);
      KK_EXPECT_CLOSE(got, want, Tolerance{2e-5, 2e-5});
      // In place.
      fast().group_norm(x, groups, g, b, 1e-5f, act, x);
      KK_EXPECT_CLOSE(x, want, Tolerance{2e-5, 2e-5});
    }
}

TEST(CpuOps, LayerNormMatchesReference) {
  for (int64_t cols : {1, 7, 32, 1000}) {
    Tensor x = random_tensor({3, 5, cols}, 18, 2.0f);
    Tensor g = random_tensor({cols}, 19), b = random_tensor({cols}, 20);
    Tensor got = Tensor::empty(x.shape()), want = Tensor::empty(x.shape());
    fast().layer_norm(x, g, b, 1e-5f, got);
    ref().layer_norm(x, g, b, 1e-5f, want);
    KK_EXPECT_CLOSE(got, want, Tolerance{1e-5, 1e-5}, "cols " + std::to_string(cols));
  }
}

TEST(CpuOps, ActivationsMatchReference) {
  Tensor x = random_tensor({3, 1001}, 22, 4.0f);
  // Include the extremes: huge magnitudes and exact zero.
  x.f32()[0] = 0.0f;
  x.f32()[1] = 100.0f;
  x.f32()[2] = -100.0f;
  x.f32()[3] = 1e-8f;
  for (Activation act :
       {Activation::None, Activation::SiLU, Activation::GELU, Activation::GELUTanh, Activation::QuickGELU, Activation::ReLU,
        Activation::SoftClamp3, Activation::SignedToUnit, Activation::UnitToSigned}) {
    Tensor got = Tensor::empty(x.shape()), want = Tensor::empty(x.shape());
    fast().activation(x, act, got);
    ref().activation(x, act, want);
    KK_EXPECT_CLOSE(got, want, kElementwise, "activation " + std::to_string(int(act)));
  }
}

TEST(CpuOps, AddGegluUpsampleMatchReference) {
  Tensor a = random_tensor({2, 3, 5, 7}, 23), b = random_tensor({2, 3, 5, 7}, 24);
  Tensor got = Tensor::empty(a.shape()), want = Tensor::empty(a.shape());
  fast().add(a, b, got);
  ref().add(a, b, want);
  KK_EXPECT_CLOSE(got, want, kElementwise);
  fast().add(a, b, a);  // y aliases a
  KK_EXPECT_CLOSE(a, want, kElementwise);

  Tensor g = random_tensor({2, 9, 2 * 37}, 25, 3.0f);
  Tensor gg = Tensor::empty({2, 9, 37}), gw = Tensor::empty({2, 9, 37});
  fast().geglu(g, gg);
  ref().geglu(g, gw);
  KK_EXPECT_CLOSE(gg, gw, kElementwise);

  Tensor u = random_tensor({2, 3, 5, 7}, 26);
  Tensor ug = Tensor::empty({2, 3, 10, 14}), uw = Tensor::empty({2, 3, 10, 14});
  fast().resize_nearest(u, ug);  // ×2: the fast kernel
  ref().resize_nearest(u, uw);
  KK_EXPECT_CLOSE(ug, uw, Tolerance{0, 0});
}

TEST(CpuOps, CopyHandlesPermutesConcatAndDtypes) {
  Tensor x = random_tensor({2, 3, 4, 5}, 27);
  Tensor got = Tensor::empty({2, 4, 5, 3}), want = Tensor::empty({2, 4, 5, 3});
  fast().copy(x.view().permute({0, 2, 3, 1}), got);
  ref().copy(x.view().permute({0, 2, 3, 1}), want);
  KK_EXPECT_CLOSE(got, want, Tolerance{0, 0});
  // Concatenation along channels into narrow() views.
  Tensor cat = Tensor::zeros({2, 7, 4, 5}), cat_want = Tensor::zeros({2, 7, 4, 5});
  Tensor extra = random_tensor({2, 4, 4, 5}, 28);
  fast().copy(x, cat.view().narrow(1, 0, 3));
  fast().copy(extra, cat.view().narrow(1, 3, 4));
  ref().copy(x, cat_want.view().narrow(1, 0, 3));
  ref().copy(extra, cat_want.view().narrow(1, 3, 4));
  KK_EXPECT_CLOSE(cat, cat_want, Tolerance{0, 0});
  // f32 -> f16 -> f32.
  Tensor half = Tensor::empty({2, 3, 4, 5}, DType::F16), back = Tensor::empty({2, 3, 4, 5});
  fast().copy(x, half);
  fast().copy(half, back);
  KK_EXPECT_CLOSE(back, x, Tolerance{1e-3, 1e-3});
}

TEST(CpuOps, CopyTransposesAcrossTiles) {
  // NCHW -> tokens [N, HW, C] and back, with sizes that straddle the 32x32 tiles; and into a narrow() view.
  Tensor x = random_tensor({2, 37, 5, 13}, 30);
  const TensorView tokens_view = x.view().reshape({2, 37, 65}).permute({0, 2, 1});
  Tensor got = Tensor::empty({2, 65, 37}), want = Tensor::empty({2, 65, 37});
  fast().copy(tokens_view, got);
  ref().copy(tokens_view, want);
  KK_EXPECT_CLOSE(got, want, Tolerance{0, 0});
  Tensor back = Tensor::empty({2, 37, 65});
  fast().copy(got.view().permute({0, 2, 1}), back);
  KK_EXPECT_CLOSE(back, x.view().reshape({2, 37, 65}), Tolerance{0, 0});
  // Contiguous tokens written through a permuted destination (the other side of the transpose).
  Tensor nchw = Tensor::empty({2, 37, 65});
  fast().copy(got, nchw.view().permute({0, 2, 1}));
  KK_EXPECT_CLOSE(nchw, x.view().reshape({2, 37, 65}), Tolerance{0, 0});
  Tensor wide = Tensor::full({2, 65, 40}, 3.0f), wide_want = Tensor::full({2, 65, 40}, 3.0f);
  fast().copy(tokens_view, wide.view().narrow(2, 1, 37));
  ref().copy(tokens_view, wide_want.view().narrow(2, 1, 37));
  KK_EXPECT_CLOSE(wide, wide_want, Tolerance{0, 0});
}

TEST(CpuOps, NonContiguousOutputs) {
  // Ops that write a strided destination go through scratch and land in the right elements only.
  Tensor x = random_tensor({3, 8}, 29);
  Tensor big = Tensor::full({3, 20}, 7.0f), want = Tensor::full({3, 20}, 7.0f);
  fast().activation(x, Activation::SiLU, big.view().narrow(1, 5, 8));
  ref().activation(x, Activation::SiLU, want.view().narrow(1, 5, 8));
  KK_EXPECT_CLOSE(big, want, kElementwise);
}

}  // namespace
}  // namespace kakusan
