// The cached per-shape plans of linear (cuBLASLt) and conv2d (cuDNN's descriptor and graph APIs); complete
// here so that CudaBackend's maps of them can be destroyed in cuda_backend.cpp, and the plan makers declared
// here so that the layout probe (tests/cuda) builds the same plans in either layout.
#pragma once

#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/libraries.h"

// cuDNN 9 marks its descriptor API deprecated in favour of the graph API; it is still supported.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace kakusan::cuda {

struct CudaBackend::GemmPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool fused_bias = false;  // the bias is the BIAS epilogue (else a kernel after the product)
  ~GemmPlan() {
    if (d) lib().cublasLtMatrixLayoutDestroy(d);
    if (b) lib().cublasLtMatrixLayoutDestroy(b);
    if (a) lib().cublasLtMatrixLayoutDestroy(a);
    if (op) lib().cublasLtMatmulDescDestroy(op);
  }
};

struct CudaBackend::ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  size_t workspace = 0;
  ~ConvPlan() {
    if (conv) lib().cudnnDestroyConvolutionDescriptor(conv);
    if (w) lib().cudnnDestroyFilterDescriptor(w);
    if (y) lib().cudnnDestroyTensorDescriptor(y);
    if (x) lib().cudnnDestroyTensorDescriptor(x);
  }
};

// A finalized execution plan of cuDNN's graph API (conv_graph.cpp) and every descriptor it was made from,
// destroyed in reverse order (a plan refers to its engine config, which refers to the operation graph).
struct CudaBackend::ConvGraphPlan {
  std::vector<cudnnBackendDescriptor_t> owned;
  cudnnBackendDescriptor_t plan = nullptr;
  size_t workspace = 0;
  bool bias = false;
  ConvGraphPlan() = default;
  ConvGraphPlan(const ConvGraphPlan&) = delete;
  ConvGraphPlan& operator=(const ConvGraphPlan&) = delete;
  ~ConvGraphPlan() {
    for (auto it = owned.rbegin(); it != owned.rend(); ++it) lib().cudnnBackendDestroyDescriptor(*it);
  }
};

// Strides of a [n, c, h, w] tensor (dimensions always in NCHW order, as the graph API takes them; the strides
// say how they lie) stored NCHW or NHWC.
std::vector<int64_t> conv_strides(const std::vector<int64_t>& nchw_dims, ConvLayout layout);

// cuDNN's name for an f32, f16 or bf16 tensor.
cudnnDataType_t dnn_type(DType t);

// The descriptor-API plan of one shape in `layout` (conv2d.cpp): cuDNN's heuristic's first algorithm whose
// workspace fits kConvWorkspaceLimit (f32: FMA math, no FFT or Winograd). Throws when there is none.
std::unique_ptr<CudaBackend::ConvPlan> make_conv_descriptor_plan(cudnnHandle_t dnn, const ConvShape& s, DType dtype,
                                                                 ConvLayout layout);

// The graph-API plan (conv_graph.cpp): y (f32) = conv(x, w) (+ bias, f32 [out_channels]) with x and w in
// `dtype` (f16/bf16), f32 accumulation. nullptr, with cuDNN's reason in `why`, when no engine takes the graph.
std::unique_ptr<CudaBackend::ConvGraphPlan> make_conv_graph_plan(cudnnHandle_t dnn, const ConvShape& s, DType dtype,
                                                                 bool bias, ConvLayout layout, std::string& why);
// Enqueues the plan on the handle's stream; pointers must be 16-byte aligned (the plan's tensors say so).
void run_conv_graph_plan(cudnnHandle_t dnn, const CudaBackend::ConvGraphPlan& plan, const void* x, const void* w,
                         const float* bias, float* y, void* workspace);

}  // namespace kakusan::cuda

#pragma GCC diagnostic pop
