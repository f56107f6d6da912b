// The CUDA backend's kernel launchers: plain pointers, sizes and a stream, so that the .cu files need no
// kakusan headers and the host side (cuda_backend.cpp and friends) does every argument check before a launch.
// Each launcher enqueues its kernels on `stream` and returns cudaGetLastError() (a bad launch configuration
// shows there); none synchronises. Float operands are f32 unless a `dtype` argument says otherwise.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace kakusan::cuda {

// kakusan::DType's values (checked by a static_assert in cuda_backend.cpp).
enum Dt : int { kF32 = 0, kF16 = 1, kBF16 = 2, kI64 = 3 };

// A strided view's layout in elements (rank <= 8; scalars are rank 0 with one element).
struct Layout {
  int rank = 0;
  int64_t shape[8] = {};
  int64_t strides[8] = {};
};

// copy.cu: y = x elementwise in row-major order of the shape, any strides on both sides; float dtypes convert
// (round to nearest even), I64 copies bits.
cudaError_t launch_strided_copy(const void* x, Dt x_dtype, const Layout& x_layout, void* y, Dt y_dtype,
                                const Layout& y_layout, int64_t n, cudaStream_t stream);
// Contiguous n elements from one float dtype to another.
cudaError_t launch_convert(const void* x, Dt x_dtype, void* y, Dt y_dtype, int64_t n, cudaStream_t stream);

// elementwise.cu. Activation values are kakusan::Activation's.
cudaError_t launch_activation(const float* x, int act, float* y, int64_t n, cudaStream_t stream);
cudaError_t launch_add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream);
cudaError_t launch_scale(const float* x, float alpha, bool divide, float* y, int64_t n, cudaStream_t stream);
cudaError_t launch_cfg_combine(const float* pred, float guidance, float* out, int64_t n, cudaStream_t stream);
cudaError_t launch_geglu(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream);
cudaError_t launch_gaussian_sample(const float* moments, const float* noise, float* y, int64_t batch,
                                   int64_t per_sample, cudaStream_t stream);
// y[n, c, s] = (src ? src[n, c, s] (src_dtype) : y[n, c, s]) + bias[c] (bias_dtype; bias may be null).
cudaError_t launch_bias_nchw(const void* src, Dt src_dtype, const void* bias, Dt bias_dtype, float* y,
                             int64_t batch, int64_t channels, int64_t spatial, cudaStream_t stream);

// latent_ops.cu
cudaError_t launch_resize_nearest(const float* x, float* y, int64_t planes, int64_t in_h, int64_t in_w,
                                  int64_t out_h, int64_t out_w, cudaStream_t stream);
// timesteps: `count` values (1: shared by the batch).
cudaError_t launch_timestep_embedding(const float* timesteps, int64_t count, float* y, int64_t batch, int64_t dim,
                                      bool flip_sin_to_cos, int freq_shift, cudaStream_t stream);
// y[i, :] = table[ids[i], :]; an id outside [0, rows) writes zeros and the first such position (index into
// ids) to *bad, which the caller set to -1 beforehand.
cudaError_t launch_embedding(const void* table, Dt table_dtype, int64_t row_stride, int64_t col_stride,
                             int64_t rows, int64_t width, const int64_t* ids, int64_t count, float* y,
                             unsigned long long* bad, cudaStream_t stream);
cudaError_t launch_blend_tiles(const float* a, float* b, int64_t planes, int64_t a_h, int64_t a_w, int64_t b_h,
                               int64_t b_w, int64_t extent, bool vertical, cudaStream_t stream);

// norms.cu. gamma/beta may be null (dtype given per pointer); y may alias x.
cudaError_t launch_group_norm(const float* x, float* y, int64_t batch, int64_t channels, int64_t spatial,
                              int groups, const void* gamma, Dt gamma_dtype, const void* beta, Dt beta_dtype,
                              float eps, bool silu, cudaStream_t stream);
cudaError_t launch_layer_norm(const float* x, float* y, int64_t rows, int64_t cols, const void* gamma,
                              Dt gamma_dtype, const void* beta, Dt beta_dtype, float eps, cudaStream_t stream);

// Attention: q [B, Tq, H·D], k [B, Tk, H·D], v [B, Tk, H·Dv] with element strides for batch and token (the
// last dimension contiguous), out [B, Tq, H·Dv] contiguous. precision: kF32, kF16 or kBF16 (q, k, v and the
// probabilities are rounded to it before their products).
struct AttentionShape {
  int64_t batch, q_len, kv_len, heads, head_dim, value_dim;
  int64_t q_batch_stride, q_token_stride, k_batch_stride, k_token_stride, v_batch_stride, v_token_stride;
  float scale;
  bool causal;
  Dt precision;
};
// The largest head_dim / value_dim attention takes (the CUDA-core kernel's limit).
constexpr int64_t kMaxAttentionHeadDim = 512;
// The largest the tensor-core kernel takes (its f32 accumulator lives in registers).
constexpr int64_t kMaxMmaAttentionHeadDim = 160;
// grid.y's limit: each launch covers at most this many (batch, head) pairs.
constexpr int64_t kMaxAttentionGridY = 65535;

// attention_dispatch.cpp: the entry. Picks the kernel (attention_kernel_for) and launches it over whole
// batches in chunks of attention_batches_per_launch.
cudaError_t launch_attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                             cudaStream_t stream);

// Which kernel launch_attention runs. TensorCores (attention_mma.cu: mma.sync, f32 accumulation) takes f16 and
// bf16 precision with head_dim and value_dim multiples of 8 up to kMaxMmaAttentionHeadDim, q/k/v 16-byte
// aligned with strides in multiples of 4 elements (it reads rows as float4) and out 8-byte aligned; everything
// else, f32 precision always (no TF32), goes to CudaCores (attention.cu). Host code: runs without a GPU.
enum class AttentionKernel { CudaCores, TensorCores };
AttentionKernel attention_kernel_for(const AttentionShape& s, const float* q, const float* k, const float* v,
                                     const float* out);
// The diagnostic switch KAKUSAN_CUDA_ATTENTION=cuda-cores (read once per process) keeps every shape on the CUDA-core
// kernel, so that a GPU run can tell a tensor-core fault from the rest; this says whether an environment value
// allows the tensor cores (null: unset).
bool tensor_core_attention_allowed(const char* env_value);
// Whole batches per launch so that batch · heads stays within grid.y; 0 when one batch alone has too many heads.
int64_t attention_batches_per_launch(const AttentionShape& s);

// One launch each over all of s (s.batch · s.heads <= kMaxAttentionGridY, q_len >= 1); launch_attention calls
// them. The tensor-core one also needs attention_kernel_for(s, ...) == TensorCores.
cudaError_t launch_attention_cuda_cores(const float* q, const float* k, const float* v, float* out,
                                        const AttentionShape& s, cudaStream_t stream);
cudaError_t launch_attention_mma(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                                 cudaStream_t stream);

}  // namespace kakusan::cuda
