// The CUDA backend's attention kernels. On the CPU: which kernel a shape takes (attention_kernel_for) and how
// (batch, head) pairs split over launches. On a GPU: the tensor-core kernel (attention_mma.cu) against the
// reference backend run in the same precision, for every head width SD uses, causal and not, odd lengths, q/k/v
// as strided slices of a fused projection, and more (batch, head) pairs than one launch takes; the shapes left to
// the CUDA-core kernel (attention.cu) in reduced precision to the same bounds.
//
// Tolerance. Both sides round q, k, v and the probabilities the same way; they differ in how they sum: the
// reference scores and sums in double, the GPU in f32 (tensor-core accumulation), with expf. That moves a
// score by ~1e-6 at most here (|s| < ~10, at most 512 products), so each unrounded probability by ~1e-6 relative;
// the unrounded sum and P·V's accumulation add f32 error of the same order. The one larger effect: a
// probability that lands within that ~1e-6 of a rounding midpoint rounds to the neighbouring f16/bf16 value on
// one side (an ulp: <= 2^-10 · p for f16, 2^-7 · p for bf16), moving the output by ulp · v / sum. The flipped
// probabilities of a row sum to at most the row's sum, so however many flip, an output moves by at most
// 2^-10 · max|v| (f16) or 2^-7 · max|v| (bf16): the bound on every element. Flips are rare (a probability is
// within 1e-6 of a midpoint with odds ~1e-6 / half an ulp), so on average they add about twice the unrounded
// error: the mean absolute difference stays ~1e-6 · max|v|, and is checked against 1e-5 · max|v| — a kernel
// that rounded an operand wrongly (truncation, a missed rounding) would be off by ~2^-11 relative everywhere.
// (A lane-by-lane host emulation of attention_mma.cu's fragments gave, on these shapes, max differences up to
// 1.4e-4 and means of 1e-8 to 2e-6 against the same reference: an emulation, not a GPU measurement.)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "backend/cuda/kernels.h"
#include "cuda_test.h"
#include "gpu_timing.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using cuda::AttentionKernel;
using cuda::AttentionShape;
using testing::CudaTest;
using testing::random_tensor;

// ----- kernel choice (host code, runs without a GPU) -----

// A fake, suitably aligned device address: attention_kernel_for only looks at the bits.
const float* at(uintptr_t address) { return reinterpret_cast<const float*>(address); }

// The shape a fused projection [B, T, 3·H·D] gives, q/k/v at offsets 0, H·D, 2·H·D of each row.
AttentionShape fused(int64_t batch, int64_t tokens, int64_t heads, int64_t dim, bool causal, cuda::Dt precision) {
  const int64_t row = 3 * heads * dim;
  return {batch, tokens, tokens, heads, dim, dim, tokens * row, row, tokens * row, row, tokens * row, row,
          1.0f, causal, precision};
}

AttentionKernel kernel_for(const AttentionShape& s, int64_t q_offset = 0) {
  const uintptr_t base = 0x10000;  // 256-byte aligned, as the device allocator's blocks
  const int64_t width = s.heads * s.head_dim;
  return cuda::attention_kernel_for(s, at(base + 4 * q_offset), at(base + 4 * width), at(base + 8 * width),
                                    at(base + 0x100000));
}

TEST(CudaAttentionDispatch, SdShapesInReducedPrecisionTakeTheTensorCores) {
  for (cuda::Dt precision : {cuda::kF16, cuda::kBF16}) {
    // SD1.x UNet (40/80/160), SD2.x (64), CLIP (64, causal, 77 tokens).
    for (int64_t dim : {40, 64, 80, 160}) {
      EXPECT_EQ(kernel_for(fused(2, 4096, 8, dim, false, precision)), AttentionKernel::TensorCores) << dim;
      EXPECT_EQ(kernel_for(fused(2, 77, 8, dim, false, precision)), AttentionKernel::TensorCores) << dim;
    }
    EXPECT_EQ(kernel_for(fused(2, 77, 12, 64, true, precision)), AttentionKernel::TensorCores);
    // Every multiple of 8 up to 160 is padded to 16.
    for (int64_t dim = 8; dim <= 160; dim += 8)
      EXPECT_EQ(kernel_for(fused(1, 5, 1, dim, false, precision)), AttentionKernel::TensorCores) << dim;
  }
}

TEST(CudaAttentionDispatch, EverythingElseTakesTheCudaCores) {
  // f32 precision: no TF32, the CPU goldens must match.
  EXPECT_EQ(kernel_for(fused(2, 4096, 8, 40, false, cuda::kF32)), AttentionKernel::CudaCores);
  // The VAE's one 512-wide head: its accumulator would not fit in registers.
  EXPECT_EQ(kernel_for(fused(1, 4096, 1, 512, false, cuda::kF16)), AttentionKernel::CudaCores);
  EXPECT_EQ(kernel_for(fused(1, 5, 1, 168, false, cuda::kF16)), AttentionKernel::CudaCores);
  // Not a multiple of 8.
  EXPECT_EQ(kernel_for(fused(1, 5, 1, 36, false, cuda::kF16)), AttentionKernel::CudaCores);
  AttentionShape uneven_value = fused(1, 5, 1, 64, false, cuda::kF16);
  uneven_value.value_dim = 60;
  EXPECT_EQ(kernel_for(uneven_value), AttentionKernel::CudaCores);
  AttentionShape wider_value = fused(1, 5, 1, 64, false, cuda::kF16);
  wider_value.value_dim = 80;  // key and value widths may differ, both multiples of 8
  EXPECT_EQ(kernel_for(wider_value), AttentionKernel::TensorCores);
  // Rows that cannot be read as float4: a misaligned start or a token stride not a multiple of 4.
  EXPECT_EQ(kernel_for(fused(1, 5, 1, 64, false, cuda::kF16), 2), AttentionKernel::CudaCores);
  AttentionShape odd_stride = fused(1, 5, 1, 64, false, cuda::kF16);
  odd_stride.k_token_stride = 194;
  EXPECT_EQ(kernel_for(odd_stride), AttentionKernel::CudaCores);
  odd_stride = fused(2, 5, 1, 64, false, cuda::kBF16);
  odd_stride.v_batch_stride = 962;
  EXPECT_EQ(kernel_for(odd_stride), AttentionKernel::CudaCores);
}

TEST(CudaAttentionDispatch, OnlyCudaCoresInTheEnvironmentKeepsTheTensorCoresOff) {
  EXPECT_TRUE(cuda::tensor_core_attention_allowed(nullptr));
  EXPECT_TRUE(cuda::tensor_core_attention_allowed(""));
  EXPECT_TRUE(cuda::tensor_core_attention_allowed("auto"));
  EXPECT_FALSE(cuda::tensor_core_attention_allowed("cuda-cores"));
}

TEST(CudaAttentionDispatch, BatchesPerLaunchKeepPairsWithinGridY) {
  AttentionShape s = fused(100000, 1, 8, 64, false, cuda::kF16);
  EXPECT_EQ(cuda::attention_batches_per_launch(s), 8191);  // 8191 · 8 = 65528 pairs
  s.heads = 16;
  EXPECT_EQ(cuda::attention_batches_per_launch(s), 4095);
  s.heads = cuda::kMaxAttentionGridY;
  EXPECT_EQ(cuda::attention_batches_per_launch(s), 1);
  s.heads = cuda::kMaxAttentionGridY + 1;
  EXPECT_EQ(cuda::attention_batches_per_launch(s), 0);  // launch_attention refuses it
}

// ----- the tensor-core kernel on a GPU -----

struct Case {
  int64_t batch, q_len, kv_len, heads, dim;
  bool causal;
};

std::string describe(const Case& c, DType precision) {
  std::ostringstream out;  // (operator+ chains of std::string trip a GCC 12 -Wrestrict false positive)
  out << "B" << c.batch << " Tq" << c.q_len << " Tk" << c.kv_len << " H" << c.heads << " D" << c.dim
      << (c.causal ? " causal " : " ") << dtype_name(precision);
  return out.str();
}

// A device tensor's address (TensorView::f32() is for host memory only).
float* device_f32(const TensorView& t) { return static_cast<float*>(t.data); }

class CudaAttention : public CudaTest {
 protected:
  // One attention call on the GPU and on the reference in the same precision. Self-attention reads q, k and v
  // from one fused [B, T, 3·H·D] projection, cross-attention q alone and k, v from a fused [B, Tk, 2·H·D].
  void check(const Case& c, DType precision, AttentionKernel kernel = AttentionKernel::TensorCores) {
    SCOPED_TRACE(describe(c, precision));
    const int64_t width = c.heads * c.dim;
    const bool self = c.q_len == c.kv_len;
    const Tensor q_host = random_tensor({c.batch, c.q_len, self ? 3 * width : width}, 21);
    const Tensor kv_host = self ? Tensor() : random_tensor({c.batch, c.kv_len, 2 * width}, 22);
    const Tensor& kv_src = self ? q_host : kv_host;
    const int64_t k_at = self ? width : 0;
    AttentionParams p;
    p.heads = int(c.heads);
    p.scale = 1.0f / std::sqrt(float(c.dim));
    p.causal = c.causal;
    p.precision = precision;

    Tensor want = Tensor::empty({c.batch, c.q_len, width});
    reference_backend().attention(q_host.view().narrow(2, 0, width), kv_src.view().narrow(2, k_at, width),
                                  kv_src.view().narrow(2, k_at + width, width), p, want);

    const Tensor gq = up(q_host), gkv = self ? Tensor() : up(kv_host);
    const Tensor& gkv_src = self ? gq : gkv;
    const TensorView q = gq.view().narrow(2, 0, width), k = gkv_src.view().narrow(2, k_at, width);
    const TensorView v = gkv_src.view().narrow(2, k_at + width, width);
    Tensor got = poisoned({c.batch, c.q_len, width});
    // The views as CudaBackend::attention passes them: the case must exercise the kernel it is meant for.
    const AttentionShape s{c.batch, c.q_len, c.kv_len, c.heads, c.dim, c.dim, q.strides[0], q.strides[1],
                           k.strides[0], k.strides[1], v.strides[0], v.strides[1], p.scale, c.causal,
                           cuda::Dt(precision)};
    ASSERT_EQ(cuda::attention_kernel_for(s, device_f32(q), device_f32(k), device_f32(v), device_f32(got)),
              kernel);
    gpu().attention(q, k, v, p, got);
    expect_within_rounding(down(got), want, v_max(kv_src, k_at + width, width), precision);
  }

  static float v_max(const Tensor& src, int64_t at, int64_t width) {
    float m = 0.0f;
    const float* x = src.f32();
    const int64_t row = src.shape()[2];
    for (int64_t i = 0; i < src.numel() / row; ++i)
      for (int64_t j = at; j < at + width; ++j) m = std::max(m, std::abs(x[i * row + j]));
    return m;
  }

  // The bound and the mean of the header comment.
  static void expect_within_rounding(const Tensor& got, const Tensor& want, float v_max, DType precision) {
    const double ulp = precision == DType::F16 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
    KK_EXPECT_CLOSE(got, want, (testing::Tolerance{ulp * v_max, 1e-5}));
    double sum = 0;
    for (int64_t i = 0; i < got.numel(); ++i) sum += std::abs(double(got.f32()[i]) - want.f32()[i]);
    EXPECT_LE(sum / double(got.numel()), 1e-5 * v_max) << "mean absolute difference";
  }
};

TEST_F(CudaAttention, EverySdHeadWidthCausalAndNotInF16AndBf16) {
  for (DType precision : {DType::F16, DType::BF16}) {
    check({2, 300, 300, 8, 40, false}, precision);  // SD1.x self-attention (a partial last tile)
    check({2, 300, 77, 8, 40, false}, precision);   // cross-attention on the text
    check({2, 200, 77, 5, 64, false}, precision);   // SD2.x
    check({2, 70, 77, 8, 80, false}, precision);
    check({1, 65, 33, 4, 160, false}, precision);
    check({1, 77, 77, 12, 64, true}, precision);     // CLIP
    check({1, 130, 130, 2, 160, true}, precision);   // causal over several query and key tiles
    check({1, 100, 50, 2, 80, true}, precision);     // causal, fewer keys than queries
    check({1, 50, 100, 2, 40, true}, precision);     // and more
  }
}

TEST_F(CudaAttention, PaddedHeadWidthsAndOddLengths) {
  for (DType precision : {DType::F16, DType::BF16}) {
    for (int64_t dim : {8, 24, 136}) check({1, 33, 19, 2, dim, false}, precision);  // padded to 16, 32, 144
    check({1, 1, 1, 2, 40, false}, precision);
    check({2, 1, 77, 3, 64, false}, precision);
    check({1, 77, 1, 3, 80, true}, precision);
    check({1, 4095, 77, 1, 40, false}, precision);
    check({1, 77, 4095, 1, 64, false}, precision);
  }
  check({1, 4095, 4095, 1, 40, false}, DType::F16);  // SD1.x's 64² latent, one head (the reference is slow)
}

TEST_F(CudaAttention, ShapesLeftToTheCudaCoreKernelKeepTheSameContract) {
  for (DType precision : {DType::F16, DType::BF16}) {
    check({1, 100, 100, 1, 512, false}, precision, AttentionKernel::CudaCores);  // the VAE's mid-block
    check({1, 70, 77, 2, 36, true}, precision, AttentionKernel::CudaCores);      // not a multiple of 8
  }
}

TEST_F(CudaAttention, MorePairsThanOneLaunchTakes) {
  // 4097 · 16 = 65552 (batch, head) pairs: two launches (4095 batches, then 2).
  check({4097, 3, 5, 16, 8, false}, DType::F16);
  check({4097, 2, 2, 16, 16, true}, DType::BF16);
}

TEST_F(CudaAttention, NoKeysGivesZeros) {
  const Tensor q = up(random_tensor({1, 5, 80}, 23));
  const Tensor kv = up(Tensor::zeros({1, 0, 160}));
  AttentionParams p;
  p.heads = 2;
  p.precision = DType::F16;
  Tensor got = poisoned({1, 5, 80});
  gpu().attention(q, kv.view().narrow(2, 0, 80), kv.view().narrow(2, 80, 80), p, got);
  KK_EXPECT_CLOSE(down(got), Tensor::zeros({1, 5, 80}), (testing::Tolerance{0, 0}));
}

// The SD1.5 UNet's attention calls at 512x512 with CFG (batch 2, 8 heads): the tensor-core kernel against the
// CUDA-core one in f16 (the same contract, so the same bound as against the reference, which would take
// minutes at these sizes), each timed with events; the milliseconds go to the test's properties
// (--gtest_output=json) and one line each on stdout, for the device check's log.
TEST_F(CudaAttention, Sd15ShapesMatchTheCudaCoreKernelAndAreTimed) {
  const Case cases[] = {{2, 4096, 4096, 8, 40, false}, {2, 4096, 77, 8, 40, false}, {2, 1024, 1024, 8, 80, false},
                        {2, 1024, 77, 8, 80, false},   {2, 256, 256, 8, 160, false}, {2, 256, 77, 8, 160, false},
                        {2, 64, 64, 8, 160, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c, DType::F16));
    const int64_t width = c.heads * c.dim;
    const Tensor q_host = random_tensor({c.batch, c.q_len, width}, 24);
    const Tensor k_host = random_tensor({c.batch, c.kv_len, width}, 25), v_host = random_tensor(k_host.shape(), 26);
    const Tensor q = up(q_host), k = up(k_host), v = up(v_host);
    Tensor mma = poisoned({c.batch, c.q_len, width}), cores = poisoned({c.batch, c.q_len, width});
    const AttentionShape s{c.batch, c.q_len, c.kv_len, c.heads, c.dim, c.dim, c.q_len * width, width,
                           c.kv_len * width, width, c.kv_len * width, width, 1.0f / std::sqrt(float(c.dim)),
                           false, cuda::kF16};
    const float *qp = device_f32(q), *kp = device_f32(k), *vp = device_f32(v);
    ASSERT_EQ(cuda::attention_kernel_for(s, qp, kp, vp, device_f32(mma)), AttentionKernel::TensorCores);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the uploads (on the backend's stream) are done
    const float mma_ms = testing::median_gpu_ms(
        [&] { EXPECT_EQ(cuda::launch_attention(qp, kp, vp, device_f32(mma), s, nullptr), cudaSuccess); });
    const float cores_ms = testing::median_gpu_ms(
        [&] { EXPECT_EQ(cuda::launch_attention_cuda_cores(qp, kp, vp, device_f32(cores), s, nullptr), cudaSuccess); });
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    expect_within_rounding(down(mma), down(cores), v_max(v_host, 0, width), DType::F16);
    std::ostringstream name;
    name << "tq" << c.q_len << "_tk" << c.kv_len << "_d" << c.dim;
    RecordProperty("mma_ms_" + name.str(), std::to_string(mma_ms));
    RecordProperty("cuda_cores_ms_" + name.str(), std::to_string(cores_ms));
    std::printf("{\"measurement\": \"attention_f16\", \"shape\": \"%s\", \"mma_ms\": %.4f, \"cuda_cores_ms\": %.4f}\n",
                describe(c, DType::F16).c_str(), mma_ms, cores_ms);
  }
}

}  // namespace
}  // namespace kakusan
