// conv2d: 3x3 stride-1 convolutions over enough pixels use Winograd (conv2d_winograd.cpp); 1x1 stride-1
// convolutions are one GEMM per image on NCHW as it is; every other kernel goes through im2col in tiles of
// output rows (so the column buffer stays a few MB even for the VAE at 512x512) + GEMM. f16 weights are
// widened a block at a time (for_each_weight_block: chunks of input channels, panels of output channels).
// With a bf16 weight the input is rounded to bf16 where it is copied (im2col, Winograd's input transform), so
// 1x1 convolutions then go through im2col too (its tiles bound the rounded copy); where bf16 products are
// native (bf16_gemm_native) a bf16 convolution runs on oneDNN's direct convolution over enough output pixels
// (conv2d_bf16_direct.cpp), else as im2col written as bf16 and bf16gemm with the weight in place.
#include <algorithm>
#include <cstring>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/rounding.h"
#include "backend/cpu/scratch.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {


// First and one-past-last output column whose input column ox·stride - pad + kx lies inside [0, width).
void valid_columns(int64_t kx, const ConvDims& d, const Conv2dParams& p, int64_t& lo, int64_t& hi) {
  const int64_t first = p.pad_left - kx;                 // ox·stride must be >= this
  const int64_t last = d.width - 1 + p.pad_left - kx;    // ox·stride must be <= this
  lo = first <= 0 ? 0 : (first + p.stride - 1) / p.stride;
  hi = last < 0 ? 0 : std::min(d.out_width, last / p.stride + 1);
  if (hi < lo) hi = lo;
}

// col[(c·kh + ky)·kw + kx, (oy - row0)·Wo + ox] = x[c, oy·s - pad_top + ky, ox·s - pad_left + kx] (0 outside).
// Rounded to `precision` (F32: as it is); or, with `bits`, written there as bf16 (col is then unused).
void im2col(const float* x, const ConvDims& d, const Conv2dParams& p, int64_t row0, int64_t rows, DType precision,
            float* col, uint16_t* bits = nullptr) {
  const int64_t taps = d.kernel_h * d.kernel_w, cols = rows * d.out_width;
  parallel_for(d.in_channels * taps, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t c = r / taps, ky = r % taps / d.kernel_w, kx = r % d.kernel_w;
      int64_t lo, hi;
      valid_columns(kx, d, p, lo, hi);
      const float* plane = x + c * d.height * d.width;
      float* const row = bits != nullptr ? scratch(Slot::Rounded).floats(size_t(cols)) : col + r * cols;
      float* dst = row;
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
      if (bits != nullptr)
        convert_f32_to_bf16(row, bits + r * cols, size_t(cols));
      else if (precision != DType::F32)
        round_floats(precision, row, row, cols);
    }
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
}

// im2col + bf16gemm (gemm.h's Native path): tiles of output rows unrolled to bf16, every input channel at once,
// each multiplied by the whole bf16 weight in place. `accumulate`: the output holds the bias already.
void conv2d_bf16(const ConvDims& d, const float* input, const uint16_t* weight, bool accumulate,
                 const Conv2dParams& p, float* output) {
  const int64_t in_plane = d.height * d.width, out_plane = d.out_height * d.out_width;
  const int64_t k = d.in_channels * d.kernel_h * d.kernel_w;
  const int64_t tile_rows =
      std::clamp<int64_t>(scratch_limits().im2col / std::max<int64_t>(d.batch * k * d.out_width, 1), 1, d.out_height);
  uint16_t* bits = reinterpret_cast<uint16_t*>(
      scratch(Slot::Work).floats(size_t(d.batch * k * tile_rows * d.out_width + 1) / 2));
  for (int64_t row0 = 0; row0 < d.out_height; row0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, d.out_height - row0), cols = rows * d.out_width;
    for (int64_t n = 0; n < d.batch; ++n)
      im2col(input + n * d.in_channels * in_plane, d, p, row0, rows, DType::BF16, nullptr, bits + n * k * cols);
    for (int64_t n = 0; n < d.batch; ++n)
      bf16gemm(false, false, d.out_channels, cols, k, 1.0f, weight, k, bits + n * k * cols, cols,
               accumulate ? 1.0f : 0.0f, output + n * d.out_channels * out_plane + row0 * d.out_width, out_plane);
  }
}

}  // namespace

void conv2d(const ConvDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const Conv2dParams& p, const TensorView& y) {
  const float* input = dense_f32(x, Slot::Input).f32();
  const float* b = param_f32(bias, Slot::Bias);
  DenseOutput out(y, Slot::Output);
  const DType precision = product_precision(w);
  // Native bf16 products (gemm.h) skip Winograd too: at twice the f32 GEMMs' rate they match Winograd's fewer
  // products, without its transforms (bench --profile, 2 threads: every 3x3 UNet convolution faster, the step
  // 8 % faster; the VAE decode the same within noise).
  const bool native = precision == DType::BF16 && w.dtype == DType::BF16 && w.is_contiguous() && bf16_gemm_native();
  if (native && direct_bf16_conv_applies(d, p)) {
    conv2d_bf16_direct(d, input, w.u16(), b, p, out.data());
    out.finish();
    return;
  }
  if (!native && winograd_applies(d, p)) {
    conv2d_winograd(d, input, w, b, p, precision, out.data());
    out.finish();
    return;
  }
  const int64_t in_plane = d.height * d.width, out_plane = d.out_height * d.out_width;
  const int64_t k = d.in_channels * d.kernel_h * d.kernel_w;
  const bool pointwise = d.kernel_h == 1 && d.kernel_w == 1 && p.stride == 1 && p.pad_top == 0 &&
                         p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0 && precision == DType::F32;
  float* output = out.data();
  if (b != nullptr || k == 0) {  // the bias the products add to (no products at all: zeros)
    parallel_for(d.batch * d.out_channels, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float value = b != nullptr ? b[i % d.out_channels] : 0.0f;
        std::fill(output + i * out_plane, output + (i + 1) * out_plane, value);
      }
    }, std::max<int64_t>(1, 16384 / std::max<int64_t>(out_plane, 1)));
  }
  // Chunks of input channels (all of them for a weight used in place) accumulate into the output; the
  // weight's blocks of each chunk are shared by the images.
  const int64_t taps = d.kernel_h * d.kernel_w;
  const int64_t chunk_channels = even_chunk(d.in_channels, weight_chunk_columns(w, k) / taps);
  if (pointwise) {
    for (int64_t c0 = 0; c0 < d.in_channels; c0 += chunk_channels) {
      const int64_t c1 = std::min(d.in_channels, c0 + chunk_channels);
      const float beta = b != nullptr || c0 > 0 ? 1.0f : 0.0f;
      for_each_weight_block(w, d.out_channels, k, c0, c1, [&](const WeightBlock& panel) {
        for (int64_t n = 0; n < d.batch; ++n)
          sgemm(false, false, panel.rows, out_plane, c1 - c0, 1.0f, panel.data, panel.ld,
                input + (n * d.in_channels + c0) * in_plane, in_plane, beta,
                output + (n * d.out_channels + panel.row0) * out_plane, out_plane);
      });
    }
    out.finish();
    return;
  }
  if (native) {
    conv2d_bf16(d, input, w.u16(), b != nullptr, p, output);
    out.finish();
    return;
  }
  // Tiles of output rows, the columns of every image at once; in each tile the chunks of input channels, each
  // unrolled (im2col) and multiplied by its columns of the weight.
  const int64_t chunk_k = std::min(d.in_channels, chunk_channels) * taps;
  const int64_t tile_rows = std::clamp<int64_t>(
      scratch_limits().im2col / std::max<int64_t>(d.batch * chunk_k * d.out_width, 1), 1, d.out_height);
  float* col = scratch(Slot::Work).floats(size_t(d.batch * chunk_k * tile_rows * d.out_width));
  for (int64_t row0 = 0; row0 < d.out_height; row0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, d.out_height - row0), cols = rows * d.out_width;
    for (int64_t c0 = 0; c0 < d.in_channels; c0 += chunk_channels) {
      const int64_t c1 = std::min(d.in_channels, c0 + chunk_channels), kc = (c1 - c0) * taps;
      ConvDims chunk = d;
      chunk.in_channels = c1 - c0;
      for (int64_t n = 0; n < d.batch; ++n)
        im2col(input + (n * d.in_channels + c0) * in_plane, chunk, p, row0, rows, precision, col + n * kc * cols);
      const float beta = b != nullptr || c0 > 0 ? 1.0f : 0.0f;
      for_each_weight_block(w, d.out_channels, k, c0 * taps, c1 * taps, [&](const WeightBlock& panel) {
        for (int64_t n = 0; n < d.batch; ++n)
          sgemm(false, false, panel.rows, cols, kc, 1.0f, panel.data, panel.ld, col + n * kc * cols, cols, beta,
                output + (n * d.out_channels + panel.row0) * out_plane + row0 * d.out_width, out_plane);
      });
    }
  }
  out.finish();
}

}  // namespace kakusan::cpu
