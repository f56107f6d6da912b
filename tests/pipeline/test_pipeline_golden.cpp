// Every pipeline case of the golden kit through the C++ API, on the CPU and on a separate-heap device: latents and images within the kit's
// tolerances, the PNGs within one level, and the named intermediates diffusers stored (prompt_embeds,
// init_noise, timesteps, unet_input_step0, per-step UNet outputs and latents) checked in pipeline order so
// a mismatch points at the step where it starts.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "io/png.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"
#include "support/golden.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

using testing::PipelineCase;
using testing::Tolerance;

// The proof that no model or pipeline code touches activations or weights behind the backend's back: every
// case also runs on a backend whose memory is a separate, scrambled heap (the fast CPU kernels inside).
const char* const kSeparateHeap = "separate-heap";
testing::SeparateHeapBackend& separate_heap() { return testing::registered_separate_heap(kSeparateHeap); }
const bool separate_heap_registered = [] {
  separate_heap();
  return true;
}();

// Loading is cheap for the tiny models, but each (model, VAE, device) is loaded once for the whole suite.
StableDiffusionPipeline& pipeline_for(const PipelineCase& c, const std::string& device) {
  static std::map<std::string, std::unique_ptr<StableDiffusionPipeline>> cache;
  const std::string key = c.model.string() + "|" + c.load.vae.value_or("") + "|" + device;
  auto it = cache.find(key);
  if (it == cache.end()) {
    LoadOptions load = c.load;
    load.device = device;
    load.scheduler.clear();
    it = cache.emplace(key, std::make_unique<StableDiffusionPipeline>(StableDiffusionPipeline::load(c.model, load)))
             .first;
  }
  it->second->set_scheduler(c.load.scheduler, c.load.scheduler_options);
  return *it->second;
}

Tensor tensor_of(const NamedTensor& t) {
  const Shape shape(t.shape.begin(), t.shape.end());
  return Tensor::copy_of(TensorView(const_cast<float*>(t.data), shape));
}

Tensor stacked(const std::map<std::string, Tensor>& seen, const std::string& prefix, int64_t count) {
  const Tensor& first = seen.at(prefix + "0");
  Shape shape{count};
  for (int64_t d : first.shape()) shape.push_back(d);
  Tensor out = Tensor::empty(shape);
  for (int64_t i = 0; i < count; ++i) {
    const Tensor& step = seen.at(prefix + std::to_string(i));
    std::copy(step.f32(), step.f32() + step.numel(), out.f32() + i * step.numel());
  }
  return out;
}

void check_case(const PipelineCase& c, const std::string& device) {
  StableDiffusionPipeline& pipe = pipeline_for(c, device);
  EXPECT_EQ(pipe.scheduler_name(), c.load.scheduler);

  std::map<std::string, Tensor> seen;
  GenerateParams params = c.params;
  params.inspect = [&](const NamedTensor& t) { seen.emplace(std::string(t.name), tensor_of(t)); };
  const GenerateResult result = pipe.generate(params);
  const SafetensorsFile want = SafetensorsFile::open(c.file);

  // Intermediates, in pipeline order. Text encoder and RNG use their component tolerances; everything
  // after the first UNet call accumulates and uses the kit's latents tolerance.
  if (want.contains("prompt_embeds")) {
    KK_EXPECT_CLOSE(seen.at("prompt_embeds"), want.view("prompt_embeds"), c.text_encoder_tolerance,
                    c.name + " prompt_embeds");
  }
  if (want.contains("timesteps")) {
    KK_EXPECT_CLOSE(seen.at("timesteps"), want.view("timesteps"), Tolerance{0, 0}, c.name + " timesteps");
  }
  if (want.contains("init_noise")) {
    KK_EXPECT_CLOSE(seen.at("init_noise"), want.view("init_noise"), c.rng_tolerance, c.name + " init_noise");
  }
  if (want.contains("unet_input_step0")) {
    KK_EXPECT_CLOSE(seen.at("unet_input_step0"), want.view("unet_input_step0"), c.latents_tolerance,
                    c.name + " unet_input_step0");
  }
  if (want.contains("unet_output_step0")) {
    KK_EXPECT_CLOSE(seen.at("unet_output_step0"), want.view("unet_output_step0"), c.latents_tolerance,
                    c.name + " unet_output_step0");
  }
  if (want.contains("unet_output")) {
    const TensorView all = want.view("unet_output");
    KK_EXPECT_CLOSE(stacked(seen, "unet_output_step", all.dim(0)), all, c.latents_tolerance, c.name + " unet_output");
  }
  if (want.contains("latents_after_step")) {
    const TensorView all = want.view("latents_after_step");
    KK_EXPECT_CLOSE(stacked(seen, "latents_after_step", all.dim(0)), all, c.latents_tolerance,
                    c.name + " latents_after_step");
  }

  // The outputs.
  const Shape latents_shape(result.latents_shape.begin(), result.latents_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.latents.data()), latents_shape), want.view("latents"),
                  c.latents_tolerance, c.name + " latents");
  const Shape image_shape(result.image_shape.begin(), result.image_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.image_tensor.data()), image_shape), want.view("image"),
                  c.image_tolerance, c.name + " image");
  ASSERT_EQ(result.images.size(), c.pngs.size());
  for (size_t i = 0; i < c.pngs.size(); ++i) {
    // An image within 2e-3 of diffusers' rounds to the same 8-bit value or a neighbour.
    const Image png = read_png(c.pngs[i]).image;
    ASSERT_EQ(result.images[i].width, png.width);
    ASSERT_EQ(result.images[i].height, png.height);
    int worst = 0;
    for (size_t k = 0; k < png.rgb.size(); ++k)
      worst = std::max(worst, std::abs(int(result.images[i].rgb[k]) - int(png.rgb[k])));
    EXPECT_LE(worst, 1) << c.pngs[i];
  }
  if (c.params.seeds.size() == 1 && c.params.generator_index.empty()) {
    EXPECT_EQ(result.seeds, std::vector<uint64_t>(result.images.size(), c.params.seeds[0]));
  }
}

class PipelineGolden : public ::testing::TestWithParam<PipelineCase> {};

TEST_P(PipelineGolden, MatchesDiffusers) {
  KK_REQUIRE_GOLDEN();
  check_case(GetParam(), "cpu");
}

TEST_P(PipelineGolden, MatchesDiffusersOnASeparateHeapDevice) {
  KK_REQUIRE_GOLDEN();
  ASSERT_TRUE(separate_heap_registered);
  check_case(GetParam(), kSeparateHeap);
}

// CUDA graphs' path on the CPU (the cases above run it too, graphs being on by default): on the separate heap
// the UNet step is recorded on the loop's second step and replayed after, the same ops in the same order, so
// the result is the one of running every step, bit for bit.
GenerateResult generate_on_separate_heap(StableDiffusionPipeline& pipe, GenerateParams params, bool graphs,
                                         int& steps) {
  params.cuda_graphs = graphs;
  steps = 0;
  params.callback_on_step_end = [&steps](const StepInfo&) { return ++steps > 0; };
  return pipe.generate(params);
}

void expect_graphs_change_nothing(StableDiffusionPipeline& pipe, const GenerateParams& params) {
  int steps = 0;
  const GenerateResult eager = generate_on_separate_heap(pipe, params, false, steps);
  const int64_t replayed_before = separate_heap().replayed_ops();
  const GenerateResult replayed = generate_on_separate_heap(pipe, params, true, steps);
  EXPECT_EQ(replayed.latents, eager.latents);
  EXPECT_EQ(replayed.image_tensor, eager.image_tensor);
  EXPECT_EQ(replayed.warnings, eager.warnings);
  if (steps >= 2) {
    EXPECT_GT(separate_heap().replayed_ops(), replayed_before) << "the step was never replayed";
  }
}

TEST_P(PipelineGolden, GraphsOnGiveTheSameResultAsGraphsOff) {
  KK_REQUIRE_GOLDEN();
  expect_graphs_change_nothing(pipeline_for(GetParam(), kSeparateHeap), GetParam().params);
}

INSTANTIATE_TEST_SUITE_P(Kit, PipelineGolden, ::testing::ValuesIn(testing::load_pipeline_cases()),
                         [](const ::testing::TestParamInfo<PipelineCase>& info) { return info.param.name; });

// The kit's cross-checks: case i is b with another VAE (same latents); h is b with attention slicing.
TEST(PipelineGoldenCases, CoverTheWholeKit) {
  KK_REQUIRE_GOLDEN();
  std::vector<std::string> names;
  for (const PipelineCase& c : testing::load_pipeline_cases()) names.push_back(c.name.substr(0, c.name.find('_')));
  for (const char* expected : {"a", "b", "c", "c2", "d", "d2", "e", "f", "g", "h", "i", "j", "k", "k2", "l", "m"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << "case " << expected;
}

// The graph lives for one denoising loop: a call at another size captures its own.
TEST(PipelineGraphs, AnotherSizeBetweenCallsCapturesAgain) {
  KK_REQUIRE_GOLDEN();
  LoadOptions load;
  load.device = kSeparateHeap;
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  GenerateParams params;
  params.prompt = {"portrait photo of a old warrior chief"};
  params.num_inference_steps = 4;
  params.seeds = {0};
  for (int size : {64, 48, 64}) {
    params.height = params.width = size;
    expect_graphs_change_nothing(pipe, params);
  }
}

}  // namespace
}  // namespace kakusan
