// CUDA graphs on the GPU (backend.h's capture seam, cuda_graph.cpp): a captured op runs only when replayed,
// on the memory it was captured with; what cannot be captured is refused with an error that leaves the
// backend working; a graph whose scratch was replaced declines to replay; and the golden pipeline cases with
// graphs on give the image of graphs off, bit for bit (the same kernels in the same order).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <thread>

#include "cuda_test.h"
#include "core/error.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::CudaTest;
using testing::PipelineCase;

// CUDA loads kernels lazily (12.2 on); loading one inside a capture needs a 12.3 driver. The pipeline's first
// step is eager; here every small op a capture below records runs once before.
class CudaGraphs : public CudaTest {
 public:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    const Tensor a = up(Tensor::full({4}, 1.0f));
    gpu().scale(a, 2.0f, a);
    gpu().add(a, a, a);
    down(a);
  }
};

TEST_F(CudaGraphs, ACapturedOpRunsOnlyOnReplayAndReadsItsInputsThen) {
  const Tensor x = up(Tensor::full({1000}, 1.0f));
  const Tensor y = up(Tensor::full({1000}, 0.0f));
  ASSERT_TRUE(gpu().begin_capture());
  gpu().scale(x, 2.0f, y);
  gpu().add(y, x, y);
  const std::unique_ptr<OpGraph> graph = gpu().end_capture();
  EXPECT_EQ(down(y).f32()[999], 0.0f) << "a captured op must not run";
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(down(y).f32()[999], 3.0f);
  gpu().upload(Tensor::full({1000}, 5.0f), x);
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(down(y).f32()[0], 15.0f);
}

// Two pipelines may share the device: while one thread captures, another's ops wait, and never land in the graph.
TEST_F(CudaGraphs, AnotherThreadsOpsWaitForTheCaptureAndStayOutOfIt) {
  const Tensor x = up(Tensor::full({1000}, 1.0f));
  const Tensor y = up(Tensor::full({1000}, 0.0f));
  const Tensor z = up(Tensor::full({1000}, 0.0f));
  ASSERT_TRUE(gpu().begin_capture());
  std::atomic<bool> done = false;
  std::thread other([&] {
    gpu().scale(x, 7.0f, z);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(done) << "another thread's op ran during the capture";
  gpu().scale(x, 2.0f, y);
  const std::unique_ptr<OpGraph> graph = gpu().end_capture();
  other.join();
  EXPECT_EQ(down(z).f32()[0], 7.0f);
  gpu().upload(Tensor::full({1000}, 0.0f), z);
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(down(y).f32()[0], 2.0f);
  EXPECT_EQ(down(z).f32()[0], 0.0f) << "the other thread's op is in the graph";
}

TEST_F(CudaGraphs, WhatCannotBeCapturedIsRefusedAndTheBackendKeepsWorking) {
  const Tensor x = up(Tensor::full({16}, 1.0f));
  Tensor host = Tensor::empty({16});
  ASSERT_TRUE(gpu().begin_capture());
  gpu().scale(x, 2.0f, x);
  EXPECT_THROW(gpu().empty({1 << 20}), Error);
  EXPECT_THROW(gpu().download(x, host), Error);
  EXPECT_THROW(gpu().upload(host, x), Error);
  gpu().abort_capture();
  EXPECT_EQ(down(x).f32()[0], 1.0f) << "the aborted capture's op must not have run";
  gpu().scale(x, 3.0f, x);
  EXPECT_EQ(down(x).f32()[0], 3.0f);
}

TEST_F(CudaGraphs, MemoryFreedWhileCapturingMakesEndCaptureThrow) {
  const Tensor x = up(Tensor::full({16}, 1.0f));
  Tensor temporary = up(Tensor::full({16}, 0.0f));
  ASSERT_TRUE(gpu().begin_capture());
  gpu().scale(x, 2.0f, temporary);
  temporary = Tensor();
  EXPECT_THROW(gpu().end_capture(), Error);
  EXPECT_EQ(down(x).f32()[0], 1.0f);  // and the stream works
}

TEST_F(CudaGraphs, AGraphWhoseScratchWasGivenBackDeclinesToReplay) {
  // An f16 weight makes linear convert the activation into scratch: the graph uses that buffer.
  const Tensor x = up(Tensor::full({4, 64}, 0.5f));
  const Tensor w = up(Tensor::full({32, 64}, 0.25f), DType::F16);
  const Tensor y = poisoned({4, 32});
  gpu().linear(x, w, {}, y);  // eager first: plans made, scratch sized
  ASSERT_TRUE(gpu().begin_capture());
  gpu().linear(x, w, {}, y);
  const std::unique_ptr<OpGraph> graph = gpu().end_capture();
  ASSERT_TRUE(graph->replay());
  EXPECT_EQ(down(y).f32()[0], 8.0f);  // 64 x 0.5 x 0.25
  gpu().release_scratch();
  EXPECT_FALSE(graph->replay());
}

// The kit's cases on the GPU in fp16 (the tutorial's setting): graphs on against graphs off. Where two eager
// runs already differ (a library algorithm with a nondeterministic reduction), that spread is the tolerance.
StableDiffusionPipeline& fp16_pipeline(const PipelineCase& c) {
  static std::map<std::string, std::unique_ptr<StableDiffusionPipeline>> cache;
  const std::string key = c.model.string() + "|" + c.load.vae.value_or("");
  auto it = cache.find(key);
  if (it == cache.end()) {
    LoadOptions load = c.load;
    load.device = "cuda";
    load.dtype = WeightDType::F16;
    load.scheduler.clear();
    it = cache.emplace(key, std::make_unique<StableDiffusionPipeline>(StableDiffusionPipeline::load(c.model, load)))
             .first;
  }
  it->second->set_scheduler(c.load.scheduler, c.load.scheduler_options);
  return *it->second;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::isnan(a[i]) != std::isnan(b[i]) ? INFINITY : std::abs(double(a[i]) - b[i]));
  return worst;
}

class CudaGraphsGolden : public ::testing::TestWithParam<PipelineCase> {};

TEST_P(CudaGraphsGolden, GraphsOnGiveTheImageOfGraphsOff) {
  KK_REQUIRE_CUDA();
  KK_REQUIRE_GOLDEN();
  const PipelineCase& c = GetParam();
  StableDiffusionPipeline& pipe = fp16_pipeline(c);
  GenerateParams params = c.params;
  params.cuda_graphs = false;
  const GenerateResult eager = pipe.generate(params);
  const GenerateResult eager_again = pipe.generate(params);
  params.cuda_graphs = true;
  const GenerateResult replayed = pipe.generate(params);
  for (const std::string& w : replayed.warnings)
    EXPECT_EQ(w.find("cuda graphs"), std::string::npos) << "capture was given up: " << w;
  const double spread = max_difference(eager.image_tensor, eager_again.image_tensor);
  const double graphs = max_difference(eager.image_tensor, replayed.image_tensor);
  std::printf("{\"graphs_case\": \"%s\", \"graphs_vs_eager_max_abs\": %.3g, \"eager_vs_eager_max_abs\": %.3g}\n",
              c.id.c_str(), graphs, spread);
  EXPECT_LE(graphs, spread) << c.name;
  EXPECT_LE(max_difference(eager.latents, replayed.latents), max_difference(eager.latents, eager_again.latents))
      << c.name << ": latents";
}

INSTANTIATE_TEST_SUITE_P(Kit, CudaGraphsGolden, ::testing::ValuesIn(testing::load_pipeline_cases()),
                         [](const ::testing::TestParamInfo<PipelineCase>& info) { return info.param.name; });

}  // namespace
}  // namespace kakusan
