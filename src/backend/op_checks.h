// Argument checks shared by every backend: each op validates its views here once and gets back the sizes
// it loops over, so the reference and the fast kernels agree on what a legal call is and how it fails.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace kakusan {

struct LinearDims {
  int64_t m, n, k;  // y[m, n] = x[m, k] · w[n, k]ᵀ
};
LinearDims check_linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y);
// The rows a linear layer maps: x's elements per last-dimension entry (all dimensions but the last), also when
// the last is 0 (no input features: each row is then the bias alone).
int64_t linear_rows(const TensorView& x);

struct ConvDims {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t out_height, out_width;
};
ConvDims check_conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                      const TensorView& y);

struct GroupNormDims {
  int64_t batch, channels, spatial;  // x viewed as [batch, channels, spatial]
};
GroupNormDims check_group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta,
                               const TensorView& y);

struct RowsDims {
  int64_t rows, cols;  // a tensor seen as rows of its last dimension
};
RowsDims check_layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y);
RowsDims check_geglu(const TensorView& x, const TensorView& y);  // cols = output width N

struct AttentionDims {
  int64_t batch, q_len, kv_len, heads, head_dim, value_dim;
};
AttentionDims check_attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                              const TensorView& out);

// Same shape, float dtypes; `op` names the caller in the message.
void check_same_shape(const char* op, const TensorView& x, const TensorView& y);
void check_resize_nearest(const TensorView& x, const TensorView& y);
void check_cfg_combine(const TensorView& noise_pred, const TensorView& out);
// Returns the batch (rows of y). freq_shift must not equal dim / 2 where there are frequencies (a division by 0).
int64_t check_timestep_embedding(const TensorView& timesteps, int freq_shift, const TensorView& y);
// Returns the number of rows of the table.
int64_t check_embedding(const TensorView& table, const TensorView& ids, const TensorView& y);
void check_gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y);
// a's other side (width when blending vertically, height when horizontally) must reach across b's.
void check_blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical);

// Every output must be float32 (the one compute dtype implemented; see the contract in backend.h).
void check_f32(const char* op, const char* what, const TensorView& v);

}  // namespace kakusan
