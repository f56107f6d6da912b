// conv2d: 3x3 stride-1 convolutions over enough pixels use Winograd (conv2d_winograd.cpp); 1x1 stride-1
// convolutions are one GEMM per image on NCHW as it is; every other kernel goes through im2col in tiles of
// output rows (so the column buffer stays a few MB even for the VAE at 512x512) + GEMM.
#include <algorithm>
#include <cstring>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/scratch.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

constexpr int64_t kColumnBudget = int64_t(1) << 21;  // floats per im2col tile (8 MB; best of 4, 8, 16 MB measured)

// First and one-past-last output column whose input column ox·stride - pad + kx lies inside [0, width).
void valid_columns(int64_t kx, const ConvDims& d, const Conv2dParams& p, int64_t& lo, int64_t& hi) {
  const int64_t first = p.pad_left - kx;                 // ox·stride must be >= this
  const int64_t last = d.width - 1 + p.pad_left - kx;    // ox·stride must be <= this
  lo = first <= 0 ? 0 : (first + p.stride - 1) / p.stride;
  hi = last < 0 ? 0 : std::min(d.out_width, last / p.stride + 1);
  if (hi < lo) hi = lo;
}

// col[(c·kh + ky)·kw + kx, (oy - row0)·Wo + ox] = x[c, oy·s - pad_top + ky, ox·s - pad_left + kx] (0 outside).
void im2col(const float* x, const ConvDims& d, const Conv2dParams& p, int64_t row0, int64_t rows, float* col) {
  const int64_t taps = d.kernel_h * d.kernel_w, cols = rows * d.out_width;
  parallel_for(d.in_channels * taps, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t c = r / taps, ky = r % taps / d.kernel_w, kx = r % d.kernel_w;
      int64_t lo, hi;
      valid_columns(kx, d, p, lo, hi);
      const float* plane = x + c * d.height * d.width;
      float* dst = col + r * cols;
      for (int64_t oy = row0; oy < row0 + rows; ++oy, dst += d.out_width) {
        const int64_t iy = oy * p.stride - p.pad_top + ky;
        if (iy < 0 || iy >= d.height) {
          std::fill(dst, dst + d.out_width, 0.0f);
          continue;
        }
        std::fill(dst, dst + lo, 0.0f);
        std::fill(dst + hi, dst + d.out_width, 0.0f);
        const int64_t base = iy * d.width - p.pad_left + kx;  // input index of ox = 0 (may be negative)
        if (p.stride == 1) {
          if (hi > lo) std::memcpy(dst + lo, plane + base + lo, size_t(hi - lo) * sizeof(float));
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = plane[base + ox * p.stride];
        }
      }
    }
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
}

}  // namespace

void conv2d(const ConvDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const Conv2dParams& p, const TensorView& y) {
  const float* weight = dense_f32(w, Slot::Weight).f32();
  const float* input = dense_f32(x, Slot::Input).f32();
  const float* b = param_f32(bias, Slot::Bias);
  DenseOutput out(y, Slot::Output);
  if (winograd_applies(d, p)) {
    conv2d_winograd(d, input, weight, b, p, out.data());
    out.finish();
    return;
  }
  const int64_t in_plane = d.height * d.width, out_plane = d.out_height * d.out_width;
  const int64_t k = d.in_channels * d.kernel_h * d.kernel_w;
  const bool pointwise = d.kernel_h == 1 && d.kernel_w == 1 && p.stride == 1 && p.pad_top == 0 &&
                         p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0;
  const float beta = b != nullptr ? 1.0f : 0.0f;
  for (int64_t n = 0; n < d.batch; ++n) {
    const float* xn = input + n * d.in_channels * in_plane;
    float* yn = out.data() + n * d.out_channels * out_plane;
    if (b != nullptr) {
      parallel_for(d.out_channels, [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; ++o) std::fill(yn + o * out_plane, yn + (o + 1) * out_plane, b[o]);
      }, std::max<int64_t>(1, 16384 / std::max<int64_t>(out_plane, 1)));
    }
    if (pointwise) {
      sgemm(false, false, d.out_channels, out_plane, k, 1.0f, weight, k, xn, in_plane, beta, yn, out_plane);
      continue;
    }
    const int64_t tile_rows =
        std::clamp<int64_t>(kColumnBudget / std::max<int64_t>(k * d.out_width, 1), 1, d.out_height);
    float* col = scratch(Slot::Work).floats(size_t(k * tile_rows * d.out_width));
    for (int64_t row0 = 0; row0 < d.out_height; row0 += tile_rows) {
      const int64_t rows = std::min(tile_rows, d.out_height - row0);
      im2col(xn, d, p, row0, rows, col);
      sgemm(false, false, d.out_channels, rows * d.out_width, k, 1.0f, weight, k, col, rows * d.out_width, beta,
            yn + row0 * d.out_width, out_plane);
    }
  }
  out.finish();
}

}  // namespace kakusan::cpu
