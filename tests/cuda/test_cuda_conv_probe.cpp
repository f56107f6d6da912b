// The convolution layout probe, for the device check (scripts/device-check.sh runs it on its own): SD1.5's
// convolutions at 512x512 in f16 — the UNet's at batch 2 (CFG), the VAE decoder's at batch 1 — timed through
// cuDNN in NCHW and in NHWC, so that the first GPU run answers "NHWC or NCHW" by measurement:
//   nchw_ms / nhwc_ms              the descriptor API, the heuristic's first algorithm in each layout (conv2d.cpp's
//                                  make_conv_descriptor_plan), f16 in and out, no bias (or cuDNN's refusal);
//   graph_nchw_ms / graph_nhwc_ms  the graph API with f32 output and the bias fused (conv_graph.cpp), or the
//                                  reason cuDNN refused it (runtime-fusion engines may want NHWC), and how long
//                                  making the plan took (it may compile a kernel: that is paid on the first step);
//   to_f16_ms                      what the NCHW path pays besides: x f32 -> f16 (the activation's conversion);
//   to_nhwc_ms / from_nhwc_ms      what NHWC would pay instead: x f32 NCHW -> f16 NHWC, y f32 NHWC -> NCHW.
// Each time is the median of 15 runs after 3 warm-ups, CUDA events on the default stream (a graph-API run
// includes making its variant pack on the host, as the backend's eager calls do; a CUDA graph replay does not).
// One JSON line per shape, then per model the sums weighted by the calls per pass ("calls": how many times one
// UNet pass or one decode makes that convolution). The operands are a constant byte pattern: timing only,
// nothing is compared.
#include <gtest/gtest.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "backend/cuda/plans.h"
#include "core/error.h"
#include "cuda_test.h"
#include "gpu_timing.h"

namespace kakusan {
namespace {

using cuda::ConvLayout;
using cuda::ConvShape;

struct ProbeCase {
  const char* model;
  int calls;  // per UNet pass (both CFG halves in one batch) or per VAE decode
  int64_t batch, channels, size, out_channels, kernel, stride;
};

// From the models' configs (block_out_channels (320, 640, 1280, 1280), layers_per_block 2, 1x1 proj_in/out of
// the transformers; the VAE's (128, 256, 512, 512) with 3 resnets per decoder block). Every UNet convolution is
// listed; the VAE's decoder less post_quant_conv (1x1, 4 channels).
const ProbeCase kCases[] = {
    {"unet", 1, 2, 4, 64, 320, 3, 1},        // conv_in
    {"unet", 7, 2, 320, 64, 320, 3, 1},      // down 0, up 3 resnets
    {"unet", 2, 2, 640, 64, 320, 3, 1},      // up 3 conv1
    {"unet", 1, 2, 960, 64, 320, 3, 1},      // up 3 conv1
    {"unet", 10, 2, 320, 64, 320, 1, 1},     // proj_in/out
    {"unet", 2, 2, 640, 64, 320, 1, 1},      // up 3 shortcuts
    {"unet", 1, 2, 960, 64, 320, 1, 1},      // up 3 shortcut
    {"unet", 1, 2, 320, 64, 320, 3, 2},      // downsample 0
    {"unet", 1, 2, 640, 64, 640, 3, 1},      // up 2 upsampler
    {"unet", 1, 2, 320, 64, 4, 3, 1},        // conv_out
    {"unet", 1, 2, 320, 32, 640, 3, 1},      // down 1 conv1
    {"unet", 6, 2, 640, 32, 640, 3, 1},      // down 1, up 2 resnets
    {"unet", 1, 2, 960, 32, 640, 3, 1},      // up 2 conv1
    {"unet", 1, 2, 1280, 32, 640, 3, 1},     // up 2 conv1
    {"unet", 1, 2, 1920, 32, 640, 3, 1},     // up 2 conv1
    {"unet", 10, 2, 640, 32, 640, 1, 1},     // proj_in/out
    {"unet", 1, 2, 320, 32, 640, 1, 1},      // down 1 shortcut
    {"unet", 1, 2, 960, 32, 640, 1, 1},      // up 2 shortcuts
    {"unet", 1, 2, 1280, 32, 640, 1, 1},
    {"unet", 1, 2, 1920, 32, 640, 1, 1},
    {"unet", 1, 2, 640, 32, 640, 3, 2},      // downsample 1
    {"unet", 1, 2, 1280, 32, 1280, 3, 1},    // up 1 upsampler
    {"unet", 1, 2, 640, 16, 1280, 3, 1},     // down 2 conv1
    {"unet", 7, 2, 1280, 16, 1280, 3, 1},    // down 2, up 1 resnets, up 0 upsampler
    {"unet", 2, 2, 2560, 16, 1280, 3, 1},    // up 1 conv1
    {"unet", 1, 2, 1920, 16, 1280, 3, 1},    // up 1 conv1
    {"unet", 10, 2, 1280, 16, 1280, 1, 1},   // proj_in/out
    {"unet", 1, 2, 640, 16, 1280, 1, 1},     // down 2 shortcut
    {"unet", 2, 2, 2560, 16, 1280, 1, 1},    // up 1 shortcuts
    {"unet", 1, 2, 1920, 16, 1280, 1, 1},
    {"unet", 1, 2, 1280, 16, 1280, 3, 2},    // downsample 2
    {"unet", 11, 2, 1280, 8, 1280, 3, 1},    // down 3, mid, up 0 resnets
    {"unet", 3, 2, 2560, 8, 1280, 3, 1},     // up 0 conv1
    {"unet", 3, 2, 2560, 8, 1280, 1, 1},     // up 0 shortcuts
    {"unet", 2, 2, 1280, 8, 1280, 1, 1},     // mid proj_in/out
    {"vae", 1, 1, 4, 64, 512, 3, 1},         // conv_in
    {"vae", 10, 1, 512, 64, 512, 3, 1},      // mid, up 0
    {"vae", 7, 1, 512, 128, 512, 3, 1},      // up 0 upsampler, up 1
    {"vae", 1, 1, 512, 256, 512, 3, 1},      // up 1 upsampler
    {"vae", 1, 1, 512, 256, 256, 3, 1},      // up 2 conv1
    {"vae", 5, 1, 256, 256, 256, 3, 1},      // up 2
    {"vae", 1, 1, 512, 256, 256, 1, 1},      // up 2 shortcut
    {"vae", 1, 1, 256, 512, 256, 3, 1},      // up 2 upsampler
    {"vae", 1, 1, 256, 512, 128, 3, 1},      // up 3 conv1
    {"vae", 5, 1, 128, 512, 128, 3, 1},      // up 3
    {"vae", 1, 1, 256, 512, 128, 1, 1},      // up 3 shortcut
    {"vae", 1, 1, 128, 512, 3, 3, 1},        // conv_out
};

// Graph plans are made until this much time went into them (a runtime-fusion engine may compile a kernel per
// shape); later shapes report "not tried", so the probe stays within its limit in the device check.
constexpr double kPlanBudgetMs = 10000;

// A [n, c, h, w] tensor's layout for the strided copy, stored NCHW or NHWC.
cuda::Layout layout_of(int64_t n, int64_t c, int64_t h, int64_t w, ConvLayout layout) {
  cuda::Layout l;
  l.rank = 4;
  const std::vector<int64_t> shape{n, c, h, w}, strides = cuda::conv_strides(shape, layout);
  for (int i = 0; i < 4; ++i) {
    l.shape[i] = shape[i];
    l.strides[i] = strides[i];
  }
  return l;
}

std::string json_ms(float ms) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4f", ms);
  return text;
}

TEST(CudaConvProbe, Sd15ConvolutionsTimedInNchwAndNhwc) {
  KK_REQUIRE_CUDA();
  const cuda::Libraries& l = cuda::lib();
  cudnnHandle_t dnn = nullptr;
  ASSERT_EQ(l.cudnnCreate(&dnn), CUDNN_STATUS_SUCCESS);
  // The largest operands of the list, each buffer once (f16 x and w, f32 x and y, f32 bias, the workspace cap).
  size_t x_max = 0, w_max = 0, y_max = 0, k_max = 0;
  for (const ProbeCase& c : kCases) {
    const int64_t out = (c.size + 2 * (c.kernel / 2) - c.kernel) / c.stride + 1;
    x_max = std::max<size_t>(x_max, c.batch * c.channels * c.size * c.size);
    w_max = std::max<size_t>(w_max, c.out_channels * c.channels * c.kernel * c.kernel);
    y_max = std::max<size_t>(y_max, c.batch * c.out_channels * out * out);
    k_max = std::max<size_t>(k_max, c.out_channels);
  }
  void *x16, *x32, *w16, *y, *y2, *bias, *workspace;
  for (auto [p, bytes] : {std::pair{&x16, 2 * x_max}, {&x32, 4 * x_max}, {&w16, 2 * w_max}, {&y, 4 * y_max},
                          {&y2, 4 * y_max}, {&bias, 4 * k_max}, {&workspace, cuda::CudaBackend::kConvWorkspaceLimit}}) {
    ASSERT_EQ(cudaMalloc(p, bytes), cudaSuccess);
    ASSERT_EQ(cudaMemset(*p, 0x20, bytes), cudaSuccess);  // small finite values in f16, bf16 and f32
  }
  std::printf("{\"measurement\": \"conv_probe\", \"cudnn_version\": %zu}\n", l.cudnnGetVersion());
  std::fflush(stdout);
  // model -> column -> the sum of calls x ms, and how many shapes it has (graph columns lack refused shapes)
  std::map<std::string, std::map<std::string, double>> totals;
  std::map<std::string, std::map<std::string, int>> shapes;
  double plan_ms = 0;
  for (const ProbeCase& c : kCases) {
    const int64_t pad = c.kernel / 2;
    const ConvShape s{c.batch, c.channels, c.size, c.size, c.out_channels, c.kernel, c.kernel, pad, pad, c.stride};
    char name[96];
    std::snprintf(name, sizeof(name), "x%ldx%ldx%ldx%ld_w%ldx%ldx%ldx%ld_s%ld", long(s.batch), long(s.channels),
                  long(s.height), long(s.width), long(s.out_channels), long(s.channels), long(s.kernel_h),
                  long(s.kernel_w), long(s.stride));
    SCOPED_TRACE(name);
    std::string line = std::string("{\"measurement\": \"conv_layout_f16\", \"model\": \"") + c.model +
                       "\", \"shape\": \"" + name + "\", \"calls\": " + std::to_string(c.calls);
    auto column = [&](const std::string& key, float ms) {
      EXPECT_TRUE(std::isfinite(ms) && ms > 0) << key;
      line += ", \"" + key + "\": " + json_ms(ms);
      totals[c.model][key] += c.calls * double(ms);
      ++shapes[c.model][key];
    };
    // A refusal (no algorithm, no engine, a failed run) is a result too: its reason goes on the line.
    auto refused = [&](const std::string& tag, std::string why) {
      for (char& ch : why)
        if (ch == '"' || ch == '\\' || ch == '\n') ch = '\'';
      line += ", \"" + tag + "\": \"refused: " + why + "\"";
    };
    for (ConvLayout layout : {ConvLayout::NCHW, ConvLayout::NHWC}) {
      const std::string tag = layout == ConvLayout::NCHW ? "nchw" : "nhwc";
      try {
        const auto plan = cuda::make_conv_descriptor_plan(dnn, s, DType::F16, layout);
        const float one = 1.0f, zero = 0.0f;
        column(tag + "_ms", testing::median_gpu_ms([&] {
                 EXPECT_EQ(l.cudnnConvolutionForward(dnn, &one, plan->x, x16, plan->w, w16, plan->conv, plan->algo,
                                                     workspace, plan->workspace, &zero, plan->y, y),
                           CUDNN_STATUS_SUCCESS);
               }));
        line += ", \"" + tag + "_algo\": " + std::to_string(int(plan->algo));
      } catch (const Error& e) {
        refused(tag, e.what());
      }
    }
    for (ConvLayout layout : {ConvLayout::NCHW, ConvLayout::NHWC}) {
      const std::string tag = layout == ConvLayout::NCHW ? "graph_nchw" : "graph_nhwc";
      if (plan_ms > kPlanBudgetMs) {
        line += ", \"" + tag + "\": \"not tried (the probe's plan budget is spent)\"";
        continue;
      }
      const auto start = std::chrono::steady_clock::now();
      std::string why;
      const auto plan = cuda::make_conv_graph_plan(dnn, s, DType::F16, true, layout, why);
      const double built = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      plan_ms += built;
      line += ", \"" + tag + "_plan_ms\": " + json_ms(float(built));
      if (!plan) {
        refused(tag, why);
        continue;
      }
      try {
        column(tag + "_ms", testing::median_gpu_ms([&] {
                 cuda::run_conv_graph_plan(dnn, *plan, x16, w16, static_cast<const float*>(bias),
                                           static_cast<float*>(y), workspace);
               }));
      } catch (const Error& e) {
        refused(tag, e.what());
      }
    }
    const int64_t out = s.out_height();
    const int64_t nx = s.batch * s.channels * s.height * s.width, ny = s.batch * s.out_channels * out * out;
    column("to_f16_ms", testing::median_gpu_ms([&] {
             EXPECT_EQ(cuda::launch_convert(x32, cuda::kF32, x16, cuda::kF16, nx, nullptr), cudaSuccess);
           }));
    column("to_nhwc_ms", testing::median_gpu_ms([&] {
             EXPECT_EQ(cuda::launch_strided_copy(x32, cuda::kF32, layout_of(s.batch, s.channels, s.height, s.width,
                                                                            ConvLayout::NCHW),
                                                 x16, cuda::kF16,
                                                 layout_of(s.batch, s.channels, s.height, s.width, ConvLayout::NHWC),
                                                 nx, nullptr),
                       cudaSuccess);
           }));
    column("from_nhwc_ms", testing::median_gpu_ms([&] {
             EXPECT_EQ(cuda::launch_strided_copy(y, cuda::kF32,
                                                 layout_of(s.batch, s.out_channels, out, out, ConvLayout::NHWC), y2,
                                                 cuda::kF32,
                                                 layout_of(s.batch, s.out_channels, out, out, ConvLayout::NCHW), ny,
                                                 nullptr),
                       cudaSuccess);
           }));
    std::printf("%s}\n", line.c_str());
    std::fflush(stdout);  // line by line: a run stopped at its time limit keeps what it measured
  }
  for (const auto& [model, columns] : totals) {
    std::string line = "{\"measurement\": \"conv_layout_f16_total\", \"model\": \"" + model + "\"";
    for (const auto& [key, ms] : columns)
      line += ", \"" + key + "\": " + json_ms(float(ms)) + ", \"" + key + "_shapes\": " +
              std::to_string(shapes[model][key]);
    std::printf("%s}\n", line.c_str());
    std::fflush(stdout);
  }
  for (void* p : {x16, x32, w16, y, y2, bias, workspace}) cudaFree(p);
  l.cudnnDestroy(dnn);
}

}  // namespace
}  // namespace kakusan
