// GroupNorm (+ SiLU) and LayerNorm: one block per group / row, two passes over it for the statistics (the
// mean, then the mean squared deviation: no cancellation of E[x²] − E[x]²), all in f32, then one pass that
// normalises, applies gamma/beta and the activation. y may alias x (each element is read before it is written,
// by the same thread).
#include "backend/cuda/device_util.cuh"

namespace kakusan::cuda {
namespace {

constexpr int kNormThreads = 512;

// Sum of v over the block; every thread gets the result. `shared` holds one float per warp.
__device__ float block_sum(float v, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // `shared` may still be read from the previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += shared[w];
  return total;
}

// Mean and 1/sqrt(var + eps) of x[0, n).
__device__ void statistics(const float* x, int64_t n, float eps, float* shared, float& mean, float& rstd) {
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += x[i];
  mean = block_sum(sum, shared) / float(n);
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = x[i] - mean;
    squares += d * d;
  }
  rstd = rsqrtf(block_sum(squares, shared) / float(n) + eps);
}

// Block (group g of sample b): channels g·cpg .. (g+1)·cpg − 1, each `spatial` long, contiguous.
__global__ void group_norm_kernel(const float* x, float* y, int64_t channels, int64_t spatial, int groups,
                                  const void* gamma, Dt gt, const void* beta, Dt bt, float eps, bool silu) {
  __shared__ float shared[32];
  const int64_t cpg = channels / groups, n = cpg * spatial;
  const int64_t base = int64_t(blockIdx.x) * n;  // blockIdx.x = b · groups + g
  const int64_t first_channel = int64_t(blockIdx.x % groups) * cpg;
  float mean, rstd;
  statistics(x + base, n, eps, shared, mean, rstd);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t c = first_channel + i / spatial;
    float v = (x[base + i] - mean) * rstd;
    v = v * param_or(gamma, gt, c, 1.0f) + param_or(beta, bt, c, 0.0f);
    if (silu) v = v / (1.0f + expf(-v));
    y[base + i] = v;
  }
}

__global__ void layer_norm_kernel(const float* x, float* y, int64_t cols, const void* gamma, Dt gt,
                                  const void* beta, Dt bt, float eps) {
  __shared__ float shared[32];
  const int64_t base = int64_t(blockIdx.x) * cols;
  float mean, rstd;
  statistics(x + base, cols, eps, shared, mean, rstd);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = (x[base + j] - mean) * rstd;
    y[base + j] = v * param_or(gamma, gt, j, 1.0f) + param_or(beta, bt, j, 0.0f);
  }
}

}  // namespace

cudaError_t launch_group_norm(const float* x, float* y, int64_t batch, int64_t channels, int64_t spatial,
                              int groups, const void* gamma, Dt gamma_dtype, const void* beta, Dt beta_dtype,
                              float eps, bool silu, cudaStream_t stream) {
  const int64_t blocks = batch * groups;
  if (blocks > 0 && spatial > 0)
    group_norm_kernel<<<unsigned(blocks), kNormThreads, 0, stream>>>(x, y, channels, spatial, groups, gamma,
                                                                     gamma_dtype, beta, beta_dtype, eps, silu);
  return cudaGetLastError();
}

cudaError_t launch_layer_norm(const float* x, float* y, int64_t rows, int64_t cols, const void* gamma,
                              Dt gamma_dtype, const void* beta, Dt beta_dtype, float eps, cudaStream_t stream) {
  if (rows > 0 && cols > 0) {
    const int threads = cols >= kNormThreads ? kNormThreads : (cols >= 256 ? 256 : 128);
    layer_norm_kernel<<<unsigned(rows), threads, 0, stream>>>(x, y, cols, gamma, gamma_dtype, beta, beta_dtype, eps);
  }
  return cudaGetLastError();
}

}  // namespace kakusan::cuda
