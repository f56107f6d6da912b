// generator_device "cuda" (torch.Generator("cuda") reproduced on the CPU) through the generator set, the
// input checks, the C API and the pipeline on the tiny model: the initial noise is the Philox draw, the
// image changes with the kind and reproduces, generator lists keep their per-image meaning, and an fp16
// pipeline draws half-rounded noise.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "c_api_params.h"
#include "kakusan/kakusan.h"
#include "kakusan/pipeline.h"
#include "pipeline/generators.h"
#include "support/golden.h"

namespace kakusan {
namespace {

const GeneratorSpec kCuda{GeneratorDevice::Cuda, {}, false};

bool same_values(const TensorView& a, const TensorView& b) {
  return a.shape == b.shape && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TensorView view_of(const std::vector<float>& data, const std::vector<int64_t>& shape) {
  return TensorView(const_cast<float*>(data.data()), Shape(shape.begin(), shape.end()));
}

TEST(CudaGeneratorSet, SharedGeneratorDrawsTheWholeBatch) {
  GeneratorSet set({42}, {}, 3, 0, kCuda);
  EXPECT_FALSE(set.per_image());
  EXPECT_EQ(set.shared().device(), GeneratorDevice::Cuda);
  EXPECT_TRUE(same_values(set.randn({3, 4, 9, 9}), Generator::cuda(42).randn({3, 4, 9, 9})));
}

TEST(CudaGeneratorSet, ListDrawsOneSamplePerGeneratorAndSchedulerNoiseFollows) {
  GeneratorSet set({1, 5}, {}, 2, 0, kCuda);
  EXPECT_TRUE(set.per_image());
  const Tensor got = set.randn({2, 4, 8, 8});
  Generator one = Generator::cuda(1), five = Generator::cuda(5);
  EXPECT_TRUE(same_values(got.view().slice0(0, 1), one.randn({1, 4, 8, 8})));
  EXPECT_TRUE(same_values(got.view().slice0(1, 2), five.randn({1, 4, 8, 8})));
  // A stochastic step's noise: each image's next draw from its own generator (offset advanced once).
  const Tensor noise = set.noise_source().randn({2, 4, 8, 8});
  EXPECT_TRUE(same_values(noise.view().slice0(0, 1), one.randn({1, 4, 8, 8})));
  EXPECT_TRUE(same_values(noise.view().slice0(1, 2), five.randn({1, 4, 8, 8})));
}

TEST(CudaGeneratorSet, AliasedListAdvancesTheOneGenerator) {
  GeneratorSet aliased({3}, {0, 0}, 2, 0, kCuda);
  const Tensor got = aliased.randn({2, 4, 8, 8});
  Generator g = Generator::cuda(3);
  const Tensor first = g.randn({1, 4, 8, 8});
  EXPECT_TRUE(same_values(got.view().slice0(0, 1), first));
  EXPECT_TRUE(same_values(got.view().slice0(1, 2), g.randn({1, 4, 8, 8})));
  EXPECT_FALSE(same_values(got.view().slice0(1, 2), first));
}

TEST(CudaGeneratorSet, LaunchShapeReachesTheGenerators) {
  // A 1x4x64x64 draw on a GPU with 8 resident blocks spans two waves, unlike on the default T4.
  const GeneratorSpec small{GeneratorDevice::Cuda, {2, 1024}, false};
  GeneratorSet set({0}, {}, 1, 0, small);
  Generator g = Generator::cuda(0, {2, 1024});
  const Tensor got = set.randn({1, 4, 64, 64});
  EXPECT_TRUE(same_values(got, g.randn({1, 4, 64, 64})));
  EXPECT_FALSE(same_values(got, Generator::cuda(0).randn({1, 4, 64, 64})));
}

std::string error_of(const GenerateParams& p) {
  try {
    check_inputs(p);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(CudaGeneratorParams, DefaultsAndChecks) {
  GenerateParams p;
  p.prompt = {"a"};
  EXPECT_EQ(p.generator_device, "cpu");
  EXPECT_EQ(p.cuda_sm_count, CudaLaunchShape{}.sm_count);
  EXPECT_EQ(p.cuda_max_threads_per_sm, CudaLaunchShape{}.max_threads_per_sm);
  EXPECT_EQ(error_of(p), "");
  p.generator_device = "cuda";
  EXPECT_EQ(error_of(p), "");
  p.generator_device = "gpu";
  EXPECT_NE(error_of(p).find("`generator_device` must be \"cpu\" or \"cuda\" but is \"gpu\""), std::string::npos)
      << error_of(p);
  p.generator_device = "cuda";
  p.cuda_sm_count = 0;
  EXPECT_NE(error_of(p).find("cuda_sm_count"), std::string::npos);
  p.cuda_sm_count = 82;
  p.cuda_max_threads_per_sm = 100;
  EXPECT_NE(error_of(p).find("cuda_max_threads_per_sm"), std::string::npos);
  p.cuda_max_threads_per_sm = 1536;
  EXPECT_EQ(error_of(p), "");
}

TEST(CudaGeneratorParams, CApiDefaultsAndField) {
  const kakusan_params p = kakusan_default_params();
  EXPECT_EQ(p.generator_device, nullptr);  // the CPU generator
  EXPECT_EQ(p.cuda_sm_count, 40);
  EXPECT_EQ(p.cuda_max_threads_per_sm, 1024);
}

TEST(CudaGeneratorParams, CApiPassesTheKind) {
  KK_REQUIRE_GOLDEN();
  kakusan_context* ctx = kakusan_load((*testing::golden_dir() / "tiny-sd").string().c_str(), nullptr);
  ASSERT_NE(ctx, nullptr) << kakusan_last_error();
  const char* prompts[] = {"a"};
  const uint64_t seeds[] = {0};
  kakusan_params p = testing::one_image_params(prompts, seeds, 1);
  p.generator_device = "gpu";
  kakusan_images* out = nullptr;
  EXPECT_NE(kakusan_generate(ctx, &p, &out), KAKUSAN_OK);
  EXPECT_NE(std::strstr(kakusan_last_error(), "generator_device"), nullptr) << kakusan_last_error();
  p.generator_device = "cuda";
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  EXPECT_EQ(kakusan_images_count(out), 1);
  kakusan_images_free(out);
  kakusan_free(ctx);
}

StableDiffusionPipeline& tiny_pipeline() {
  static StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string());
  return pipe;
}

GenerateParams small_params() {
  GenerateParams p;
  p.prompt = {"portrait photo of a old warrior chief"};
  p.num_inference_steps = 4;
  p.seeds = {0};
  p.generator_device = "cuda";
  return p;
}

TEST(CudaGeneratorPipeline, InitialNoiseIsThePhiloxDrawAndTheImageReproduces) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  pipe.set_scheduler("EulerAncestralDiscreteScheduler");
  const GenerateParams p = small_params();
  const GenerateResult cuda = pipe.generate(p);
  const Tensor want = Generator::cuda(0).randn({1, 4, 8, 8});
  EXPECT_TRUE(same_values(view_of(cuda.init_noise, cuda.latents_shape), want));
  const GenerateResult again = pipe.generate(p);
  EXPECT_EQ(again.image_tensor, cuda.image_tensor);  // deterministic, ancestral noise included

  GenerateParams cpu_params = p;
  cpu_params.generator_device = "cpu";
  const GenerateResult cpu = pipe.generate(cpu_params);
  EXPECT_TRUE(same_values(view_of(cpu.init_noise, cpu.latents_shape), Generator(0).randn({1, 4, 8, 8})));
  EXPECT_FALSE(testing::tensors_close(view_of(cpu.image_tensor, cpu.image_shape),
                                      view_of(cuda.image_tensor, cuda.image_shape), {1e-2, 1e-2}));
  pipe.set_scheduler("PNDMScheduler");
}

// As with the CPU generator: with a list, image i's initial and ancestral noise come from generator i, so
// each image of the batch is its single-image run (up to batch-size rounding).
TEST(CudaGeneratorPipeline, GeneratorListFeedsEachImage) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  pipe.set_scheduler("EulerAncestralDiscreteScheduler");
  GenerateParams batch = small_params();
  batch.prompt = {batch.prompt[0], batch.prompt[0]};
  batch.seeds = {3, 11};
  batch.output_type = OutputType::Latent;
  const GenerateResult both = pipe.generate(batch);
  for (int i = 0; i < 2; ++i) {
    GenerateParams single = small_params();
    single.seeds = {batch.seeds[size_t(i)]};
    single.output_type = OutputType::Latent;
    const GenerateResult one = pipe.generate(single);
    KK_EXPECT_CLOSE(view_of(both.latents, both.latents_shape).slice0(i, i + 1),
                    view_of(one.latents, one.latents_shape), {1e-3, 1e-3}, "image " + std::to_string(i));
  }
  batch.seeds = {3};  // one shared generator: image 1 leaves seed 11's stream
  const GenerateResult shared = pipe.generate(batch);
  EXPECT_FALSE(testing::tensors_close(view_of(shared.latents, shared.latents_shape).slice0(1, 2),
                                      view_of(both.latents, both.latents_shape).slice0(1, 2), {1e-3, 1e-3}));
  pipe.set_scheduler("PNDMScheduler");
}

TEST(CudaGeneratorPipeline, Fp16PipelineDrawsHalfRoundedNoise) {
  KK_REQUIRE_GOLDEN();
  LoadOptions options;
  options.dtype = WeightDType::F16;
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), options);
  GenerateParams p = small_params();
  p.num_inference_steps = 1;
  p.output_type = OutputType::Latent;
  const GenerateResult half = pipe.generate(p);
  const Tensor full = Generator::cuda(0).randn({1, 4, 8, 8});
  ASSERT_EQ(half.init_noise.size(), size_t(full.numel()));
  for (int64_t i = 0; i < full.numel(); ++i)
    ASSERT_EQ(half.init_noise[size_t(i)], f16_to_f32(f32_to_f16(full.f32()[i]))) << i;
  // The CPU generator's draws are left in float32, as before.
  p.generator_device = "cpu";
  const GenerateResult cpu = pipe.generate(p);
  EXPECT_TRUE(same_values(view_of(cpu.init_noise, cpu.latents_shape), Generator(0).randn({1, 4, 8, 8})));
}

}  // namespace
}  // namespace kakusan
