// 3x3 stride-1 convolution by Winograd's F(2x2, 3x3): each 2x2 output tile comes from a 4x4 input patch via
// 16 elementwise products in the transformed domain, which become 16 GEMMs [O x I] · [I x tiles] - 2.25x
// fewer multiplications than im2col's single GEMM. The transforms use only 0, ±1 and ±1/2, so rounding stays
// close to the direct sum (tests compare against the reference at the GEMM tolerance).
//
//   V = Bᵀ d B (input patch d, 4x4)   U = G g Gᵀ (kernel g, 3x3 -> 4x4)   y = Aᵀ (U ⊙ V summed over c) A (2x2)
#include <algorithm>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/rounding.h"
#include "backend/cpu/scratch.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

constexpr int64_t kTilesPerBlock = 512;  // most tiles transformed and multiplied together
constexpr int kPoints = 16;              // 4x4 transformed points
constexpr int64_t kMinTiles = 256;       // tiles (over the batch) below which im2col is faster (measured)

// U[ξ][o][c] for the output channels [o0, o0 + out_channels) of the dense weight w [O, in_channels, 3, 3] (f32,
// f16 or bf16: widened here, a few kernels at a time on the stack, so no float32 copy of the weight is made).
void transform_weights(const TensorView& w, int64_t o0, int64_t out_channels, int64_t in_channels, float* u) {
  constexpr int64_t kKernels = 64;  // 3x3 kernels widened at a time
  const int64_t pairs = out_channels * in_channels;
  const size_t element = dtype_size(w.dtype);
  const char* first = static_cast<const char*>(w.data) + o0 * in_channels * 9 * int64_t(element);
  parallel_for(pairs, [&](int64_t begin, int64_t end) {
    float widened[kKernels * 9];
    for (int64_t block = begin; block < end; block += kKernels) {
      const int64_t count = std::min(kKernels, end - block);
      const float* kernels = widened;
      if (w.dtype == DType::F32)
        kernels = reinterpret_cast<const float*>(first) + block * 9;
      else
        widen_to_f32(first + block * 9 * int64_t(element), w.dtype, widened, count * 9);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t pair = block + i;
        const float* g = kernels + i * 9;
        float gg[4][3];  // G·g
        for (int col = 0; col < 3; ++col) {
          const float g0 = g[col], g1 = g[3 + col], g2 = g[6 + col];
          gg[0][col] = g0;
          gg[1][col] = 0.5f * (g0 + g1 + g2);
          gg[2][col] = 0.5f * (g0 - g1 + g2);
          gg[3][col] = g2;
        }
        for (int row = 0; row < 4; ++row) {
          const float u0 = gg[row][0], u1 = gg[row][1], u2 = gg[row][2];
          const float t[4] = {u0, 0.5f * (u0 + u1 + u2), 0.5f * (u0 - u1 + u2), u2};
          for (int col = 0; col < 4; ++col) u[int64_t(row * 4 + col) * pairs + pair] = t[col];
        }
      }
    }
  }, 256);
}

struct TileGrid {
  int64_t rows, cols;  // tiles per image
  int64_t count() const { return rows * cols; }
};

// V[ξ][c - c0][t - first] for input channels [c0, c1) and tiles [first, first + n), numbered across the batch
// (image-major, then row-major). Vectorised across the tiles of a tile row:
// with a zero-padded copy of each input row split into even and odd elements (e[t] = row[2t], o[t] =
// row[2t + 1]), tile t's four inputs are e[t], o[t], e[t + 1], o[t + 1], so every step is a contiguous loop.
// The split rows are rounded to `precision` (the products' rule applies to the input, not to V).
void transform_input(const float* x, const ConvDims& d, const Conv2dParams& p, const TileGrid& grid, int64_t first,
                     int64_t n, int64_t c0, int64_t c1, DType precision, float* v) {
  const int64_t plane = d.height * d.width, block = (c1 - c0) * n;
  // Tile rows of the whole batch: global row gr is row gr % grid.rows of image gr / grid.rows.
  const int64_t row_begin = first / grid.cols, row_end = (first + n + grid.cols - 1) / grid.cols;
  const int64_t span = grid.cols + 1;  // even/odd entries per padded input row
  parallel_for(c1 - c0, [&](int64_t c_begin, int64_t c_end) {
    c_begin += c0;
    c_end += c0;
    float* buffer = scratch(Slot::Beta).floats(size_t(4 * 4 * span));
    for (int64_t c = c_begin; c < c_end; ++c) {
      for (int64_t gr = row_begin; gr < row_end; ++gr) {
        const int64_t ty = gr % grid.rows;
        const float* src = x + (gr / grid.rows * d.in_channels + c) * plane;
        const int64_t t_begin = std::max(first, gr * grid.cols) - gr * grid.cols;
        const int64_t t_end = std::min(first + n, (gr + 1) * grid.cols) - gr * grid.cols;
        // ct[r][k][t]: the column transform (k = 0..3) of input row y0 + r for every tile of the row.
        float* ct = buffer;
        for (int r = 0; r < 4; ++r) {
          float* even = ct + (r * 4 + 0) * span;  // reuse the first two outputs as the even/odd split
          float* odd = ct + (r * 4 + 1) * span;
          const int64_t yy = ty * 2 - p.pad_top + r;
          if (yy < 0 || yy >= d.height) {
            std::fill(even, even + span, 0.0f);
            std::fill(odd, odd + span, 0.0f);
          } else {
            const float* row = src + yy * d.width;
            // Entries [inner_begin, inner_end) have both elements inside the row: a branch-free loop the
            // compiler vectorises (the bounds checks are only for the padded ends).
            const int64_t inner_begin = std::min<int64_t>(span, (p.pad_left + 1) / 2);  // 2t - pad_left >= 0
            const int64_t last = d.width - 2 + p.pad_left;                                // 2t + 1 - pad_left < width
            const int64_t inner_end = last < 0 ? inner_begin : std::clamp<int64_t>(last / 2 + 1, inner_begin, span);
            auto split_checked = [&](int64_t t) {
              const int64_t xe = 2 * t - p.pad_left, xo = xe + 1;
              even[t] = xe >= 0 && xe < d.width ? row[xe] : 0.0f;
              odd[t] = xo >= 0 && xo < d.width ? row[xo] : 0.0f;
            };
            for (int64_t t = 0; t < inner_begin; ++t) split_checked(t);
            const float* pairs = row - p.pad_left;
            for (int64_t t = inner_begin; t < inner_end; ++t) {
              even[t] = pairs[2 * t];
              odd[t] = pairs[2 * t + 1];
            }
            for (int64_t t = inner_end; t < span; ++t) split_checked(t);
            if (precision != DType::F32) {
              round_floats(precision, even, even, span);
              round_floats(precision, odd, odd, span);
            }
          }
          float* c0 = ct + (r * 4 + 2) * span;  // scratch rows for the results, then moved into place
          float* c1 = ct + (r * 4 + 3) * span;
          for (int64_t t = 0; t < grid.cols; ++t) {
            const float e0 = even[t], o0 = odd[t], e1 = even[t + 1], o1 = odd[t + 1];
            c0[t] = e0 - e1;   // a0 - a2
            c1[t] = o0 + e1;   // a1 + a2
            even[t] = e1 - o0; // a2 - a1
            odd[t] = o0 - o1;  // a1 - a3
          }
        }
        // Row transform across r, written to the 16 points of this row's tiles.
        for (int k = 0; k < 4; ++k) {
          // Column-transform index k lives in slot: k = 0 -> 2, 1 -> 3, 2 -> 0, 3 -> 1.
          const int slot = (k + 2) % 4;
          const float* r0 = ct + (0 * 4 + slot) * span;
          const float* r1 = ct + (1 * 4 + slot) * span;
          const float* r2 = ct + (2 * 4 + slot) * span;
          const float* r3 = ct + (3 * 4 + slot) * span;
          float* out = v + (c - c0) * n + gr * grid.cols - first;
          float* v0 = out + (0 * 4 + k) * block;
          float* v1 = out + (1 * 4 + k) * block;
          float* v2 = out + (2 * 4 + k) * block;
          float* v3 = out + (3 * 4 + k) * block;
          for (int64_t t = t_begin; t < t_end; ++t) {
            v0[t] = r0[t] - r2[t];
            v1[t] = r1[t] + r2[t];
            v2[t] = r2[t] - r1[t];
            v3[t] = r1[t] - r3[t];
          }
        }
      }
    }
  });
}

// y[image, channel0 + o, 2ty + a, 2tx + b] = (Aᵀ m A)[a][b] + bias[o] for the d.out_channels channels of m
// and tiles [first, first + n) of the batch; y has y_channels channels. Vectorised across runs of consecutive
// tiles of one tile row (m is contiguous along the tiles), then stored interleaved into the output rows.
void transform_output(const float* m, const ConvDims& d, const TileGrid& grid, int64_t first, int64_t n,
                      const float* bias, float* y, int64_t channel0, int64_t y_channels) {
  constexpr int64_t kRun = 64;  // tiles per run: the 2x2 outputs of a run fit on the stack
  const int64_t plane = d.out_height * d.out_width, block = d.out_channels * n;
  parallel_for(d.out_channels, [&](int64_t o_begin, int64_t o_end) {
    float out[4][kRun];  // out[2a + b][j]: output (a, b) of the run's tile j
    for (int64_t o = o_begin; o < o_end; ++o) {
      const float bias_o = bias != nullptr ? bias[o] : 0.0f;
      const float* src = m + o * n;
      for (int64_t i0 = 0; i0 < n;) {
        const int64_t image = (first + i0) / grid.count(), tile = (first + i0) % grid.count();
        const int64_t oy = tile / grid.cols * 2, tx = tile % grid.cols;
        const int64_t run = std::min({n - i0, kRun, grid.cols - tx});
        for (int64_t j = 0; j < run; ++j) {
          float t[4][4];
          for (int k = 0; k < kPoints; ++k) t[k / 4][k % 4] = src[k * block + i0 + j];
          float at[2][4];  // Aᵀ·m
          for (int k = 0; k < 4; ++k) {
            at[0][k] = t[0][k] + t[1][k] + t[2][k];
            at[1][k] = t[1][k] - t[2][k] - t[3][k];
          }
          for (int a = 0; a < 2; ++a) {
            out[2 * a][j] = at[a][0] + at[a][1] + at[a][2];
            out[2 * a + 1][j] = at[a][1] - at[a][2] - at[a][3];
          }
        }
        float* dst = y + (image * y_channels + channel0 + o) * plane;
        // The run's last tile loses its right column at an odd output width.
        const int64_t whole = 2 * (tx + run) <= d.out_width ? run : run - 1;
        for (int a = 0; a < 2 && oy + a < d.out_height; ++a) {
          float* row = dst + (oy + a) * d.out_width + 2 * tx;
          const float* left = out[2 * a];
          const float* right = out[2 * a + 1];
          for (int64_t j = 0; j < whole; ++j) {
            row[2 * j] = left[j] + bias_o;
            row[2 * j + 1] = right[j] + bias_o;
          }
          if (whole < run) row[2 * whole] = left[whole] + bias_o;
        }
        i0 += run;
      }
    }
  });
}

}  // namespace

bool winograd_applies(const ConvDims& d, const Conv2dParams& p) {
  if (d.kernel_h != 3 || d.kernel_w != 3 || p.stride != 1) return false;
  // The weight transform costs O·I·16 per call: worth it only over enough tiles, and with enough channels
  // for the GEMMs to dominate the transforms.
  const int64_t tiles = d.batch * ((d.out_height + 1) / 2) * ((d.out_width + 1) / 2);
  return tiles >= kMinTiles && d.in_channels >= 32 && d.out_channels >= 32;
}

void conv2d_winograd(const ConvDims& d, const float* input, const TensorView& weight, const float* bias,
                     const Conv2dParams& p, DType precision, float* output) {
  const TileGrid grid{(d.out_height + 1) / 2, (d.out_width + 1) / 2};
  const int64_t total = d.batch * grid.count();  // tiles of all images: small images share one GEMM
  // U and V in bounded pieces (scratch_limits): all of U for 1280x1280 channels would be 105 MB, all of V
  // for 1920 channels and 512 tiles 63 MB. U comes in panels of output channels, V in chunks of input
  // channels whose products are summed, so the GEMMs keep 512 tiles and a long inner dimension.
  const ScratchLimits& limits = scratch_limits();
  const int64_t block_tiles = std::min(total, kTilesPerBlock);
  const int64_t chunk_channels =
      std::clamp<int64_t>(limits.winograd_inputs / (kPoints * block_tiles), 1, d.in_channels);
  // A panel's products M (points x panel x tiles) are bounded like V.
  int64_t panel_channels = std::min(limits.winograd_weights / (kPoints * d.in_channels),
                                    limits.winograd_inputs / (kPoints * block_tiles));
  if (panel_channels >= 32) panel_channels = panel_channels / 16 * 16;  // the GEMM kernels' row blocking
  panel_channels = std::clamp<int64_t>(panel_channels, 1, d.out_channels);
  float* u = scratch(Slot::Work).floats(size_t(kPoints * panel_channels * d.in_channels));
  float* v = scratch(Slot::Input2).floats(size_t(kPoints * chunk_channels * block_tiles));
  float* m = scratch(Slot::Input3).floats(size_t(kPoints * panel_channels * block_tiles));
  // Panels of output channels outside, blocks of tiles and chunks of input channels inside: each weight is
  // widened and transformed once (a scalar transform), and the vectorised input transform is redone for
  // every panel. With the per-sample blocks this costs a few percent of a 512x512 UNet step against whole U
  // and V (README, Performance).
  const TensorView w = weight.is_contiguous() ? weight : dense_f32(weight, Slot::Weight);
  for (int64_t o0 = 0; o0 < d.out_channels; o0 += panel_channels) {
    const int64_t rows = std::min(panel_channels, d.out_channels - o0);
    transform_weights(w, o0, rows, d.in_channels, u);
    ConvDims panel = d;
    panel.out_channels = rows;
    for (int64_t first = 0; first < total; first += block_tiles) {
      const int64_t count = std::min(block_tiles, total - first);
      for (int64_t c0 = 0; c0 < d.in_channels; c0 += chunk_channels) {
        const int64_t c1 = std::min(d.in_channels, c0 + chunk_channels);
        transform_input(input, d, p, grid, first, count, c0, c1, precision, v);
        const float beta = c0 == 0 ? 0.0f : 1.0f;
        parallel_for(kPoints, [&](int64_t begin, int64_t end) {  // 16 independent GEMMs, one per point
          for (int64_t pt = begin; pt < end; ++pt)
            sgemm(false, false, rows, count, c1 - c0, 1.0f, u + pt * rows * d.in_channels + c0, d.in_channels,
                  v + pt * (c1 - c0) * count, count, beta, m + pt * rows * count, count);
        });
      }
      transform_output(m, panel, grid, first, count, bias != nullptr ? bias + o0 : nullptr, output, o0,
                       d.out_channels);
    }
  }
}

}  // namespace kakusan::cpu
