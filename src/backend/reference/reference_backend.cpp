// The reference backend: every op as the plain formula, in loops simple enough to check by eye. Inputs of any
// strides and float dtype are first copied into dense float32 tensors and sums run in double, so these
// numbers are the yardstick the fast kernels are tested against, never a fast path. Reduced-precision
// products (a bf16 weight, AttentionParams::precision) round their operands first (backend/precision.h); the
// rounded operands' products are exact in double, so only the rounding itself changes the result.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "backend/op_checks.h"
#include "backend/op_formulas.h"
#include "backend/precision.h"
#include "core/half.h"

namespace kakusan {
namespace {

float load(const TensorView& v, int64_t offset) {
  switch (v.dtype) {
    case DType::F32: return static_cast<const float*>(v.data)[offset];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(v.data)[offset]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(v.data)[offset]);
    case DType::I64: return float(static_cast<const int64_t*>(v.data)[offset]);
  }
  return 0;
}

void store(const TensorView& v, int64_t offset, float value) {
  switch (v.dtype) {
    case DType::F32: static_cast<float*>(v.data)[offset] = value; return;
    case DType::F16: static_cast<uint16_t*>(v.data)[offset] = f32_to_f16(value); return;
    case DType::BF16: static_cast<uint16_t*>(v.data)[offset] = f32_to_bf16(value); return;
    case DType::I64: static_cast<int64_t*>(v.data)[offset] = int64_t(value); return;
  }
}

// Element offset of the i-th element (row-major order of the shape) in a strided view.
int64_t offset_of(const TensorView& v, int64_t i) {
  int64_t offset = 0;
  for (int d = v.rank() - 1; d >= 0; --d) {
    offset += (i % v.shape[d]) * v.strides[d];
    i /= v.shape[d];
  }
  return offset;
}

void strided_copy(const TensorView& x, const TensorView& y) {
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) store(y, offset_of(y, i), load(x, offset_of(x, i)));
}

// Dense float32 copy of any view (empty stays empty).
std::vector<float> dense(const TensorView& v) {
  if (v.empty()) return {};
  std::vector<float> out(size_t(v.numel()));
  for (int64_t i = 0; i < v.numel(); ++i) out[size_t(i)] = load(v, offset_of(v, i));
  return out;
}

// The same values rounded to `precision` (backend.h's rule for reduced-precision operands).
std::vector<float> rounded(std::vector<float> values, DType precision) {
  for (float& e : values) e = round_to(precision, e);
  return values;
}

// Writes a dense row-major result into y (any strides).
void write(const std::vector<float>& values, const TensorView& y) {
  for (int64_t i = 0; i < y.numel(); ++i) store(y, offset_of(y, i), values[size_t(i)]);
}

double apply(Activation act, double x) {
  switch (act) {
    case Activation::None: return x;
    case Activation::SiLU: return x / (1.0 + std::exp(-x));
    case Activation::GELU: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::GELUTanh: {
      const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
      return 0.5 * x * (1.0 + std::tanh(u));
    }
    case Activation::QuickGELU: return x / (1.0 + std::exp(-1.702 * x));
    case Activation::ReLU: return x > 0 ? x : 0.0;
    case Activation::SoftClamp3: return 3.0 * std::tanh(x / 3.0);
    case Activation::SignedToUnit: return (x + 1.0) / 2.0;
    case Activation::UnitToSigned: return 2.0 * x - 1.0;
  }
  return x;
}

// Softmax of row[0, n) in place.
void softmax_row(double* row, int64_t n) {
  double max = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) max = std::max(max, row[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - max);
  for (int64_t j = 0; j < n; ++j) row[j] /= sum;
}

class ReferenceBackend final : public Backend {
 public:
  const char* name() const override { return "reference"; }

  void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) override {
    const LinearDims d = check_linear(x, w, bias, y);
    const auto xs = rounded(dense(x), product_precision(w)), ws = dense(w), bs = dense(bias);
    std::vector<float> ys(size_t(d.m * d.n));
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t o = 0; o < d.n; ++o) {
        double acc = bs.empty() ? 0.0 : bs[o];
        for (int64_t j = 0; j < d.k; ++j) acc += double(xs[i * d.k + j]) * ws[o * d.k + j];
        ys[i * d.n + o] = float(acc);
      }
    write(ys, y);
  }

  void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
              const TensorView& y) override {
    const ConvDims d = check_conv2d(x, w, bias, p, y);
    const auto xs = rounded(dense(x), product_precision(w)), ws = dense(w), bs = dense(bias);
    std::vector<float> ys(size_t(y.numel()));
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t o = 0; o < d.out_channels; ++o)
        for (int64_t oy = 0; oy < d.out_height; ++oy)
          for (int64_t ox = 0; ox < d.out_width; ++ox) {
            double acc = bs.empty() ? 0.0 : bs[o];
            for (int64_t i = 0; i < d.in_channels; ++i)
              for (int64_t ky = 0; ky < d.kernel_h; ++ky)
                for (int64_t kx = 0; kx < d.kernel_w; ++kx) {
                  const int64_t iy = oy * p.stride - p.pad_top + ky, ix = ox * p.stride - p.pad_left + kx;
                  if (iy < 0 || iy >= d.height || ix < 0 || ix >= d.width) continue;  // zero padding
                  const float xv = xs[((n * d.in_channels + i) * d.height + iy) * d.width + ix];
                  const float wv = ws[((o * d.in_channels + i) * d.kernel_h + ky) * d.kernel_w + kx];
                  acc += double(xv) * wv;
                }
            ys[((n * d.out_channels + o) * d.out_height + oy) * d.out_width + ox] = float(acc);
          }
    write(ys, y);
  }

  void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                  Activation act, const TensorView& y) override {
    const GroupNormDims d = check_group_norm(x, groups, gamma, beta, y);
    auto xs = dense(x);
    const auto gs = dense(gamma), bs = dense(beta);
    const int64_t per_group = d.channels / groups * d.spatial;
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t g = 0; g < groups; ++g) {
        float* data = xs.data() + (n * groups + g) * per_group;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < per_group; ++i) mean += data[i];
        mean /= double(per_group);
        for (int64_t i = 0; i < per_group; ++i) var += (data[i] - mean) * (data[i] - mean);
        var /= double(per_group);  // biased, as torch
        const double rstd = 1.0 / std::sqrt(var + eps);
        for (int64_t i = 0; i < per_group; ++i) {
          const int64_t c = g * (d.channels / groups) + i / d.spatial;
          double v = (data[i] - mean) * rstd;
          if (!gs.empty()) v *= gs[c];
          if (!bs.empty()) v += bs[c];
          data[i] = float(apply(act, v));
        }
      }
    write(xs, y);
  }

  void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                  const TensorView& y) override {
    const RowsDims d = check_layer_norm(x, gamma, beta, y);
    auto xs = dense(x);
    const auto gs = dense(gamma), bs = dense(beta);
    for (int64_t r = 0; r < d.rows; ++r) {
      float* row = xs.data() + r * d.cols;
      double mean = 0, var = 0;
      for (int64_t j = 0; j < d.cols; ++j) mean += row[j];
      mean /= double(d.cols);
      for (int64_t j = 0; j < d.cols; ++j) var += (row[j] - mean) * (row[j] - mean);
      var /= double(d.cols);
      const double rstd = 1.0 / std::sqrt(var + eps);
      for (int64_t j = 0; j < d.cols; ++j) {
        double v = (row[j] - mean) * rstd;
        if (!gs.empty()) v *= gs[j];
        if (!bs.empty()) v += bs[j];
        row[j] = float(v);
      }
    }
    write(xs, y);
  }

  void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                 const TensorView& out) override {
    const AttentionDims d = check_attention(q, k, v, p, out);
    const bool reduced = p.precision != DType::F32;
    const auto qs = rounded(dense(q), p.precision), ks = rounded(dense(k), p.precision);
    const auto vs = rounded(dense(v), p.precision);
    std::vector<float> os(size_t(out.numel()));
    std::vector<double> scores(size_t(d.kv_len));
    const int64_t qw = d.heads * d.head_dim, vw = d.heads * d.value_dim;
    for (int64_t b = 0; b < d.batch; ++b)
      for (int64_t h = 0; h < d.heads; ++h)
        for (int64_t i = 0; i < d.q_len; ++i) {
          const float* qi = qs.data() + (b * d.q_len + i) * qw + h * d.head_dim;
          // Causal: query i sees keys 0..i only.
          const int64_t keys = p.causal ? std::min(i + 1, d.kv_len) : d.kv_len;
          for (int64_t j = 0; j < keys; ++j) {
            const float* kj = ks.data() + (b * d.kv_len + j) * qw + h * d.head_dim;
            double dot = 0;
            for (int64_t e = 0; e < d.head_dim; ++e) dot += double(qi[e]) * kj[e];
            scores[j] = double(p.scale) * dot;
          }
          // f32: the normalised softmax. Reduced precision: e^(s − k·ln 2) rounded, divided by the sum of the
          // unrounded values after the product (precision.h says why the shift is a power of two).
          double norm = 1;
          if (reduced && keys > 0) {  // no keys: zeros, as in f32
            const double max = *std::max_element(scores.begin(), scores.begin() + keys);
            const double shift = double(softmax_shift_exponent(float(max))) * std::log(2.0);
            norm = 0;
            for (int64_t j = 0; j < keys; ++j) {
              const double e = std::exp(scores[j] - shift);
              norm += e;
              scores[j] = round_to(p.precision, float(e));
            }
          } else {
            softmax_row(scores.data(), keys);
          }
          float* oi = os.data() + (b * d.q_len + i) * vw + h * d.value_dim;
          for (int64_t e = 0; e < d.value_dim; ++e) {
            double acc = 0;
            for (int64_t j = 0; j < keys; ++j) acc += scores[j] * vs[(b * d.kv_len + j) * vw + h * d.value_dim + e];
            oi[e] = float(acc / norm);
          }
        }
    write(os, out);
  }

  void activation(const TensorView& x, Activation act, const TensorView& y) override {
    check_same_shape("activation", x, y);
    auto xs = dense(x);
    for (float& e : xs) e = float(apply(act, e));
    write(xs, y);
  }

  void add(const TensorView& a, const TensorView& b, const TensorView& y) override {
    check_same_shape("add", a, b);
    check_same_shape("add", a, y);
    auto as = dense(a);
    const auto bs = dense(b);
    for (size_t i = 0; i < as.size(); ++i) as[i] += bs[i];
    write(as, y);
  }

  void geglu(const TensorView& x, const TensorView& y) override {
    const RowsDims d = check_geglu(x, y);
    const auto xs = dense(x);
    std::vector<float> ys(size_t(d.rows * d.cols));
    for (int64_t r = 0; r < d.rows; ++r)
      for (int64_t j = 0; j < d.cols; ++j) {
        const double hidden = xs[r * 2 * d.cols + j], gate = xs[r * 2 * d.cols + d.cols + j];
        ys[r * d.cols + j] = float(hidden * apply(Activation::GELU, gate));
      }
    write(ys, y);
  }

  void resize_nearest(const TensorView& x, const TensorView& y) override {
    check_resize_nearest(x, y);
    const auto xs = dense(x);
    const int64_t planes = x.dim(0) * x.dim(1), ih = x.dim(2), iw = x.dim(3), oh = y.dim(2), ow = y.dim(3);
    const float sh = formula::nearest_scale(ih, oh), sw = formula::nearest_scale(iw, ow);
    std::vector<float> ys(size_t(y.numel()));
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox)
          ys[(pl * oh + oy) * ow + ox] =
              xs[(pl * ih + formula::nearest_source(oy, sh, ih)) * iw + formula::nearest_source(ox, sw, iw)];
    write(ys, y);
  }

  void scale(const TensorView& x, float alpha, const TensorView& y) override {
    check_same_shape("scale", x, y);
    check_f32("scale", "y", y);
    auto xs = dense(x);
    for (float& e : xs) e = e * alpha;
    write(xs, y);
  }

  void divide(const TensorView& x, float divisor, const TensorView& y) override {
    check_same_shape("divide", x, y);
    check_f32("divide", "y", y);
    auto xs = dense(x);
    for (float& e : xs) e = e / divisor;
    write(xs, y);
  }

  void cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out) override {
    check_cfg_combine(noise_pred, out);
    const auto ps = dense(noise_pred);
    const size_t n = size_t(out.numel());
    std::vector<float> ys(n);
    for (size_t i = 0; i < n; ++i) ys[i] = formula::guided(ps[i], ps[n + i], guidance);
    write(ys, out);
  }

  void timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift,
                          const TensorView& y) override {
    const int64_t batch = check_timestep_embedding(timesteps, freq_shift, y);
    const auto ts = dense(timesteps);
    const int64_t dim = y.dim(1);
    std::vector<float> ys(size_t(batch * dim));
    for (int64_t b = 0; b < batch; ++b)
      formula::timestep_row(ts[ts.size() == 1 ? 0 : size_t(b)], dim, flip_sin_to_cos, freq_shift, ys.data() + b * dim);
    write(ys, y);
  }

  void embedding(const TensorView& table, const TensorView& ids, const TensorView& y) override {
    const int64_t rows = check_embedding(table, ids, y);
    const int64_t width = table.dim(1);
    for (int64_t i = 0; i < ids.numel(); ++i) {
      const int64_t id = static_cast<const int64_t*>(ids.data)[offset_of(ids, i)];
      KK_CHECK(id >= 0 && id < rows, "embedding: id ", id, " (element ", i, " of ids ", ids.shape,
               ") is outside the table's rows [0, ", rows, ")");
      for (int64_t j = 0; j < width; ++j)
        store(y, offset_of(y, i * width + j), load(table, id * table.strides[0] + j * table.strides[1]));
    }
  }

  void gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) override {
    check_gaussian_sample(moments, noise, y);
    const auto ms = dense(moments), ns = dense(noise);
    const int64_t batch = y.dim(0), per_sample = y.numel() / std::max<int64_t>(batch, 1);
    std::vector<float> ys(ns.size());
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < per_sample; ++i) {
        const float mean = ms[(2 * b) * per_sample + i], logvar = ms[(2 * b + 1) * per_sample + i];
        ys[b * per_sample + i] = formula::gaussian_sample(mean, logvar, ns[b * per_sample + i]);
      }
    write(ys, y);
  }

  void blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) override {
    check_blend_tiles(a, b, extent, vertical);
    const auto as = dense(a);
    auto bs = dense(b);
    const int64_t planes = a.dim(0) * a.dim(1), ah = a.dim(2), aw = a.dim(3), bh = b.dim(2), bw = b.dim(3);
    extent = std::min({vertical ? ah : aw, vertical ? bh : bw, extent});
    for (int64_t k = 0; k < extent; ++k) {
      const float wa = formula::blend_weight_a(k, extent), wb = formula::blend_weight_b(k, extent);
      for (int64_t p = 0; p < planes; ++p) {
        const float* ap = as.data() + p * ah * aw;
        float* bp = bs.data() + p * bh * bw;
        if (vertical) {
          for (int64_t x = 0; x < bw; ++x)
            bp[k * bw + x] = formula::blend(ap[(ah - extent + k) * aw + x], wa, bp[k * bw + x], wb);
        } else {
          for (int64_t r = 0; r < bh; ++r)
            bp[r * bw + k] = formula::blend(ap[r * aw + aw - extent + k], wa, bp[r * bw + k], wb);
        }
      }
    }
    write(bs, b);
  }

  void copy(const TensorView& x, const TensorView& y) override {
    check_same_shape("copy", x, y);
    strided_copy(x, y);
  }
};

}  // namespace

Backend& reference_backend() {
  static ReferenceBackend backend;
  return backend;
}

}  // namespace kakusan
