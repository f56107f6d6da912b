// bf16 convolutions on oneDNN's direct convolution (brgconv: brgemm kernels on vdpbf16ps). With bf16 products
// native (gemm.h) it runs at ~98 % of this CPU's bf16 rate where im2col + bf16gemm reaches ~80 %, and it never
// writes the 9x-sized column matrix. It wants NHWC activations and a blocked weight while the kernels' tensors
// are NCHW and the weight OIHW, so a call
//   1. writes the weight in oneDNN's blocked layout (threads take output channels): an O·I·kh·kw copy at about
//      memory speed (3.3 ms for 1280x1280x3x3 on 2 threads), which is why conv2d takes this path only over
//      enough output pixels (direct_bf16_conv_min_pixels: 512, a 16x16 UNet level with CFG);
//   2. splits the output rows into chunks, over images and threads, each on one thread: the input rows a chunk
//      reads are written as NHWC bf16 (rounded to nearest even: the contract's activation), a single-threaded
//      convolution runs over them, and its NHWC f32 output goes back to NCHW with the bias added.
// Nothing is cached but oneDNN's primitives: a weight changed in place (a LoRA merge) is read afresh each call.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/onednn.h"
#include "core/half.h"
#include "core/thread_pool.h"

// The layout transforms in AVX-512 (F, BW and VL: 16-bit masked stores), else plain loops.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define KK_DIRECT_CONV_AVX512 1
#include "backend/cpu/intrinsics.h"
#endif

namespace kakusan::cpu {
namespace {

using dnnl::memory;

// A convolution over one chunk of output rows of one image: what oneDNN's primitive depends on.
struct ChunkShape {
  int64_t in_channels, out_channels, kernel_h, kernel_w;
  int64_t in_rows, width, out_rows, out_width;
  int64_t stride, pad_top, pad_bottom, pad_left, pad_right;
  bool operator==(const ChunkShape&) const = default;
};

struct ChunkShapeHash {
  size_t operator()(const ChunkShape& s) const {
    size_t h = 0;
    for (int64_t v : {s.in_channels, s.out_channels, s.kernel_h, s.kernel_w, s.in_rows, s.width, s.out_rows,
                      s.out_width, s.stride, s.pad_top, s.pad_bottom, s.pad_left, s.pad_right})
      h = h * 1000003u ^ size_t(v);
    return h;
  }
};

memory::desc nhwc(int64_t channels, int64_t rows, int64_t width, memory::data_type type) {
  return memory::desc({1, channels, rows, width}, type, memory::format_tag::nhwc);
}

dnnl::convolution_forward::primitive_desc describe(const ChunkShape& s, const memory::desc& weights) {
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      nhwc(s.in_channels, s.in_rows, s.width, memory::data_type::bf16), weights,
      nhwc(s.out_channels, s.out_rows, s.out_width, memory::data_type::f32), {s.stride, s.stride},
      {s.pad_top, s.pad_left}, {s.pad_bottom, s.pad_right});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::convolution_forward::primitive_desc(desc, attr, onednn_engine());
}

constexpr int64_t kMaxSplitTaps = 9;  // block_weight_by_pairs' kernels: up to 3x3

// The weight's blocked layout as oneDNN picks it, as offsets that add up: element (o, i, y, x) sits at
// o_offset[o] + i_offset[i] + y_offset[y] + x_offset[x] (any blocked layout separates so).
struct WeightLayout {
  memory::desc desc;
  std::vector<int64_t> o_offset, i_offset, y_offset, x_offset;
  bool padded = false;  // blocks pad a dimension: the padding must hold zeros
  int64_t o_block = 1;  // output channels per block (the layout's inner blocks of dimension 0)
  // Pairs of input channels innermost, runs of 16 output channels next (oneDNN's bf16 brgconv layouts, inner
  // blocks 32o2i or 64o2i): 16 output channels x one pair of input channels of one tap are 32 consecutive
  // elements, which block_weight writes from 16x16 transposes of the pairs.
  bool pair_runs = false;
  // For block_weight_by_pairs: 32 input channels x taps of one weight row are `taps` vectors of 32; lane k of
  // tap t's split takes lane split_index[(t·taps + s)·32 + k] of vector s where bit k of split_mask[t·taps + s].
  std::vector<uint16_t> split_index;
  std::vector<uint32_t> split_mask;
};

std::vector<int64_t> dimension_offsets(const dnnl_memory_desc_t& md, int dim) {
  const dnnl_blocking_desc_t& b = md.format_desc.blocking;
  int64_t block = 1;  // the product of the dimension's inner blocks
  for (int k = 0; k < b.inner_nblks; ++k)
    if (b.inner_idxs[k] == dim) block *= b.inner_blks[k];
  std::vector<int64_t> offsets(size_t(md.dims[dim]));
  for (int64_t idx = 0; idx < md.dims[dim]; ++idx) {
    int64_t offset = idx / block * b.strides[dim], inner_stride = 1, inner_index = idx;
    for (int k = b.inner_nblks - 1; k >= 0; --k) {  // the innermost block varies fastest
      if (b.inner_idxs[k] == dim) {
        offset += inner_index % b.inner_blks[k] * inner_stride;
        inner_index /= b.inner_blks[k];
      }
      inner_stride *= b.inner_blks[k];
    }
    offsets[size_t(idx)] = offset;
  }
  return offsets;
}

WeightLayout make_layout(const ChunkShape& s) {
  const memory::desc any({s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, memory::data_type::bf16,
                         memory::format_tag::any);
  WeightLayout layout;
  layout.desc = describe(s, any).weights_desc();
  const dnnl_memory_desc_t& md = layout.desc.data;
  KK_ASSERT(md.format_kind == dnnl_blocked && md.offset0 == 0);
  layout.o_offset = dimension_offsets(md, 0);
  layout.i_offset = dimension_offsets(md, 1);
  layout.y_offset = dimension_offsets(md, 2);
  layout.x_offset = dimension_offsets(md, 3);
  for (int d = 0; d < 4; ++d) layout.padded = layout.padded || md.padded_dims[d] != md.dims[d];
  for (int k = 0; k < md.format_desc.blocking.inner_nblks; ++k)
    if (md.format_desc.blocking.inner_idxs[k] == 0) layout.o_block *= md.format_desc.blocking.inner_blks[k];
  const int64_t taps = s.kernel_h * s.kernel_w;
  layout.pair_runs = s.in_channels % 32 == 0 && s.out_channels % 16 == 0 && taps <= kMaxSplitTaps;
  const auto& o_at = layout.o_offset;
  const auto& i_at = layout.i_offset;
  for (int64_t o = 0; o < s.out_channels; ++o)
    layout.pair_runs = layout.pair_runs && o_at[size_t(o)] == o_at[size_t(o - o % 16)] + 2 * (o % 16);
  for (int64_t i = 0; i < s.in_channels; ++i)
    layout.pair_runs = layout.pair_runs && i_at[size_t(i)] == i_at[size_t(i - i % 2)] + i % 2;
  if (layout.pair_runs) {
    layout.split_index.assign(size_t(taps * taps * 32), 0);
    layout.split_mask.assign(size_t(taps * taps), 0);
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t k = 0; k < 32; ++k) {  // channel k's tap t is element k·taps + t of the 32·taps
        const int64_t element = k * taps + t, s = element / 32;
        layout.split_index[size_t((t * taps + s) * 32 + k)] = uint16_t(element % 32);
        layout.split_mask[size_t(t * taps + s)] |= 1u << k;
      }
  }
  return layout;
}

// A chunk's primitive takes the call's weight layout (the one oneDNN picks for the whole image), which a chunk
// of the same shape in another call (another image size) could differ by: both make the key.
struct ChunkKey {
  ChunkShape shape;
  memory::desc weights;
  bool operator==(const ChunkKey&) const = default;
};

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const { return ChunkShapeHash()(k.shape); }
};

struct ChunkPlans {
  ThreadPlans<ChunkKey, Plan, ChunkKeyHash> plans;                // made on the thread that runs them
  ThreadPlans<ChunkShape, WeightLayout, ChunkShapeHash> layouts;  // by the whole image's shape (chunk = image)
};

#if defined(KK_DIRECT_CONV_AVX512)
// f32_to_bf16 (core/half.h) on 16 lanes: round to nearest even, NaN kept quiet.
__m256i bf16_bits16(__m512 v) {
  const __m512i x = _mm512_castps_si512(v);
  const __m512i high = _mm512_srli_epi32(x, 16);
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(high, _mm512_set1_epi32(1)))),
      16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_cvtepi32_epi16(_mm512_mask_or_epi32(rounded, nan, high, _mm512_set1_epi32(0x40)));
}

// r[i][j] <- r[j][i]: 16x16 floats in registers, in four rounds of shuffles.
[[gnu::always_inline]] inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  auto pd = [](__m512 v) { return _mm512_castps_pd(v); };
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[i]), pd(t[i + 2])));
    u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[i]), pd(t[i + 2])));
    u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[i + 1]), pd(t[i + 3])));
    u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[i + 1]), pd(t[i + 3])));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// A tile of at most 16 x 16 floats of a row-major matrix (rows `stride` apart), transposed in registers:
// put(c, column c) for each of its `cols` columns (16 lanes, zero past `rows`).
template <typename Put>
[[gnu::always_inline]] inline void transpose_tile(const float* src, int64_t stride, int64_t rows, int64_t cols,
                                                  const Put& put) {
  __m512 r[16];
  for (int64_t i = 0; i < 16; ++i)
    r[i] = i < rows ? _mm512_maskz_loadu_ps(first_lanes(cols), src + i * stride) : _mm512_setzero_ps();
  transpose16x16(r);
  for (int64_t c = 0; c < cols; ++c) put(c, r[c]);
}
#endif

// weight [O, I, kh, kw] (bf16, dense) into `blocked`, element by element through the offset tables, threads
// taking blocks of output channels: any blocked layout, several times slower than block_weight_by_pairs.
void block_weight_by_elements(const ConvDims& d, const uint16_t* weight, const WeightLayout& layout,
                              uint16_t* blocked) {
  const int64_t taps = d.kernel_h * d.kernel_w, block = layout.o_block;
  parallel_for((d.out_channels + block - 1) / block, [&](int64_t begin, int64_t end) {
    for (int64_t o0 = begin * block; o0 < std::min(end * block, d.out_channels); o0 += block) {
      const int64_t o1 = std::min(o0 + block, d.out_channels);
      for (int64_t i = 0; i < d.in_channels; ++i)
        for (int64_t tap = 0; tap < taps; ++tap) {
          uint16_t* dst = blocked + layout.y_offset[size_t(tap / d.kernel_w)] +
                          layout.x_offset[size_t(tap % d.kernel_w)] + layout.i_offset[size_t(i)];
          for (int64_t o = o0; o < o1; ++o)
            dst[layout.o_offset[size_t(o)]] = weight[(o * d.in_channels + i) * taps + tap];
        }
    }
  });
}

#if defined(KK_DIRECT_CONV_AVX512)
// The same for a pair_runs layout, 16 output channels x 32 input channels at a time. Each of the 16 weight rows'
// 32·taps elements (taps vectors of 32) are split by tap with masked vpermw (tap t's vector holds input channels
// c0..c0+31, i.e. 16 pairs as 32-bit words), then per tap a 16x16 transpose of those words gives each pair's 16
// output channels: 32 consecutive elements of the blocked layout, a whole cache line, stored past the caches
// (the weight is larger than them, and a plain store would first read the line: 7.5 ms -> 3.3 ms for
// 1280x1280x3x3 on 2 threads, about memory speed).
void block_weight_by_pairs(const ConvDims& d, const uint16_t* weight, const WeightLayout& layout,
                           uint16_t* blocked) {
  const int64_t taps = d.kernel_h * d.kernel_w, row = d.in_channels * taps;
  parallel_for(d.out_channels / 16, [&](int64_t begin, int64_t end) {
    auto* words = reinterpret_cast<uint32_t*>(scratch(Slot::Work).floats(size_t(taps * 16 * 16)));
    __m512i src[kMaxSplitTaps];
    for (int64_t group = begin; group < end; ++group) {
      const int64_t o0 = group * 16;
      for (int64_t c0 = 0; c0 < d.in_channels; c0 += 32) {
        for (int64_t j = 0; j < 16; ++j) {
          const uint16_t* segment = weight + (o0 + j) * row + c0 * taps;
          for (int64_t s = 0; s < taps; ++s) src[s] = _mm512_loadu_si512(segment + 32 * s);
          for (int64_t t = 0; t < taps; ++t) {
            __m512i split = _mm512_setzero_si512();
            for (int64_t s = 0; s < taps; ++s) {
              const size_t at = size_t(t * taps + s);
              split = _mm512_mask_permutexvar_epi16(split, layout.split_mask[at],
                                                    _mm512_loadu_si512(layout.split_index.data() + 32 * at), src[s]);
            }
            _mm512_storeu_si512(words + (t * 16 + j) * 16, split);
          }
        }
        for (int64_t t = 0; t < taps; ++t) {
          uint16_t* dst = blocked + layout.o_offset[size_t(o0)] + layout.y_offset[size_t(t / d.kernel_w)] +
                          layout.x_offset[size_t(t % d.kernel_w)];
          transpose_tile(reinterpret_cast<const float*>(words + t * 16 * 16), 16, 16, 16, [&](int64_t c, __m512 v) {
            uint16_t* line = dst + layout.i_offset[size_t(c0 + 2 * c)];
            if (reinterpret_cast<uintptr_t>(line) % 64 == 0)
              _mm512_stream_ps(reinterpret_cast<float*>(line), v);
            else
              _mm512_storeu_ps(line, v);
          });
        }
      }
    }
    _mm_sfence();
  });
}
#endif

void block_weight(const ConvDims& d, const uint16_t* weight, const WeightLayout& layout, uint16_t* blocked) {
  if (layout.padded) std::memset(blocked, 0, layout.desc.get_size());
#if defined(KK_DIRECT_CONV_AVX512)
  if (layout.pair_runs) return block_weight_by_pairs(d, weight, layout, blocked);
#endif
  block_weight_by_elements(d, weight, layout, blocked);
}

// Input rows [row0, row1) of one image (NCHW f32) as NHWC bf16, in tiles of 16 channels x 16 pixels.
void to_nhwc_bf16(const ConvDims& d, const float* image, int64_t row0, int64_t row1, uint16_t* nhwc_rows) {
  const int64_t plane = d.height * d.width;
  for (int64_t y = row0; y < row1; ++y) {
    uint16_t* out = nhwc_rows + (y - row0) * d.width * d.in_channels;
    for (int64_t c0 = 0; c0 < d.in_channels; c0 += 16) {
      const int64_t channels = std::min<int64_t>(16, d.in_channels - c0);
      const float* in = image + c0 * plane + y * d.width;
#if defined(KK_DIRECT_CONV_AVX512)
      for (int64_t x = 0; x < d.width; x += 16)
        transpose_tile(in + x, plane, channels, std::min<int64_t>(16, d.width - x), [&](int64_t k, __m512 v) {
          _mm256_mask_storeu_epi16(out + (x + k) * d.in_channels + c0, first_lanes(channels), bf16_bits16(v));
        });
#else
      for (int64_t x = 0; x < d.width; ++x)
        for (int64_t j = 0; j < channels; ++j) out[x * d.in_channels + c0 + j] = f32_to_bf16(in[j * plane + x]);
#endif
    }
  }
}

// Output rows [row0, row0 + rows) of one image from NHWC f32 back to NCHW, plus the bias, in tiles of 16
// pixels x 16 channels.
void from_nhwc(const ConvDims& d, const float* nhwc_rows, int64_t row0, int64_t rows, const float* bias,
               float* image) {
  const int64_t plane = d.out_height * d.out_width;
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = nhwc_rows + r * d.out_width * d.out_channels;
    for (int64_t o0 = 0; o0 < d.out_channels; o0 += 16) {
      const int64_t channels = std::min<int64_t>(16, d.out_channels - o0);
      float* out = image + o0 * plane + (row0 + r) * d.out_width;
#if defined(KK_DIRECT_CONV_AVX512)
      for (int64_t x = 0; x < d.out_width; x += 16) {
        const int64_t pixels = std::min<int64_t>(16, d.out_width - x);
        transpose_tile(in + x * d.out_channels + o0, d.out_channels, pixels, channels, [&](int64_t j, __m512 v) {
          const __m512 b = _mm512_set1_ps(bias != nullptr ? bias[o0 + j] : 0.0f);
          _mm512_mask_storeu_ps(out + j * plane + x, first_lanes(pixels), _mm512_add_ps(v, b));
        });
      }
#else
      for (int64_t x = 0; x < d.out_width; ++x)
        for (int64_t j = 0; j < channels; ++j)
          out[j * plane + x] = in[x * d.out_channels + o0 + j] + (bias != nullptr ? bias[o0 + j] : 0.0f);
#endif
    }
  }
}

}  // namespace

int64_t& direct_bf16_conv_min_pixels() {
  static int64_t pixels = 512;
  return pixels;
}

bool direct_bf16_conv_applies(const ConvDims& d, const Conv2dParams& p) {
  // 1x1 kernels stay on im2col: there it is a plain bf16 copy of the input, no 9x column matrix, and measured
  // as fast. Padding narrower than the kernel: every chunk then reads at least one input row.
  return d.kernel_h * d.kernel_w > 1 && d.in_channels > 0 && d.out_channels > 0 && p.pad_top < d.kernel_h &&
         p.pad_bottom < d.kernel_h && p.pad_left < d.kernel_w && p.pad_right < d.kernel_w &&
         d.batch * d.out_height * d.out_width >= std::max<int64_t>(direct_bf16_conv_min_pixels(), 1);
}

void conv2d_bf16_direct(const ConvDims& d, const float* input, const uint16_t* weight, const float* bias,
                        const Conv2dParams& p, float* output) {
  auto& mine = this_thread_plans<ChunkPlans>();
  const ChunkShape whole{d.in_channels, d.out_channels, d.kernel_h, d.kernel_w, d.height, d.width,
                         d.out_height,  d.out_width,    p.stride,   p.pad_top,  p.pad_bottom, p.pad_left,
                         p.pad_right};
  const WeightLayout& layout = mine.layouts.get(whole, make_layout);
  auto* blocked = reinterpret_cast<uint16_t*>(scratch(Slot::Weight).floats(layout.desc.get_size() / 4 + 1));
  block_weight(d, weight, layout, blocked);

  // Chunks of output rows: at least one per thread, each thread's input and output rows within its share of a
  // quarter of the im2col budget (smaller chunks stay in cache: the VAE decode 4 % faster than with all of it).
  const int64_t threads = num_threads();
  const int64_t in_row = d.width * d.in_channels, out_row = d.out_width * d.out_channels;  // elements
  const int64_t budget = scratch_limits().im2col / threads;  // bytes per thread: a quarter of im2col's floats
  const int64_t rows_that_fit =
      std::max<int64_t>(1, (budget - 2 * d.kernel_h * in_row) / (2 * p.stride * in_row + 4 * out_row));
  int64_t chunks = std::max((threads + d.batch - 1) / d.batch, (d.out_height + rows_that_fit - 1) / rows_that_fit);
  chunks = std::min(chunks, d.out_height);
  const int64_t chunk_rows = (d.out_height + chunks - 1) / chunks;
  chunks = (d.out_height + chunk_rows - 1) / chunk_rows;

  parallel_for(d.batch * chunks, [&](int64_t begin, int64_t end) {
    keep_onednn_on_this_thread();
    auto& plans = this_thread_plans<ChunkPlans>().plans;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks, oy0 = item % chunks * chunk_rows;
      const int64_t rows = std::min(chunk_rows, d.out_height - oy0);
      // Input rows [top, bottom) with the padding; the part inside the image, and what is left as padding.
      const int64_t top = oy0 * p.stride - p.pad_top, bottom = (oy0 + rows - 1) * p.stride - p.pad_top + d.kernel_h;
      const int64_t row0 = std::max<int64_t>(top, 0), row1 = std::min(bottom, d.height);
      const ChunkShape shape{d.in_channels, d.out_channels, d.kernel_h, d.kernel_w, row1 - row0,
                             d.width,       rows,           d.out_width, p.stride,  row0 - top,
                             bottom - row1, p.pad_left,     p.pad_right};
      Plan& plan = plans.get({shape, layout.desc}, [](const ChunkKey& key) {
        return Plan::of<dnnl::convolution_forward>(describe(key.shape, key.weights));
      });
      auto* src = reinterpret_cast<uint16_t*>(scratch(Slot::Work).floats(size_t((row1 - row0) * in_row) / 2 + 1));
      float* dst = scratch(Slot::Rounded).floats(size_t(rows * out_row));
      to_nhwc_bf16(d, input + n * d.in_channels * d.height * d.width, row0, row1, src);
      plan.execute(plans.stream(), src, blocked, dst);
      from_nhwc(d, dst, oy0, rows, bias, output + n * d.out_channels * d.out_height * d.out_width);
    }
  });
}

}  // namespace kakusan::cpu
