#include "backend/op_checks.h"

namespace kakusan {
namespace {

void check_float(const char* op, const char* what, const TensorView& v) {
  KK_CHECK(v.data != nullptr, op, ": ", what, " is empty");
  KK_CHECK(is_float(v.dtype), op, ": ", what, " must be a float tensor, got ", dtype_name(v.dtype));
}

// An optional per-channel parameter (bias, gamma, beta): empty, or a float vector of `n` elements.
void check_param(const char* op, const char* what, const TensorView& v, int64_t n) {
  if (v.empty()) return;
  KK_CHECK(is_float(v.dtype), op, ": ", what, " must be a float tensor, got ", dtype_name(v.dtype));
  KK_CHECK(v.rank() == 1 && v.dim(0) == n, op, ": ", what, " must have shape [", n, "], got ", v.shape);
}

Shape with_last(const Shape& s, int64_t last) {
  Shape r = s;
  r[r.rank() - 1] = last;
  return r;
}

}  // namespace

void check_f32(const char* op, const char* what, const TensorView& v) {
  KK_CHECK(v.data != nullptr, op, ": ", what, " is empty");
  KK_CHECK(v.dtype == DType::F32, op, ": ", what, " must be F32, got ", dtype_name(v.dtype));
}

LinearDims check_linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) {
  check_float("linear", "x", x);
  check_float("linear", "weight", w);
  check_f32("linear", "y", y);
  KK_CHECK(w.rank() == 2, "linear: weight must be [out, in], got ", w.shape);
  const int64_t n = w.dim(0), k = w.dim(1);
  KK_CHECK(x.rank() >= 1 && x.dim(-1) == k, "linear: x ", x.shape, " must end in in_features ", k);
  KK_CHECK(y.shape == with_last(x.shape, n), "linear: y must have shape ", with_last(x.shape, n), ", got ", y.shape);
  check_param("linear", "bias", bias, n);
  return {k == 0 ? 0 : x.numel() / k, n, k};
}

MatmulDims check_matmul(const TensorView& a, bool trans_a, const TensorView& b, bool trans_b, const TensorView& c) {
  check_float("matmul", "a", a);
  check_float("matmul", "b", b);
  check_f32("matmul", "c", c);
  KK_CHECK(c.rank() == 2 || c.rank() == 3, "matmul: c must be rank 2 or 3, got ", c.shape);
  KK_CHECK(a.rank() == c.rank() || a.rank() == 2, "matmul: a ", a.shape, " does not match c ", c.shape);
  KK_CHECK(b.rank() == c.rank() || b.rank() == 2, "matmul: b ", b.shape, " does not match c ", c.shape);
  const int64_t batch = c.rank() == 3 ? c.dim(0) : 1;
  const bool batch_a = a.rank() == 3 && a.dim(0) != 1;
  const bool batch_b = b.rank() == 3 && b.dim(0) != 1;
  KK_CHECK(!batch_a || a.dim(0) == batch, "matmul: batch of a ", a.shape, " does not match c ", c.shape);
  KK_CHECK(!batch_b || b.dim(0) == batch, "matmul: batch of b ", b.shape, " does not match c ", c.shape);
  const int64_t a_rows = a.dim(-2), a_cols = a.dim(-1), b_rows = b.dim(-2), b_cols = b.dim(-1);
  const int64_t m = trans_a ? a_cols : a_rows, k = trans_a ? a_rows : a_cols;
  const int64_t n = trans_b ? b_rows : b_cols, kb = trans_b ? b_cols : b_rows;
  KK_CHECK(k == kb, "matmul: inner dimensions differ: a ", a.shape, (trans_a ? "ᵀ" : ""), " · b ", b.shape,
           (trans_b ? "ᵀ" : ""));
  KK_CHECK(c.dim(-2) == m && c.dim(-1) == n, "matmul: c must be [", m, ", ", n, "], got ", c.shape);
  return {batch, m, n, k, batch_a, batch_b};
}

ConvDims check_conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                      const TensorView& y) {
  check_float("conv2d", "x", x);
  check_float("conv2d", "weight", w);
  check_f32("conv2d", "y", y);
  KK_CHECK(x.rank() == 4, "conv2d: x must be NCHW, got ", x.shape);
  KK_CHECK(w.rank() == 4, "conv2d: weight must be [out, in, kh, kw], got ", w.shape);
  KK_CHECK(w.dim(1) == x.dim(1), "conv2d: weight ", w.shape, " expects ", w.dim(1), " input channels, x has ",
           x.dim(1));
  KK_CHECK(p.stride >= 1, "conv2d: stride must be >= 1, got ", p.stride);
  KK_CHECK(p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 && p.pad_right >= 0,
           "conv2d: padding must be >= 0");
  ConvDims d{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), 0, 0};
  const int64_t padded_h = d.height + p.pad_top + p.pad_bottom, padded_w = d.width + p.pad_left + p.pad_right;
  KK_CHECK(padded_h >= d.kernel_h && padded_w >= d.kernel_w, "conv2d: kernel ", d.kernel_h, "x", d.kernel_w,
           " is larger than the padded input ", padded_h, "x", padded_w);
  d.out_height = (padded_h - d.kernel_h) / p.stride + 1;
  d.out_width = (padded_w - d.kernel_w) / p.stride + 1;
  const Shape want{d.batch, d.out_channels, d.out_height, d.out_width};
  KK_CHECK(y.shape == want, "conv2d: y must have shape ", want, ", got ", y.shape);
  check_param("conv2d", "bias", bias, d.out_channels);
  return d;
}

GroupNormDims check_group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta,
                               const TensorView& y) {
  check_float("group_norm", "x", x);
  check_f32("group_norm", "y", y);
  KK_CHECK(x.rank() >= 2, "group_norm: x must be [N, C, ...], got ", x.shape);
  KK_CHECK(y.shape == x.shape, "group_norm: y ", y.shape, " must have the shape of x ", x.shape);
  const int64_t c = x.dim(1);
  KK_CHECK(groups >= 1 && c % groups == 0, "group_norm: ", c, " channels do not split into ", groups, " groups");
  check_param("group_norm", "gamma", gamma, c);
  check_param("group_norm", "beta", beta, c);
  const int64_t n = x.dim(0);
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

RowsDims check_layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y) {
  check_float("layer_norm", "x", x);
  check_f32("layer_norm", "y", y);
  KK_CHECK(x.rank() >= 1, "layer_norm: x must have at least one dimension");
  KK_CHECK(y.shape == x.shape, "layer_norm: y ", y.shape, " must have the shape of x ", x.shape);
  const int64_t cols = x.dim(-1);
  check_param("layer_norm", "gamma", gamma, cols);
  check_param("layer_norm", "beta", beta, cols);
  return {cols == 0 ? 0 : x.numel() / cols, cols};
}

RowsDims check_geglu(const TensorView& x, const TensorView& y) {
  check_float("geglu", "x", x);
  check_f32("geglu", "y", y);
  KK_CHECK(x.rank() >= 1 && x.dim(-1) % 2 == 0, "geglu: x ", x.shape, " must end in an even width");
  const int64_t n = x.dim(-1) / 2;
  KK_CHECK(y.shape == with_last(x.shape, n), "geglu: y must have shape ", with_last(x.shape, n), ", got ", y.shape);
  return {n == 0 ? 0 : y.numel() / n, n};
}

AttentionDims check_attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                              const TensorView& out) {
  check_float("attention", "q", q);
  check_float("attention", "k", k);
  check_float("attention", "v", v);
  check_f32("attention", "out", out);
  KK_CHECK(q.rank() == 3 && k.rank() == 3 && v.rank() == 3 && out.rank() == 3, "attention: q ", q.shape, ", k ",
           k.shape, ", v ", v.shape, ", out ", out.shape, " must all be [batch, tokens, heads·dim]");
  KK_CHECK(p.heads >= 1, "attention: heads must be >= 1, got ", p.heads);
  KK_CHECK(p.slice_size >= 0, "attention: slice_size must be >= 0, got ", p.slice_size);
  const int64_t b = q.dim(0), tq = q.dim(1), tk = k.dim(1), h = p.heads;
  KK_CHECK(k.dim(0) == b && v.dim(0) == b && out.dim(0) == b, "attention: batch sizes differ: q ", q.shape, ", k ",
           k.shape, ", v ", v.shape, ", out ", out.shape);
  KK_CHECK(v.dim(1) == tk, "attention: k ", k.shape, " and v ", v.shape, " have different token counts");
  KK_CHECK(q.dim(2) % h == 0 && v.dim(2) % h == 0, "attention: widths of q ", q.shape, " / v ", v.shape,
           " do not split into ", h, " heads");
  KK_CHECK(k.dim(2) == q.dim(2), "attention: q ", q.shape, " and k ", k.shape, " have different widths");
  const Shape want{b, tq, v.dim(2)};
  KK_CHECK(out.shape == want, "attention: out must have shape ", want, ", got ", out.shape);
  return {b, tq, tk, h, q.dim(2) / h, v.dim(2) / h};
}

void check_same_shape(const char* op, const TensorView& x, const TensorView& y) {
  check_float(op, "input", x);
  check_float(op, "output", y);
  KK_CHECK(x.shape == y.shape, op, ": shapes differ: ", x.shape, " vs ", y.shape);
}

void check_upsample_nearest2x(const TensorView& x, const TensorView& y) {
  check_float("upsample_nearest2x", "x", x);
  check_f32("upsample_nearest2x", "y", y);
  KK_CHECK(x.rank() == 4, "upsample_nearest2x: x must be NCHW, got ", x.shape);
  const Shape want{x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)};
  KK_CHECK(y.shape == want, "upsample_nearest2x: y must have shape ", want, ", got ", y.shape);
}

}  // namespace kakusan
