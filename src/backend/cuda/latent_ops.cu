// The small ops around the models: nearest resize (upsampling), the timestep embedding, the token embedding
// lookup, and the tiled VAE's blend. Each reproduces op_formulas.h's float32 roundings.
#include "backend/cuda/device_util.cuh"

namespace kakusan::cuda {
namespace {

// torch's nearest: floor(dst · (in / out)) in float32, clamped to the input.
__device__ __forceinline__ int64_t nearest_source(int64_t dst, float scale, int64_t in) {
  const int64_t s = int64_t(floorf(__fmul_rn(float(dst), scale)));
  return s < in - 1 ? s : in - 1;
}

__global__ void resize_kernel(const float* x, float* y, int64_t planes, int64_t ih, int64_t iw, int64_t oh,
                              int64_t ow, float sh, float sw) {
  KK_GRID_STRIDE(i, planes * oh * ow) {
    const int64_t ox = i % ow, oy = (i / ow) % oh, p = i / (ow * oh);
    y[i] = x[(p * ih + nearest_source(oy, sh, ih)) * iw + nearest_source(ox, sw, iw)];
  }
}

// One element of diffusers' get_timestep_embedding; sin/cos in double of the float argument (correctly
// rounded, as the CPU's), exp likewise.
__global__ void timestep_kernel(const float* ts, int64_t count, float* y, int64_t batch, int64_t dim, bool flip,
                                int shift) {
  const int64_t half = dim / 2;
  KK_GRID_STRIDE(i, batch * dim) {
    const int64_t b = i / dim, j = i % dim;
    if (dim % 2 == 1 && j == dim - 1) {
      y[i] = 0.0f;
      continue;
    }
    // Column j holds sin of frequency f when it is in the sin half, cos otherwise.
    const bool sin_half = flip ? j >= half : j < half;
    const int64_t f = j % half;
    const float log_max_period = float(-log(10000.0));
    const float exponent = __fdiv_rn(__fmul_rn(log_max_period, float(f)), float(half - shift));
    const float arg = __fmul_rn(ts[count == 1 ? 0 : b], float(exp(double(exponent))));
    y[i] = sin_half ? float(sin(double(arg))) : float(cos(double(arg)));
  }
}

// Element i of `count * span` is column j of id t; span is the width, or 1 for rows of no width, whose ids are
// still checked.
__global__ void embedding_kernel(const void* table, Dt dtype, int64_t row_stride, int64_t col_stride, int64_t rows,
                                 int64_t width, int64_t span, const int64_t* ids, int64_t count, float* y,
                                 unsigned long long* bad) {
  KK_GRID_STRIDE(i, count * span) {
    const int64_t t = i / span, j = i % span, id = ids[t];
    if (id < 0 || id >= rows) {
      if (j < width) y[i] = 0.0f;
      if (j == 0) atomicMin(bad, (unsigned long long)t);
      continue;
    }
    if (j < width) y[i] = load_as_float(table, dtype, id * row_stride + j * col_stride);
  }
}

// b = a · (1 − k/e) + b · (k/e) over the first `extent` rows (vertical) or columns of b.
__global__ void blend_kernel(const float* a, float* b, int64_t planes, int64_t ah, int64_t aw, int64_t bh,
                             int64_t bw, int64_t extent, bool vertical) {
  const int64_t across = vertical ? bw : bh;
  KK_GRID_STRIDE(i, planes * extent * across) {
    const int64_t t = i % across, k = (i / across) % extent, p = i / (across * extent);
    const float wa = float(1.0 - double(k) / double(extent)), wb = float(double(k) / double(extent));
    const int64_t ai = vertical ? (ah - extent + k) * aw + t : t * aw + aw - extent + k;
    const int64_t bi = vertical ? k * bw + t : t * bw + k;
    float* bp = b + p * bh * bw;
    bp[bi] = __fadd_rn(__fmul_rn(a[p * ah * aw + ai], wa), __fmul_rn(bp[bi], wb));
  }
}

}  // namespace

cudaError_t launch_resize_nearest(const float* x, float* y, int64_t planes, int64_t in_h, int64_t in_w,
                                  int64_t out_h, int64_t out_w, cudaStream_t stream) {
  const int64_t n = planes * out_h * out_w;
  const float sh = float(in_h) / float(out_h), sw = float(in_w) / float(out_w);
  if (n > 0) resize_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, y, planes, in_h, in_w, out_h, out_w, sh, sw);
  return cudaGetLastError();
}

cudaError_t launch_timestep_embedding(const float* timesteps, int64_t count, float* y, int64_t batch, int64_t dim,
                                      bool flip_sin_to_cos, int freq_shift, cudaStream_t stream) {
  if (batch * dim > 0)
    timestep_kernel<<<grid_for(batch * dim), kThreads, 0, stream>>>(timesteps, count, y, batch, dim, flip_sin_to_cos,
                                                                     freq_shift);
  return cudaGetLastError();
}

cudaError_t launch_embedding(const void* table, Dt table_dtype, int64_t row_stride, int64_t col_stride,
                             int64_t rows, int64_t width, const int64_t* ids, int64_t count, float* y,
                             unsigned long long* bad, cudaStream_t stream) {
  const int64_t span = width > 0 ? width : 1;
  if (count > 0)
    embedding_kernel<<<grid_for(count * span), kThreads, 0, stream>>>(table, table_dtype, row_stride, col_stride,
                                                                      rows, width, span, ids, count, y, bad);
  return cudaGetLastError();
}

cudaError_t launch_blend_tiles(const float* a, float* b, int64_t planes, int64_t a_h, int64_t a_w, int64_t b_h,
                               int64_t b_w, int64_t extent, bool vertical, cudaStream_t stream) {
  const int64_t n = planes * extent * (vertical ? b_w : b_h);
  if (n > 0)
    blend_kernel<<<grid_for(n), kThreads, 0, stream>>>(a, b, planes, a_h, a_w, b_h, b_w, extent, vertical);
  return cudaGetLastError();
}

}  // namespace kakusan::cuda
