// conv2d's two cuDNN paths (conv2d.cpp, conv_graph.cpp). On the CPU: the KAKUSAN_CUDA_CONV switch's parsing,
// which convolutions are offered to the graph API, the scratch the planner counts for the graph API's f32 bias,
// and cuDNN's own validation of the graph's descriptors. On a GPU: f16/bf16 convolutions through the graph API
// against the reference backend on operands pre-rounded to the weight's dtype, with the contract's tolerance
// — only the f32 accumulation order differs (the sizes here: K <= 1152 products of O(1) terms, far under 1e-4)
// — where test_cuda_ops allows the descriptor API's extra output rounding; that every shape here takes the
// graph (else the failure says cuDNN's reason); the plan-time budget; the default API and the switch; the fallback for
// misaligned operands; and capture: a planned graph convolution replays, a new plan is refused while capturing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/plans.h"
#include "core/error.h"
#include "cuda_test.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using cuda::ConvApi;
using cuda::CudaBackend;
using testing::CudaTest;
using testing::random_tensor;
using testing::random_weights;
using testing::Tolerance;

constexpr Tolerance kContract{1e-4, 1e-4};  // f32 sums in another order, nothing else
// The descriptor API's f16 output rounding on top (test_cuda_ops' bound): one f16 ulp of |conv| < 8.
constexpr Tolerance kDescriptorF16{8e-3, 1e-3};

TEST(CudaConvApi, TheSwitchParsesAndRefusesUnknownValues) {
  EXPECT_EQ(cuda::conv_api_for(nullptr), ConvApi::Descriptor);
  EXPECT_EQ(cuda::conv_api_for(""), ConvApi::Descriptor);
  EXPECT_EQ(cuda::conv_api_for("graph"), ConvApi::Graph);
  EXPECT_EQ(cuda::conv_api_for("descriptor"), ConvApi::Descriptor);
  try {
    cuda::conv_api_for("Descriptor");
    FAIL() << "an unknown value must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "KAKUSAN_CUDA_CONV=Descriptor: expected descriptor (the default) or graph");
  }
}

TEST(CudaConvApi, OnlyAlignedNarrowConvolutionsAreOfferedToTheGraphApi) {
  alignas(16) static char buffer[64];
  const void *aligned = buffer, *other = buffer + 32, *shifted = buffer + 2;
  EXPECT_TRUE(cuda::conv_offers_graph(DType::F16, ConvApi::Graph, {aligned, other, nullptr, aligned}));
  EXPECT_TRUE(cuda::conv_offers_graph(DType::BF16, ConvApi::Graph, {aligned, other, other, aligned}));
  EXPECT_FALSE(cuda::conv_offers_graph(DType::F32, ConvApi::Graph, {aligned, other, other, aligned}));
  EXPECT_FALSE(cuda::conv_offers_graph(DType::F16, ConvApi::Descriptor, {aligned, other, other, aligned}));
  EXPECT_FALSE(cuda::conv_offers_graph(DType::F16, ConvApi::Graph, {aligned, shifted, nullptr, aligned}));
}

TEST(CudaConvApi, ANarrowConvolutionCountsTheGraphsF32BiasAndTheFallbacksOutput) {
  static float somewhere;
  auto fake = [](Shape shape, DType dtype) { return TensorView(&somewhere, dtype, Device::host(), std::move(shape)); };
  ScratchTally t;
  CudaBackend::conv2d_scratch(fake({2, 320, 64, 64}, DType::F32), fake({320, 320, 3, 3}, DType::F16),
                              fake({320}, DType::F16), Conv2dParams::symmetric(1), fake({2, 320, 64, 64}, DType::F32),
                              t);
  // The f16 input, the workspace cap, the descriptor API's f16 output (its fallback), and in the bias slot the
  // larger of the graph's f32 copy and the fallback's f16 copy of the f16 bias.
  const int64_t io = 2 * 320 * 64 * 64 * 2;
  EXPECT_EQ(t.total(), io + int64_t(CudaBackend::kConvWorkspaceLimit) + io + 320 * 4);
}

// cuDNN validates every descriptor as it is finalized, host-side: without a GPU (a null handle) the graph of
// conv_graph.cpp gets as far as the operation graph's handle, which proves each tensor, the convolution, the
// pointwise op and their attributes' types and counts acceptable to the installed cuDNN.
TEST(CudaConvApi, CudnnAcceptsEveryDescriptorOfTheGraphUpToTheHandle) {
  try {
    cuda::lib();
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  const cuda::ConvShape shapes[] = {{2, 320, 64, 64, 320, 3, 3, 1, 1, 1}, {1, 4, 33, 33, 8, 3, 3, 0, 0, 2},
                                    {2, 640, 32, 32, 320, 1, 1, 0, 0, 1}};
  for (const cuda::ConvShape& s : shapes)
    for (DType dtype : {DType::F16, DType::BF16})
      for (bool bias : {true, false})
        for (cuda::ConvLayout layout : {cuda::ConvLayout::NCHW, cuda::ConvLayout::NHWC}) {
          std::string why;
          EXPECT_EQ(cuda::make_conv_graph_plan(nullptr, s, dtype, bias, layout, why), nullptr);
          EXPECT_EQ(why.rfind("cuda conv2d graph: handle: cuDNN ", 0), 0u)
              << why << " (" << dtype_name(dtype) << (bias ? ", bias" : "") << ", channels " << s.channels << ")";
        }
}

struct Case {
  Shape x, w;
  Conv2dParams p;
};

// Shapes of their own (the backend caches plans per shape: a shape another test planned first would hide
// whether this one fell back). Channel counts are multiples of 8 except conv_in's 4; 1x1, 3x3, stride 2, odd
// sizes, and the VAE's asymmetric downsampling padding.
const Case kCases[] = {
    {{2, 8, 19, 11}, {16, 8, 3, 3}, Conv2dParams::symmetric(1)},
    {{1, 16, 7, 9}, {24, 16, 1, 1}, Conv2dParams{}},
    {{1, 16, 15, 13}, {16, 16, 3, 3}, Conv2dParams::symmetric(1, 2)},
    {{2, 8, 15, 15}, {8, 8, 3, 3}, Conv2dParams{2, 0, 1, 0, 1}},
    {{1, 4, 10, 14}, {32, 4, 3, 3}, Conv2dParams::symmetric(1)},
};

Shape output_shape(const Case& c) {
  return {c.x[0], c.w[0], (c.x[2] + c.p.pad_top + c.p.pad_bottom - c.w[2]) / c.p.stride + 1,
          (c.x[3] + c.p.pad_left + c.p.pad_right - c.w[3]) / c.p.stride + 1};
}

// The tests run on a backend of their own that takes the graph API, whatever KAKUSAN_CUDA_CONV says.
class CudaConv : public CudaTest {
 public:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    static auto* graph = new CudaBackend(0, ConvApi::Graph);  // never destroyed: plans cached for the suite
    use_backend(*graph);
  }
  CudaBackend& cuda() { return dynamic_cast<CudaBackend&>(gpu()); }

  // The reference's convolution of the operands rounded to `dtype`, in f64 sums.
  static Tensor expected(const Case& c, const Tensor& x, const Tensor& w, const Tensor& bias, DType dtype) {
    Tensor want = Tensor::empty(output_shape(c));
    reference_backend().conv2d(x.to(dtype).to_f32(), w, bias, c.p, want);
    return want;
  }
};

TEST_F(CudaConv, TheGraphApiMeetsTheContractInF16AndBf16WithAndWithoutBias) {
  for (DType dtype : {DType::F16, DType::BF16}) {
    for (bool with_bias : {true, false}) {
      for (const Case& c : kCases) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + (with_bias ? " bias" : " no bias") + " x " + c.x.str() + " w " +
                     c.w.str());
        const Tensor x = random_tensor(c.x, 31);
        const Tensor w = random_weights(c.w, c.w[1] * c.w[2] * c.w[3], 32, dtype);
        const Tensor bias = with_bias ? random_weights({c.w[0]}, 1, 33, dtype) : Tensor();
        const int fallbacks = cuda().conv_graph_fallbacks();
        Tensor got = poisoned(output_shape(c));
        gpu().conv2d(up(x), up(w), with_bias ? up(bias) : Tensor(), c.p, got);
        if (cuda().conv_graph_fallbacks() != fallbacks) continue;  // the next test reports refusals
        KK_EXPECT_CLOSE(down(got), expected(c, x, w, bias, dtype), kContract);
      }
    }
  }
}

// Whether cuDNN takes the NCHW graph at all is only known on a GPU: the first run says, with cuDNN's reason.
// Channel counts that are multiples of 8 must take it; conv_in's 4 (16-byte rows no longer hold) may fall back,
// and says which on stdout.
TEST_F(CudaConv, EveryShapeHereTakesTheGraphApi) {
  for (const Case& c : kCases) {
    const int fallbacks = cuda().conv_graph_fallbacks();
    Tensor got = poisoned(output_shape(c));
    gpu().conv2d(up(random_tensor(c.x, 34)), up(random_weights(c.w, 9, 35, DType::F16)),
                 up(random_weights({c.w[0]}, 1, 36, DType::F32)), c.p, got);
    const bool fell_back = cuda().conv_graph_fallbacks() != fallbacks;
    if (c.x[1] % 8 != 0) {
      std::printf("conv2d x %s w %s: %s\n", c.x.str().c_str(), c.w.str().c_str(),
                  fell_back ? ("descriptor API: " + cuda().last_conv_graph_refusal()).c_str() : "graph API");
      continue;
    }
    EXPECT_FALSE(fell_back) << "x " << c.x.str() << " w " << c.w.str() << ": " << cuda().last_conv_graph_refusal();
  }
}

// The first step's plan-making is bounded: with the budget spent, a shape never planned takes the descriptor API,
// counted, saying why.
TEST_F(CudaConv, OnceThePlanBudgetIsSpentNewShapesTakeTheDescriptorApi) {
  struct Restore {
    CudaBackend& backend;
    ~Restore() { backend.set_conv_graph_plan_budget_ms(CudaBackend::kConvGraphPlanBudgetMs); }
  } restore{cuda()};
  cuda().set_conv_graph_plan_budget_ms(0);
  const Case c{{1, 8, 9, 7}, {8, 8, 3, 3}, Conv2dParams::symmetric(1)};
  const Tensor x = random_tensor(c.x, 45), w = random_weights(c.w, 72, 46, DType::F16);
  const Tensor bias = random_weights({8}, 1, 47, DType::F16);
  const int fallbacks = cuda().conv_graph_fallbacks();
  Tensor got = poisoned(output_shape(c));
  gpu().conv2d(up(x), up(w), up(bias), c.p, got);
  EXPECT_EQ(cuda().conv_graph_fallbacks(), fallbacks + 1);
  EXPECT_NE(cuda().last_conv_graph_refusal().find("time budget"), std::string::npos)
      << cuda().last_conv_graph_refusal();
  KK_EXPECT_CLOSE(down(got), expected(c, x, w, bias, DType::F16), kDescriptorF16);
}

// Without a bias, the descriptor API's result is its f16 output widened: every element is an f16 value. The
// graph API's f32 output is not (almost every element has bits below f16's precision). A backend made without
// KAKUSAN_CUDA_CONV takes the descriptor API; with KAKUSAN_CUDA_CONV=graph, the graph API.
TEST_F(CudaConv, TheDescriptorApiRoundsTheOutputAndTheSwitchPicksTheGraphApi) {
  const Case c = kCases[0];
  const Tensor x = random_tensor(c.x, 37), w = random_weights(c.w, 72, 38, DType::F16);
  auto f16_values = [](const Tensor& y) {
    const Tensor rounded = y.to(DType::F16).to_f32();
    int64_t same = 0;
    for (int64_t i = 0; i < y.numel(); ++i) same += y.f32()[i] == rounded.f32()[i];
    return same;
  };
  auto convolve = [&](CudaBackend& backend) {
    Tensor dx = backend.empty(c.x, DType::F32), dw = backend.empty(c.w, DType::F16);
    backend.upload(x, dx);
    backend.upload(w, dw);
    Tensor dy = backend.empty(output_shape(c), DType::F32);
    backend.conv2d(dx, dw, {}, c.p, dy);
    return host_copy(backend, dy);
  };
  const char* const saved = std::getenv("KAKUSAN_CUDA_CONV");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("KAKUSAN_CUDA_CONV");
  CudaBackend by_default(0);  // reads the switch when made
  ::setenv("KAKUSAN_CUDA_CONV", "graph", 1);
  CudaBackend switched(0);
  if (saved) ::setenv("KAKUSAN_CUDA_CONV", saved_value.c_str(), 1); else ::unsetenv("KAKUSAN_CUDA_CONV");

  const Tensor by_descriptor = convolve(by_default);
  EXPECT_EQ(by_default.conv_graph_fallbacks(), 0);
  EXPECT_EQ(f16_values(by_descriptor), by_descriptor.numel());
  KK_EXPECT_CLOSE(by_descriptor, expected(c, x, w, Tensor(), DType::F16), kDescriptorF16);

  const Tensor by_switch = convolve(switched);
  EXPECT_LT(f16_values(by_switch), by_switch.numel() / 10) << switched.last_conv_graph_refusal();

  Tensor got = poisoned(output_shape(c));
  gpu().conv2d(up(x), up(w), {}, c.p, got);
  const Tensor by_graph = down(got);
  EXPECT_LT(f16_values(by_graph), by_graph.numel() / 10) << cuda().last_conv_graph_refusal();
  KK_EXPECT_CLOSE(by_graph, expected(c, x, w, Tensor(), DType::F16), kContract);
}

// A weight view that starts 2 bytes into its buffer breaks the graph's 16-byte alignment: the descriptor API
// takes that call (not a refusal: nothing is counted), and the result is right to that API's bound.
TEST_F(CudaConv, AMisalignedOperandTakesTheDescriptorApi) {
  const Case c = kCases[1];
  const Tensor w = random_weights({c.w[0] * c.w[1] + 1}, c.w[1], 39, DType::F16);
  const Tensor gw = up(w);
  const TensorView shifted = gw.view().narrow(0, 1, c.w[0] * c.w[1]).reshape(c.w);
  const Tensor x = random_tensor(c.x, 40);
  const int fallbacks = cuda().conv_graph_fallbacks();
  Tensor got = poisoned(output_shape(c));
  gpu().conv2d(up(x), shifted, {}, c.p, got);
  EXPECT_EQ(cuda().conv_graph_fallbacks(), fallbacks);
  const Tensor host_w = Tensor::copy_of(w.view().narrow(0, 1, c.w[0] * c.w[1]).reshape(c.w));
  KK_EXPECT_CLOSE(down(got), expected(c, x, host_w, Tensor(), DType::F16), kDescriptorF16);
}

// Capture (docs/cuda.md): a shape planned eagerly replays the same result; a shape never seen is refused while
// capturing (its plan may compile a kernel), and the backend goes on working.
TEST_F(CudaConv, APlannedGraphConvolutionReplaysAndANewPlanIsRefusedWhileCapturing) {
  const Case c = kCases[2];
  const Tensor x = up(random_tensor(c.x, 41)), w = up(random_weights(c.w, 144, 42, DType::F16));
  const Tensor bias = up(random_weights({c.w[0]}, 1, 43, DType::F16));
  Tensor eager = poisoned(output_shape(c)), replayed = poisoned(output_shape(c));
  gpu().conv2d(x, w, bias, c.p, eager);
  ASSERT_TRUE(gpu().begin_capture());
  gpu().conv2d(x, w, bias, c.p, replayed);
  const std::unique_ptr<OpGraph> graph = gpu().end_capture();
  ASSERT_TRUE(graph->replay());
  KK_EXPECT_CLOSE(down(replayed), down(eager), (Tolerance{0, 0}));

  const Tensor x2 = up(random_tensor({1, 16, 15, 11}, 44));
  Tensor y2 = poisoned({1, 16, 8, 6});
  ASSERT_TRUE(gpu().begin_capture());
  try {
    gpu().conv2d(x2, w, bias, c.p, y2);
    ADD_FAILURE() << "planning inside a capture must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a new cuDNN graph plan"), std::string::npos) << e.what();
  }
  gpu().abort_capture();
  gpu().conv2d(x2, w, bias, c.p, y2);
  EXPECT_TRUE(std::isfinite(down(y2).f32()[0]));
}

}  // namespace
}  // namespace kakusan
