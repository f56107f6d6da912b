// launch_attention: which attention kernel a shape takes, and the launches over whole batches that keep
// (batch, head) pairs within grid.y. Host code only, so that the choice is tested without a GPU.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "backend/cuda/kernels.h"

namespace kakusan::cuda {
namespace {

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

AttentionKernel attention_kernel_for(const AttentionShape& s, const float* q, const float* k, const float* v,
                                     const float* out) {
  const bool reduced = s.precision == kF16 || s.precision == kBF16;
  auto fits = [](int64_t dim) { return dim > 0 && dim % 8 == 0 && dim <= kMaxMmaAttentionHeadDim; };
  // Rows are read as float4 (8 elements per shared-memory chunk, which is why dims are multiples of 8).
  bool float4_rows = aligned(q, 16) && aligned(k, 16) && aligned(v, 16);
  for (int64_t stride : {s.q_batch_stride, s.q_token_stride, s.k_batch_stride, s.k_token_stride, s.v_batch_stride,
                         s.v_token_stride})
    float4_rows = float4_rows && stride % 4 == 0;
  const bool tensor_cores = reduced && fits(s.head_dim) && fits(s.value_dim) && float4_rows && aligned(out, 8);
  return tensor_cores ? AttentionKernel::TensorCores : AttentionKernel::CudaCores;
}

bool tensor_core_attention_allowed(const char* env_value) {
  return env_value == nullptr || std::string_view(env_value) != "cuda-cores";
}

int64_t attention_batches_per_launch(const AttentionShape& s) {
  return s.heads > kMaxAttentionGridY ? 0 : std::max<int64_t>(1, kMaxAttentionGridY / std::max<int64_t>(1, s.heads));
}

cudaError_t launch_attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                             cudaStream_t stream) {
  if (s.batch * s.heads * s.q_len == 0) return cudaSuccess;
  if (std::max(s.head_dim, s.value_dim) > kMaxAttentionHeadDim) return cudaErrorInvalidValue;
  const int64_t per_launch = attention_batches_per_launch(s);
  if (per_launch == 0) return cudaErrorInvalidConfiguration;
  static const bool allowed = tensor_core_attention_allowed(std::getenv("KAKUSAN_CUDA_ATTENTION"));
  const bool mma = allowed && attention_kernel_for(s, q, k, v, out) == AttentionKernel::TensorCores;
  for (int64_t b0 = 0; b0 < s.batch; b0 += per_launch) {
    AttentionShape part = s;
    part.batch = std::min(per_launch, s.batch - b0);
    const float *qp = q + b0 * s.q_batch_stride, *kp = k + b0 * s.k_batch_stride, *vp = v + b0 * s.v_batch_stride;
    float* op = out + b0 * s.q_len * s.heads * s.value_dim;
    const cudaError_t e = mma ? launch_attention_mma(qp, kp, vp, op, part, stream)
                              : launch_attention_cuda_cores(qp, kp, vp, op, part, stream);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace kakusan::cuda
