// The golden kit's pipeline cases on the GPU. fp32 (weights as stored, f32 products): latents and images
// within the kit's tolerances, as on the CPU. fp16 (LoadOptions::dtype F16, the tutorial's torch_dtype): the
// max and mean deviation of the image from the fp32 golden are printed and recorded for every case; the test
// asserts that the image is finite and that its mean deviation stays under 0.02 of the [0, 1] range (fp16
// products carry 2^-11 relative error per operand; a wrong layout or a dropped term moves pixels by tenths).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#include "cuda_test.h"
#include "io/safetensors.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::PipelineCase;

StableDiffusionPipeline& pipeline_for(const PipelineCase& c, WeightDType dtype) {
  static std::map<std::string, std::unique_ptr<StableDiffusionPipeline>> cache;
  const std::string key = c.model.string() + "|" + c.load.vae.value_or("") + "|" + std::to_string(int(dtype));
  auto it = cache.find(key);
  if (it == cache.end()) {
    LoadOptions load = c.load;
    load.device = "cuda";
    load.dtype = dtype;
    load.scheduler.clear();
    it = cache.emplace(key, std::make_unique<StableDiffusionPipeline>(StableDiffusionPipeline::load(c.model, load)))
             .first;
  }
  it->second->set_scheduler(c.load.scheduler, c.load.scheduler_options);
  return *it->second;
}

class CudaPipelineGolden : public ::testing::TestWithParam<PipelineCase> {};

TEST_P(CudaPipelineGolden, Fp32MatchesDiffusersWithinTheCpuTolerances) {
  KK_REQUIRE_CUDA();
  KK_REQUIRE_GOLDEN();
  const PipelineCase& c = GetParam();
  const GenerateResult result = pipeline_for(c, WeightDType::Auto).generate(c.params);
  const SafetensorsFile want = SafetensorsFile::open(c.file);
  const Shape latents_shape(result.latents_shape.begin(), result.latents_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.latents.data()), latents_shape), want.view("latents"),
                  c.latents_tolerance, c.name + " latents");
  const Shape image_shape(result.image_shape.begin(), result.image_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.image_tensor.data()), image_shape), want.view("image"),
                  c.image_tolerance, c.name + " image");
}

TEST_P(CudaPipelineGolden, Fp16DeviationFromTheFp32Golden) {
  KK_REQUIRE_CUDA();
  KK_REQUIRE_GOLDEN();
  const PipelineCase& c = GetParam();
  const GenerateResult result = pipeline_for(c, WeightDType::F16).generate(c.params);
  const SafetensorsFile file = SafetensorsFile::open(c.file);
  const Tensor want = Tensor::copy_of(file.view("image")).to_f32();
  ASSERT_EQ(int64_t(result.image_tensor.size()), want.numel());
  double worst = 0, sum = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::abs(double(result.image_tensor[size_t(i)]) - want.f32()[i]);
    ASSERT_TRUE(std::isfinite(d)) << c.name << ": element " << i << " is not finite";
    worst = std::max(worst, d);
    sum += d;
  }
  const double mean = sum / double(want.numel());
  std::printf("{\"case\": \"%s\", \"dtype\": \"fp16\", \"image_max_abs_dev\": %.6f, \"image_mean_abs_dev\": %.6f}\n",
              c.id.c_str(), worst, mean);
  RecordProperty("image_max_abs_dev", std::to_string(worst));
  RecordProperty("image_mean_abs_dev", std::to_string(mean));
  EXPECT_LT(mean, 0.02) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Kit, CudaPipelineGolden, ::testing::ValuesIn(testing::load_pipeline_cases()),
                         [](const ::testing::TestParamInfo<PipelineCase>& info) { return info.param.name; });

}  // namespace
}  // namespace kakusan
