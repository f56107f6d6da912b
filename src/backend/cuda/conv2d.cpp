// conv2d on cuDNN (NCHW). f16/bf16 weights, by default: the descriptor API — operands in the weight's dtype,
// f32 accumulation, but its output is in the operands' dtype, so the result is rounded once to f16/bf16 before
// an f32 bias kernel adds the bias: one rounding more than backend.h's contract (at most 2^-11 relative for
// f16, 2^-8 for bf16). With KAKUSAN_CUDA_CONV=graph (ConvApi, cuda_backend.h): cuDNN's graph API
// (conv_graph.cpp) — the bias added in f32 inside the same kernel and an f32 output, the contract exactly;
// where cuDNN refuses that graph for a shape (no engine, a failed finalize), the descriptor API, counted. f32 weights always take the descriptor API, in
// true f32 (CUDNN_FMA_MATH: no TF32). Plans are made per shape and dtype on first use (the eager first step;
// never while capturing a CUDA graph) and cached; graph plans within a time budget (kConvGraphPlanBudgetMs).
// Asymmetric padding (the VAE's (0, 1, 0, 1) downsampling) is done by copying x into a zeroed, padded buffer.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/guard.h"
#include "backend/cuda/libraries.h"
#include "backend/cuda/plans.h"
#include "backend/op_checks.h"

// cuDNN 9 marks the descriptor API deprecated in favour of its graph API; it is still supported (here: f32,
// and the fallback of narrow shapes the graph API refuses).
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace kakusan::cuda {

cudnnDataType_t dnn_type(DType t) {
  switch (t) {
    case DType::F16: return CUDNN_DATA_HALF;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
  }
}

namespace {

int to_int(int64_t v, const char* what) {
  KK_CHECK(v >= 0 && v <= INT32_MAX, "cuda conv2d: ", what, " ", v, " exceeds cuDNN's int range");
  return int(v);
}

}  // namespace

std::unique_ptr<CudaBackend::ConvPlan> make_conv_descriptor_plan(cudnnHandle_t dnn, const ConvShape& s, DType dtype,
                                                                 ConvLayout layout) {
  auto plan = std::make_unique<CudaBackend::ConvPlan>();
  const cudnnDataType_t t = dnn_type(dtype);
  const cudnnTensorFormat_t format = layout == ConvLayout::NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const int n = to_int(s.batch, "batch"), c = to_int(s.channels, "channels"), h = to_int(s.height, "height"),
            w = to_int(s.width, "width"), o = to_int(s.out_channels, "out channels"),
            kh = to_int(s.kernel_h, "kernel"), kw = to_int(s.kernel_w, "kernel"), ph = int(s.pad_h),
            pw = int(s.pad_w), stride = int(s.stride);
  const Libraries& l = lib();
  check(l.cudnnCreateTensorDescriptor(&plan->x), "conv2d plan");
  check(l.cudnnSetTensor4dDescriptor(plan->x, format, t, n, c, h, w), "conv2d plan");
  check(l.cudnnCreateFilterDescriptor(&plan->w), "conv2d plan");
  check(l.cudnnSetFilter4dDescriptor(plan->w, t, format, o, c, kh, kw), "conv2d plan");
  check(l.cudnnCreateConvolutionDescriptor(&plan->conv), "conv2d plan");
  check(l.cudnnSetConvolution2dDescriptor(plan->conv, ph, pw, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                          CUDNN_DATA_FLOAT),
        "conv2d plan");
  check(l.cudnnSetConvolutionMathType(plan->conv, dtype == DType::F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH),
        "conv2d plan");
  int on = 0, oc = 0, oh = 0, ow = 0;
  check(l.cudnnGetConvolution2dForwardOutputDim(plan->conv, plan->x, plan->w, &on, &oc, &oh, &ow), "conv2d plan");
  check(l.cudnnCreateTensorDescriptor(&plan->y), "conv2d plan");
  check(l.cudnnSetTensor4dDescriptor(plan->y, format, t, on, oc, oh, ow), "conv2d plan");

  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  check(l.cudnnGetConvolutionForwardAlgorithm_v7(dnn, plan->x, plan->w, plan->conv, plan->y,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf),
        "conv2d algorithm");
  for (int i = 0; i < returned; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > CudaBackend::kConvWorkspaceLimit) continue;
    // fp32 must stay fp32: the descriptor keeps CUDNN_FMA_MATH (cuDNN's default math would let float
    // convolutions use TF32 on Ampere and later) and tensor-op entries are passed over. Narrow dtypes take the
    // math type cuDNN ranked the algorithm with.
    if (dtype == DType::F32) {
      if (perf[i].mathType == CUDNN_TENSOR_OP_MATH || perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
        continue;
      // Nor the transform algorithms (FFT, Winograd), whose error is well above f32 rounding: only the
      // direct and GEMM-based ones give the CPU's goldens.
      const cudnnConvolutionFwdAlgo_t a = perf[i].algo;
      if (a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
          a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED)
        continue;
    } else {
      check(l.cudnnSetConvolutionMathType(plan->conv, perf[i].mathType), "conv2d plan");
    }
    plan->algo = perf[i].algo;
    plan->workspace = perf[i].memory;
    return plan;
  }
  fail("cuda conv2d: cuDNN has no algorithm for x [", n, ", ", c, ", ", h, ", ", w, "], weight [", o, ", ", c, ", ",
       kh, ", ", kw, "] in ", dtype_name(dtype));
}

CudaBackend::ConvPlan& CudaBackend::conv_plan(const ConvShape& shape, DType dtype) {
  auto& slot = conv_plans_[{shape, int(dtype)}];
  if (!slot) slot = make_conv_descriptor_plan(dnn_, shape, dtype, ConvLayout::NCHW);
  return *slot;
}

CudaBackend::ConvGraphPlan* CudaBackend::conv_graph_plan(const ConvShape& shape, DType dtype, bool bias) {
  const auto key = std::tuple{shape, int(dtype), bias};
  if (auto it = conv_graph_plans_.find(key); it != conv_graph_plans_.end()) return it->second.get();
  // Finalizing a plan may compile a kernel (cuDNN's runtime fusion engines) and load it: not inside a capture.
  refuse_while_capturing("conv2d: a new cuDNN graph plan");
  std::string why = "the graph plans' time budget (" + std::to_string(int64_t(conv_graph_plan_budget_ms_)) +
                    " ms) is spent";
  std::unique_ptr<ConvGraphPlan> plan;
  if (conv_graph_plan_ms_ < conv_graph_plan_budget_ms_) {
    const auto start = std::chrono::steady_clock::now();
    plan = make_conv_graph_plan(dnn_, shape, dtype, bias, ConvLayout::NCHW, why);
    conv_graph_plan_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  if (!plan) {
    ++conv_graph_fallbacks_;
    last_conv_graph_refusal_ = std::move(why);
  }
  return (conv_graph_plans_[key] = std::move(plan)).get();
}

void CudaBackend::conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                         const TensorView& y) {
  const ConvDims d = check_conv2d(x, w, bias, p, y);
  for (const auto& [what, t] : {std::pair{"x", x}, {"weight", w}, {"bias", bias}, {"y", y}})
    require_mine("conv2d", what, t);
  KK_CHECK(y.is_contiguous(), "cuda conv2d: y must be contiguous");
  if (y.numel() == 0) return;
  Guard guard(*this);
  if (d.in_channels == 0 || d.height == 0 || d.width == 0) {  // every tap is padding: y = bias (or 0)
    // (cuDNN refuses an empty input; the host backends give the empty sum.)
    check(cudaMemsetAsync(y.data, 0, y.nbytes(), stream_), "conv2d");
    if (!bias.empty())
      check(launch_bias_nchw(nullptr, kF32, dense(bias, bias.dtype, kBias), Dt(bias.dtype),
                             static_cast<float*>(y.data), d.batch, d.out_channels, d.out_height * d.out_width,
                             stream_),
            "conv2d bias");
    return;
  }
  const DType t = w.dtype;  // products take the weight's precision
  const bool symmetric = p.pad_top == p.pad_bottom && p.pad_left == p.pad_right;
  int64_t height = d.height, width = d.width, pad_h = p.pad_top, pad_w = p.pad_left;
  const void* xp = nullptr;
  if (symmetric) {
    xp = dense(x, t, kInput);
  } else {
    height += p.pad_top + p.pad_bottom;
    width += p.pad_left + p.pad_right;
    pad_h = pad_w = 0;
    const size_t bytes = size_t(d.batch * d.in_channels * height * width) * dtype_size(t);
    void* padded = scratch(kInput, bytes);
    check(cudaMemsetAsync(padded, 0, bytes, stream_), "conv2d padding");
    const TensorView inner = TensorView(padded, t, device(), Shape{d.batch, d.in_channels, height, width})
                                 .narrow(2, p.pad_top, d.height)
                                 .narrow(3, p.pad_left, d.width);
    check(launch_strided_copy(x.data, Dt(x.dtype), layout_of(x), inner.data, Dt(t), layout_of(inner), x.numel(),
                              stream_),
          "conv2d padding");
    xp = padded;
  }
  const void* wp = dense(w, t, kWeight);
  const ConvShape shape{d.batch, d.in_channels, height, width, d.out_channels, d.kernel_h, d.kernel_w,
                        pad_h, pad_w, p.stride};
  const bool narrow = t != DType::F32;
  if (narrow && conv_api_ == ConvApi::Graph) {
    const float* bp = bias.empty() ? nullptr : static_cast<const float*>(dense(bias, DType::F32, kBias));
    const bool offered = conv_offers_graph(t, conv_api_, {xp, wp, bp, y.data});
    if (ConvGraphPlan* graph = offered ? conv_graph_plan(shape, t, bp != nullptr) : nullptr) {
      void* workspace = graph->workspace ? scratch(kWorkspace, graph->workspace) : nullptr;
      run_conv_graph_plan(dnn_, *graph, xp, wp, bp, static_cast<float*>(y.data), workspace);
      return;
    }
  }
  ConvPlan& plan = conv_plan(shape, t);
  void* workspace = plan.workspace ? scratch(kWorkspace, plan.workspace) : nullptr;
  void* out = narrow ? scratch(kOutput, size_t(y.numel()) * dtype_size(t)) : y.data;
  const float one = 1.0f, zero = 0.0f;
  check(lib().cudnnConvolutionForward(dnn_, &one, plan.x, xp, plan.w, wp, plan.conv, plan.algo, workspace,
                                      plan.workspace, &zero, plan.y, out),
        "conv2d");
  // Bias (and, for narrow weights, the widening of the output) in one pass.
  if (narrow || !bias.empty()) {
    const void* bp = bias.empty() ? nullptr : dense(bias, bias.dtype, kBias);
    check(launch_bias_nchw(narrow ? out : nullptr, Dt(t), bp, bias.empty() ? kF32 : Dt(bias.dtype),
                           static_cast<float*>(y.data), d.batch, d.out_channels, d.out_height * d.out_width, stream_),
          "conv2d bias");
  }
}

bool conv_offers_graph(DType weight, ConvApi api, std::initializer_list<const void*> operands) {
  if (weight == DType::F32 || api != ConvApi::Graph) return false;
  for (const void* p : operands)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;  // a view that starts inside a buffer
  return true;
}

ConvApi conv_api_for(const char* env_value) {
  const std::string_view v = env_value ? env_value : "";
  if (v.empty() || v == "descriptor") return ConvApi::Descriptor;
  if (v == "graph") return ConvApi::Graph;
  fail("KAKUSAN_CUDA_CONV=", v, ": expected descriptor (the default) or graph");
}

}  // namespace kakusan::cuda
