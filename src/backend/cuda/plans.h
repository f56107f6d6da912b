// The cached per-shape plans of linear (cuBLASLt) and conv2d (cuDNN); complete here so that CudaBackend's
// maps of them can be destroyed in cuda_backend.cpp.
#pragma once

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

}  // namespace kakusan::cuda

#pragma GCC diagnostic pop
