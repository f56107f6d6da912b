// Every op of the CUDA backend against the reference backend (plain loops, double sums). Inputs are random,
// outputs start as NaN. Tolerances, each bounding one named error:
//   kExact      ops that do the reference's float roundings in the same order (copies, guidance, resize ...);
//   kF32Sum     f32 sums in another order (GEMM/convolution accumulation, norm statistics, softmax): for the
//               sizes here (K <= 1152 products of O(1) terms) the difference stays far under 1e-4;
//   kF32Func    device expf/erff/tanhf (<= 2 ulp) against the reference's double functions: relative 1e-6,
//               and where 1 + erf or 1 + tanh cancels (GELU of a negative x), 2 ulp of 1 times |x| <= 16
//               gives up to 2e-6 absolute (4e-6 after GEGLU's product with an O(1) hidden value).
// Narrow products are compared with the reference run on operands already rounded to the weight's dtype, so
// that only the accumulation order differs, plus for conv2d the one rounding of its output that cuDNN's
// descriptor API adds (conv2d.cpp): 2^-11 relative for f16, 2^-8 for bf16. Narrow convolutions take the graph
// API (no such rounding) unless cuDNN refuses it; test_cuda_conv checks them to the contract's tolerance.
#include "cuda_test.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::CudaTest;
using testing::random_tensor;
using testing::random_weights;
using testing::Tolerance;

constexpr Tolerance kExact{0, 0};
constexpr Tolerance kF32Sum{1e-4, 1e-4};
constexpr Tolerance kF32Func{4e-6, 1e-6};

Backend& ref() { return reference_backend(); }

// x rounded to `dtype` and widened back: what a product in that precision sees.
Tensor rounded(const Tensor& x, DType dtype) { return dtype == DType::F32 ? x.clone() : x.to(dtype).to_f32(); }

// The narrow output is rounded before the f32 bias is added, and a different accumulation order can move it
// to the neighbouring value: one ulp of the convolution's value (|conv| < 8 here: O(1) outputs of unit-scaled
// weights) in absolute terms, since the bias may cancel it: 8 · 2^-10 for f16, 8 · 2^-7 for bf16.
Tolerance conv_output_rounding(DType dtype) {
  if (dtype == DType::F16) return {8e-3, 1e-3};
  if (dtype == DType::BF16) return {6.3e-2, 8e-3};
  return kF32Sum;
}

std::string name_of(DType t) { return std::string(dtype_name(t)); }

class CudaOps : public CudaTest {
 protected:
  // embedding must refuse `ids` (one of them outside `table`) with an error containing `names`.
  void expect_id_refused(const Tensor& table, const Tensor& ids, Tensor& got, const std::string& names) {
    try {
      gpu().embedding(table, up(ids), got);
      ADD_FAILURE() << "an id outside the table was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
    }
  }
};

TEST_F(CudaOps, LinearInEveryWeightDtypeWithAndWithoutBias) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(name_of(dtype) + (with_bias ? " bias" : " no bias"));
      // x is a strided view: the first 320 of 384 columns, as a slice of a wider activation.
      const Tensor wide = random_tensor({2, 77, 384}, 1);
      const TensorView x = wide.view().narrow(2, 0, 320);
      const Tensor w = random_weights({640, 320}, 320, 2, dtype);
      const Tensor bias = with_bias ? random_weights({640}, 1, 3, dtype) : Tensor();
      Tensor want = Tensor::empty({2, 77, 640});
      ref().linear(rounded(Tensor::copy_of(x), dtype), w, bias, want);
      const Tensor gx = up(wide), gw = up(w), gb = with_bias ? up(bias) : Tensor();
      Tensor got = poisoned({2, 77, 640});
      gpu().linear(gx.view().narrow(2, 0, 320), gw, gb, got);
      KK_EXPECT_CLOSE(down(got), want, kF32Sum);
    }
  }
}

// No input features (k = 0): the empty sum leaves the bias, or zeros without one, in every row.
TEST_F(CudaOps, LinearWithoutInputFeaturesIsTheBias) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(name_of(dtype) + (with_bias ? " bias" : " no bias"));
      const Tensor x = Tensor::empty({2, 3, 0}), w = Tensor::empty({5, 0}).to(dtype);
      const Tensor bias = with_bias ? random_tensor({5}, 4) : Tensor();
      Tensor want = Tensor::empty({2, 3, 5});
      ref().linear(x, w, bias, want);
      Tensor got = poisoned({2, 3, 5});
      gpu().linear(up(x), up(w), with_bias ? up(bias) : Tensor(), got);
      KK_EXPECT_CLOSE(down(got), want, kExact);
    }
  }
}

// No input pixels (height 0: every tap is padding) or no input channels: the bias alone, or zeros, as on the
// host backends (cuDNN refuses an empty input).
TEST_F(CudaOps, Conv2dWithoutInputPixelsIsTheBias) {
  struct Case {
    Shape x, w;
    Conv2dParams p;
    Shape y;
  };
  const Case cases[] = {
      {{2, 3, 0, 5}, {4, 3, 3, 3}, Conv2dParams{2, 2, 1, 0, 1}, {2, 4, 1, 2}},  // asymmetric: the padded copy
      {{1, 8, 0, 6}, {4, 8, 3, 3}, Conv2dParams::symmetric(2), {1, 4, 2, 8}},
      {{2, 0, 5, 5}, {4, 0, 3, 3}, Conv2dParams::symmetric(1), {2, 4, 5, 5}},
  };
  for (DType dtype : {DType::F32, DType::F16}) {
    for (bool with_bias : {true, false}) {
      for (const Case& c : cases) {
        SCOPED_TRACE(name_of(dtype) + (with_bias ? " bias" : " no bias") + " x " + c.x.str());
        const Tensor x = Tensor::empty(c.x), w = random_weights(c.w, 9, 7, dtype);
        const Tensor bias = with_bias ? random_tensor({c.w[0]}, 8) : Tensor();
        Tensor want = Tensor::empty(c.y);
        ref().conv2d(x, w, bias, c.p, want);
        Tensor got = poisoned(c.y);
        gpu().conv2d(up(x), up(w), with_bias ? up(bias) : Tensor(), c.p, got);
        KK_EXPECT_CLOSE(down(got), want, kExact);
      }
    }
  }
}

TEST_F(CudaOps, Conv2dPaddingsStridesAndDtypes) {
  struct Case {
    Shape x, w;
    Conv2dParams p;
  };
  const Case cases[] = {
      {{2, 8, 17, 13}, {16, 8, 3, 3}, Conv2dParams::symmetric(1)},
      {{2, 8, 17, 13}, {16, 8, 3, 3}, Conv2dParams{2, 0, 1, 0, 1}},  // the VAE's asymmetric downsampling
      {{1, 16, 9, 9}, {8, 16, 1, 1}, Conv2dParams{}},
      {{1, 4, 12, 12}, {128, 4, 3, 3}, Conv2dParams::symmetric(1, 2)},
  };
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(name_of(dtype) + " x " + c.x.str() + " w " + c.w.str());
      const Tensor x = random_tensor(c.x, 4);
      const Tensor w = random_weights(c.w, c.w[1] * c.w[2] * c.w[3], 5, dtype);
      const Tensor bias = random_weights({c.w[0]}, 1, 6, dtype);
      const int64_t oh = (c.x[2] + c.p.pad_top + c.p.pad_bottom - c.w[2]) / c.p.stride + 1;
      const int64_t ow = (c.x[3] + c.p.pad_left + c.p.pad_right - c.w[3]) / c.p.stride + 1;
      const Shape y_shape{c.x[0], c.w[0], oh, ow};
      Tensor want = Tensor::empty(y_shape);
      ref().conv2d(rounded(x, dtype), w, bias, c.p, want);
      Tensor got = poisoned(y_shape);
      gpu().conv2d(up(x), up(w), up(bias), c.p, got);
      KK_EXPECT_CLOSE(down(got), want, conv_output_rounding(dtype));
    }
  }
}

TEST_F(CudaOps, GroupNormWithAndWithoutSiluAndLayerNorm) {
  const Tensor x = random_tensor({2, 64, 9, 7}, 7, 3.0f);
  const Tensor gamma = random_weights({64}, 1, 8, DType::F16), beta = random_weights({64}, 1, 9, DType::F16);
  for (Activation act : {Activation::None, Activation::SiLU}) {
    Tensor want = Tensor::empty(x.shape());
    ref().group_norm(x, 32, gamma, beta, 1e-5f, act, want);
    Tensor got = poisoned(x.shape());
    gpu().group_norm(up(x), 32, up(gamma), up(beta), 1e-5f, act, got);
    KK_EXPECT_CLOSE(down(got), want, kF32Sum, act == Activation::SiLU ? "group_norm+silu" : "group_norm");
  }
  Tensor in_place = up(x);  // y may alias x
  gpu().group_norm(in_place, 8, Tensor(), Tensor(), 1e-6f, Activation::None, in_place);
  Tensor want_plain = Tensor::empty(x.shape());
  ref().group_norm(x, 8, Tensor(), Tensor(), 1e-6f, Activation::None, want_plain);
  KK_EXPECT_CLOSE(down(in_place), want_plain, kF32Sum, "group_norm in place");

  const Tensor rows = random_tensor({2, 77, 768}, 10, 2.0f);
  const Tensor lg = random_weights({768}, 1, 11), lb = random_weights({768}, 1, 12);
  Tensor want = Tensor::empty(rows.shape());
  ref().layer_norm(rows, lg, lb, 1e-5f, want);
  Tensor got = poisoned(rows.shape());
  gpu().layer_norm(up(rows), up(lg), up(lb), 1e-5f, got);
  KK_EXPECT_CLOSE(down(got), want, kF32Sum, "layer_norm");
}

// One attention call on both backends; q, k and v are slices of a fused projection (strided rows).
void check_attention(CudaTest& t, Backend& gpu, int64_t batch, int64_t q_len, int64_t kv_len, int heads,
                     int64_t head_dim, bool causal, DType precision, Tolerance tol) {
  SCOPED_TRACE(std::string("attention B") + std::to_string(batch) + " Tq" + std::to_string(q_len) + " Tk" +
               std::to_string(kv_len) + " H" + std::to_string(heads) + " D" + std::to_string(head_dim) +
               (causal ? " causal " : " ") + name_of(precision));
  const int64_t width = heads * head_dim;
  const Tensor q_host = random_tensor({batch, q_len, width}, 13);
  const Tensor kv_host = random_tensor({batch, kv_len, 2 * width}, 14);  // [k | v] fused
  AttentionParams p;
  p.heads = heads;
  p.scale = 1.0f / std::sqrt(float(head_dim));
  p.causal = causal;
  p.precision = precision;
  const Tensor kv_rounded = rounded(kv_host, precision);
  Tensor want = Tensor::empty({batch, q_len, width});
  AttentionParams ref_p = p;
  ref_p.precision = DType::F32;
  ref().attention(rounded(q_host, precision), kv_rounded.view().narrow(2, 0, width),
                  kv_rounded.view().narrow(2, width, width), ref_p, want);
  const Tensor gq = t.up(q_host), gkv = t.up(kv_host);
  Tensor got = t.poisoned({batch, q_len, width});
  gpu.attention(gq, gkv.view().narrow(2, 0, width), gkv.view().narrow(2, width, width), p, got);
  KK_EXPECT_CLOSE(t.down(got), want, tol);
}

TEST_F(CudaOps, AttentionEveryHeadWidthCausalAndPrecision) {
  // Rounding the probabilities to f16 (2^-11 relative) moves an output by at most 2^-11 · max|v| (|v| < 5
  // here); bf16 (2^-8) likewise.
  const Tolerance f16_p{3e-3, 1e-3}, bf16_p{2e-2, 8e-3};
  check_attention(*this, gpu(), 2, 300, 300, 8, 40, false, DType::F32, kF32Sum);   // SD1.5 self-attention
  check_attention(*this, gpu(), 2, 300, 77, 8, 40, false, DType::F32, kF32Sum);    // cross-attention
  check_attention(*this, gpu(), 1, 77, 77, 12, 64, true, DType::F32, kF32Sum);     // CLIP, causal
  check_attention(*this, gpu(), 2, 70, 77, 8, 80, false, DType::F32, kF32Sum);
  check_attention(*this, gpu(), 1, 65, 33, 4, 160, false, DType::F32, kF32Sum);
  check_attention(*this, gpu(), 1, 100, 100, 1, 512, false, DType::F32, kF32Sum);  // the VAE's mid-block
  check_attention(*this, gpu(), 2, 300, 77, 8, 40, false, DType::F16, f16_p);
  check_attention(*this, gpu(), 1, 130, 130, 2, 160, true, DType::F16, f16_p);
  check_attention(*this, gpu(), 2, 300, 77, 8, 64, false, DType::BF16, bf16_p);
}

TEST_F(CudaOps, EveryActivation) {
  const Tensor x = random_tensor({3, 1000}, 15, 4.0f);
  for (Activation act : {Activation::None, Activation::SiLU, Activation::GELU, Activation::GELUTanh,
                         Activation::QuickGELU, Activation::ReLU, Activation::SoftClamp3, Activation::SignedToUnit,
                         Activation::UnitToSigned}) {
    Tensor want = Tensor::empty(x.shape());
    ref().activation(x, act, want);
    Tensor got = poisoned(x.shape());
    gpu().activation(up(x), act, got);
    KK_EXPECT_CLOSE(down(got), want, kF32Func, "activation " + std::to_string(int(act)));
  }
}

TEST_F(CudaOps, ElementwiseOpsRoundLikeTheReference) {
  const Tensor a = random_tensor({2, 4, 9, 11}, 16, 3.0f), b = random_tensor({2, 4, 9, 11}, 17, 3.0f);
  const Tensor ga = up(a), gb = up(b);
  Tensor want = Tensor::empty(a.shape());
  Tensor got = poisoned(a.shape());
  ref().add(a, b, want);
  gpu().add(ga, gb, got);
  KK_EXPECT_CLOSE(down(got), want, kExact, "add");
  ref().scale(a, 14.6146f, want);
  gpu().scale(ga, 14.6146f, got);
  KK_EXPECT_CLOSE(down(got), want, kExact, "scale");
  ref().divide(a, 0.18215f, want);
  gpu().divide(ga, 0.18215f, got);
  KK_EXPECT_CLOSE(down(got), want, kExact, "divide");

  Tensor half_want = Tensor::empty({1, 4, 9, 11});
  Tensor half_got = poisoned({1, 4, 9, 11});
  ref().cfg_combine(a, 7.5f, half_want);
  gpu().cfg_combine(ga, 7.5f, half_got);
  KK_EXPECT_CLOSE(down(half_got), half_want, kExact, "cfg_combine");

  const Tensor noise = random_tensor({1, 4, 9, 11}, 18);
  const Tensor moments = random_tensor({1, 8, 9, 11}, 19, 1.0f);
  ref().gaussian_sample(moments, noise, half_want);
  gpu().gaussian_sample(up(moments), up(noise), half_got);
  KK_EXPECT_CLOSE(down(half_got), half_want, kF32Func, "gaussian_sample");

  const Tensor g = random_tensor({2, 7, 2 * 320}, 20, 2.0f);
  Tensor gw = Tensor::empty({2, 7, 320});
  Tensor gg = poisoned({2, 7, 320});
  ref().geglu(g, gw);
  gpu().geglu(up(g), gg);
  KK_EXPECT_CLOSE(down(gg), gw, kF32Func, "geglu");
}

TEST_F(CudaOps, ResizeTimestepsBlendAndEmbedding) {
  const Tensor x = random_tensor({2, 3, 11, 5}, 21);
  for (const Shape& out : {Shape{2, 3, 22, 10}, Shape{2, 3, 23, 9}, Shape{2, 3, 6, 3}}) {
    Tensor want = Tensor::empty(out);
    Tensor got = poisoned(out);
    ref().resize_nearest(x, want);
    gpu().resize_nearest(up(x), got);
    KK_EXPECT_CLOSE(down(got), want, kExact, "resize " + out.str());
  }

  // A timestep up to 999 times a frequency: one ulp of exp() in the frequency moves sin/cos by up to
  // 999 · 2^-24 ≈ 6e-5, so the CPU's expf and the device's correctly rounded exp may differ by that much.
  const Tensor ts = Tensor::full({2}, 981.0f);
  for (bool flip : {true, false}) {
    Tensor want = Tensor::empty({2, 321});
    Tensor got = poisoned({2, 321});
    ref().timestep_embedding(ts, flip, 1, want);
    gpu().timestep_embedding(up(ts), flip, 1, got);
    KK_EXPECT_CLOSE(down(got), want, Tolerance{1e-4, 0}, flip ? "timesteps flipped" : "timesteps");
  }

  const Tensor ta = random_tensor({1, 4, 16, 16}, 22), tb = random_tensor({1, 4, 16, 12}, 23);
  for (bool vertical : {true, false}) {
    Tensor want = tb.clone();
    ref().blend_tiles(ta, want, 8, vertical);
    Tensor got = up(tb);
    gpu().blend_tiles(up(ta), got, 8, vertical);
    KK_EXPECT_CLOSE(down(got), want, kExact, vertical ? "blend vertical" : "blend horizontal");
  }

  const Tensor table = random_weights({50, 24}, 1, 24, DType::F16);
  Tensor ids = Tensor::empty({2, 5}, DType::I64);
  for (int64_t i = 0; i < 10; ++i) static_cast<int64_t*>(ids.data())[i] = (i * 7) % 50;
  Tensor want = Tensor::empty({2, 5, 24});
  ref().embedding(table, ids, want);
  Tensor got = poisoned({2, 5, 24});
  const Tensor gtable = up(table);
  gpu().embedding(gtable, up(ids), got);
  KK_EXPECT_CLOSE(down(got), want, kExact, "embedding");
  static_cast<int64_t*>(ids.data())[7] = 50;
  expect_id_refused(gtable, ids, got, "id 50 (element 7");
}

// Rows of no width: nothing to gather, but an id outside the table is still an error naming it, as on the host
// backends (the kernel ran over ids × width elements: none).
TEST_F(CudaOps, EmbeddingChecksTheIdsOfRowsOfNoWidth) {
  Tensor ids = Tensor::empty({3}, DType::I64);
  for (int64_t i = 0; i < 3; ++i) static_cast<int64_t*>(ids.data())[i] = i;
  const Tensor table = up(Tensor::empty({3, 0}));
  Tensor got = poisoned({3, 0});
  EXPECT_NO_THROW(gpu().embedding(table, up(ids), got));
  static_cast<int64_t*>(ids.data())[1] = 3;
  expect_id_refused(table, ids, got, "id 3 (element 1");
}

// The shared checks refuse these before anything runs here too: a blend neighbour narrower than the tile (read
// out of bounds before), a timestep width whose frequencies would divide by zero, an empty kernel.
TEST_F(CudaOps, RefuseDegenerateShapesBeforeLaunching) {
  Tensor b = up(random_tensor({1, 2, 4, 6}, 40));
  EXPECT_THROW(gpu().blend_tiles(up(random_tensor({1, 2, 4, 3}, 41)), b, 2, true), Error);
  EXPECT_THROW(gpu().blend_tiles(up(random_tensor({1, 2, 3, 6}, 42)), b, 2, false), Error);
  Tensor y = poisoned({2, 2});
  EXPECT_THROW(gpu().timestep_embedding(up(Tensor::full({2}, 10.0f)), false, 1, y), Error);
  Tensor conv = poisoned({1, 3, 5, 3});
  EXPECT_THROW(gpu().conv2d(up(random_tensor({1, 2, 4, 4}, 43)), up(Tensor::empty({3, 2, 0, 2})), Tensor(),
                            Conv2dParams{}, conv),
               Error);
}

TEST_F(CudaOps, CopiesAndTransfersAnyStridesAndDtypes) {
  const Tensor x = random_tensor({3, 4, 5}, 25);
  // A permuted view, copied to a dense tensor and into a strided one.
  const Tensor gx = up(x);
  const TensorView permuted = gx.view().as_strided({5, 4, 3}, {1, 5, 20});
  Tensor got = poisoned({5, 4, 3});
  gpu().copy(permuted, got);
  Tensor want = Tensor::empty({5, 4, 3});
  ref().copy(x.view().as_strided({5, 4, 3}, {1, 5, 20}), want);
  KK_EXPECT_CLOSE(down(got), want, kExact, "copy permuted");
  Tensor wide = poisoned({3, 4, 8});
  gpu().copy(gx, wide.view().narrow(2, 1, 5));
  KK_EXPECT_CLOSE(down(wide.view().narrow(2, 1, 5)), x, kExact, "copy into a narrow view");

  // Upload converts f32 -> f16 (round to nearest even, as Tensor::to), download converts back.
  const Tensor as_half = up(x, DType::F16);
  KK_EXPECT_CLOSE(down(as_half).to_f32(), x.to(DType::F16).to_f32(), kExact, "f16 round trip");
  Tensor host_half = Tensor::empty({3, 4, 5}, DType::F16);
  gpu().download(gx, host_half);
  KK_EXPECT_CLOSE(host_half.to_f32(), x.to(DType::F16).to_f32(), kExact, "download converts");
}

TEST_F(CudaOps, RejectHostMemoryNamingTheOperand) {
  const Tensor x = random_tensor({2, 8}, 26);
  Tensor y = poisoned({2, 8});
  try {
    gpu().activation(x, Activation::SiLU, y);
    ADD_FAILURE() << "a host operand was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("activation: x is host memory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kakusan
