// Elementwise ops on contiguous f32: activations, add, scale/divide, classifier-free guidance, GEGLU, the VAE's
// Gaussian draw and the bias epilogue of convolutions. Where torch rounds after each operation (guidance,
// the Gaussian draw) the products and sums use __fmul_rn/__fadd_rn so nvcc cannot fuse them.
#include "backend/cuda/device_util.cuh"

namespace kakusan::cuda {
namespace {

// kakusan::Activation's values, in order.
enum Act : int { kNone, kSiLU, kGELU, kGELUTanh, kQuickGELU, kReLU, kSoftClamp3, kSignedToUnit, kUnitToSigned };

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float apply(int act, float x) {
  switch (act) {
    case kSiLU: return x / (1.0f + expf(-x));
    case kGELU: return gelu(x);
    case kGELUTanh: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case kQuickGELU: return x / (1.0f + expf(-1.702f * x));
    case kReLU: return x > 0.0f ? x : 0.0f;
    case kSoftClamp3: return 3.0f * tanhf(x / 3.0f);
    case kSignedToUnit: return __fdiv_rn(__fadd_rn(x, 1.0f), 2.0f);
    case kUnitToSigned: return __fsub_rn(__fmul_rn(2.0f, x), 1.0f);
    default: return x;
  }
}

__global__ void activation_kernel(const float* x, int act, float* y, int64_t n) {
  KK_GRID_STRIDE(i, n) y[i] = apply(act, x[i]);
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  KK_GRID_STRIDE(i, n) y[i] = __fadd_rn(a[i], b[i]);
}

__global__ void scale_kernel(const float* x, float alpha, bool divide, float* y, int64_t n) {
  KK_GRID_STRIDE(i, n) y[i] = divide ? __fdiv_rn(x[i], alpha) : __fmul_rn(x[i], alpha);
}

__global__ void cfg_kernel(const float* pred, float guidance, float* out, int64_t n) {
  KK_GRID_STRIDE(i, n) {
    const float uncond = pred[i], text = pred[n + i];
    out[i] = __fadd_rn(uncond, __fmul_rn(guidance, __fsub_rn(text, uncond)));
  }
}

__global__ void geglu_kernel(const float* x, float* y, int64_t rows, int64_t cols) {
  KK_GRID_STRIDE(i, rows * cols) {
    const int64_t r = i / cols, j = i % cols;
    y[i] = x[r * 2 * cols + j] * gelu(x[r * 2 * cols + cols + j]);
  }
}

__global__ void gaussian_kernel(const float* moments, const float* noise, float* y, int64_t batch,
                                int64_t per_sample) {
  KK_GRID_STRIDE(i, batch * per_sample) {
    const int64_t b = i / per_sample, e = i % per_sample;
    const float mean = moments[2 * b * per_sample + e], logvar = moments[(2 * b + 1) * per_sample + e];
    // exp in double, rounded once: the correctly rounded float the CPU's expf gives (device expf: 2 ulp).
    const float std = float(exp(double(__fmul_rn(0.5f, fminf(fmaxf(logvar, -30.0f), 20.0f)))));
    y[i] = __fadd_rn(mean, __fmul_rn(std, noise[i]));
  }
}

__global__ void bias_kernel(const void* src, Dt src_dtype, const void* bias, Dt bias_dtype, float* y,
                            int64_t channels, int64_t spatial, int64_t n) {
  KK_GRID_STRIDE(i, n) {
    const float v = src ? load_as_float(src, src_dtype, i) : y[i];
    y[i] = bias ? __fadd_rn(v, load_as_float(bias, bias_dtype, (i / spatial) % channels)) : v;
  }
}

}  // namespace

cudaError_t launch_activation(const float* x, int act, float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) activation_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, act, y, n);
  return cudaGetLastError();
}

cudaError_t launch_add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) add_kernel<<<grid_for(n), kThreads, 0, stream>>>(a, b, y, n);
  return cudaGetLastError();
}

cudaError_t launch_scale(const float* x, float alpha, bool divide, float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) scale_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, alpha, divide, y, n);
  return cudaGetLastError();
}

cudaError_t launch_cfg_combine(const float* pred, float guidance, float* out, int64_t n, cudaStream_t stream) {
  if (n > 0) cfg_kernel<<<grid_for(n), kThreads, 0, stream>>>(pred, guidance, out, n);
  return cudaGetLastError();
}

cudaError_t launch_geglu(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows * cols > 0) geglu_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(x, y, rows, cols);
  return cudaGetLastError();
}

cudaError_t launch_gaussian_sample(const float* moments, const float* noise, float* y, int64_t batch,
                                   int64_t per_sample, cudaStream_t stream) {
  const int64_t n = batch * per_sample;
  if (n > 0) gaussian_kernel<<<grid_for(n), kThreads, 0, stream>>>(moments, noise, y, batch, per_sample);
  return cudaGetLastError();
}

cudaError_t launch_bias_nchw(const void* src, Dt src_dtype, const void* bias, Dt bias_dtype, float* y,
                             int64_t batch, int64_t channels, int64_t spatial, cudaStream_t stream) {
  const int64_t n = batch * channels * spatial;
  if (n > 0)
    bias_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, src_dtype, bias, bias_dtype, y, channels, spatial, n);
  return cudaGetLastError();
}

}  // namespace kakusan::cuda
