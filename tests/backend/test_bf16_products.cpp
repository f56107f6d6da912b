// Reduced-precision products (backend.h: "products take the precision of their weight"): bf16 weights round
// linear's and conv2d's activations to bf16; AttentionParams::precision rounds q, k, v and the softmax
// probabilities. The CPU backend against the reference on every path, and tests that fail when the rounding
// is skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attention_cases.h"
#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/scratch.h"
#include "linear_cases.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::AttentionCase;
using testing::attention_params_for;
using testing::for_each_cpu_strategy;
using testing::kStrategies;
using testing::LinearCase;
using testing::linear_fast_and_reference;
using testing::random_attention_inputs;
using testing::random_tensor;
using testing::Strategy;
using testing::random_weights;
using testing::Tolerance;

// Both backends multiply the same rounded operands, and bf16 x bf16 products are exact in f32: only the
// accumulation differs (f32 in the GEMMs, double in the reference), as for f32 weights — the same bound as
// test_cpu_ops' kGemm.
constexpr Tolerance kGemm{2e-5, 2e-5};

Backend& fast() { return cpu_backend(); }
Backend& ref() { return reference_backend(); }

// The CPU's two ways of multiplying in bf16 (gemm.h's Bf16Gemm): bf16gemm with the weight in place, and the
// f32 GEMMs on rounded operands. Auto picks one by speed, so the tests force each (both run on any CPU: oneDNN
// emulates bf16 where AVX512_BF16 is missing).
constexpr cpu::Bf16Gemm kBf16Paths[] = {cpu::Bf16Gemm::Native, cpu::Bf16Gemm::Widened};

class ForcedBf16Gemm {
 public:
  explicit ForcedBf16Gemm(cpu::Bf16Gemm path)
      : saved_(cpu::bf16_gemm_setting()),
        trace_(__FILE__, __LINE__, path == cpu::Bf16Gemm::Native ? "bf16gemm" : "f32 GEMMs") {
    cpu::bf16_gemm_setting() = path;
  }
  ~ForcedBf16Gemm() { cpu::bf16_gemm_setting() = saved_; }

 private:
  cpu::Bf16Gemm saved_;
  ::testing::ScopedTrace trace_;
};

// x rounded to bf16 and back: the activation the contract multiplies.
Tensor pre_rounded(const Tensor& x, DType precision = DType::BF16) { return x.to(precision).to(DType::F32); }

double max_abs_difference(const Tensor& a, const Tensor& b) {
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, double(std::abs(a.f32()[i] - b.f32()[i])));
  return worst;
}

// ---- linear ----

class Bf16Linear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(Bf16Linear, MatchesReference) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    const auto [got, want] = linear_fast_and_reference(GetParam(), 1);
    KK_EXPECT_CLOSE(got, want, kGemm);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Linear,
                         ::testing::Values(LinearCase{{1, 1}, 1, DType::BF16, true},
                                           LinearCase{{7, 13}, 5, DType::BF16, true},
                                           LinearCase{{2, 77, 32}, 37, DType::BF16, false},  // leading dims
                                           LinearCase{{3, 9, 40}, 64, DType::BF16, true},
                                           LinearCase{{2, 5, 33}, 19, DType::BF16, false},
                                           LinearCase{{2, 300, 96}, 80, DType::BF16, true}));

// Rows rounded in blocks (and bf16 weights converted in panels) when the scratch bounds are small.
TEST_P(Bf16Linear, MatchesReferenceInBoundedScratch) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    const cpu::ScratchLimits saved = cpu::scratch_limits();
    cpu::scratch_limits().rounded_input = 100;  // blocks of 1..100 rows
    cpu::scratch_limits().weight_panel = 700;
    const auto [got, want] = linear_fast_and_reference(GetParam(), 11);
    cpu::scratch_limits() = saved;
    KK_EXPECT_CLOSE(got, want, kGemm);
  }
}

TEST(Bf16Products, LinearReadsStridedInput) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    Tensor fused = random_tensor({2, 6, 24}, 4);
    TensorView x = fused.view().narrow(2, 8, 8);
    Tensor w = random_weights({5, 8}, 8, 5, DType::BF16);
    Tensor got = Tensor::empty({2, 6, 5}), want = Tensor::empty({2, 6, 5});
    fast().linear(x, w, {}, got);
    ref().linear(x, w, {}, want);
    KK_EXPECT_CLOSE(got, want, kGemm);
  }
}

// The rounding is really done: a bf16 weight gives the product of the rounded input (== f32 products on a
// pre-rounded input, to accumulation noise), and that differs from the unrounded input's by far more than
// accumulation noise (a bf16 ulp is 2^-8 relative: ~1e-3 on these O(1) outputs).
TEST(Bf16Products, LinearRoundsTheActivation) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    Tensor x = random_tensor({4, 30, 64}, 6);
    Tensor w = random_weights({48, 64}, 64, 7, DType::BF16);
    const Tensor widened = w.to(DType::F32);
    Tensor bf16 = Tensor::empty({4, 30, 48}), unrounded = Tensor::empty({4, 30, 48}),
           prerounded = Tensor::empty({4, 30, 48});
    fast().linear(x, w, {}, bf16);
    fast().linear(x, widened, {}, unrounded);
    fast().linear(pre_rounded(x), widened, {}, prerounded);
    KK_EXPECT_CLOSE(bf16, prerounded, kGemm);
    EXPECT_GT(max_abs_difference(bf16, unrounded), 1e-3);
    // The reference keeps the same rule.
    Tensor want = Tensor::empty({4, 30, 48}), want_unrounded = Tensor::empty({4, 30, 48});
    ref().linear(x, w, {}, want);
    ref().linear(x, widened, {}, want_unrounded);
    KK_EXPECT_CLOSE(want, prerounded, kGemm);
    EXPECT_GT(max_abs_difference(want, want_unrounded), 1e-3);
  }
}

// f16 weights are widened exactly on the CPU: their products stay f32 (the activation is not rounded).
TEST(Bf16Products, F16WeightsDoNotRoundTheActivation) {
  Tensor x = random_tensor({3, 40}, 8);
  Tensor w = random_weights({24, 40}, 40, 9, DType::F16);
  Tensor got = Tensor::empty({3, 24}), widened = Tensor::empty({3, 24});
  fast().linear(x, w, {}, got);
  fast().linear(x, w.to(DType::F32), {}, widened);
  KK_EXPECT_CLOSE(got, widened, Tolerance{0, 0});
}

// ---- conv2d ----

struct ConvCase {
  int64_t batch, in, height, width, out, kernel;
  Conv2dParams params;
  bool bias = true;
};

Shape conv_output(const ConvCase& c) {
  const Conv2dParams& p = c.params;
  return {c.batch, c.out, (c.height + p.pad_top + p.pad_bottom - c.kernel) / p.stride + 1,
          (c.width + p.pad_left + p.pad_right - c.kernel) / p.stride + 1};
}

class Bf16Conv2d : public ::testing::TestWithParam<ConvCase> {};

void expect_conv_matches_reference(const ConvCase& c, uint32_t seed) {
  Tensor x = random_tensor({c.batch, c.in, c.height, c.width}, seed);
  Tensor w = random_weights({c.out, c.in, c.kernel, c.kernel}, c.in * c.kernel * c.kernel, seed + 1, DType::BF16);
  Tensor b = c.bias ? random_tensor({c.out}, seed + 2) : Tensor();
  Tensor got = Tensor::empty(conv_output(c)), want = Tensor::empty(conv_output(c));
  fast().conv2d(x, w, b, c.params, got);
  ref().conv2d(x, w, b, c.params, want);
  KK_EXPECT_CLOSE(got, want, kGemm);
}

TEST_P(Bf16Conv2d, MatchesReference) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    expect_conv_matches_reference(GetParam(), 12);
  }
}

// The bounded-scratch paths (see test_cpu_ops' SmallScratch): weight panels, several im2col tiles, Winograd's
// U panels and V chunks.
TEST_P(Bf16Conv2d, MatchesReferenceInBoundedScratch) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    const cpu::ScratchLimits saved = cpu::scratch_limits();
    cpu::ScratchLimits& l = cpu::scratch_limits();
    l.weight_panel = 700;
    l.im2col = 3000;
    l.winograd_weights = 16 * 32 * 20;
    l.winograd_inputs = 16 * 512 * 12;
    expect_conv_matches_reference(GetParam(), 22);
    cpu::scratch_limits() = saved;
  }
}

// The direct convolution (oneDNN's, conv2d_bf16_direct.cpp) wherever it applies, whatever the size: with
// bf16gemm native and no pixel threshold.
class ForcedDirectConv {
 public:
  ForcedDirectConv()
      : native_(cpu::Bf16Gemm::Native), saved_(cpu::direct_bf16_conv_min_pixels()),
        trace_(__FILE__, __LINE__, "direct convolution") {
    cpu::direct_bf16_conv_min_pixels() = 1;
  }
  ~ForcedDirectConv() { cpu::direct_bf16_conv_min_pixels() = saved_; }

 private:
  ForcedBf16Gemm native_;
  int64_t saved_;
  ::testing::ScopedTrace trace_;
};

// Where conv2d takes the direct convolution unforced: kernels larger than 1x1, padding narrower than the kernel,
// at least direct_bf16_conv_min_pixels() output pixels over the images.
TEST(Bf16Products, DirectConvolutionApplies) {
  const int64_t least = cpu::direct_bf16_conv_min_pixels();
  ASSERT_EQ(least, 512);
  auto dims = [](int64_t batch, int64_t size, int64_t kernel) {
    return ConvDims{batch, 320, size, size, 320, kernel, kernel, size, size};
  };
  const Conv2dParams same = Conv2dParams::symmetric(1);
  EXPECT_TRUE(cpu::direct_bf16_conv_applies(dims(2, 32, 3), same));    // 2048 pixels
  EXPECT_TRUE(cpu::direct_bf16_conv_applies(dims(1, 64, 3), same));    // 4096
  EXPECT_TRUE(cpu::direct_bf16_conv_applies(dims(2, 16, 3), same));    // 512
  EXPECT_FALSE(cpu::direct_bf16_conv_applies(dims(1, 16, 3), same));   // 256
  EXPECT_FALSE(cpu::direct_bf16_conv_applies(dims(2, 8, 3), same));    // 128
  EXPECT_FALSE(cpu::direct_bf16_conv_applies(dims(2, 64, 1), Conv2dParams{}));  // 1x1
  EXPECT_FALSE(cpu::direct_bf16_conv_applies(dims(2, 64, 3), Conv2dParams::symmetric(3)));  // pad = kernel
  ConvDims no_inputs = dims(2, 64, 3);
  no_inputs.in_channels = 0;
  EXPECT_FALSE(cpu::direct_bf16_conv_applies(no_inputs, same));
}

TEST_P(Bf16Conv2d, DirectMatchesReference) {
  const ForcedDirectConv direct;
  expect_conv_matches_reference(GetParam(), 12);
}

// Chunks of one output row (the padding of the first and last chunks differs from the middle ones').
TEST_P(Bf16Conv2d, DirectMatchesReferenceInBoundedScratch) {
  const ForcedDirectConv direct;
  const cpu::ScratchLimits saved = cpu::scratch_limits();
  cpu::scratch_limits().im2col = 3000;
  expect_conv_matches_reference(GetParam(), 22);
  cpu::scratch_limits() = saved;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Bf16Conv2d,
    ::testing::Values(ConvCase{1, 3, 7, 5, 4, 3, Conv2dParams::symmetric(1)},
                      ConvCase{2, 5, 9, 8, 6, 3, Conv2dParams::symmetric(1, 2)},   // 3x3 stride 2
                      ConvCase{1, 4, 9, 9, 3, 3, Conv2dParams{2, 0, 1, 0, 1}},     // asymmetric (VAE downsampler)
                      ConvCase{2, 7, 5, 6, 3, 1, Conv2dParams{}, false},           // 1x1
                      ConvCase{2, 40, 12, 12, 24, 1, Conv2dParams{}},              // 1x1, UNet-like channels
                      ConvCase{1, 4, 6, 6, 5, 1, Conv2dParams::symmetric(0, 2)},   // 1x1 strided
                      ConvCase{1, 3, 6, 7, 2, 2, Conv2dParams{1, 1, 0, 0, 1}},
                      // Winograd-eligible: odd sizes, no padding, asymmetric padding, batch 2.
                      ConvCase{1, 32, 33, 35, 40, 3, Conv2dParams::symmetric(1)},
                      ConvCase{1, 32, 34, 34, 32, 3, Conv2dParams{}},
                      ConvCase{2, 48, 32, 32, 32, 3, Conv2dParams{1, 0, 1, 0, 1}, false},
                      // TAESD-like: 64 channels, Winograd (32x32) and im2col (16x16: too few tiles), stride 2.
                      ConvCase{1, 64, 32, 32, 64, 3, Conv2dParams::symmetric(1)},
                      ConvCase{1, 64, 16, 16, 64, 3, Conv2dParams::symmetric(1)},
                      ConvCase{1, 64, 32, 32, 64, 3, Conv2dParams::symmetric(1, 2), false},
                      // Channels and widths off the 16-wide blocks of the direct convolution's transposes,
                      // output channels off oneDNN's weight blocks.
                      ConvCase{2, 20, 9, 21, 70, 3, Conv2dParams::symmetric(1)},
                      ConvCase{1, 33, 17, 18, 17, 3, Conv2dParams{2, 1, 0, 1, 0}, false},
                      // The weight rewritten 16 output x 32 input channels at a time: several of each, output
                      // channels across oneDNN's 32- or 64-wide blocks.
                      ConvCase{2, 96, 10, 11, 48, 3, Conv2dParams::symmetric(1)}));

void conv2d_rounds_the_activation() {
  const ConvCase cases[] = {{1, 32, 32, 32, 32, 3, Conv2dParams::symmetric(1)},     // Winograd
                            {1, 16, 12, 12, 16, 3, Conv2dParams::symmetric(1, 2)},  // im2col
                            {1, 32, 16, 16, 24, 1, Conv2dParams{}}};                // 1x1
  for (const ConvCase& c : cases) {
    Tensor x = random_tensor({c.batch, c.in, c.height, c.width}, 40);
    Tensor w = random_weights({c.out, c.in, c.kernel, c.kernel}, c.in * c.kernel * c.kernel, 41, DType::BF16);
    const Tensor widened = w.to(DType::F32);
    Tensor bf16 = Tensor::empty(conv_output(c)), unrounded = Tensor::empty(conv_output(c)),
           prerounded = Tensor::empty(conv_output(c));
    fast().conv2d(x, w, {}, c.params, bf16);
    fast().conv2d(x, widened, {}, c.params, unrounded);
    fast().conv2d(pre_rounded(x), widened, {}, c.params, prerounded);
    KK_EXPECT_CLOSE(bf16, prerounded, kGemm, "kernel " + std::to_string(c.kernel));
    EXPECT_GT(max_abs_difference(bf16, unrounded), 1e-3) << "kernel " << c.kernel;
  }
}

// As for linear: through Winograd, im2col, the 1x1 path and the direct convolution, the result is the
// pre-rounded input's, and not the unrounded one's.
TEST(Bf16Products, Conv2dRoundsTheActivation) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    conv2d_rounds_the_activation();
  }
  const ForcedDirectConv direct;
  conv2d_rounds_the_activation();
}

// ---- bf16gemm ----

struct GemmCase {
  bool trans_a, trans_b;
  int64_t m, n, k;
  int64_t pad;  // extra elements in every leading dimension (strided operands and output)
  float alpha, beta;
  bool bias = false;  // a bias per column, added inside the GEMM
};

// bf16gemm against alpha times a double-precision sum over the same bf16 operands, plus beta·c and the bias:
// exact products, so only the f32 accumulation differs (kGemm). Outside its m x n block c is left as it was.
TEST(Bf16Gemm, MatchesTheWidenedProduct) {
  const GemmCase cases[] = {
      {false, true, 7, 5, 13, 0, 1.0f, 0.0f},       {false, false, 9, 11, 3, 2, 1.0f, 1.0f},
      {true, false, 6, 17, 8, 1, 0.25f, 0.5f},      {true, true, 33, 20, 40, 3, -0.3f, 0.0f},
      {false, true, 300, 96, 80, 0, 0.158f, 1.0f},  // split across the threads by rows
      {false, false, 40, 700, 150, 5, 1.0f, 1.0f},  // and by columns
      {false, true, 4, 6, 0, 1, 2.0f, 0.5f},        // no products: c = beta·c
      {false, true, 300, 96, 80, 0, 1.0f, 0.0f, true},   // a linear layer's bias, rows split
      {false, true, 40, 700, 150, 3, 1.0f, 1.0f, true},  // columns split: each part its columns' bias
      {false, true, 4, 6, 0, 1, 1.0f, 0.5f, true},       // no products: beta·c plus the bias
  };
  for (const GemmCase& g : cases) {
    const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
    const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
    const int64_t lda = a_cols + g.pad, ldb = b_cols + g.pad, ldc = g.n + g.pad;
    const Tensor a = random_tensor({std::max<int64_t>(a_rows, 1), lda}, 50).to(DType::BF16);
    const Tensor b = random_tensor({std::max<int64_t>(b_rows, 1), ldb}, 51).to(DType::BF16);
    const Tensor c0 = random_tensor({g.m, ldc}, 52), bias = random_tensor({g.n}, 53);
    const Tensor a32 = a.to(DType::F32), b32 = b.to(DType::F32);
    Tensor got = c0.to(DType::F32), want = c0.to(DType::F32);
    cpu::bf16gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.view().u16(), lda, b.view().u16(), ldb, g.beta,
                  got.f32(), ldc, g.bias ? bias.f32() : nullptr);
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) {
        double sum = 0;
        for (int64_t p = 0; p < g.k; ++p)
          sum += double(a32.f32()[g.trans_a ? p * lda + i : i * lda + p]) *
                 double(b32.f32()[g.trans_b ? j * ldb + p : p * ldb + j]);
        want.f32()[i * ldc + j] = float(double(g.alpha) * sum + double(g.beta) * double(c0.f32()[i * ldc + j]) +
                                        (g.bias ? double(bias.f32()[j]) : 0.0));
      }
    KK_EXPECT_CLOSE(got, want, kGemm,
                    std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) +
                        (g.trans_a ? " A^T" : "") + (g.trans_b ? " B^T" : "") + (g.bias ? " bias" : ""));
  }
}

// Empty dimensions in bf16 on both paths: no rows, no outputs, no inputs (k = 0: the bias alone), no images, no
// pixels, no head width. Outputs start as NaN, so an element left unwritten shows; cpu against the reference.
TEST(Bf16Products, EmptyDimensionsOnBothPaths) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    struct LinearShape {
      Shape x, w;
    };
    for (const LinearShape& c : {LinearShape{{0, 3, 4}, {6, 4}}, LinearShape{{2, 3, 4}, {0, 4}},
                                 LinearShape{{2, 3, 0}, {6, 0}}}) {
      const Tensor x = random_tensor(c.x, 60), w = random_tensor(c.w, 61).to(DType::BF16);
      const Tensor b = random_tensor({c.w[0]}, 62);
      const Shape ys{c.x[0], c.x[1], c.w[0]};
      Tensor got = Tensor::full(ys, nan), want = Tensor::full(ys, nan);
      fast().linear(x, w, b, got);
      ref().linear(x, w, b, want);
      KK_EXPECT_CLOSE(got, want, kGemm, "linear x " + c.x.str() + " w " + c.w.str());
    }
    struct ConvShape {
      Shape x, w, y;
    };
    for (const ConvShape& c : {ConvShape{{1, 8, 0, 9}, {8, 8, 3, 3}, {1, 8, 2, 11}},  // no pixels: the bias
                               ConvShape{{2, 0, 5, 5}, {4, 0, 3, 3}, {2, 4, 7, 7}},   // no input channels
                               ConvShape{{0, 3, 6, 6}, {4, 3, 3, 3}, {0, 4, 8, 8}},   // no images
                               ConvShape{{2, 3, 6, 6}, {0, 3, 3, 3}, {2, 0, 8, 8}}}) {  // no output channels
      const Tensor x = random_tensor(c.x, 63), w = random_tensor(c.w, 64).to(DType::BF16);
      const Tensor b = random_tensor({c.w[0]}, 65);
      Tensor got = Tensor::full(c.y, nan), want = Tensor::full(c.y, nan);
      fast().conv2d(x, w, b, Conv2dParams::symmetric(2), got);
      ref().conv2d(x, w, b, Conv2dParams::symmetric(2), want);
      KK_EXPECT_CLOSE(got, want, kGemm, "conv2d x " + c.x.str() + " w " + c.w.str());
    }
    AttentionParams p;
    p.heads = 2;
    p.precision = DType::BF16;
    for (const Strategy& s : kStrategies) {  // no head width: every key weighs the same
      p.strategy = s.strategy;
      p.slice_size = s.slice_size;
      const Tensor v = random_tensor({1, 600, 6}, 66);
      Tensor got = Tensor::full({1, 3, 6}, nan), want = Tensor::full({1, 3, 6}, nan);
      fast().attention(Tensor::empty({1, 3, 0}), Tensor::empty({1, 600, 0}), v, p, got);
      ref().attention(Tensor::empty({1, 3, 0}), Tensor::empty({1, 600, 0}), v, p, want);
      KK_EXPECT_CLOSE(got, want, kGemm, std::string("attention ") + s.name);
    }
  }
}

// ---- attention ----

// Both backends round the same q, k, v; the probabilities e^(s − k·ln 2) are computed in f32 by the CPU
// (fast_exp, a few ulp) and in double by the reference, then rounded. Where that f32 error straddles a
// rounding tie, one probability rounds the other way: about 2^-16·(a few) of them. Such a flip moves an output
// by at most one ulp of the precision times p/sum·|v| <= ulp·max|v|. So: every output within that bound, and
// all but 2 % within the f32 tolerance of test_attention (1e-5). Measured on these cases: at most 0.2 % of
// the outputs (bf16; f16's finer ulp flips more often: 0.8 %) are beyond it, while a kernel that rounds q, k,
// v but not the probabilities puts 80-98 % of them beyond.
::testing::AssertionResult attention_close(const Tensor& got, const Tensor& want, const Tensor& v, DType precision) {
  const double ulp = precision == DType::BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  double v_max = 0;
  for (int64_t i = 0; i < v.numel(); ++i) v_max = std::max(v_max, double(std::abs(v.f32()[i])));
  int64_t beyond_f32 = 0;
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.f32()[i], w = want.f32()[i], diff = std::abs(g - w);
    worst = std::max(worst, diff);
    if (!(diff <= ulp * v_max)) return ::testing::AssertionFailure() << "element " << i << ": " << g << " vs " << w;
    if (diff > 1e-5 + 1e-5 * std::abs(w)) ++beyond_f32;
  }
  if (beyond_f32 * 50 > got.numel())
    return ::testing::AssertionFailure() << beyond_f32 << " of " << got.numel() << " outputs beyond f32 noise (worst "
                                         << worst << ")";
  return ::testing::AssertionSuccess() << beyond_f32 << " flips";
}

class ReducedAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(ReducedAttention, EveryStrategyMatchesReference) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    const AttentionCase& c = GetParam();
    const int64_t vw = c.heads * c.value_dim;
    const auto [q, k, v] = random_attention_inputs(c);
    for (const DType precision : {DType::BF16, DType::F16}) {
      AttentionParams p = attention_params_for(c);
      p.precision = precision;
      Tensor want = Tensor::empty({c.batch, c.q_len, vw});
      ref().attention(q, k, v, p, want);
      for_each_cpu_strategy(q, k, v, p, {c.batch, c.q_len, vw}, [&](const Strategy& s, const Tensor& got) {
        EXPECT_TRUE(attention_close(got, want, v, precision)) << s.name << " " << dtype_name(precision);
      });
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ReducedAttention,
                         ::testing::Values(AttentionCase{1, 1, 1, 1, 1, 1, false},
                                           AttentionCase{2, 33, 77, 3, 8, 8, false},     // cross-attention
                                           AttentionCase{2, 300, 300, 2, 16, 16, false},  // several query tiles
                                           AttentionCase{1, 77, 77, 4, 8, 8, true},      // CLIP
                                           AttentionCase{2, 300, 300, 2, 5, 7, true},    // causal over tiles
                                           AttentionCase{1, 200, 1100, 2, 8, 8, false},  // several key tiles
                                           AttentionCase{1, 700, 700, 1, 4, 6, true},
                                           AttentionCase{1, 130, 1030, 2, 40, 40, false}));  // SD head dim

TEST(ReducedAttention, ReadsSlicesOfAFusedProjection) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    const int64_t batch = 2, tokens = 600, heads = 3, dim = 8, width = heads * dim;
    Tensor qkv = random_tensor({batch, tokens, 3 * width}, 34, 2.0f);
    TensorView q = qkv.view().narrow(2, 0, width), k = qkv.view().narrow(2, width, width),
               v = qkv.view().narrow(2, 2 * width, width);
    Tensor dense_v = Tensor::empty({batch, tokens, width});
    ref().copy(v, dense_v);
    AttentionParams p;
    p.heads = int(heads);
    p.scale = 0.3f;
    p.precision = DType::BF16;
    Tensor want = Tensor::empty({batch, tokens, width});
    ref().attention(q, k, v, p, want);
    for_each_cpu_strategy(q, k, v, p, {batch, tokens, width}, [&](const Strategy& s, const Tensor& got) {
      EXPECT_TRUE(attention_close(got, want, dense_v, DType::BF16)) << s.name;
    });
  }
}

// No keys at all (an empty context): zeros in every precision, on both backends (not 0/0).
TEST(ReducedAttention, NoKeysGivesZeros) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    Tensor q = random_tensor({1, 5, 16}, 35);
    Tensor kv = Tensor::empty({1, 0, 16});
    for (Backend* be : {&ref(), &fast()})
      for (const DType precision : {DType::F32, DType::BF16, DType::F16}) {
        AttentionParams p;
        p.heads = 2;
        p.precision = precision;
        Tensor got = Tensor::full({1, 5, 16}, 1e30f);
        be->attention(q, kv, kv, p, got);
        for (int64_t i = 0; i < got.numel(); ++i)
          ASSERT_EQ(got.f32()[i], 0.0f) << be->name() << " " << dtype_name(precision) << " element " << i;
      }
  }
}

// Rounding skipped would show: bf16 attention differs from f32 attention on the same inputs, and still
// differs (by the probabilities' rounding) from f32 attention on pre-rounded q, k, v — by far more than f32
// noise, and by less than the bf16 rounding of its operands can move it.
TEST(ReducedAttention, RoundsOperandsAndProbabilities) {
  for (const cpu::Bf16Gemm path : kBf16Paths) {
    const ForcedBf16Gemm forced(path);
    Tensor q = random_tensor({1, 256, 64}, 50, 2.0f), k = random_tensor({1, 700, 64}, 51, 2.0f);
    Tensor v = random_tensor({1, 700, 64}, 52);
    for (const Strategy& s : kStrategies) {
      AttentionParams p;
      p.heads = 2;
      p.scale = 0.125f;
      p.strategy = s.strategy;
      p.slice_size = s.slice_size;
      Tensor f32 = Tensor::empty({1, 256, 64}), prerounded = Tensor::empty({1, 256, 64}),
             bf16 = Tensor::empty({1, 256, 64});
      fast().attention(q, k, v, p, f32);
      fast().attention(pre_rounded(q), pre_rounded(k), pre_rounded(v), p, prerounded);
      p.precision = DType::BF16;
      fast().attention(q, k, v, p, bf16);
      EXPECT_GT(max_abs_difference(bf16, f32), 1e-3) << s.name;
      EXPECT_GT(max_abs_difference(bf16, prerounded), 1e-4) << s.name;
      EXPECT_LT(max_abs_difference(bf16, f32), 0.1) << s.name;
    }
  }
}

TEST(ReducedAttention, PrecisionMustBeAFloatType) {
  Tensor q = random_tensor({1, 4, 8}, 53);
  AttentionParams p;
  p.precision = DType::I64;
  Tensor out = Tensor::empty({1, 4, 8});
  for (Backend* backend : {&fast(), &ref()}) {
    try {
      backend->attention(q, q, q, p, out);
      ADD_FAILURE() << backend->name() << " accepted precision I64";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("precision must be F32, BF16 or F16"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace kakusan
