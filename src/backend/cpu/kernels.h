// The fast CPU kernels behind cpu_backend(), one family per file. Arguments are checked by the backend
// (backend/op_checks.h) before these run. Weights in f16/bf16 are widened to float32 at use, a block at a
// time, into reused scratch (for_each_weight_block in gemm.h), so an fp16 model keeps fp16 memory. Products
// in bf16 (a bf16 weight, AttentionParams::precision) are exact products with f32 sums, on one of two paths
// (gemm.h's Bf16Gemm, picked by speed): where vdpbf16ps outruns the f32 FMAs (AMD Zen 4/5: twice the rate)
// linear, every convolution (oneDNN's direct convolution over enough pixels, else im2col; no Winograd) and
// non-causal attention multiply bf16 operands on oneDNN, weights in place or rearranged per call; elsewhere
// the f32 GEMMs multiply operands rounded to bf16 (rounding.h).
#pragma once

#include "backend/backend.h"
#include "backend/op_checks.h"
#include "backend/precision.h"
#include "backend/cpu/scratch.h"

namespace kakusan::cpu {

void linear(const LinearDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const TensorView& y);
void conv2d(const ConvDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const Conv2dParams& p, const TensorView& y);
// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions over enough pixels and channels (conv2d_winograd.cpp);
// conv2d uses it whenever winograd_applies(). The input is rounded to `precision` (product_precision of the
// weight) as it is read, before the (f32) transforms.
bool winograd_applies(const ConvDims& d, const Conv2dParams& p);
void conv2d_winograd(const ConvDims& d, const float* input, const TensorView& weight, const float* bias,
                     const Conv2dParams& p, DType precision, float* output);
// bf16 convolutions on oneDNN's direct convolution (conv2d_bf16_direct.cpp): conv2d's path for bf16 products
// where they are native (gemm.h) over at least direct_bf16_conv_min_pixels() (512) output pixels (images x rows x
// columns; below that, rearranging the weight each call costs more than it saves). Dense f32 NCHW input and
// output, dense bf16 weight; bias may be null.
bool direct_bf16_conv_applies(const ConvDims& d, const Conv2dParams& p);
void conv2d_bf16_direct(const ConvDims& d, const float* input, const uint16_t* weight, const float* bias,
                        const Conv2dParams& p, float* output);
int64_t& direct_bf16_conv_min_pixels();
void group_norm(const GroupNormDims& d, const TensorView& x, int groups, const TensorView& gamma,
                const TensorView& beta, float eps, Activation act, const TensorView& y);
void layer_norm(const RowsDims& d, const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                const TensorView& y);
void attention(const AttentionDims& d, const TensorView& q, const TensorView& k, const TensorView& v,
               const AttentionParams& p, const TensorView& out);
void activation(const TensorView& x, Activation act, const TensorView& y);
void add(const TensorView& a, const TensorView& b, const TensorView& y);
void geglu(const RowsDims& d, const TensorView& x, const TensorView& y);
void upsample_nearest2x(const TensorView& x, const TensorView& y);
// The small ops (latent_ops.cpp); each returns false when its operands are not dense float32, and the
// backend then runs the reference instead (these ops touch latents and embeddings, never a hot path).
bool resize_nearest(const TensorView& x, const TensorView& y);
bool scale(const TensorView& x, float alpha, bool divide, const TensorView& y);
bool cfg_combine(const TensorView& noise_pred, float guidance, const TensorView& out);
bool timestep_embedding(const TensorView& timesteps, bool flip_sin_to_cos, int freq_shift, const TensorView& y);
bool gaussian_sample(const TensorView& moments, const TensorView& noise, const TensorView& y);
bool blend_tiles(const TensorView& a, const TensorView& b, int64_t extent, bool vertical);

}  // namespace kakusan::cpu
