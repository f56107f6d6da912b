// The offload levers (LoadOptions::offload) on the separate-heap device: every golden case gives, bit for bit,
// the image it gives without offload; during each phase the device holds only that phase's weights (model) or
// one UNet block plus the UNet's other weights (sequential); LoRA changes reach the uploaded weights; the
// memory planner counts where the weights live, offloads when Auto must, and hears of the backend's scratch.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "backend/registry.h"
#include "core/error.h"
#include "kakusan/kakusan.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "pipeline/weight_residency.h"
#include "pipeline_cases.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

using testing::PipelineCase;
using testing::SeparateHeapBackend;

// One device for the whole file; never destroyed (cached pipelines hold its memory until the process ends).
SeparateHeapBackend& heap() {
  static auto* backend = [] {
    auto* b = new SeparateHeapBackend(cpu_backend());
    register_backend("offload-heap", [b](int) -> Backend& { return *b; });
    return b;
  }();
  return *backend;
}

std::filesystem::path tiny_model() { return *testing::golden_dir() / "tiny-sd"; }

StableDiffusionPipeline load_on_heap(const PipelineCase& c, Offload offload) {
  heap();
  LoadOptions load = c.load;
  load.device = "offload-heap";
  load.offload = offload;
  return StableDiffusionPipeline::load(c.model.string(), load);
}

class OffloadGolden : public ::testing::TestWithParam<PipelineCase> {};

TEST_P(OffloadGolden, ModelAndSequentialGiveTheSameImageBitForBit) {
  KK_REQUIRE_GOLDEN();
  const PipelineCase& c = GetParam();
  const GenerateResult want = load_on_heap(c, Offload::None).generate(c.params);
  for (Offload offload : {Offload::Model, Offload::Sequential}) {
    SCOPED_TRACE(offload_name(offload));
    const size_t live_before = heap().live_bytes();
    StableDiffusionPipeline pipe = load_on_heap(c, offload);
    EXPECT_EQ(heap().live_bytes(), live_before) << "offloaded weights were uploaded at load";
    const GenerateResult got = pipe.generate(c.params);
    EXPECT_EQ(got.latents, want.latents);
    EXPECT_EQ(got.image_tensor, want.image_tensor);
    EXPECT_EQ(heap().live_bytes(), live_before) << "a phase's weights stayed on the device";
  }
}

INSTANTIATE_TEST_SUITE_P(Kit, OffloadGolden, ::testing::ValuesIn(testing::load_pipeline_cases()),
                         [](const ::testing::TestParamInfo<PipelineCase>& info) { return info.param.name; });

// The tiny model's weight bytes, counted from freshly loaded components through the one weight walk.
struct TinyBytes {
  int64_t text_encoder, unet, vae, unet_blocks, largest_block;
};
TinyBytes tiny_bytes() {
  ClipTextModel text_encoder = ClipTextModel::load(tiny_model() / "text_encoder");
  UNet2DConditionModel unet = UNet2DConditionModel::load(tiny_model() / "unet");
  std::unique_ptr<Autoencoder> vae = load_autoencoder(tiny_model() / "vae", std::nullopt).model;
  TinyBytes b{weight_bytes(text_encoder), weight_bytes(unet), weight_bytes(*vae), 0, 0};
  for (size_t i = 0; i < unet.num_blocks(); ++i) {
    ByteCounter block;
    unet.visit_block(i, block);
    b.unet_blocks += block.bytes;
    b.largest_block = std::max(b.largest_block, block.bytes);
  }
  return b;
}

// The heap's live bytes when each phase has started (progress done == 0: the phase's weights are up, its
// arena reserved) and, for the UNet, its peak over the denoising loop.
struct PhaseBytes {
  int64_t encoding = -1, denoising = -1, decoding = -1, denoising_peak = -1;
};
PhaseBytes measure_phases(Offload offload) {
  LoadOptions load;
  load.device = "offload-heap";
  load.offload = offload;
  heap();
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load(tiny_model().string(), load);
  GenerateParams p;
  p.prompt = {"portrait photo of a old warrior chief"};
  p.num_inference_steps = 2;
  p.seeds = {0};
  PhaseBytes b;
  p.progress = [&](const Progress& progress) {
    const int64_t live = int64_t(heap().live_bytes());
    if (progress.phase == Phase::Encoding && progress.done == 0) b.encoding = live;
    if (progress.phase == Phase::Decoding && progress.done == 0) b.decoding = live;
    if (progress.phase == Phase::Denoising && progress.done == 0) {
      b.denoising = live;
      heap().reset_peak();
    }
    if (progress.phase == Phase::Denoising && progress.done == progress.total)
      b.denoising_peak = int64_t(heap().peak_bytes());
  };
  pipe.generate(p);
  return b;
}

TEST(Offload, ModelHoldsOnlyTheRunningComponentOnTheDevice) {
  KK_REQUIRE_GOLDEN();
  const TinyBytes w = tiny_bytes();
  const PhaseBytes none = measure_phases(Offload::None);
  const PhaseBytes model = measure_phases(Offload::Model);
  // The same arenas and buffers either way: the difference is exactly the other components' weights.
  EXPECT_EQ(none.encoding - model.encoding, w.unet + w.vae);
  EXPECT_EQ(none.denoising - model.denoising, w.text_encoder + w.vae);
  EXPECT_EQ(none.decoding - model.decoding, w.text_encoder + w.unet);
  EXPECT_EQ(none.denoising_peak - model.denoising_peak, w.text_encoder + w.vae);
}

TEST(Offload, SequentialHoldsOneUNetBlockAtATime) {
  KK_REQUIRE_GOLDEN();
  const TinyBytes w = tiny_bytes();
  const PhaseBytes model = measure_phases(Offload::Model);
  const PhaseBytes sequential = measure_phases(Offload::Sequential);
  // Between UNet passes no block is on the device; within one, at most the largest block.
  EXPECT_EQ(model.denoising - sequential.denoising, w.unet_blocks);
  EXPECT_EQ(model.denoising_peak - sequential.denoising_peak, w.unet_blocks - w.largest_block);
  // The text encoder and the VAE as with model offload.
  EXPECT_EQ(sequential.encoding, model.encoding);
  EXPECT_EQ(sequential.decoding, model.decoding);
}

// A LoRA change is merged on the host and uploaded with its phase (offload) or with the next run (resident
// weights): every generation equals a fresh load with its set, on the device, with and without offload.
TEST(Offload, LoraChangesReachTheDevice) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path formats = std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats";
  PipelineCase c;
  c.model = tiny_model();
  c.load.dtype = WeightDType::F16;
  GenerateParams p;
  p.num_inference_steps = 2;
  p.seeds = {0};
  p.output_type = OutputType::Latent;
  auto fresh = [&](const std::vector<LoadOptions::Lora>& loras) {
    PipelineCase with = c;
    with.load.loras = loras;
    GenerateParams q = p;
    q.prompt = {"a photo "};
    return load_on_heap(with, Offload::None).generate(q).latents;
  };
  const std::string kohya = (formats / "lora_kohya.safetensors").string();
  const std::vector<float> base = fresh({}), with_kohya = fresh({{kohya, 0.8f}});
  ASSERT_NE(base, with_kohya);
  c.load.lora_dir = formats;
  for (Offload offload : {Offload::None, Offload::Model, Offload::Sequential}) {
    SCOPED_TRACE(offload_name(offload));
    StableDiffusionPipeline pipe = load_on_heap(c, offload);
    for (const char* tags : {"<lora:lora_kohya:0.8>", "", "<lora:lora_kohya:0.8>"}) {
      p.prompt = {std::string("a photo ") + tags};
      EXPECT_EQ(pipe.generate(p).latents, *tags ? with_kohya : base) << tags;
    }
  }
}

// Image-to-image adds the VAE encoder's phase: the VAE goes up for it, and the result is the same.
TEST(Offload, ImageToImageGivesTheSameResult) {
  KK_REQUIRE_GOLDEN();
  PipelineCase c;
  c.model = tiny_model();
  GenerateParams p;
  p.prompt = {"a red apple"};
  p.num_inference_steps = 4;
  p.seeds = {0};
  std::vector<uint8_t> rgb(64 * 64 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 7 % 251);
  p.image = {Image{64, 64, rgb}};
  const GenerateResult want = load_on_heap(c, Offload::None).generate(p);
  for (Offload offload : {Offload::Model, Offload::Sequential}) {
    SCOPED_TRACE(offload_name(offload));
    const GenerateResult got = load_on_heap(c, offload).generate(p);
    EXPECT_EQ(got.latents, want.latents);
    EXPECT_EQ(got.image_tensor, want.image_tensor);
  }
}

GenerateParams planner_params() {
  GenerateParams p;
  p.prompt = {"a red apple"};
  p.num_inference_steps = 1;
  p.seeds = {0};
  p.output_type = OutputType::Latent;
  p.attention.mode = AttentionOptions::Mode::Flash;  // no attention lever left to pull
  p.vae_tiling = true;
  p.memory_policy = GenerateParams::MemoryPolicy::Off;
  return p;
}

// On a device, no offload holds every component for the whole run; offload holds less, sequential least.
TEST(OffloadPlan, TheEstimateCountsWhereTheWeightsLive) {
  KK_REQUIRE_GOLDEN();
  const TinyBytes w = tiny_bytes();
  PipelineCase c;
  c.model = tiny_model();
  std::map<Offload, int64_t> peak;
  for (Offload offload : {Offload::None, Offload::Model, Offload::Sequential})
    peak[offload] = load_on_heap(c, offload).generate(planner_params()).memory.estimated_peak;
  // The peak is the largest phase's, and which phase that is may change with the offload: so bounds, not
  // exact differences (the phases themselves are measured exactly in the Offload tests above).
  EXPECT_GT(peak[Offload::None], peak[Offload::Model]);
  EXPECT_LE(peak[Offload::None] - peak[Offload::Model], w.text_encoder + w.unet + w.vae);
  EXPECT_GT(peak[Offload::Model], peak[Offload::Sequential]);
  EXPECT_LE(peak[Offload::Model] - peak[Offload::Sequential], w.unet_blocks - w.largest_block);
  // stream_unet_weights on a device is sequential offload.
  GenerateParams streamed = planner_params();
  streamed.stream_unet_weights = true;
  EXPECT_EQ(load_on_heap(c, Offload::None).generate(streamed).memory.estimated_peak, peak[Offload::Sequential]);
}

// With max_memory between the two estimates, Auto turns model offload on, says so, and the result is the same;
// Refuse names it as what would fit.
// A pipeline resident on the heap device after one run, and Auto params whose max_memory lies between that
// run's estimate and model offload's.
struct BetweenEstimates {
  StableDiffusionPipeline pipe;
  GenerateResult resident;
  int64_t offloaded_peak;
  GenerateParams p;
};

BetweenEstimates between_estimates(const PipelineCase& c) {
  BetweenEstimates b{load_on_heap(c, Offload::None), {}, 0, planner_params()};
  b.resident = b.pipe.generate(planner_params());
  b.offloaded_peak = load_on_heap(c, Offload::Model).generate(planner_params()).memory.estimated_peak;
  b.p.memory_policy = GenerateParams::MemoryPolicy::Auto;
  b.p.max_memory = (b.resident.memory.estimated_peak + b.offloaded_peak) / 2;
  return b;
}

TEST(OffloadPlan, AutoOffloadsWhenTheRunWouldNotFitOtherwise) {
  KK_REQUIRE_GOLDEN();
  PipelineCase c;
  c.model = tiny_model();
  auto [pipe, resident, offloaded_peak, p] = between_estimates(c);
  const size_t live_resident = heap().live_bytes();
  const GenerateResult adapted = pipe.generate(p);
  EXPECT_EQ(adapted.memory.estimated_peak, offloaded_peak);
  EXPECT_EQ(adapted.latents, resident.latents);
  std::string warnings;
  for (const std::string& warning : adapted.warnings) warnings += warning + "\n";
  EXPECT_NE(warnings.find("using model offload"), std::string::npos) << warnings;
  EXPECT_LT(heap().live_bytes(), live_resident) << "the offloaded run left the weights on the device";
  // The next run without a limit keeps every weight on the device again.
  EXPECT_EQ(pipe.generate(planner_params()).latents, resident.latents);
  EXPECT_EQ(heap().live_bytes(), live_resident);

  p.memory_policy = GenerateParams::MemoryPolicy::Refuse;
  try {
    pipe.generate(p);
    FAIL() << "Refuse did not refuse";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it fits with model offload"), std::string::npos) << e.what();
  }
}

// Converted weights (an fp32 model loaded in fp16) kept on the device have no host copy: a run that offloads
// brings them back from the device, bit for bit, and the next resident run is the same again.
TEST(OffloadPlan, ConvertedWeightsComeBackFromTheDevice) {
  KK_REQUIRE_GOLDEN();
  PipelineCase c;
  c.model = tiny_model();
  c.load.dtype = WeightDType::F16;
  auto [pipe, resident, offloaded_peak, p] = between_estimates(c);
  const GenerateResult offloaded = pipe.generate(p);
  EXPECT_EQ(offloaded.memory.estimated_peak, offloaded_peak) << "the run did not offload";
  EXPECT_EQ(offloaded.latents, resident.latents);
  EXPECT_EQ(pipe.generate(planner_params()).latents, resident.latents);
}

// A backend that keeps scratch beside the arenas (as CudaBackend's f16 copies of GEMM inputs) gets it counted.
TEST(OffloadPlan, TheBackendsScratchIsCounted) {
  KK_REQUIRE_GOLDEN();
  PipelineCase c;
  c.model = tiny_model();
  StableDiffusionPipeline pipe = load_on_heap(c, Offload::Model);
  const int64_t without = pipe.generate(planner_params()).memory.estimated_peak;
  heap().set_reports_linear_scratch(true);
  const int64_t with = pipe.generate(planner_params()).memory.estimated_peak;
  heap().set_reports_linear_scratch(false);
  EXPECT_GT(with, without);
}

// The C API's load field: a bad name is refused with the message, a good one loads.
TEST(OffloadCApi, TheLoadParamsFieldIsChecked) {
  KK_REQUIRE_GOLDEN();
  kakusan_load_params lp = kakusan_default_load_params();
  EXPECT_EQ(lp.offload, nullptr);
  lp.offload = "foo";
  EXPECT_EQ(kakusan_load(tiny_model().c_str(), &lp), nullptr);
  EXPECT_NE(std::string(kakusan_last_error()).find("offload \"foo\" is not none, model or sequential"),
            std::string::npos)
      << kakusan_last_error();
  lp.offload = "sequential";
  kakusan_context* ctx = kakusan_load(tiny_model().c_str(), &lp);
  EXPECT_NE(ctx, nullptr) << kakusan_last_error();
  kakusan_free(ctx);
  EXPECT_THROW(offload_from_name("Model"), Error);
  EXPECT_EQ(offload_from_name("model"), Offload::Model);
}

}  // namespace
}  // namespace kakusan
