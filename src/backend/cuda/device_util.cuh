// Device helpers shared by the kernel files: loads and stores in any float dtype, rounding to a product
// precision, grid sizes, and the torch-exact roundings (no fused multiply-add where torch rounds twice).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/kernels.h"

namespace kakusan::cuda {

__device__ __forceinline__ float load_as_float(const void* p, Dt dtype, int64_t i) {
  switch (dtype) {
    case kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case kI64: return float(static_cast<const int64_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void store_float(void* p, Dt dtype, int64_t i, float v) {
  switch (dtype) {
    case kF16: static_cast<__half*>(p)[i] = __float2half_rn(v); return;
    case kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); return;
    case kI64: static_cast<int64_t*>(p)[i] = int64_t(v); return;
    default: static_cast<float*>(p)[i] = v; return;
  }
}

// An optional per-channel parameter (gamma, beta, bias): `fallback` when absent.
__device__ __forceinline__ float param_or(const void* p, Dt dtype, int64_t i, float fallback) {
  return p ? load_as_float(p, dtype, i) : fallback;
}

// v rounded to the product precision (f32: unchanged).
__device__ __forceinline__ float round_to(float v, Dt precision) {
  if (precision == kF16) return __half2float(__float2half_rn(v));
  if (precision == kBF16) return __bfloat162float(__float2bfloat16_rn(v));
  return v;
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (capped: the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65535 * 16 ? 65535 * 16 : blocks));
}

#define KK_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

}  // namespace kakusan::cuda
