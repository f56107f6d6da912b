// Copies with dtype conversion: the strided copy behind Backend::copy, upload/download of non-contiguous
// views, padding for convolutions, and the contiguous conversion that rounds activations to a weight's dtype.
#include "backend/cuda/device_util.cuh"

namespace kakusan::cuda {
namespace {

// Element offset of row-major index i in a layout.
__device__ __forceinline__ int64_t offset_of(const Layout& l, int64_t i) {
  int64_t offset = 0;
  for (int d = l.rank - 1; d >= 0; --d) {
    offset += (i % l.shape[d]) * l.strides[d];
    i /= l.shape[d];
  }
  return offset;
}

__global__ void strided_copy_kernel(const void* x, Dt xt, Layout xl, void* y, Dt yt, Layout yl, int64_t n) {
  KK_GRID_STRIDE(i, n) {
    const int64_t xo = offset_of(xl, i), yo = offset_of(yl, i);
    if (xt == kI64 && yt == kI64)
      static_cast<int64_t*>(y)[yo] = static_cast<const int64_t*>(x)[xo];
    else
      store_float(y, yt, yo, load_as_float(x, xt, xo));
  }
}

__global__ void convert_kernel(const void* x, Dt xt, void* y, Dt yt, int64_t n) {
  KK_GRID_STRIDE(i, n) store_float(y, yt, i, load_as_float(x, xt, i));
}

}  // namespace

cudaError_t launch_strided_copy(const void* x, Dt x_dtype, const Layout& x_layout, void* y, Dt y_dtype,
                                const Layout& y_layout, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  strided_copy_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, x_dtype, x_layout, y, y_dtype, y_layout, n);
  return cudaGetLastError();
}

cudaError_t launch_convert(const void* x, Dt x_dtype, void* y, Dt y_dtype, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  convert_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, x_dtype, y, y_dtype, n);
  return cudaGetLastError();
}

}  // namespace kakusan::cuda
