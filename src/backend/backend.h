// The compute backend: the one narrow interface through which models run every heavy op.
//
// Model code calls only these functions, on TensorViews, so a second backend (CUDA, another CPU kernel
// library) slots in without touching models. Every op has a plain-loop reference implementation
// (reference_backend()) that the fast one (cpu_backend()) is tested against.
//
// Conventions: activations are float32; weights may be f32, f16 or bf16 (converted at use, so an fp16 model
// costs fp16 memory). Images are NCHW. Outputs are contiguous and distinct from inputs unless an op says
// that aliasing is allowed.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace kakusan {

// ReLU, SoftClamp3 = 3·tanh(x/3), SignedToUnit = (x + 1)/2 and UnitToSigned = 2x − 1 are TAESD's
// (AutoencoderTiny's) elementwise steps, each rounded as its torch expression.
enum class Activation : uint8_t { None, SiLU, GELU, GELUTanh, QuickGELU, ReLU, SoftClamp3, SignedToUnit, UnitToSigned };

struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  static Conv2dParams symmetric(int pad, int stride = 1) { return {stride, pad, pad, pad, pad}; }
};

// How attention is computed. All strategies give the same numbers (to float rounding).
enum class AttentionStrategy : uint8_t {
  Auto,    // the backend's fastest
  Full,    // materialise the whole score matrix per (batch, head)
  Sliced,  // diffusers' enable_attention_slicing: slice_size (batch*head) slices at a time
  Flash,   // tiled with an online softmax; never materialises Tq x Tk scores
};

struct AttentionParams {
  int heads = 1;
  float scale = 1.0f;  // multiplies q·kᵀ (diffusers: head_dim^-0.5)
  bool causal = false; // mask keys after the query position (CLIP)
  AttentionStrategy strategy = AttentionStrategy::Auto;
  int slice_size = 0;  // for Sliced; 0 means one slice per (batch, head)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // y[M, N] = x[M, K] · w[N, K]ᵀ + bias[N]. x and y may have leading dims (M = numel / K). bias may be empty.
  virtual void linear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) = 0;

  // c = alpha · op(a) · op(b) + beta · c, op = transpose if requested. Rank 2, or rank 3 batched over dim 0.
  virtual void matmul(const TensorView& a, bool trans_a, const TensorView& b, bool trans_b, const TensorView& c,
                      float alpha = 1.0f, float beta = 0.0f) = 0;

  // y[N, O, Ho, Wo] = conv(x[N, I, H, W], w[O, I, kh, kw]) + bias[O] (bias may be empty).
  virtual void conv2d(const TensorView& x, const TensorView& w, const TensorView& bias, const Conv2dParams& p,
                      const TensorView& y) = 0;

  // Per sample, normalise each of `groups` channel groups over (channels of the group × spatial), apply
  // gamma/beta per channel, then `act` (None or SiLU). x: [N, C, ...]. y may alias x.
  virtual void group_norm(const TensorView& x, int groups, const TensorView& gamma, const TensorView& beta, float eps,
                          Activation act, const TensorView& y) = 0;

  // Normalise over the last dimension, then gamma/beta. y may alias x.
  virtual void layer_norm(const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                          const TensorView& y) = 0;

  // Multi-head attention. q [B, Tq, H·D], k [B, Tk, H·D], v [B, Tk, H·Dv] -> out [B, Tq, H·Dv]:
  // per head, softmax(scale · q·kᵀ, masked if causal) · v. q, k, v may be strided views (e.g. slices of a
  // fused qkv projection) as long as their last dimension is contiguous.
  virtual void attention(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionParams& p,
                         const TensorView& out) = 0;

  // Softmax over the last dimension. y may alias x.
  virtual void softmax(const TensorView& x, const TensorView& y) = 0;

  // y = act(x), elementwise. y may alias x.
  virtual void activation(const TensorView& x, Activation act, const TensorView& y) = 0;

  // y = a + b, same shapes. y may alias a or b.
  virtual void add(const TensorView& a, const TensorView& b, const TensorView& y) = 0;

  // diffusers' GEGLU after its projection: x [M, 2N] -> y [M, N] = x[:, :N] · gelu(x[:, N:]) (exact erf GELU).
  virtual void geglu(const TensorView& x, const TensorView& y) = 0;

  // Nearest-neighbour ×2 upsampling of NCHW.
  virtual void upsample_nearest2x(const TensorView& x, const TensorView& y) = 0;

  // y = x for any strides on either side (permutes, concatenation into narrow() views).
  virtual void copy(const TensorView& x, const TensorView& y) = 0;

  // Memory the backend holds outside the arenas (its kernels' working buffers, which grow to the largest
  // size an op asked for and stay for the next call).
  virtual size_t scratch_bytes() const { return 0; }
  // Gives those buffers back (called between phases). While an op runs on another thread (a second
  // pipeline), it gives back nothing.
  virtual void release_scratch() {}

  // Scratch one attention call of `tokens` queries over `keys` keys takes beyond the arena (score matrices),
  // for the memory planner; each backend knows its own kernels' rule.
  virtual int64_t attention_scratch_bytes(const AttentionParams&, int64_t /*tokens*/, int64_t /*keys*/) const {
    return 0;
  }
};

// The fast CPU backend (BLAS GEMMs, vectorised and threaded kernels).
Backend& cpu_backend();
// Plain loops, written to be obviously right; the yardstick for every fast kernel.
Backend& reference_backend();

}  // namespace kakusan
