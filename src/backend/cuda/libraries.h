// cuBLASLt and cuDNN, opened at run time (dlopen) when the first CUDA backend is made, not linked: loading
// them costs some 200 MB of resident memory (their relocations), which every CPU run of a CUDA-enabled build
// would otherwise pay. The CUDA runtime itself is linked statically and opens the driver the same way.
#pragma once

#include <cublasLt.h>
#include <cudnn.h>

namespace kakusan::cuda {

#define KK_CUBLASLT_FUNCTIONS(X)                                                                             \
  X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetStatusString) X(cublasLtMatmul)                          \
  X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy)                 \
  X(cublasLtMatmulDescSetAttribute) X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy)     \
  X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy)

#define KK_CUDNN_FUNCTIONS(X)                                                                                \
  X(cudnnCreate) X(cudnnDestroy) X(cudnnSetStream) X(cudnnGetErrorString) X(cudnnConvolutionForward)         \
  X(cudnnCreateConvolutionDescriptor) X(cudnnCreateFilterDescriptor) X(cudnnCreateTensorDescriptor)          \
  X(cudnnDestroyConvolutionDescriptor) X(cudnnDestroyFilterDescriptor) X(cudnnDestroyTensorDescriptor)       \
  X(cudnnGetConvolution2dForwardOutputDim) X(cudnnGetConvolutionForwardAlgorithm_v7)                         \
  X(cudnnSetConvolution2dDescriptor) X(cudnnSetConvolutionMathType) X(cudnnSetFilter4dDescriptor)            \
  X(cudnnSetTensor4dDescriptor) X(cudnnGetVersion)                                                           \
  X(cudnnBackendCreateDescriptor) X(cudnnBackendDestroyDescriptor) X(cudnnBackendSetAttribute)               \
  X(cudnnBackendGetAttribute) X(cudnnBackendFinalize) X(cudnnBackendExecute)

// cuDNN 9 marks its descriptor API deprecated in favour of the graph API; it is still supported.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct Libraries {
#define KK_POINTER(name) decltype(&::name) name = nullptr;
  KK_CUBLASLT_FUNCTIONS(KK_POINTER)
  KK_CUDNN_FUNCTIONS(KK_POINTER)
#undef KK_POINTER
};
#pragma GCC diagnostic pop

// The functions, loaded on the first call (thread-safe); throws Error naming the library that could not be
// opened ("libcudnn.so.9: cannot open shared object file ...") or the function it lacks.
const Libraries& lib();

}  // namespace kakusan::cuda
