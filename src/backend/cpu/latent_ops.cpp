// The small ops on latents, embeddings and VAE tiles, on dense float32 (the formulas are op_formulas.h's,
// shared with the reference). Nothing here allocates: a denoising step's calls stay allocation-free.
#include <algorithm>

#include "backend/cpu/kernels.h"
#include "backend/op_formulas.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;

bool dense(const TensorView& v) { return v.dtype == DType::F32 && v.is_contiguous(); }

}  // namespace

bool resize_nearest(const TensorView& x, const TensorView& y) {
  if (y.dim(2) == 2 * x.dim(2) && y.dim(3) == 2 * x.dim(3)) {  // torch's floor(dst / 2): the ×2 kernel
    upsample_nearest2x(x, y);
    return true;
  }
  if (!dense(x) || !dense(y)) return false;
  const int64_t planes = x.dim(0) * x.dim(1), ih = x.dim(2), iw = x.dim(3), oh = y.dim(2), ow = y.dim(3);
  const float sh = formula::nearest_scale(ih, oh), sw = formula::nearest_scale(iw, ow);
  const float* in = x.f32();
  float* out = y.f32();
  parallel_for(planes * oh, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in + (r / oh * ih + formula::nearest_source(r % oh, sh, ih)) * iw;
      for (int64_t c = 0; c < ow; ++c) out[r * ow + c] = row[formula::nearest_source(c, sw, iw)];
    }
  }, std::max<int64_t>(1, kGrain / std::max<int64_t>(ow, 1)));
  return true;
}

bool scale(const TensorView& x, float alpha, bool divide, const TensorView& y) {
  if (!dense(x) || !dense(y)) return false;
  const float* in = x.f32();
  float* out = y.f32();
  parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
    if (divide)
      for (int64_t i = begin; i < end; ++i) out[i] = in[i] / alpha;
    else
      for (int64_t i = begin; i < end; ++i) out[i] = in[i] * alpha;
  }, kGrain);
  return true;
}

bool cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) {
  if (!dense(noise_pred) || !dense(out)) return false;
  const int64_t n = out.numel();
  const float* uncond = noise_pred.f32();
  const float* text = uncond + n;
  float* o = out.f32();
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = formula::guided(uncond[i], text[i], guidance);
  }, kGrain);
  return true;
}

bool timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift, const TensorView& y) {
  if (!dense(y)) return false;
  const float* t = timesteps.f32();
  const int64_t stride = timesteps.numel() == 1 ? 0 : timesteps.strides[0];
  const int64_t dim = y.dim(1);
  for (int64_t b = 0; b < y.dim(0); ++b)
    formula::timestep_row(t[b * stride], dim, flip_sin_to_cos, freq_shift, y.f32() + b * dim);
  return true;
}

bool gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) {
  if (!dense(moments) || !dense(noise) || !dense(y)) return false;
  const int64_t batch = y.dim(0), per_sample = batch == 0 ? 0 : y.numel() / batch;
  const float* m = moments.f32();
  const float* z = noise.f32();
  float* o = y.f32();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < per_sample; ++i)
      o[b * per_sample + i] =
          formula::gaussian_sample(m[2 * b * per_sample + i], m[(2 * b + 1) * per_sample + i], z[b * per_sample + i]);
  return true;
}

bool blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) {
  if (!dense(a) || !dense(b)) return false;
  const int64_t planes = a.dim(0) * a.dim(1), ah = a.dim(2), aw = a.dim(3), bh = b.dim(2), bw = b.dim(3);
  extent = std::min({vertical ? ah : aw, vertical ? bh : bw, extent});
  const float* pa = a.f32();
  float* pb = b.f32();
  parallel_for(planes, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* ap = pa + p * ah * aw;
      float* bp = pb + p * bh * bw;
      for (int64_t k = 0; k < extent; ++k) {
        const float wa = formula::blend_weight_a(k, extent), wb = formula::blend_weight_b(k, extent);
        if (vertical) {
          for (int64_t x = 0; x < bw; ++x)
            bp[k * bw + x] = formula::blend(ap[(ah - extent + k) * aw + x], wa, bp[k * bw + x], wb);
        } else {
          for (int64_t r = 0; r < bh; ++r)
            bp[r * bw + k] = formula::blend(ap[r * aw + aw - extent + k], wa, bp[r * bw + k], wb);
        }
      }
    }
  });
  return true;
}

}  // namespace kakusan::cpu
