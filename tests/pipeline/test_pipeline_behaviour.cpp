// Pipeline behaviour beyond the kit's cases, on the tiny model: generator-list semantics with a stochastic
// scheduler, random seeds, latent output, cancellation and model-dependent input errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "kakusan/pipeline.h"
#include "support/golden.h"

namespace kakusan {
namespace {

StableDiffusionPipeline& tiny_pipeline() {
  static StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string());
  return pipe;
}

GenerateParams small_params() {
  GenerateParams p;
  p.prompt = {"portrait photo of a old warrior chief"};
  p.num_inference_steps = 4;
  p.seeds = {0};
  return p;
}

TensorView latents_of(const GenerateResult& r) {
  return TensorView(const_cast<float*>(r.latents.data()), Shape(r.latents_shape.begin(), r.latents_shape.end()));
}

TEST(Pipeline, DefaultsToTheModelsSampleSize) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  EXPECT_EQ(pipe.default_height(), 64);  // unet sample_size 8 x vae scale factor 8
  GenerateParams p = small_params();
  p.num_inference_steps = 1;
  const GenerateResult r = pipe.generate(p);
  EXPECT_EQ(r.image_shape, (std::vector<int64_t>{1, 64, 64, 3}));
  EXPECT_EQ(r.latents_shape, (std::vector<int64_t>{1, 4, 8, 8}));
}

// With a generator list, image i's initial noise AND its ancestral noise come from generator i, so each
// image of the batch is the image a single-image run with that seed gives (up to batch-size rounding).
TEST(Pipeline, GeneratorListFeedsEachImagesSchedulerNoise) {
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
    KK_EXPECT_CLOSE(latents_of(both).slice0(i, i + 1), latents_of(one), {1e-3, 1e-3}, "image " + std::to_string(i));
  }
  // One shared generator draws each step's noise for the whole batch in one go, so even image 0 leaves
  // the seed-3 run's random stream after the first draw.
  batch.seeds = {3};
  const GenerateResult shared = pipe.generate(batch);
  EXPECT_FALSE(testing::tensors_close(latents_of(shared).slice0(0, 1), latents_of(both).slice0(0, 1), {1e-3, 1e-3}));
  EXPECT_FALSE(testing::tensors_close(latents_of(shared).slice0(1, 2), latents_of(both).slice0(1, 2), {1e-3, 1e-3}));
  pipe.set_scheduler("PNDMScheduler");
}

TEST(Pipeline, RandomSeedIsReportedAndReproduces) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  GenerateParams p = small_params();
  p.seeds.clear();
  p.output_type = OutputType::Latent;
  const GenerateResult first = pipe.generate(p);
  ASSERT_EQ(first.seeds.size(), 1u);
  EXPECT_TRUE(first.images.empty());
  p.seeds = first.seeds;
  const GenerateResult again = pipe.generate(p);
  KK_EXPECT_CLOSE(latents_of(again), latents_of(first), {0, 0}, "same seed");
}

TEST(Pipeline, StepCallbackSeesEveryStepAndCanCancel) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  GenerateParams p = small_params();
  std::vector<int> steps;
  p.callback_on_step_end = [&](const StepInfo& info) {
    steps.push_back(info.step);
    EXPECT_EQ(info.latents_shape, (std::vector<int64_t>{1, 4, 8, 8}));
    return info.step < 1;  // cancel after the second step
  };
  EXPECT_THROW(pipe.generate(p), Cancelled);
  EXPECT_EQ(steps, (std::vector<int>{0, 1}));
}

TEST(Pipeline, ReportsPhasesInOrder) {
  KK_REQUIRE_GOLDEN();
  GenerateParams p = small_params();
  std::vector<Phase> phases;
  int last_denoising = 0;
  p.progress = [&](const Progress& e) {
    if (phases.empty() || phases.back() != e.phase) phases.push_back(e.phase);
    if (e.phase == Phase::Denoising) last_denoising = e.done;
  };
  tiny_pipeline().set_scheduler("PNDMScheduler");
  tiny_pipeline().generate(p);
  EXPECT_EQ(phases, (std::vector<Phase>{Phase::Encoding, Phase::Denoising, Phase::Decoding}));
  EXPECT_EQ(last_denoising, 5);  // PNDM with skip_prk_steps: N + 1 UNet calls
}

TEST(Pipeline, RejectsBadInputsBeforeWork) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  pipe.set_scheduler("PNDMScheduler");
  GenerateParams p = small_params();
  p.latents = std::vector<float>(10, 0.0f);
  EXPECT_THROW(pipe.generate(p), Error);
  p = small_params();
  p.height = 12;
  EXPECT_THROW(pipe.generate(p), Error);
  EXPECT_THROW(pipe.set_scheduler("NoSuchScheduler"), Error);
  EXPECT_EQ(pipe.scheduler_name(), "PNDMScheduler");  // unchanged after a failed swap
  EXPECT_THROW(pipe.set_scheduler("EulerDiscreteScheduler", {{"no_such_option", "1"}}), Error);
}

TEST(Pipeline, WarnsAboutTruncatedPromptsAndChecksClipSkip) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline& pipe = tiny_pipeline();
  GenerateParams p = small_params();
  p.num_inference_steps = 1;
  p.output_type = OutputType::Latent;
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "warrior chief ";
  p.prompt = {prompt + "ENDMARK"};
  const GenerateResult r = pipe.generate(p);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("truncated"), std::string::npos) << r.warnings[0];
  EXPECT_NE(r.warnings[0].find("endmark"), std::string::npos) << r.warnings[0];  // the cut part, decoded
  p = small_params();
  p.clip_skip = 3;  // tiny-sd's text encoder has 2 layers
  try {
    pipe.generate(p);
    FAIL() << "clip_skip beyond the text encoder's layers was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("clip_skip"), std::string::npos) << e.what();
  }
}

// fp16 weights (as --dtype fp16 keeps them) give nearly the fp32 image.
TEST(Pipeline, HalfPrecisionWeightsStayCloseToFp32) {
  KK_REQUIRE_GOLDEN();
  LoadOptions load;
  load.dtype = WeightDType::F16;
  load.scheduler = "DPMSolverMultistepScheduler";
  StableDiffusionPipeline half = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  GenerateParams p = small_params();
  p.num_inference_steps = 20;
  const GenerateResult r = half.generate(p);
  const SafetensorsFile want = testing::open_golden("pipeline/b_dpm20.safetensors");
  const Shape image_shape(r.image_shape.begin(), r.image_shape.end());
  const TensorView image(const_cast<float*>(r.image_tensor.data()), image_shape);
  KK_EXPECT_CLOSE(image, want.view("image"), {0.05, 0}, "fp16 image vs diffusers fp32");
  EXPECT_FALSE(testing::tensors_close(image, want.view("image"), {1e-7, 0}));  // the weights really are fp16
}

// A model id resolves offline through the Hugging Face cache layout.
TEST(Pipeline, LoadsAModelIdFromTheHubCache) {
  KK_REQUIRE_GOLDEN();
  namespace fs = std::filesystem;
  const fs::path cache = fs::temp_directory_path() / ("kakusan_hub_" + std::to_string(::getpid()));
  const std::string commit(40, 'a');
  const fs::path repo = cache / "models--kakusan-test--tiny-sd";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots");
  fs::create_directory_symlink(*testing::golden_dir() / "tiny-sd", repo / "snapshots" / commit);
  { std::ofstream(repo / "refs" / "main") << commit << "\n"; }
  const char* previous = std::getenv("HF_HUB_CACHE");
  const std::string saved = previous ? previous : "";
  ::setenv("HF_HUB_CACHE", cache.c_str(), 1);
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load("kakusan-test/tiny-sd");
  if (previous) ::setenv("HF_HUB_CACHE", saved.c_str(), 1); else ::unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(pipe.model_path(), repo / "snapshots" / commit);
  GenerateParams p = small_params();
  p.num_inference_steps = 1;
  p.output_type = OutputType::Latent;
  const GenerateResult by_id = pipe.generate(p);
  tiny_pipeline().set_scheduler("PNDMScheduler");
  const GenerateResult by_folder = tiny_pipeline().generate(p);
  KK_EXPECT_CLOSE(latents_of(by_id), latents_of(by_folder), {0, 0}, "model id vs folder");
  fs::remove_all(cache);
}

TEST(Pipeline, LoadErrorsNameTheProblem) {
  KK_REQUIRE_GOLDEN();
  try {
    StableDiffusionPipeline::load("/nonexistent/model/folder");
    FAIL() << "loaded a missing folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model/folder"), std::string::npos) << e.what();
  }
  LoadOptions bad_scheduler;
  bad_scheduler.scheduler = "NoSuchScheduler";
  EXPECT_THROW(StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), bad_scheduler), Error);
  LoadOptions bad_vae;
  bad_vae.vae = (*testing::golden_dir() / "pipeline").string();
  EXPECT_THROW(StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), bad_vae), Error);
}

}  // namespace
}  // namespace kakusan
