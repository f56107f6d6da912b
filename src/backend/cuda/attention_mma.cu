// Attention on the tensor cores (mma.sync.m16n8k16, f16 or bf16 operands, f32 accumulation; sm_80 and later),
// for f16/bf16 precision and head widths that are multiples of 8 up to 160 (attention_kernel_for says which
// shapes come here; the VAE's 512-wide head stays on attention.cu: its accumulator would not fit in registers).
// The algorithm is attention.cu's (FlashAttention-2's online softmax); this file only maps it onto warp-level
// matrix products.
//
// Tiling. A block of four warps takes kBQ = 64 queries of one (batch, head), one 16-row slab per warp, and
// walks the keys in tiles of BK (64, or 32 for the widest heads, to bound registers). q, k and v arrive as f32
// rows (strided views allowed, read as float4); each 8-element chunk is rounded to the precision as it is
// stored to shared memory. (Every query block reads and rounds all of K and V again, in f32: an f16 copy made
// once would halve that traffic, at the price of scratch memory the planner would have to count.) Head widths
// are padded with zeros to DP, a multiple of 16 (the mma's k), and rows past q_len / kv_len are zeros: padded
// dims add nothing to a score, padded keys are masked and have zero values (a masked probability is 0, and 0 ·
// garbage could be NaN). Shared rows hold DP + 8 halves, which makes the fragment loads below free of bank
// conflicts (a row is 4 banks mod 8 apart).
//
// Fragments (PTX's m16n8k16 layouts; lane = 4·g + t). S = Q·Kᵀ: A is Q (rows g, g+8, dims 2t.. and 2t+8..), B
// is Kᵀ (dims 2t.., 2t+8.. of key g), both plain 32-bit loads from the row-major tiles. The f32 S accumulator
// of two adjacent 8-key tiles is, element for element, the A fragment of P for a 16-key step, so P never leaves
// registers. O += P·V: B is V (keys 2t.., key-major), read with ldmatrix.trans from the row-major V tile. Each
// thread holds two query rows (g and g + 8) of its warp's slab; the four lanes of a row combine their max and
// sum with shuffles.
//
// The contract (backend.h, precision.h) as attention.cu keeps it: q, k, v and the probabilities rounded to the
// precision (f32 -> f16/bf16 conversion rounds to nearest even), scores accumulated in f32 by the tensor cores,
// the running max kept as the power-of-two exponent k = ceil(max · log2 e), probabilities e^(s − k·ln 2)
// computed in f32 (expf, as attention.cu) and rounded before P·V, the f32 row sum taken from the unrounded
// ones, and the accumulator divided by that sum at the end. Rescaling by 2^(k_old − k_new) is exact, so the
// numbers are the reference's up to f32 summation order (and the rare probability that this order moves across
// an f16 or bf16 rounding boundary).
#include <cfloat>
#include <cstdint>

#include "backend/cuda/device_util.cuh"

namespace kakusan::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kBlockThreads = 32 * kWarps;
constexpr int kBQ = 16 * kWarps;  // queries per block

// A tile's row length in 16-bit elements: the padded width plus 8 (16 bytes) against bank conflicts.
template <int DP>
constexpr int kRowHalves = DP + 8;

// The two operand types: packing two floats into one 32-bit register (element 0 in the low half, as the
// fragments want) and the matching mma.
struct F16 {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

struct BF16 {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

__device__ __forceinline__ uint32_t load32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Four 8x8 matrices of 16-bit elements, transposed: lanes 8i..8i+7 give the row addresses of matrix i, and
// register i receives matrix i's elements (row 2t and 2t+1, column g) — an mma B fragment from a row-major tile.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* row) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// rows x DP of f32 rows (row i at src + (first + i) · stride, `width` valid columns, `len` valid rows) rounded
// into the shared tile; everything outside is zero.
template <class P, int DP>
__device__ __forceinline__ void load_tile(uint16_t* tile, int rows, const float* __restrict__ src, int64_t first,
                                          int64_t len, int64_t stride, int64_t width) {
  constexpr int kChunks = DP / 8;
  for (int i = threadIdx.x; i < rows * kChunks; i += kBlockThreads) {
    const int row = i / kChunks, col = (i % kChunks) * 8;
    uint4 packed = make_uint4(0, 0, 0, 0);
    if (first + row < len && col < width) {  // width is a multiple of 8: a chunk is wholly in or out
      const float4* p = reinterpret_cast<const float4*>(src + (first + row) * stride + col);
      const float4 a = __ldg(p), b = __ldg(p + 1);
      packed = make_uint4(P::pack(a.x, a.y), P::pack(a.z, a.w), P::pack(b.x, b.y), P::pack(b.z, b.w));
    }
    *reinterpret_cast<uint4*>(tile + row * kRowHalves<DP> + col) = packed;
  }
}

template <class P, int DP, int BK>
__global__ void __launch_bounds__(kBlockThreads)
    attention_mma_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                         float* __restrict__ out, AttentionShape s) {
  constexpr int kRow = kRowHalves<DP>;
  extern __shared__ uint4 smem[];  // 16-byte aligned, for the chunk stores and ldmatrix
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem);  // [kBQ][kRow]
  uint16_t* ks = qs + kBQ * kRow;                     // [BK][kRow]
  uint16_t* vs = ks + BK * kRow;                      // [BK][kRow]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / s.heads, h = bh % s.heads;
  const int64_t q0 = int64_t(blockIdx.x) * kBQ;
  const int64_t query[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};  // this thread's two rows
  const float* kb = k + b * s.k_batch_stride + h * s.head_dim;
  const float* vb = v + b * s.v_batch_stride + h * s.value_dim;
  load_tile<P, DP>(qs, kBQ, q + b * s.q_batch_stride + h * s.head_dim, q0, s.q_len, s.q_token_stride, s.head_dim);

  float acc[DP / 8][4];  // O: 8-column tiles, elements (row g: 0, 1; row g+8: 2, 3), columns 2t, 2t+1
#pragma unroll
  for (int i = 0; i < DP / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  // Per row: the shift exponent k (-FLT_MAX before any key, so that differences stay finite) and this lane's
  // part of the unrounded sum.
  float m[2] = {-FLT_MAX, -FLT_MAX}, l[2] = {0.0f, 0.0f};

  // Causal: no query of this block sees a key past its last query.
  const int64_t kv_end = s.causal ? min(s.kv_len, q0 + kBQ) : s.kv_len;
  for (int64_t k0 = 0; k0 < kv_end; k0 += BK) {
    __syncthreads();  // the previous tiles are no longer read (and qs is written, on the first pass)
    load_tile<P, DP>(ks, BK, kb, k0, s.kv_len, s.k_token_stride, s.head_dim);
    load_tile<P, DP>(vs, BK, vb, k0, s.kv_len, s.v_token_stride, s.value_dim);
    __syncthreads();

    // S = Q·Kᵀ for the warp's 16 rows and BK keys.
    float sc[BK / 8][4];
#pragma unroll
    for (int j = 0; j < BK / 8; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll
    for (int d0 = 0; d0 < DP; d0 += 16) {
      const uint16_t* qr = qs + (warp * 16 + g) * kRow + d0 + 2 * t;
      const uint32_t a[4] = {load32(qr), load32(qr + 8 * kRow), load32(qr + 8), load32(qr + 8 * kRow + 8)};
#pragma unroll
      for (int j = 0; j < BK / 8; ++j) {
        const uint16_t* kr = ks + (j * 8 + g) * kRow + d0 + 2 * t;
        P::mma(sc[j], a, load32(kr), load32(kr + 8));
      }
    }

    // Scale and mask, then each row's tile max over its four lanes. Only a tile that reaches past kv_len or
    // (causal) past the warp's first query has keys to mask: the others skip the 64-bit compares.
    const bool some_masked = k0 + BK > s.kv_len || (s.causal && k0 + BK - 1 > q0 + warp * 16);
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < BK / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = k0 + j * 8 + 2 * t + (e & 1);
        const bool masked = some_masked && (key >= s.kv_len || (s.causal && key > query[e / 2]));
        sc[j][e] = masked ? -INFINITY : sc[j][e] * s.scale;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], sc[j][e]);
      }
    float shift[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      // A fully masked row keeps m (ceil(-inf) = -inf); the rescale is a power of two (0 before any key).
      const float m_new = fmaxf(m[r], ceilf(tile_max[r] * 1.44269504088896341f));
      const float alpha = m[r] == -FLT_MAX ? 0.0f : ldexpf(1.0f, int(fmaxf(m[r] - m_new, -256.0f)));
      shift[r] = m_new * 0.693147180559945309f;
      m[r] = m_new;
      l[r] *= alpha;
#pragma unroll
      for (int i = 0; i < DP / 8; ++i) {
        acc[i][2 * r] *= alpha;
        acc[i][2 * r + 1] *= alpha;
      }
    }

    // P = e^(s − k·ln 2): summed unrounded, rounded into A fragments (two 8-key tiles per 16-key step).
    uint32_t pa[BK / 16][4];
#pragma unroll
    for (int j = 0; j < BK / 8; ++j) {
      float p[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) p[e] = expf(sc[j][e] - shift[e / 2]);  // masked: exp(-inf) = 0
      l[0] += p[0] + p[1];
      l[1] += p[2] + p[3];
      pa[j / 2][(j % 2) * 2] = P::pack(p[0], p[1]);
      pa[j / 2][(j % 2) * 2 + 1] = P::pack(p[2], p[3]);
    }

    // O += P·V. Lanes 0-15 address keys kk..kk+15 at columns d0.., lanes 16-31 the same keys at d0 + 8..: the
    // four matrices are the B fragments (keys 0-7, 8-15) of the column tiles d0 and d0 + 8.
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk)
#pragma unroll
      for (int d0 = 0; d0 < DP; d0 += 16) {
        uint32_t vf[4];
        ldmatrix_x4_trans(vf, vs + (kk * 16 + (lane & 15)) * kRow + d0 + (lane >> 4) * 8);
        P::mma(acc[d0 / 8], pa[kk], vf[0], vf[1]);
        P::mma(acc[d0 / 8 + 1], pa[kk], vf[2], vf[3]);
      }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    if (query[r] >= s.q_len) continue;
    float* o = out + ((b * s.q_len + query[r]) * s.heads + h) * s.value_dim;
#pragma unroll
    for (int i = 0; i < DP / 8; ++i) {
      const int col = i * 8 + 2 * t;
      if (col >= s.value_dim) continue;
      // No keys (kv_len 0): zeros, as the reference writes. A division, as the reference's, not a reciprocal.
      const float2 y = l[r] > 0.0f ? make_float2(acc[i][2 * r] / l[r], acc[i][2 * r + 1] / l[r])
                                   : make_float2(0.0f, 0.0f);
      *reinterpret_cast<float2*>(o + col) = y;
    }
  }
}

template <class P, int DP>
cudaError_t launch(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                   cudaStream_t stream) {
  constexpr int kBK = DP <= 128 ? 64 : 32;  // the widest heads: fewer score registers beside the accumulator
  constexpr size_t kBytes = size_t(kBQ + 2 * kBK) * kRowHalves<DP> * sizeof(uint16_t);
  auto kernel = attention_mma_kernel<P, DP, kBK>;
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kBytes));
      e != cudaSuccess)
    return e;
  const dim3 grid(unsigned((s.q_len + kBQ - 1) / kBQ), unsigned(s.batch * s.heads));
  kernel<<<grid, kBlockThreads, kBytes, stream>>>(q, k, v, out, s);
  return cudaGetLastError();
}

// The padded width, a multiple of 16 up to kMaxMmaAttentionHeadDim, as a template argument.
template <class P>
cudaError_t launch_padded(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                          cudaStream_t stream) {
  const int64_t width = s.head_dim > s.value_dim ? s.head_dim : s.value_dim;
  static_assert(kMaxMmaAttentionHeadDim == 160, "the cases below stop at 160");
  switch ((width + 15) / 16) {
    case 1: return launch<P, 16>(q, k, v, out, s, stream);
    case 2: return launch<P, 32>(q, k, v, out, s, stream);
    case 3: return launch<P, 48>(q, k, v, out, s, stream);
    case 4: return launch<P, 64>(q, k, v, out, s, stream);
    case 5: return launch<P, 80>(q, k, v, out, s, stream);
    case 6: return launch<P, 96>(q, k, v, out, s, stream);
    case 7: return launch<P, 112>(q, k, v, out, s, stream);
    case 8: return launch<P, 128>(q, k, v, out, s, stream);
    case 9: return launch<P, 144>(q, k, v, out, s, stream);
    case 10: return launch<P, 160>(q, k, v, out, s, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t launch_attention_mma(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                                 cudaStream_t stream) {
  if (s.precision == kF16) return launch_padded<F16>(q, k, v, out, s, stream);
  if (s.precision == kBF16) return launch_padded<BF16>(q, k, v, out, s, stream);
  return cudaErrorInvalidValue;
}

}  // namespace kakusan::cuda
