#include "backend/op_checks.h"

namespace kakusan {
namespace {

// An allocation's rule (tensor_bytes): no negative dimension, and the product of the non-zero ones in range. A
// view made by hand may break it, and then its loops would never run (an output left unwritten) or its sizes
// would wrap.
void check_dims(const char* op, const char* what, const TensorView& v) {
  try {
    (void)tensor_bytes(v.shape, v.dtype);
  } catch (const Error& e) {
    fail(op, ": ", what, ": ", e.what());
  }
}

void check_float(const char* op, const char* what, const TensorView& v) {
  KK_CHECK(v.data != nullptr, op, ": ", what, " is empty");
  KK_CHECK(is_float(v.dtype), op, ": ", what, " must be a float tensor, got ", dtype_name(v.dtype));
  check_dims(op, what, v);
}

// An optional per-channel parameter (bias, gamma, beta): empty, or a float vector of `n` elements.
void check_param(const char* op, const char* what, const TensorView& v, int64_t n) {
  if (v.empty()) return;
  KK_CHECK(is_float(v.dtype), op, ": ", what, " must be a float tensor, got ", dtype_name(v.dtype));
  check_dims(op, what, v);
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
  check_dims(op, what, v);
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
  return {linear_rows(x), n, k};
}

int64_t linear_rows(const TensorView& x) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < x.rank(); ++i) rows *= x.dim(i);
  return rows;
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
  KK_CHECK(d.kernel_h >= 1 && d.kernel_w >= 1, "conv2d: weight ", w.shape, " has an empty kernel");
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
  KK_CHECK(p.precision == DType::F32 || p.precision == DType::BF16 || p.precision == DType::F16,
           "attention: precision must be F32, BF16 or F16, got ", dtype_name(p.precision));
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

void check_resize_nearest(const TensorView& x, const TensorView& y) {
  check_float("resize_nearest", "x", x);
  check_f32("resize_nearest", "y", y);
  KK_CHECK(x.rank() == 4 && y.rank() == 4, "resize_nearest: x ", x.shape, " and y ", y.shape, " must be NCHW");
  KK_CHECK(x.dim(0) == y.dim(0) && x.dim(1) == y.dim(1), "resize_nearest: x ", x.shape, " and y ", y.shape,
           " differ in batch or channels");
  KK_CHECK((x.dim(2) > 0 && x.dim(3) > 0) || y.numel() == 0, "resize_nearest: x ", x.shape, " is empty");
}

void check_cfg_combine(const TensorView& noise_pred, const TensorView& out) {
  check_float("cfg_combine", "noise_pred", noise_pred);
  check_f32("cfg_combine", "out", out);
  KK_CHECK(noise_pred.rank() >= 1 && noise_pred.dim(0) % 2 == 0, "cfg_combine: noise_pred ", noise_pred.shape,
           " must stack the unconditional and text predictions on dim 0");
  Shape half = noise_pred.shape;
  half[0] /= 2;
  KK_CHECK(out.shape == half, "cfg_combine: out must have shape ", half, ", got ", out.shape);
}

int64_t check_timestep_embedding(const TensorView& timesteps, int freq_shift, const TensorView& y) {
  check_float("timestep_embedding", "timesteps", timesteps);
  check_f32("timestep_embedding", "y", y);
  KK_CHECK(timesteps.dtype == DType::F32, "timestep_embedding: timesteps must be F32, got ",
           dtype_name(timesteps.dtype));
  KK_CHECK(y.rank() == 2, "timestep_embedding: y must be [batch, dim], got ", y.shape);
  KK_CHECK(timesteps.rank() <= 1, "timestep_embedding: timesteps must be a single value or a vector, got ",
           timesteps.shape);
  const int64_t batch = y.dim(0);
  KK_CHECK(timesteps.numel() == 1 || timesteps.numel() == batch, "timestep_embedding: timesteps has ",
           timesteps.numel(), " values for a batch of ", batch, " (expected 1 or ", batch, ")");
  // The frequencies divide by dim / 2 − freq_shift; torch's 0/0 there makes every value NaN.
  const int64_t half = y.dim(1) / 2;
  KK_CHECK(half == 0 || half != freq_shift, "timestep_embedding: freq_shift ", freq_shift, " equals dim / 2 for dim ",
           y.dim(1), ": the frequencies would divide by zero");
  return batch;
}

int64_t check_embedding(const TensorView& table, const TensorView& ids, const TensorView& y) {
  check_float("embedding", "table", table);
  check_f32("embedding", "y", y);
  KK_CHECK(!ids.empty() && ids.dtype == DType::I64, "embedding: ids must be I64, got ", dtype_name(ids.dtype));
  check_dims("embedding", "ids", ids);
  KK_CHECK(table.rank() == 2, "embedding: table must be [rows, width], got ", table.shape);
  Shape want = ids.shape;
  want.push_back(table.dim(1));
  KK_CHECK(y.shape == want, "embedding: y must have shape ", want, ", got ", y.shape);
  return table.dim(0);
}

void check_gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y) {
  check_float("gaussian_sample", "moments", moments);
  check_float("gaussian_sample", "noise", noise);
  check_f32("gaussian_sample", "y", y);
  KK_CHECK(moments.rank() == 4 && moments.dim(1) % 2 == 0, "gaussian_sample: moments ", moments.shape,
           " must be [B, 2·C, h, w]");
  const Shape want{moments.dim(0), moments.dim(1) / 2, moments.dim(2), moments.dim(3)};
  KK_CHECK(noise.shape == want && y.shape == want, "gaussian_sample: noise ", noise.shape, " and y ", y.shape,
           " must have shape ", want);
}

void check_blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical) {
  check_float("blend_tiles", "a", a);
  check_f32("blend_tiles", "b", b);
  KK_CHECK(a.rank() == 4 && b.rank() == 4 && a.dim(0) == b.dim(0) && a.dim(1) == b.dim(1), "blend_tiles: tiles ",
           a.shape, " and ", b.shape, " must be NCHW with the same batch and channels");
  KK_CHECK(extent >= 0, "blend_tiles: extent must be >= 0, got ", extent);
  // Each row of b blends with one of a along b's width (columns: height), so a must reach across it. diffusers
  // blends tiles of one column (or row), of equal sides; a wider a gives its first columns.
  const int side = vertical ? 3 : 2;
  KK_CHECK(a.dim(side) >= b.dim(side), "blend_tiles: tile a ", a.shape, " is ",
           vertical ? "narrower" : "shorter", " than tile b ", b.shape, " (blending ",
           vertical ? "vertically" : "horizontally", ")");
}

}  // namespace kakusan
