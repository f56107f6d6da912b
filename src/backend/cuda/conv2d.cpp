// conv2d on cuDNN (NCHW), through cuDNN's descriptor API: per shape and dtype one plan (descriptors and the
// algorithm cuDNN's heuristic ranks first among those that fit the workspace), made on first use.
//
// Operands take the weight's dtype: f32 weights convolve in true f32 (CUDNN_FMA_MATH: no TF32), f16/bf16
// weights on the tensor cores with f32 accumulation (PSEUDO_HALF / PSEUDO_BFLOAT16 configurations). That API
// writes its output in the operands' dtype, so a narrow convolution's result is rounded once to f16/bf16
// before the bias is added in f32 — one rounding more than backend.h's contract (at most 2^-11 relative for
// f16, 2^-8 for bf16); cuDNN's graph API (a float output of half operands) removes it, and is the next step.
// Asymmetric padding (the VAE's (0, 1, 0, 1) downsampling) is done by copying x into a zeroed, padded buffer.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/guard.h"
#include "backend/cuda/libraries.h"
#include "backend/cuda/plans.h"
#include "backend/op_checks.h"

// cuDNN 9 marks the descriptor API deprecated in favour of its graph API; it is still supported and is the
// short way to a correct convolution.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace kakusan::cuda {
namespace {

cudnnDataType_t dnn_type(DType t) {
  switch (t) {
    case DType::F16: return CUDNN_DATA_HALF;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
  }
}

int to_int(int64_t v, const char* what) {
  KK_CHECK(v >= 0 && v <= INT32_MAX, "cuda conv2d: ", what, " ", v, " exceeds cuDNN's int range");
  return int(v);
}

}  // namespace

// dims: batch, in channels, padded height, padded width, out channels, kernel h, kernel w, pad h, pad w,
// stride, (unused), then the dtype.
CudaBackend::ConvPlan& CudaBackend::conv_plan(const int64_t dims[11], DType dtype) {
  auto& slot = conv_plans_[{dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7], dims[8], dims[9],
                            dims[10], int(dtype)}];
  if (slot) return *slot;
  auto plan = std::make_unique<ConvPlan>();
  const cudnnDataType_t t = dnn_type(dtype);
  const int n = to_int(dims[0], "batch"), c = to_int(dims[1], "channels"), h = to_int(dims[2], "height"),
            w = to_int(dims[3], "width"), o = to_int(dims[4], "out channels"), kh = to_int(dims[5], "kernel"),
            kw = to_int(dims[6], "kernel"), ph = int(dims[7]), pw = int(dims[8]), stride = int(dims[9]);
  check(lib().cudnnCreateTensorDescriptor(&plan->x), "conv2d plan");
  check(lib().cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, t, n, c, h, w), "conv2d plan");
  check(lib().cudnnCreateFilterDescriptor(&plan->w), "conv2d plan");
  check(lib().cudnnSetFilter4dDescriptor(plan->w, t, CUDNN_TENSOR_NCHW, o, c, kh, kw), "conv2d plan");
  check(lib().cudnnCreateConvolutionDescriptor(&plan->conv), "conv2d plan");
  check(lib().cudnnSetConvolution2dDescriptor(plan->conv, ph, pw, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT),
        "conv2d plan");
  check(lib().cudnnSetConvolutionMathType(plan->conv, dtype == DType::F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH),
        "conv2d plan");
  int on = 0, oc = 0, oh = 0, ow = 0;
  check(lib().cudnnGetConvolution2dForwardOutputDim(plan->conv, plan->x, plan->w, &on, &oc, &oh, &ow), "conv2d plan");
  check(lib().cudnnCreateTensorDescriptor(&plan->y), "conv2d plan");
  check(lib().cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, t, on, oc, oh, ow), "conv2d plan");

  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  check(lib().cudnnGetConvolutionForwardAlgorithm_v7(dnn_, plan->x, plan->w, plan->conv, plan->y,
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf),
        "conv2d algorithm");
  bool chosen = false;
  for (int i = 0; i < returned && !chosen; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kConvWorkspaceLimit) continue;
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
      check(lib().cudnnSetConvolutionMathType(plan->conv, perf[i].mathType), "conv2d plan");
    }
    plan->algo = perf[i].algo;
    plan->workspace = perf[i].memory;
    chosen = true;
  }
  KK_CHECK(chosen, "cuda conv2d: cuDNN has no algorithm for x [", n, ", ", c, ", ", h, ", ", w, "], weight [", o, ", ",
           c, ", ", kh, ", ", kw, "] in ", dtype_name(dtype));
  slot = std::move(plan);
  return *slot;
}

void CudaBackend::conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                         const TensorView& y) {
  const ConvDims d = check_conv2d(x, w, bias, p, y);
  for (const auto& [what, t] : {std::pair{"x", x}, {"weight", w}, {"bias", bias}, {"y", y}})
    require_mine("conv2d", what, t);
  KK_CHECK(y.is_contiguous(), "cuda conv2d: y must be contiguous");
  if (y.numel() == 0) return;
  Guard guard(*this);
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
  const int64_t dims[11] = {d.batch, d.in_channels, height, width, d.out_channels, d.kernel_h, d.kernel_w,
                            pad_h, pad_w, p.stride, 0};
  ConvPlan& plan = conv_plan(dims, t);
  void* workspace = plan.workspace ? scratch(kWorkspace, plan.workspace) : nullptr;
  void* out = t == DType::F32 ? y.data : scratch(kOutput, size_t(y.numel()) * dtype_size(t));
  const float one = 1.0f, zero = 0.0f;
  check(lib().cudnnConvolutionForward(dnn_, &one, plan.x, xp, plan.w, wp, plan.conv, plan.algo, workspace,
                                      plan.workspace, &zero, plan.y, out),
        "conv2d");
  // Bias (and, for narrow weights, the widening of the output) in one pass.
  const bool narrow = t != DType::F32;
  if (narrow || !bias.empty()) {
    const void* bp = bias.empty() ? nullptr : dense(bias, bias.dtype, kBias);
    check(launch_bias_nchw(narrow ? out : nullptr, Dt(t), bp, bias.empty() ? kF32 : Dt(bias.dtype),
                           static_cast<float*>(y.data), d.batch, d.out_channels, d.out_height * d.out_width, stream_),
          "conv2d bias");
  }
}

}  // namespace kakusan::cuda
