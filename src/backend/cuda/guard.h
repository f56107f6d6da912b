// The entry of every CudaBackend operation: holds the op mutex and makes the backend's device current on
// the calling thread (a server may call from any worker).
#pragma once

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace kakusan::cuda {

struct CudaBackend::Guard {
  std::lock_guard<std::recursive_mutex> lock;  // recursive: a capturing thread holds it already
  explicit Guard(CudaBackend& be) : lock(be.mutex_) { check(cudaSetDevice(be.index_), "select device"); }
};

// A view's shape and strides for the kernels (rank <= 8).
Layout layout_of(const TensorView& v);

}  // namespace kakusan::cuda
