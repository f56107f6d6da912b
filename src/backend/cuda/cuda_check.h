// One-line errors for CUDA, cuBLASLt and cuDNN calls: each names the op (or the step) that failed and the
// library's status string, as every other kakusan::Error does. Included by the host (.cpp) files only.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/cuda/libraries.h"
#include "core/error.h"

namespace kakusan::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("cuda ", what, ": ", cudaGetErrorString(status));
}
inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) fail("cuda ", what, ": cuBLASLt ", lib().cublasLtGetStatusString(status));
}
inline void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) fail("cuda ", what, ": cuDNN ", lib().cudnnGetErrorString(status));
}

// After a kernel launch: a bad launch configuration (or an earlier asynchronous fault) surfaces here.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

}  // namespace kakusan::cuda
