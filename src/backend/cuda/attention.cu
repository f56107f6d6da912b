// Attention as FlashAttention-2 computes it: a block takes BQ queries of one (batch, head), walks the keys in
// tiles of BK held in shared memory, and keeps per query a running max m, a running sum l and an f32
// accumulator, rescaled by exp(m_old − m_new) whenever the max grows (the online softmax), so the Tq × Tk
// score matrix never exists. Four threads share a query row: each scores every fourth key of a tile and owns
// every fourth output column; the row's max and sum are combined with warp shuffles.
//
// Precision (AttentionParams::precision): q, k and v are rounded to f16/bf16 as they enter shared memory, and
// the probabilities before P·V; scores, m, l and the accumulator stay f32 (the sum takes the unrounded
// probabilities, as torch's softmax does before its output is cast). In reduced precision the running "max"
// is the exponent k of a power-of-two shift (k = ceil(max · log2 e), backend/precision.h): rounding commutes
// with rescaling by a power of two, so the rounded probabilities e^(s − k·ln 2) are the reference's and the
// CPU's whatever the tile size.
//
// This is the portable CUDA-core kernel (no tensor cores): correct on every architecture, the one f32
// precision and the widest heads take, and the baseline the tensor-core kernel (attention_mma.cu) matches.
// attention_dispatch.cpp picks between them and splits the (batch, head) pairs over launches.
#include <cfloat>

#include "backend/cuda/device_util.cuh"

namespace kakusan::cuda {
namespace {

constexpr int kRowThreads = 4;  // threads per query row

template <int MAXD, int BQ, int BK>
__global__ void __launch_bounds__(BQ* kRowThreads)
    flash_attention_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                           float* __restrict__ out, AttentionShape s) {
  extern __shared__ float smem[];
  const int64_t D = s.head_dim, Dv = s.value_dim;
  float* qs = smem;            // [BQ][D]
  float* ks = qs + BQ * D;     // [BK][D]
  float* vs = ks + BK * D;     // [BK][Dv]
  float* ps = vs + BK * Dv;    // [BQ][BK]

  const int tid = threadIdx.x, r = tid / kRowThreads, g = tid % kRowThreads;
  const int64_t bh = blockIdx.y, b = bh / s.heads, h = bh % s.heads;
  const int64_t q0 = int64_t(blockIdx.x) * BQ, query = q0 + r;
  const float* qb = q + b * s.q_batch_stride + h * D;
  const float* kb = k + b * s.k_batch_stride + h * D;
  const float* vb = v + b * s.v_batch_stride + h * Dv;

  for (int64_t i = tid; i < BQ * D; i += blockDim.x) {
    const int64_t row = i / D, d = i % D;
    qs[i] = q0 + row < s.q_len ? round_to(qb[(q0 + row) * s.q_token_stride + d], s.precision) : 0.0f;
  }

  float acc[MAXD / kRowThreads];
#pragma unroll
  for (int i = 0; i < MAXD / kRowThreads; ++i) acc[i] = 0.0f;
  float m = -FLT_MAX, l = 0.0f;  // -FLT_MAX, not -inf: exp(m_old − m_new) stays finite

  // Causal: no query of this block sees a key past its last query.
  const int64_t kv_end = s.causal ? min(s.kv_len, q0 + BQ) : s.kv_len;
  for (int64_t k0 = 0; k0 < kv_end; k0 += BK) {
    __syncthreads();  // the previous tile is no longer read (and qs is written, on the first pass)
    for (int64_t i = tid; i < BK * D; i += blockDim.x) {
      const int64_t row = i / D, d = i % D;
      ks[i] = k0 + row < s.kv_len ? round_to(kb[(k0 + row) * s.k_token_stride + d], s.precision) : 0.0f;
    }
    for (int64_t i = tid; i < BK * Dv; i += blockDim.x) {
      const int64_t row = i / Dv, d = i % Dv;
      vs[i] = k0 + row < s.kv_len ? round_to(vb[(k0 + row) * s.v_token_stride + d], s.precision) : 0.0f;
    }
    __syncthreads();

    float scores[BK / kRowThreads];
    float tile_max = -FLT_MAX;
#pragma unroll
    for (int i = 0; i < BK / kRowThreads; ++i) {
      const int c = g + kRowThreads * i;
      const int64_t key = k0 + c;
      float dot = 0.0f;
      for (int64_t d = 0; d < D; ++d) dot += qs[r * D + d] * ks[c * D + d];
      const bool masked = key >= s.kv_len || (s.causal && key > query);
      scores[i] = masked ? -INFINITY : dot * s.scale;
      tile_max = fmaxf(tile_max, scores[i]);
    }
    // The row's four threads are consecutive lanes of one warp.
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const bool reduced = s.precision != kF32;
    const float m_new = fmaxf(m, reduced ? ceilf(tile_max * 1.44269504088896341f) : tile_max);
    const float shift = reduced ? m_new * 0.693147180559945309f : m_new;
    // Reduced: m and m_new are integers, the rescale an exact power of two (none before the first tile).
    const float alpha = !reduced ? expf(m - m_new) : m == -FLT_MAX ? 0.0f : ldexpf(1.0f, int(m - m_new));
    float tile_sum = 0.0f;
#pragma unroll
    for (int i = 0; i < BK / kRowThreads; ++i) {
      const float p = expf(scores[i] - shift);  // masked: exp(-inf) = 0
      tile_sum += p;
      ps[r * BK + g + kRowThreads * i] = round_to(p, s.precision);
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 2);
    l = l * alpha + tile_sum;
    m = m_new;
    __syncwarp();  // the row's probabilities, written by its four threads, are read by all four

#pragma unroll
    for (int i = 0; i < MAXD / kRowThreads; ++i) acc[i] *= alpha;
    for (int c = 0; c < BK; ++c) {
      const float p = ps[r * BK + c];
      const float* vrow = vs + c * Dv;
#pragma unroll
      for (int i = 0; i < MAXD / kRowThreads; ++i) {
        const int64_t d = g + kRowThreads * i;
        if (d < Dv) acc[i] += p * vrow[d];
      }
    }
  }

  if (query < s.q_len) {
    float* o = out + ((b * s.q_len + query) * s.heads + h) * Dv;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no keys (kv_len 0): zeros, as the reference writes
#pragma unroll
    for (int i = 0; i < MAXD / kRowThreads; ++i) {
      const int64_t d = g + kRowThreads * i;
      if (d < Dv) o[d] = acc[i] * inv;
    }
  }
}

template <int MAXD, int BQ, int BK>
cudaError_t launch(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                   cudaStream_t stream) {
  const size_t bytes = size_t(BQ * s.head_dim + BK * s.head_dim + BK * s.value_dim + BQ * BK) * sizeof(float);
  auto kernel = flash_attention_kernel<MAXD, BQ, BK>;
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
      e != cudaSuccess)
    return e;
  const dim3 grid(unsigned((s.q_len + BQ - 1) / BQ), unsigned(s.batch * s.heads));
  kernel<<<grid, BQ * kRowThreads, bytes, stream>>>(q, k, v, out, s);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_attention_cuda_cores(const float* q, const float* k, const float* v, float* out,
                                        const AttentionShape& s, cudaStream_t stream) {
  const int64_t width = s.head_dim > s.value_dim ? s.head_dim : s.value_dim;
  // Tiles sized so that shared memory stays under the 99 KB a block may take on sm_86/89.
  if (width <= 64) return launch<64, 64, 64>(q, k, v, out, s, stream);
  if (width <= 160) return launch<160, 32, 32>(q, k, v, out, s, stream);
  if (width <= kMaxAttentionHeadDim) return launch<kMaxAttentionHeadDim, 16, 16>(q, k, v, out, s, stream);
  return cudaErrorInvalidValue;
}

}  // namespace kakusan::cuda
