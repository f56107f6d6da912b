// The reference backend: every op as the plain formula, in loops simple enough to check by eye. Inputs of any
// strides and float dtype are first copied into dense float32 tensors and sums run in double, so these
// numbers are the yardstick the fast kernels are tested against, never a fast path.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "backend/op_checks.h"
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
    const auto xs = dense(x), ws = dense(w), bs = dense(bias);
    std::vector<float> ys(size_t(d.m * d.n));
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t o = 0; o < d.n; ++o) {
        double acc = bs.empty() ? 0.0 : bs[o];
        for (int64_t j = 0; j < d.k; ++j) acc += double(xs[i * d.k + j]) * ws[o * d.k + j];
        ys[i * d.n + o] = float(acc);
      }
    write(ys, y);
  }

  void matmul(const TensorView& a, bool trans_a, const TensorView& b, bool trans_b, const TensorView& c, float alpha,
              float beta) override {
    const MatmulDims d = check_matmul(a, trans_a, b, trans_b, c);
    const auto as = dense(a), bs = dense(b);
    auto cs = dense(c);
    for (int64_t batch = 0; batch < d.batch; ++batch) {
      const float* pa = as.data() + (d.batch_a ? batch * d.m * d.k : 0);
      const float* pb = bs.data() + (d.batch_b ? batch * d.k * d.n : 0);
      float* pc = cs.data() + batch * d.m * d.n;
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.n; ++j) {
          double acc = 0;
          for (int64_t l = 0; l < d.k; ++l) {
            const float av = trans_a ? pa[l * d.m + i] : pa[i * d.k + l];
            const float bv = trans_b ? pb[j * d.k + l] : pb[l * d.n + j];
            acc += double(av) * bv;
          }
          // BLAS semantics: beta == 0 means c is not read (so garbage or NaN in c is ignored).
          const double prev = beta == 0.0f ? 0.0 : double(beta) * pc[i * d.n + j];
          pc[i * d.n + j] = float(alpha * acc + prev);
        }
    }
    write(cs, c);
  }

  void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
              const TensorView& y) override {
    const ConvDims d = check_conv2d(x, w, bias, p, y);
    const auto xs = dense(x), ws = dense(w), bs = dense(bias);
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
    const auto qs = dense(q), ks = dense(k), vs = dense(v);
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
          softmax_row(scores.data(), keys);
          float* oi = os.data() + (b * d.q_len + i) * vw + h * d.value_dim;
          for (int64_t e = 0; e < d.value_dim; ++e) {
            double acc = 0;
            for (int64_t j = 0; j < keys; ++j) acc += scores[j] * vs[(b * d.kv_len + j) * vw + h * d.value_dim + e];
            oi[e] = float(acc);
          }
        }
    write(os, out);
  }

  void softmax(const TensorView& x, const TensorView& y) override {
    check_same_shape("softmax", x, y);
    KK_CHECK(x.rank() >= 1, "softmax: x must have at least one dimension");
    const auto xs = dense(x);
    const int64_t cols = x.dim(-1), rows = cols == 0 ? 0 : x.numel() / cols;
    std::vector<float> ys(xs.size());
    std::vector<double> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) row[j] = xs[r * cols + j];
      softmax_row(row.data(), cols);
      for (int64_t j = 0; j < cols; ++j) ys[r * cols + j] = float(row[j]);
    }
    write(ys, y);
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

  void upsample_nearest2x(const TensorView& x, const TensorView& y) override {
    check_upsample_nearest2x(x, y);
    const auto xs = dense(x);
    const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    std::vector<float> ys(size_t(y.numel()));
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t oy = 0; oy < 2 * h; ++oy)
        for (int64_t ox = 0; ox < 2 * w; ++ox)
          ys[(pl * 2 * h + oy) * 2 * w + ox] = xs[(pl * h + oy / 2) * w + ox / 2];
    write(ys, y);
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
