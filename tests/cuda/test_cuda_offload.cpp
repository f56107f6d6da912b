// Offload on the GPU (LoadOptions::offload): golden cases give the image they give without offload, and the
// GPU holds only the running phase's weights. And CudaBackend's scratch as the memory planner sees it (the
// rules of scratch_plan.cpp), which needs no GPU: those tests run everywhere the backend is built.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "cuda_test.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using cuda::CudaBackend;
using testing::PipelineCase;

// A view with real shape, dtype and strides over memory the rules never read.
TensorView fake(Shape shape, DType dtype) {
  static float somewhere;
  return TensorView(&somewhere, dtype, Device::host(), std::move(shape));
}

constexpr int64_t kMiB = 1 << 20;

TEST(CudaScratchPlan, LinearConvertsTheActivationToTheWeightsDtype) {
  ScratchTally f16;
  CudaBackend::linear_scratch(fake({2, 77, 768}, DType::F32), fake({3072, 768}, DType::F16),
                              fake({3072}, DType::F32), f16);
  EXPECT_EQ(f16.total(), 2 * 77 * 768 * 2 + 32 * kMiB);  // the f16 activation + cuBLASLt's workspace
  ScratchTally f32;
  CudaBackend::linear_scratch(fake({2, 77, 768}, DType::F32), fake({3072, 768}, DType::F32), {}, f32);
  EXPECT_EQ(f32.total(), 32 * kMiB);  // dense f32 operands are used in place
}

TEST(CudaScratchPlan, Conv2dCountsItsInputOutputAndTheWorkspaceCap) {
  ScratchTally t;
  const TensorView x = fake({2, 4, 64, 64}, DType::F32), w = fake({320, 4, 3, 3}, DType::F16);
  CudaBackend::conv2d_scratch(x, w, fake({320}, DType::F32), Conv2dParams::symmetric(1),
                              fake({2, 320, 64, 64}, DType::F32), t);
  // The f16 input, cuDNN's workspace at its cap, the f16 output before the f32 bias widens it.
  EXPECT_EQ(t.total(), 2 * 4 * 64 * 64 * 2 + 256 * kMiB + 2 * 320 * 64 * 64 * 2);
  // A linear's smaller workspace shares the slot: the tally keeps the larger.
  CudaBackend::linear_scratch(fake({8, 4}, DType::F32), fake({4, 4}, DType::F32), {}, t);
  EXPECT_EQ(t.total(), 2 * 4 * 64 * 64 * 2 + 256 * kMiB + 2 * 320 * 64 * 64 * 2);

  // Asymmetric padding (the VAE's downsampling) copies the input into a padded buffer.
  ScratchTally padded;
  CudaBackend::conv2d_scratch(fake({1, 8, 32, 32}, DType::F32), fake({8, 8, 3, 3}, DType::F32), {},
                              {2, 0, 1, 0, 1}, fake({1, 8, 16, 16}, DType::F32), padded);
  EXPECT_EQ(padded.total(), 1 * 8 * 33 * 33 * 4 + 256 * kMiB);
}

TEST(CudaScratchPlan, AttentionCopiesOnlyWhatTheKernelCannotRead) {
  ScratchTally t;
  // A fused qkv projection's slices: f32 rows with a contiguous last dimension, read in place.
  const TensorView qkv = fake({2, 64, 3 * 320}, DType::F32);
  CudaBackend::attention_scratch(qkv.narrow(2, 0, 320), qkv.narrow(2, 320, 320), qkv.narrow(2, 640, 320), t);
  EXPECT_EQ(t.total(), 0);
  CudaBackend::attention_scratch(fake({2, 64, 320}, DType::F16), qkv.narrow(2, 320, 320), fake({2, 77, 320}, DType::F16),
                                 t);
  EXPECT_EQ(t.total(), (2 * 64 * 320 + 2 * 77 * 320) * 4);
}

StableDiffusionPipeline load_on_gpu(const PipelineCase& c, Offload offload) {
  LoadOptions load = c.load;
  load.device = "cuda";
  load.dtype = WeightDType::F16;
  load.offload = offload;
  return StableDiffusionPipeline::load(c.model.string(), load);
}

// Two cases keep the device check short: the first (one image) and the tutorial's batch of four.
std::vector<PipelineCase> offload_cases() {
  std::vector<PipelineCase> cases;
  for (const PipelineCase& c : testing::load_pipeline_cases())
    if (cases.empty() || c.name.rfind("d_", 0) == 0) cases.push_back(c);
  return cases;
}

class CudaOffloadGolden : public ::testing::TestWithParam<PipelineCase> {};

// The same kernels on the same shapes, only the weights' addresses differ: the image is the same, bit for bit.
TEST_P(CudaOffloadGolden, ModelAndSequentialGiveTheImageOfNoOffload) {
  KK_REQUIRE_CUDA();
  KK_REQUIRE_GOLDEN();
  const PipelineCase& c = GetParam();
  const GenerateResult want = load_on_gpu(c, Offload::None).generate(c.params);
  for (Offload offload : {Offload::Model, Offload::Sequential}) {
    SCOPED_TRACE(offload_name(offload));
    const GenerateResult got = load_on_gpu(c, offload).generate(c.params);
    ASSERT_EQ(got.image_tensor.size(), want.image_tensor.size());
    double worst = 0;
    for (size_t i = 0; i < want.image_tensor.size(); ++i)
      worst = std::max(worst, std::abs(double(got.image_tensor[i]) - want.image_tensor[i]));
    std::printf("{\"case\": \"%s\", \"offload\": \"%s\", \"image_max_abs_dev_from_none\": %.9f}\n", c.id.c_str(),
                offload_name(offload), worst);
    EXPECT_EQ(got.latents, want.latents);
    EXPECT_EQ(worst, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Kit, CudaOffloadGolden, ::testing::ValuesIn(offload_cases()),
                         [](const ::testing::TestParamInfo<PipelineCase>& info) { return info.param.name; });

// The GPU's bytes when the UNet phase starts: without offload every component is there, with model offload
// the UNet's alone — the difference is exactly the text encoder's and the VAE's weights.
TEST(CudaOffload, ModelHoldsOnlyTheUNetWhileDenoising) {
  KK_REQUIRE_CUDA();
  KK_REQUIRE_GOLDEN();
  auto& gpu = static_cast<CudaBackend&>(backend_for_device("cuda"));
  const PipelineCase c = offload_cases().front();
  auto denoising_bytes = [&](Offload offload) {
    StableDiffusionPipeline pipe = load_on_gpu(c, offload);
    int64_t live = -1;
    GenerateParams p = c.params;
    p.progress = [&](const Progress& progress) {
      if (progress.phase == Phase::Denoising && progress.done == 0) live = int64_t(gpu.live_bytes());
    };
    pipe.generate(p);
    return live;
  };
  const int64_t none = denoising_bytes(Offload::None), model = denoising_bytes(Offload::Model);
  std::printf("{\"case\": \"%s\", \"gpu_live_mb_denoising_none\": %.3f, \"gpu_live_mb_denoising_model\": %.3f}\n",
              c.id.c_str(), double(none) / 1e6, double(model) / 1e6);
  EXPECT_GT(none, model);
}

}  // namespace
}  // namespace kakusan
