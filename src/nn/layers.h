// The basic layers, named as torch names their parameters. Each holds weights only; forward() writes into
// a caller-provided output so activations can come from a planned arena.
#pragma once

#include "backend/backend.h"
#include "nn/weights.h"

namespace kakusan {

struct Linear {
  int64_t in = 0, out = 0;
  bool has_bias = true;
  Tensor weight, bias;

  Linear() = default;
  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : in(in_features), out(out_features), has_bias(bias) {}

  void visit(WeightVisitor& v) {
    v("weight", weight, {out, in});
    if (has_bias) v("bias", bias, {out});
  }
  // y[..., out] = x[..., in] · Wᵀ + b
  void forward(Backend& be, const TensorView& x, const TensorView& y) const {
    be.linear(x, weight, has_bias ? bias.view() : TensorView(), y);
  }
};

struct Conv2d {
  int64_t in = 0, out = 0, kernel = 1;
  Conv2dParams params;
  bool has_bias = true;
  Tensor weight, bias;

  Conv2d() = default;
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int stride = 1, int padding = 0,
         bool bias = true)
      : in(in_channels), out(out_channels), kernel(kernel_size),
        params(Conv2dParams::symmetric(padding, stride)), has_bias(bias) {}

  void visit(WeightVisitor& v) {
    v("weight", weight, {out, in, kernel, kernel});
    if (has_bias) v("bias", bias, {out});
  }
  int64_t out_size(int64_t in_size, bool vertical) const {
    const int pad = vertical ? params.pad_top + params.pad_bottom : params.pad_left + params.pad_right;
    return (in_size + pad - kernel) / params.stride + 1;
  }
  Shape out_shape(const Shape& x) const { return {x[0], out, out_size(x[2], true), out_size(x[3], false)}; }
  void forward(Backend& be, const TensorView& x, const TensorView& y) const {
    be.conv2d(x, weight, has_bias ? bias.view() : TensorView(), params, y);
  }
};

struct GroupNorm {
  int groups = 32;
  int64_t channels = 0;
  float eps = 1e-5f;
  Tensor weight, bias;

  GroupNorm() = default;
  GroupNorm(int num_groups, int64_t num_channels, float epsilon)
      : groups(num_groups), channels(num_channels), eps(epsilon) {}

  void visit(WeightVisitor& v) {
    v("weight", weight, {channels});
    v("bias", bias, {channels});
  }
  // act = SiLU fuses the activation that follows most GroupNorms in the UNet and VAE.
  void forward(Backend& be, const TensorView& x, const TensorView& y, Activation act = Activation::None) const {
    be.group_norm(x, groups, weight, bias, eps, act, y);
  }
};

struct LayerNorm {
  int64_t dim = 0;
  float eps = 1e-5f;
  Tensor weight, bias;

  LayerNorm() = default;
  LayerNorm(int64_t normalized_dim, float epsilon) : dim(normalized_dim), eps(epsilon) {}

  void visit(WeightVisitor& v) {
    v("weight", weight, {dim});
    v("bias", bias, {dim});
  }
  void forward(Backend& be, const TensorView& x, const TensorView& y) const {
    be.layer_norm(x, weight, bias, eps, y);
  }
};

}  // namespace kakusan
